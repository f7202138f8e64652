"""``handtools mask``: hand masks from skin colour refined by keypoints, from keypoints, or ground truth."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from handtools.commands._shards import chunks, plan_outputs, writer_for
from handtools.console import log, progress
from handtools.io.pipes import read_input_paths
from handtools.options import Inputs, Overwrite, Part, parse_part, select_part

METHODS = ("skin", "keypoints", "gt")


def mask(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (one shard per input, same name) [default: ./mask].", show_default=False)
    ] = Path("mask"),
    inputs: Inputs = None,
    method: Annotated[
        str, typer.Option("--method", metavar="skin|keypoints|gt",
                          help="skin colour refined by keypoints, keypoint skeleton, or the shard's own masks.")
    ] = "skin",
    colour: Annotated[
        str, typer.Option("--colour", metavar="ycrcb|hsv|both", help="Skin-colour rule (method skin).")
    ] = "ycrcb",
    region: Annotated[
        str, typer.Option("--region", metavar="skeleton|hull",
                          help="Hand region that bounds the skin (method skin, with keypoints).")
    ] = "skeleton",
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Ignore keypoints below this confidence.")
    ] = 0.0,
    part: Part = None,
    overwrite: Overwrite = False,
) -> None:
    """Write hand masks (0/255 per view) for every sample; everything else is carried through.

    skin: skin-colour rule (OpenCV YCrCb/HSV), kept inside the region of the keypoints
    (when the shard has keypoints2d) and in components touching the hand skeleton, then
    opened and closed (docs/mask.md). keypoints: palm polygon plus finger capsules drawn
    from keypoints2d. gt: the shard's existing masks (synthetic ground truth). A view whose
    keypoints all have confidence 0 (no hand detected) gets an empty mask.

    \b
    $ handtools detect frames/ --out det/ | handtools crop --out crops/ | handtools mask --out masked/ | handtools info
    $ handtools mask --method keypoints crops/*.h5 --out masked/
    """
    from handtools.core.perception.skin import SKIN_METHODS
    from handtools.io.shards import open_shards

    if method not in METHODS:
        raise typer.BadParameter(f"expected one of {', '.join(METHODS)}, got {method!r}", param_hint="--method")
    if colour not in SKIN_METHODS:
        raise typer.BadParameter(f"expected one of {', '.join(SKIN_METHODS)}, got {colour!r}", param_hint="--colour")
    if region not in ("skeleton", "hull"):
        raise typer.BadParameter(f"expected skeleton or hull, got {region!r}", param_hint="--region")
    parts = parse_part(part)
    paths = select_part(read_input_paths(inputs), parts)
    need = {"skin": ("images",), "keypoints": ("images", "keypoints2d"), "gt": ("masks",)}[method]
    readers = open_shards(paths, require=need)
    try:
        outs = plan_outputs(paths, out, overwrite)
        args = dict(method=method, colour=colour, region=region, min_confidence=min_confidence, part=part)
        total = sum(r.num_samples for r in readers)
        t0 = time.perf_counter()
        with progress() as bar:
            task = bar.add_task(f"mask ({method})", total=total)
            for reader, out_path in zip(readers, outs):
                if method == "skin" and "keypoints2d" not in reader:
                    log.warning(f"mask: {reader.path.name}: no keypoints2d; skin colour alone (run handtools detect "
                                "first for masks refined by the hand's keypoints)")
                with writer_for(reader, out_path, kind=reader.kind, command="mask", args=args,
                                overwrite=overwrite) as writer:
                    if method == "gt":  # the shard's own masks, carried through
                        writer.append(copy_from=reader)
                        bar.advance(task, reader.num_samples)
                        continue
                    for idx in chunks(np.arange(reader.num_samples)):
                        writer.append({"masks": _masks(reader, idx, args)}, copy_from=reader, indices=idx)
                        bar.advance(task, len(idx))
        views = sum(r.num_samples * r.num_views for r in readers)
        log.info(f"mask: {views} {method} masks ({views / max(time.perf_counter() - t0, 1e-9):.1f} masks/s)")
    finally:
        for r in readers:
            r.close()


def _masks(reader, idx: np.ndarray, args: dict) -> np.ndarray:
    """(B, V, H, W) uint8 0/255 masks of the samples ``idx`` (consecutive)."""
    from handtools.core.perception.skin import keypoint_mask, skin_mask

    sl = slice(int(idx[0]), int(idx[-1]) + 1)
    images = reader.read("images", sl)                                          # (B, V, H, W, 3)
    kp = reader.read("keypoints2d", sl) if "keypoints2d" in reader else None    # (B, V, 21, 3)
    b, nv, h, w = images.shape[:4]
    out = np.zeros((b, nv, h, w), np.uint8)
    for i in range(b):
        for v in range(nv):
            conf = None if kp is None else kp[i, v, :, 2]
            if conf is not None and not ((conf > 0) & (conf >= args["min_confidence"])).any():
                continue  # no hand detected in this view: empty mask
            if args["method"] == "keypoints":
                out[i, v] = keypoint_mask(kp[i, v], (w, h), min_confidence=args["min_confidence"])
            else:
                out[i, v] = skin_mask(images[i, v], None if kp is None else kp[i, v], method=args["colour"],
                                      region=args["region"], min_confidence=args["min_confidence"])
    return out
