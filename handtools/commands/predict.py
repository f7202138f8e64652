"""``handtools predict``: run a checkpoint on crops shards and write predictions shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from handtools.commands._shards import plan_outputs, writer_for
from handtools.console import log, progress
from handtools.errors import InputError
from handtools.io.pipes import read_input_paths
from handtools.io.shards import open_shards
from handtools.options import Device, Inputs, Mano, Overwrite, Part, parse_part, resolve_device, select_part


def predict(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A pretrain / selfsup-stereo checkpoint (.pt).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder for predictions shards [default: ./predict].", show_default=False)
    ] = Path("predict"),
    inputs: Inputs = None,
    mode: Annotated[
        str, typer.Option("--mode", help="auto, monocular (one view) or binocular (both views, depth from disparity).")
    ] = "auto",
    view: Annotated[int, typer.Option("--view", min=0, help="Which view a monocular model looks at.")] = 0,
    root_depth: Annotated[
        Optional[float],
        typer.Option("--root-depth", help="Wrist depth (m) for monocular models; default: ground-truth joints3d."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples per forward pass.")] = 16,
    part: Part = None,
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
) -> None:
    """Predict hand meshes for crops shards; ground truth and inputs are carried through.

    Writes pred/verts3d and pred/joints3d (metres, camera frame of view 0) and
    pred/uv (the model's per-vertex image coordinates) so `evaluate` can score them.
    A monocular model predicts root-relative depth: its absolute placement uses the
    ground-truth wrist depth (root-relative evaluation) or --root-depth. A binocular
    prediction (selfsup-stereo models, or --mode binocular with a prior: the paper's
    "test-directly") uses both views of a rectified pair and is absolute. Square crops of
    another size than the model's are resampled for it (K scaled; pred/uv stays in the
    crops' own pixels), so one prediction can be drawn on large crops of the same windows.

    \b
    $ handtools predict --checkpoint prior.pt --out preds/ crops/*.h5 | handtools evaluate
    """
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.methods import load_predictor

    dev = resolve_device(device)
    hand = HandModel.from_path(mano)
    if mode not in ("auto", "monocular", "binocular"):
        raise typer.BadParameter(f"expected auto, monocular or binocular, got {mode!r}", param_hint="--mode")
    predictor = load_predictor(checkpoint, hand, dev, mode=mode)
    paths = select_part(read_input_paths(inputs), parse_part(part))
    need = ["images", "K"] + (["joints3d"] if root_depth is None and predictor.needs_root_depth else [])
    need += ["baseline"] if predictor.min_views == 2 else []
    readers = open_shards(paths, require=need)
    for r in readers:
        if r.image_size != predictor.image_size:
            if not _square(r.image_size) or not _square(predictor.image_size):
                raise InputError(
                    f"{r.path}: crops are {r.image_size[1]}x{r.image_size[0]}, the model takes "
                    f"{predictor.image_size[1]}x{predictor.image_size[0]} (handtools crop --size)"
                )
            log.info(f"predict: {r.path.name}: crops are {r.image_size[1]}x{r.image_size[0]}, the model takes "
                     f"{predictor.image_size[1]}x{predictor.image_size[0]}: resized for the model (K scaled to match); "
                     f"pred/uv in the crops' own pixels")
        if view >= r.num_views or r.num_views < predictor.min_views:
            raise InputError(f"{r.path}: {r.num_views} view(s); the model needs view {view} of {predictor.min_views}+")
    if hand.identity != predictor.hand_identity:
        log.warning(f"predict: checkpoint was trained with {predictor.hand_identity}, using {hand.identity}")
    total = sum(r.num_samples for r in readers)
    outs = plan_outputs([r.path for r in readers], out, overwrite)  # every output checked before any work
    args = {"checkpoint": str(checkpoint), "view": view, "mode": predictor.mode}
    with progress() as bar, torch.no_grad():
        task = bar.add_task("predict", total=total)
        for r, out_path in zip(readers, outs):
            with writer_for(
                r, out_path, kind="predictions", command="predict", args=args, overwrite=overwrite,
                attrs={"hand_model": hand.identity, "checkpoint": str(checkpoint)},
            ) as writer:
                preds: dict[str, list] = {}
                for lo in range(0, r.num_samples, batch_size):
                    idx = np.arange(lo, min(r.num_samples, lo + batch_size))
                    batch = {n: r.read(n, slice(lo, idx[-1] + 1)) for n in ("images", "K", "T_view", "joints3d", "baseline", "hand/is_left") if n in r}
                    if root_depth is not None:
                        batch["root_depth"] = np.full(len(idx), root_depth, np.float32)
                    for k, v in _predict_resized(predictor, batch, view, r.image_size).items():
                        preds.setdefault(k, []).append(v)
                    bar.advance(task, len(idx))
                writer.append({k: np.concatenate(v) for k, v in preds.items()}, copy_from=r, drop=["pred"])
    for r in readers:
        r.close()


def _square(size) -> bool:
    return size[0] == size[1]


def _predict_resized(predictor, batch: dict, view: int, size) -> dict:
    """``predictor.predict`` on crops of another square size: every view resampled to the
    model's side with its K scaled (metres are unchanged), ``pred/uv*`` mapped back to the
    crops' own pixels."""
    from handtools.core.geometry.crop import resize_crops, uncrop_points

    side, n = size[0], predictor.image_size[0]
    if side == n:
        return predictor.predict(batch, view)
    images, K = batch["images"], batch["K"]
    B, V = images.shape[:2]
    small, Ks = resize_crops(images.reshape((B * V,) + images.shape[2:]), K.reshape(B * V, 3, 3), n)
    out = predictor.predict(dict(batch, images=small.reshape((B, V) + small.shape[1:]), K=Ks.reshape(B, V, 3, 3)), view)
    return {k: uncrop_points(v, (0, 0, side, side), n) if k.startswith("pred/uv") else v for k, v in out.items()}
