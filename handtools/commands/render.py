"""``handtools render``: draw meshes and skeletons over the input images; PNG, contact sheet, MP4, OBJ/PLY.

Drawing is :mod:`handtools.core.render` (``overlay.panels_in_view``); picking
samples and writing the outputs is :mod:`handtools.io.rendering`; this module
checks the options and runs the batches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.console import log, progress
from handtools.errors import InputError, OutputExistsError
from handtools.io.pipes import emit_path, read_input_paths
from handtools.io.rendering import SHEET_NAME
from handtools.options import Device, Inputs, Mano, Overwrite, resolve_device


def _check_options(renderer: str, source: str, export: Optional[str], video: Optional[Path], png: bool,
                   sheet: bool) -> None:
    """Usage errors (exit 2), before anything is read or created."""
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


def _draw(rast, model, batch, view: int, alpha: float, dev):
    """Read one batch and draw it: (strips (B, H, 5 W, 3) uint8, view-0 meshes (B, V, 3), colours or None)."""
    import torch

    from handtools.core.render.overlay import panels_in_view
    from handtools.io.rendering import read_batch

    d = read_batch(batch, view)
    r, vname = batch[0].reader, batch[0].verts
    if d["verts0"].shape[1] != model.template.shape[0]:
        raise InputError(f"{r.path}: {vname}: {d['verts0'].shape[1]} vertices, the hand model has "
                         f"{model.template.shape[0]}")
    t = {k: None if v is None else torch.as_tensor(v, device=dev) for k, v in d.items() if k != "images"}
    colors = t["colors"].clamp(0, 1) if t["colors"] is not None else None
    strips = panels_in_view(rast, model, d["images"], t["verts0"], t["K"], t["joints0"], t["T_view"], view,
                            colors, alpha=alpha)
    return strips, t["verts0"].cpu().numpy(), colors.cpu().numpy() if colors is not None else None


def _draw_2d(batch):
    """A batch without meshes: every view with its keypoints, box and mask -> (B, H, V W', 3) uint8."""
    from handtools.core.render.overlay import annotated_views
    from handtools.io.rendering import read_batch_2d

    d = read_batch_2d(batch)
    return annotated_views(d["images"], d["keypoints"], d["bbox"], d["masks"])


# Long only by its signature (the option table) and docstring (--help); the body is under 40 lines.

def render(
    inputs: Inputs = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (PNG panels, sheet, meshes).")] = ...,
    source: Annotated[
        str, typer.Option("--source", help="Meshes to draw: pred (pred/verts3d), gt (verts3d) or auto "
                          "(pred when the shard has it, else gt, else its 2D keypoints, boxes and masks).")
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
    above. A shard without meshes (import, detect, crop, mask output) is drawn with
    what it has: every view side by side (stereo pairs), the 2D keypoints (hollow
    rings: confidence under 0.5; the mean confidence in the corner), the detection
    box and the mask. --sheet adds a contact sheet, --video an MP4 of the panels in sample
    order, --export obj|ply the meshes (camera frame of view 0, metres). Prints the
    output folder on stdout when done. Details: docs/render.md.

    \b
    $ handtools render preds/*.h5 --out vis/ --sheet --max 64
    $ handtools predict --checkpoint m.pt seq/ --out preds/ | handtools render --out vis/ --video vis/seq.mp4
    $ handtools synth -n 8 --out data/ | handtools render --source gt --export obj --out meshes/
    $ handtools import images photos/ --out frames/ | handtools detect --out det/ | handtools render --sheet --out vis/
    """
    _check_options(renderer, source, export, video, png, sheet)
    if video is not None:
        from handtools.io.rendering import check_ffmpeg

        check_ffmpeg()

    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer
    from handtools.io.rendering import PanelWriter, batches, check_targets, plan_items
    from handtools.io.shards import open_shards

    paths = read_input_paths(inputs)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--out {out}: exists and is not a folder")
    readers = open_shards(paths, require=["images", "K"])
    try:
        items = plan_items(readers, source, view)[::every][:max_samples]
        check_targets(items, out, png=png, export=export, sheet=sheet, video=video, overwrite=overwrite)
        dev = resolve_device(device)
        model = HandModel.from_path(mano, device=dev)
        faces = model.faces.cpu().numpy()  # (1538, 3) int64
        rast = Renderer(renderer, device=dev)
        with PanelWriter(out, len(items), png=png, export=export, sheet=sheet, video=video, fps=fps) as sink:
            log.info(f"render: {len(items)} sample(s) from {len(readers)} shard(s), view {view}, into {out}")
            with progress() as bar, torch.no_grad():
                task = bar.add_task("render", total=len(items))
                for batch in batches(items, batch_size):
                    if batch[0].verts is None:  # no meshes in this shard: its 2D annotations
                        for it, strip in zip(batch, _draw_2d(batch)):
                            sink.add(it.stem, strip)
                        bar.advance(task, len(batch))
                        continue
                    strips, verts0, colors = _draw(rast, model, batch, view, alpha, dev)
                    for b, it in enumerate(batch):
                        sink.add(it.stem, strips[b], verts0[b], faces, colors[b] if colors is not None else None)
                    bar.advance(task, len(batch))
    finally:
        for r in readers:
            r.close()
    emit_path(out)
