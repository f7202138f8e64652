"""What ``handtools render`` reads and writes: the samples to draw, PNG panels, a contact
sheet, an MP4 of the panels and OBJ/PLY meshes.

Drawing is :func:`handtools.core.render.overlay.panels_in_view`; this module
picks samples from shards, checks every output before work starts, and writes
each output atomically (the video to a temporary name renamed when complete).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from handtools.errors import HandtoolsError, InputError, OutputExistsError
from handtools.io.files import write_atomic

SHEET_NAME = "sheet.png"
SHEET_MAX_WIDTH = 4096


class Item(NamedTuple):
    """One sample to draw."""

    reader: object  # the ShardReader holding it
    verts: Optional[str]  # dataset of its mesh, or None: draw its 2D annotations (keypoints, box, mask)
    joints: Optional[str]  # dataset of its joints, or None (regressed from the mesh)
    index: int  # sample index in the shard
    stem: str  # output file stem, <shard>-<index>


def pick_source(reader, source: str) -> tuple[Optional[str], Optional[str]]:
    """(vertex dataset, joint dataset or None) of a shard for --source auto|pred|gt;
    (None, None) for auto on a shard without meshes (its 2D annotations are drawn)."""
    if source == "auto":
        if "pred/verts3d" not in reader and "verts3d" not in reader:
            return None, None
        source = "pred" if "pred/verts3d" in reader else "gt"
    verts, joints = ("pred/verts3d", "pred/joints3d") if source == "pred" else ("verts3d", "joints3d")
    if verts not in reader:
        raise InputError(f"{reader.path}: {verts}: missing dataset (needed by --source {source})")
    return verts, joints if joints in reader else None


def plan_items(readers: Sequence, source: str, view: int) -> list[Item]:
    """Every sample of every shard, in order, with its datasets and output stem.

    Stems are ``<shard stem>-<index>``, prefixed by the shard's position when
    two shards share a file stem. Raises InputError for a shard without the
    mesh of ``source`` (``gt``/``pred``), without camera ``view``, or without T_view
    for view > 0. With ``auto`` a shard without meshes gives items with ``verts`` None.
    """
    items = []
    stems = [r.path.stem for r in readers]
    unique = len(set(stems)) == len(stems)
    for k, r in enumerate(readers):
        vname, jname = pick_source(r, source)
        if view >= r.num_views:
            raise InputError(f"{r.path}: --view {view} but the shard has {r.num_views} view(s)")
        if view > 0 and "T_view" not in r and vname is not None:
            raise InputError(f"{r.path}: T_view: missing dataset (needed by --view {view})")
        stem = stems[k] if unique else f"{k:03d}-{stems[k]}"
        items += [Item(r, vname, jname, i, f"{stem}-{i:05d}") for i in range(r.num_samples)]
    return items


def check_targets(items: Sequence[Item], out: Path, *, png: bool, export: Optional[str], sheet: bool,
                  video: Optional[Path], overwrite: bool) -> None:
    """Refuse to start when any output exists and ``overwrite`` is False (names the first)."""
    targets = []
    if png:
        targets += [out / f"{it.stem}.png" for it in items]
    if export:
        targets += [out / f"{it.stem}.{export}" for it in items]
    if sheet:
        targets.append(out / SHEET_NAME)
    if video is not None:
        targets.append(video)
    bare = next((it for it in items if it.verts is None), None)
    if export and bare is not None:
        raise InputError(f"{bare.reader.path}: --export {export} needs meshes (verts3d or pred/verts3d); "
                         "the shard has none")
    if not overwrite:
        existing = [t for t in targets if t.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise OutputExistsError(f"{existing[0]}: exists{more} (use --overwrite to replace)")


def batches(items: Sequence[Item], size: int) -> list[list[Item]]:
    """Consecutive runs of at most ``size`` items; a batch never spans shards (one read per dataset)."""
    out, cur = [], []
    for it in items:
        if cur and (it.reader is not cur[0].reader or len(cur) == size):
            out.append(cur)
            cur = []
        cur.append(it)
    if cur:
        out.append(cur)
    return out


def read_batch(batch: Sequence[Item], view: int) -> dict:
    """Arrays of one batch (one shard): ``verts0`` (B, V, 3) and ``joints0`` (B, 21, 3) or None,
    view-0 frame; ``colors`` (B, V, 3) in [0, 1] or None (pred/texture, drawn with pred/verts3d only);
    ``images`` (B, H, W, 3) and ``K`` (B, 3, 3) of camera ``view``; ``T_view`` (B, V', 4, 4) when view > 0."""
    r, vname, jname = batch[0].reader, batch[0].verts, batch[0].joints
    idx = np.array([it.index for it in batch])
    out = {
        "verts0": r.read(vname, idx),
        "joints0": r.read(jname, idx) if jname is not None else None,
        "colors": r.read("pred/texture", idx) if vname == "pred/verts3d" and "pred/texture" in r else None,
        "images": r.read("images", idx)[:, view],
        "K": r.read("K", idx)[:, view],
        "T_view": r.read("T_view", idx) if view > 0 else None,
    }
    return out


def read_batch_2d(batch: Sequence[Item]) -> dict:
    """The 2D annotations of one batch (one shard), every view: ``images`` (B, V, H, W, 3) uint8,
    ``keypoints`` (B, V, 21, 3), ``bbox`` (B, V, 4), ``masks`` (B, V, H, W); each None when absent."""
    r = batch[0].reader
    idx = np.array([it.index for it in batch])
    get = lambda name: r.read(name, idx) if name in r else None  # noqa: E731
    return {"images": get("images"), "keypoints": get("keypoints2d"), "bbox": get("bbox"), "masks": get("masks")}


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG file bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def check_ffmpeg() -> None:
    """Fail early, with the fix, when imageio cannot reach an ffmpeg binary."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise HandtoolsError(
            f"--video needs ffmpeg through the imageio-ffmpeg package ({exc}); "
            "install it with: pip install 'handtools[video]'"
        ) from None


def export_mesh(path: Path, verts: np.ndarray, faces: np.ndarray, colors: Optional[np.ndarray], fmt: str) -> None:
    """One mesh -> OBJ/PLY through trimesh, with vertex colours when given (atomic).

    Args:
        verts: (V, 3) float, metres. faces: (F, 3) int. colors: optional (V, 3) in [0, 1].
        fmt: ``obj`` or ``ply``.
    """
    import trimesh

    vc = None
    if colors is not None:
        vc = np.clip(colors * 255.0 + 0.5, 0, 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices=verts.astype(np.float64), faces=faces, vertex_colors=vc, process=False)
    data = mesh.export(file_type=fmt)
    write_atomic(path, data.encode() if isinstance(data, str) else data)


def _thumbnail(tile: np.ndarray, cols: int) -> np.ndarray:
    """Shrink a sheet tile so ``cols`` of them fit in ``SHEET_MAX_WIDTH`` (keeps memory bounded)."""
    import cv2

    h, w = tile.shape[:2]
    tw = min(w, max(1, (SHEET_MAX_WIDTH - 2 * (cols + 1)) // cols))
    if tw == w:
        return tile.copy()
    return cv2.resize(tile, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA)


class PanelWriter:
    """Writes each sample's outputs as it comes, and the sheet and video at the end.

    Use as a context manager: on leaving without an exception the sheet is
    written and the video renamed into place; on an exception the unfinished
    video is removed (panels and meshes already written stay: each is complete).

    Args:
        out: output folder (created). count: samples to come (the sheet's grid).
        png: one PNG panel strip per sample. export: ``obj``/``ply`` or None.
        sheet: a contact sheet ``SHEET_NAME`` of the mesh overlays.
        video: an MP4 of the strips, or None. fps: its frame rate.
    """

    def __init__(self, out: Path, count: int, *, png: bool, export: Optional[str], sheet: bool,
                 video: Optional[Path], fps: float):
        self.out, self.png, self.export, self.sheet, self.video = out, png, export, sheet, video
        self.cols = math.ceil(math.sqrt(count))
        self.tiles: list[np.ndarray] = []
        self.captions: list[str] = []
        self._writer = self._tmp_video = None
        out.mkdir(parents=True, exist_ok=True)
        if video is not None:
            video.parent.mkdir(parents=True, exist_ok=True)
            self._writer, self._tmp_video = _video_writer(video, fps)

    def add(self, stem: str, strip: np.ndarray, verts0: Optional[np.ndarray] = None,
            faces: Optional[np.ndarray] = None, colors: Optional[np.ndarray] = None) -> None:
        """One sample: its (H, 5 W, 3) uint8 strip and its view-0 mesh (V, 3) with faces and
        colours for --export; or, without a mesh (``verts0`` None), its annotated views
        (H, W', 3), which are also its sheet tile."""
        from handtools.core.render.visualize import PANELS, pad_to_multiple

        if self.png:
            write_atomic(self.out / f"{stem}.png", png_bytes(strip))
        if self.export and verts0 is not None:
            export_mesh(self.out / f"{stem}.{self.export}", verts0, faces, colors, self.export)
        if self.sheet:
            if verts0 is None:
                tile = strip
            else:
                w = strip.shape[1] // len(PANELS)
                tile = strip[:, PANELS.index("mesh") * w : (PANELS.index("mesh") + 1) * w]
            self.tiles.append(_thumbnail(tile, self.cols))
            self.captions.append(stem)
        if self._writer is not None:
            self._writer.append_data(pad_to_multiple(strip, 16))

    def __enter__(self) -> "PanelWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self._writer is not None:
                self._writer.close()
            if self._tmp_video is not None and self._tmp_video.exists():
                self._tmp_video.unlink()

    def _finish(self) -> None:
        from handtools.core.render.visualize import contact_sheet

        if self.sheet:
            img = contact_sheet(_same_shape(self.tiles), cols=self.cols, max_width=SHEET_MAX_WIDTH, captions=self.captions)
            write_atomic(self.out / SHEET_NAME, png_bytes(img))
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            os.replace(self._tmp_video, self.video)


def _same_shape(tiles: list[np.ndarray], max_height: int = 480) -> list[np.ndarray]:
    """Tiles of different sizes (shards of different image sizes, stereo next to mono) scaled to
    one height (the tallest, at most ``max_height``) and centred on a dark background of the widest,
    so they fit one sheet grid."""
    import cv2

    if len({t.shape for t in tiles}) == 1:
        return tiles
    h = min(max(t.shape[0] for t in tiles), max_height)
    scaled = []
    for t in tiles:
        w = max(1, round(t.shape[1] * h / t.shape[0]))
        interp = cv2.INTER_AREA if h < t.shape[0] else cv2.INTER_LINEAR
        scaled.append(t if t.shape[0] == h else cv2.resize(t, (w, h), interpolation=interp))
    w = max(t.shape[1] for t in scaled)
    out = []
    for t in scaled:
        canvas = np.full((h, w, 3), 36, np.uint8)
        x = (w - t.shape[1]) // 2
        canvas[:, x : x + t.shape[1]] = t
        out.append(canvas)
    return out


def _video_writer(path: Path, fps: float):
    """An imageio ffmpeg writer to a temporary name next to ``path``, and that name."""
    import imageio.v2 as imageio

    tmp = path.parent / f".{path.stem}.{os.getpid()}.tmp{path.suffix}"
    # Frames are padded to multiples of 16 (visualize.pad_to_multiple): no rescaling by ffmpeg.
    return imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16,
                              pixelformat="yuv420p"), tmp
