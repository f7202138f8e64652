"""``handtools render``: draw meshes and skeletons over the input images; PNG, contact sheet, MP4, OBJ/PLY."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.console import log, progress
from handtools.errors import HandtoolsError, InputError, OutputExistsError
from handtools.io.pipes import emit_path, read_input_paths
from handtools.options import Device, Inputs, Mano, Overwrite, resolve_device

SHEET_NAME = "sheet.png"
SHEET_MAX_WIDTH = 4096


def _atomic_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the target folder, then rename (readers never see a partial file)."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _png_bytes(image) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _pick_source(reader, source: str) -> tuple[str, Optional[str]]:
    """(vertex dataset, joint dataset or None) of a shard for --source."""
    if source == "auto":
        source = "pred" if "pred/verts3d" in reader else "gt"
    verts, joints = ("pred/verts3d", "pred/joints3d") if source == "pred" else ("verts3d", "joints3d")
    if verts not in reader:
        raise InputError(f"{reader.path}: {verts}: missing dataset (needed by --source {source})")
    return verts, joints if joints in reader else None


def _check_ffmpeg() -> None:
    """Fail early, with the fix, when imageio cannot reach an ffmpeg binary."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise HandtoolsError(
            f"--video needs ffmpeg through the imageio-ffmpeg package ({exc}); "
            "install it with: pip install 'handtools[video]'"
        ) from None


def _video_writer(path: Path, fps: float):
    """An imageio ffmpeg writer to a temporary name next to ``path``."""
    import imageio.v2 as imageio

    tmp = path.parent / f".{path.stem}.{os.getpid()}.tmp{path.suffix}"
    # Frames are padded to multiples of 16 (visualize.pad_to_multiple): no rescaling by ffmpeg.
    return imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=16,
                              pixelformat="yuv420p"), tmp


def render(
    inputs: Inputs = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (PNG panels, sheet, meshes).")] = ...,
    source: Annotated[
        str, typer.Option("--source", help="Meshes to draw: pred (pred/verts3d), gt (verts3d) or auto "
                          "(pred when the shard has it).")
    ] = "auto",
    view: Annotated[int, typer.Option("--view", min=0, help="Camera (view index) to draw in.")] = 0,
    max_samples: Annotated[
        Optional[int], typer.Option("--max", min=1, help="Draw at most N samples (after --every).")
    ] = None,
    every: Annotated[int, typer.Option("--every", min=1, help="Draw every K-th sample.")] = 1,
    png: Annotated[bool, typer.Option("--png/--no-png", help="Write one PNG panel per sample.")] = True,
    sheet: Annotated[bool, typer.Option("--sheet", help=f"Write a contact sheet {SHEET_NAME} of the overlays.")] = False,
    video: Annotated[
        Optional[Path], typer.Option("--video", help="Write the panels as an MP4 (needs imageio-ffmpeg).")
    ] = None,
    fps: Annotated[float, typer.Option("--fps", min=0.1, help="Frames per second of --video.")] = 15.0,
    export: Annotated[
        Optional[str], typer.Option("--export", metavar="obj|ply", help="Also write each mesh (trimesh).")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", min=0.0, max=1.0, help="Opacity of the mesh overlay.")] = 0.7,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples rendered at once.")] = 8,
    renderer: Annotated[str, typer.Option("--renderer", help="auto, nvdiffrast or torch.")] = "auto",
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
) -> None:
    """Draw meshes over the input images: input | mesh | skeleton | side | top.

    Per sample one PNG panel <shard>-<index>.png in --out: the input image, the
    shaded mesh over it (the predicted texture when the shard has pred/texture),
    the projected 21-joint skeleton, and the mesh seen from the side and from
    above. --sheet adds a contact sheet, --video an MP4 of the panels in sample
    order, --export obj|ply the meshes (camera frame of view 0, metres). Prints the
    output folder on stdout when done. Details: docs/render.md.

    \b
    $ handtools render preds/*.h5 --out vis/ --sheet --max 64
    $ handtools predict --checkpoint m.pt seq/ --out preds/ | handtools render --out vis/ --video vis/seq.mp4
    $ handtools synth -n 8 --out data/ | handtools render --source gt --export obj --out meshes/
    """
    if renderer not in ("auto", "nvdiffrast", "torch"):
        raise typer.BadParameter(f"expected auto, nvdiffrast or torch, got {renderer!r}", param_hint="--renderer")
    if source not in ("auto", "gt", "pred"):
        raise typer.BadParameter(f"expected auto, gt or pred, got {source!r}", param_hint="--source")
    if export is not None and export not in ("obj", "ply"):
        raise typer.BadParameter(f"expected obj or ply, got {export!r}", param_hint="--export")
    if video is not None and video.suffix.lower() != ".mp4":
        raise typer.BadParameter(f"expected a .mp4 file name, got {str(video)!r}", param_hint="--video")
    if not (png or sheet or video or export):
        raise typer.BadParameter("nothing to write: --no-png without --sheet, --video or --export")
    if video is not None:
        _check_ffmpeg()

    import numpy as np
    import torch

    from handtools.core.geometry.cameras import points_between_views
    from handtools.core.hand.model import HandModel
    from handtools.core.hand.joints import FINGERTIP_VERTICES, MANO_TO_FREIHAND
    from handtools.core.render import Renderer
    from handtools.core.render.visualize import PANELS, contact_sheet, pad_to_multiple, render_panels
    from handtools.io.shards import open_shards

    paths = read_input_paths(inputs)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out}: exists and is not a folder")
    readers = open_shards(paths, require=["images", "K"])
    try:
        plan = []  # (reader, verts name, joints name, sample index, file stem)
        stems = [r.path.stem for r in readers]
        unique = len(set(stems)) == len(stems)
        for k, r in enumerate(readers):
            vname, jname = _pick_source(r, source)
            if view >= r.num_views:
                raise InputError(f"{r.path}: --view {view} but the shard has {r.num_views} view(s)")
            if view > 0 and "T_view" not in r:
                raise InputError(f"{r.path}: T_view: missing dataset (needed by --view {view})")
            stem = stems[k] if unique else f"{k:03d}-{stems[k]}"
            plan += [(r, vname, jname, i, f"{stem}-{i:05d}") for i in range(r.num_samples)]
        plan = plan[::every][:max_samples]

        targets = []
        if png:
            targets += [out / f"{p[4]}.png" for p in plan]
        if export:
            targets += [out / f"{p[4]}.{export}" for p in plan]
        if sheet:
            targets.append(out / SHEET_NAME)
        if video is not None:
            targets.append(video)
        if not overwrite:
            existing = [t for t in targets if t.exists()]
            if existing:
                more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
                raise OutputExistsError(f"{existing[0]}: exists{more} (use --overwrite to replace)")
        dev = resolve_device(device)
        model = HandModel.from_path(mano, device=dev)
        faces = model.faces  # (1538, 3) int64
        rast = Renderer(renderer, device=dev)
        writer = tmp_video = None
        out.mkdir(parents=True, exist_ok=True)
        if video is not None:
            video.parent.mkdir(parents=True, exist_ok=True)
            writer, tmp_video = _video_writer(video, fps)
        cols = math.ceil(math.sqrt(len(plan)))
        tiles, captions = [], []
        log.info(f"render: {len(plan)} sample(s) from {len(readers)} shard(s), view {view}, into {out}")
        try:
            with progress() as bar, torch.no_grad():
                task = bar.add_task("render", total=len(plan))
                # Batches never span shards: each batch reads one shard with one index array.
                batches, cur = [], []
                for p in plan:
                    if cur and (p[0] is not cur[0][0] or len(cur) == batch_size):
                        batches.append(cur)
                        cur = []
                    cur.append(p)
                if cur:
                    batches.append(cur)
                for batch in batches:
                    r, vname, jname = batch[0][:3]
                    idx = np.array([p[3] for p in batch])
                    verts0 = torch.as_tensor(r.read(vname, idx), device=dev)  # (B, V, 3) view-0 frame
                    if verts0.shape[1] != model.template.shape[0]:
                        raise InputError(f"{r.path}: {vname}: {verts0.shape[1]} vertices, the hand model has "
                                         f"{model.template.shape[0]}")
                    if jname is not None:
                        joints0 = torch.as_tensor(r.read(jname, idx), device=dev)  # (B, 21, 3)
                    else:  # regress the 21 joints from the mesh (MANO regressor + fingertip vertices)
                        j16 = torch.einsum("jv,bvc->bjc", model.joint_regressor.to(verts0.dtype), verts0)
                        tips = verts0[:, list(FINGERTIP_VERTICES)]
                        joints0 = torch.cat([j16, tips], 1)[:, list(MANO_TO_FREIHAND)]
                    colors = None
                    if vname == "pred/verts3d" and "pred/texture" in r:
                        colors = torch.as_tensor(r.read("pred/texture", idx), device=dev).clamp(0, 1)
                    images = r.read("images", idx)[:, view]  # (B, H, W, 3)
                    K = torch.as_tensor(r.read("K", idx)[:, view], device=dev)  # (B, 3, 3)
                    verts, joints = verts0, joints0
                    if view > 0:
                        T = torch.as_tensor(r.read("T_view", idx), device=dev)  # (B, V, 4, 4)
                        verts = points_between_views(verts0, T[:, 0], T[:, view])
                        joints = points_between_views(joints0, T[:, 0], T[:, view])
                    strips = render_panels(rast, images, verts, faces, K, joints, colors, alpha=alpha)
                    w = images.shape[2]
                    for b, p in enumerate(batch):
                        if png:
                            _atomic_bytes(out / f"{p[4]}.png", _png_bytes(strips[b]))
                        if export:
                            _export_mesh(out / f"{p[4]}.{export}", verts0[b], faces, colors[b] if colors is not None
                                         else None, export)
                        if sheet:
                            mesh = strips[b][:, PANELS.index("mesh") * w : (PANELS.index("mesh") + 1) * w]
                            tiles.append(_thumbnail(mesh, cols))
                            captions.append(p[4])
                        if writer is not None:
                            writer.append_data(pad_to_multiple(strips[b], 16))
                    bar.advance(task, len(batch))
            if sheet:
                img = contact_sheet(tiles, cols=cols, max_width=SHEET_MAX_WIDTH, captions=captions)
                _atomic_bytes(out / SHEET_NAME, _png_bytes(img))
            if writer is not None:
                writer.close()
                writer = None
                os.replace(tmp_video, video)
        finally:
            if writer is not None:
                writer.close()
            if tmp_video is not None and tmp_video.exists():
                tmp_video.unlink()
    finally:
        for r in readers:
            r.close()
    emit_path(out)


def _thumbnail(tile, cols: int):
    """Shrink a sheet tile so ``cols`` of them fit in ``SHEET_MAX_WIDTH`` (keeps memory bounded)."""
    import cv2

    h, w = tile.shape[:2]
    tw = min(w, max(1, (SHEET_MAX_WIDTH - 2 * (cols + 1)) // cols))
    if tw == w:
        return tile.copy()
    return cv2.resize(tile, (tw, max(1, round(h * tw / w))), interpolation=cv2.INTER_AREA)


def _export_mesh(path: Path, verts, faces, colors, fmt: str) -> None:
    """One mesh (V, 3) metres -> OBJ/PLY through trimesh, with vertex colours when given."""
    import numpy as np
    import trimesh

    vc = None
    if colors is not None:
        vc = np.clip(colors.cpu().numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices=verts.cpu().numpy().astype(np.float64), faces=faces.cpu().numpy(),
                           vertex_colors=vc, process=False)
    data = mesh.export(file_type=fmt)
    _atomic_bytes(path, data.encode() if isinstance(data, str) else data)
