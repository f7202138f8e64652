"""``handtools crop``: hand-centred square crops with K, keypoints, masks and depth carried in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from handtools.commands._shards import chunks, kept_outputs, plan_outputs, writer_for
from handtools.console import log, progress
from handtools.errors import InputError
from handtools.io.pipes import emit_path, read_input_paths
from handtools.options import Inputs, Overwrite, Part, SkipExisting, parse_part, select_part

#: Datasets this command rewrites; the rest is carried through unchanged (3D ground truth
#: stays valid: a crop does not move the camera, only its intrinsics change).
_REWRITTEN = ("images", "masks", "depth", "K", "keypoints2d", "bbox", "crop/box", "crop/x_offset")


def _needs(reader, center: str) -> None:
    """Fail before any work when a shard lacks what ``center`` needs (names file and dataset)."""
    from handtools.io.shards import ShardError

    def missing(name, why):
        return ShardError(f"{reader.path}: {name}: missing dataset (needed by --center {center}{why})")

    if center == "root" and "keypoints2d" not in reader:
        raise missing("keypoints2d", "; run handtools detect first")
    if center == "bbox" and "bbox" not in reader and "keypoints2d" not in reader:
        raise missing("bbox", "; run handtools detect first")
    if center == "gt":
        if "joints3d" not in reader:
            raise missing("joints3d", ": ground truth")
        if reader.num_views > 1 and "T_view" not in reader:
            raise missing("T_view", " with several views")


def _gt_keypoints(reader, sl: slice) -> np.ndarray:
    """Ground-truth joints projected into every view: (B, V, 21, 2) float64 pixels."""
    from handtools.core.geometry.cameras import points_between_views, project

    j3 = reader.read("joints3d", sl).astype(np.float64)                  # (B, 21, 3), view 0 frame
    K = reader.read("K", sl).astype(np.float64)                          # (B, V, 3, 3)
    b, v = K.shape[:2]
    if "T_view" in reader:
        T = reader.read("T_view", sl).astype(np.float64)                 # (B, V, 4, 4)
        pts = points_between_views(np.repeat(j3[:, None], v, 1), np.repeat(T[:, :1], v, 1), T)
    else:
        pts = j3[:, None]                                                # (B, 1, 21, 3)
    if (pts[..., 2] <= 0).any():
        raise InputError(f"{reader.path}: joints3d: joints behind a camera; --center gt cannot project them")
    return project(pts, K)                                               # (B, V, 21, 2)


def crop(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (one shard per input, same name) [default: ./crop].", show_default=False)
    ] = Path("crop"),
    inputs: Inputs = None,
    size: Annotated[
        int, typer.Option("--size", min=16, max=2048, help="Crop side in pixels (256: stereo/lixel models, 224: S2HAND).")
    ] = 256,
    center: Annotated[
        str, typer.Option("--center", metavar="root|bbox|gt",
                          help="Centre on the wrist keypoint, the detection box, or the projected ground-truth joints.")
    ] = "bbox",
    scale: Annotated[
        float, typer.Option("--scale", min=0.1, max=10.0,
                            help="Crop side over the hand extent (bbox side; 2x wrist-to-farthest keypoint for root).")
    ] = 1.4,
    part: Part = None,
    overwrite: Overwrite = False,
    skip_existing: SkipExisting = False,
) -> None:
    """Cut hand-centred square crops; K, keypoints, bbox, masks and depth follow the crop.

    Writes kind=crops shards (one per input, same name, in --out) with images (bilinear),
    masks and depth (nearest) cropped, K updated, keypoints2d and bbox mapped into the
    crop, crop/box (the crop's box in the original image) and, for rectified stereo pairs,
    crop/x_offset: both views get the same size and rows so the crops stay a rectified
    pair (docs/crop.md). 3D ground truth is carried unchanged.

    \b
    $ handtools detect frames/*.h5 --out det/ | handtools crop --out crops/ | handtools info
    $ handtools synth --views 2 -n 64 --out data/ | handtools crop --center gt --size 224 --out crops/
    """
    from handtools.core.geometry.crop import CENTER_POLICIES
    from handtools.io.shards import open_shards

    if center not in CENTER_POLICIES:
        raise typer.BadParameter(f"expected one of {', '.join(CENTER_POLICIES)}, got {center!r}", param_hint="--center")
    if overwrite and skip_existing:
        raise typer.BadParameter("give --overwrite or --skip-existing, not both", param_hint="--skip-existing")
    parts = parse_part(part)
    paths = select_part(read_input_paths(inputs), parts)
    readers = open_shards(paths, require=("images", "K"))
    try:
        for r in readers:
            _needs(r, center)
        outs = plan_outputs(paths, out, overwrite, skip_existing)
        args = dict(size=size, center=center, scale=scale, part=part)
        kept = kept_outputs(readers, outs, "crop", args) if skip_existing else set()
        total = sum(r.num_samples for r in readers)
        t0 = time.perf_counter()
        with progress() as bar:
            task = bar.add_task("crop", total=total)
            for reader, out_path in zip(readers, outs):
                if out_path in kept:  # --skip-existing: a complete shard from an earlier run
                    emit_path(out_path)
                    bar.advance(task, reader.num_samples)
                    continue
                _crop_shard(reader, out_path, args, overwrite, lambda k: bar.advance(task, k))
        views = sum(r.num_samples * r.num_views for r in readers)
        log.info(f"crop: {views} crops of {size}x{size} ({views / max(time.perf_counter() - t0, 1e-9):.1f} crops/s)")
    finally:
        for r in readers:
            r.close()


def _crop_shard(reader, out_path: Path, args: dict, overwrite: bool, advance) -> None:
    from handtools.core.geometry import crop as C

    size, center, scale = args["size"], args["center"], args["scale"]
    n, nv = reader.num_samples, reader.num_views
    h, w = reader.image_size
    stereo = nv == 2 and "baseline" in reader
    prior = "crop/box" in reader  # cropping a crop: record boxes in the first original image
    pixel_extra = [m for m in reader.names if m not in _REWRITTEN and reader.dataset(m).shape[1:4] == (nv, h, w)]
    if pixel_extra:
        log.warning(f"crop: {reader.path.name}: dropping per-pixel datasets it cannot crop: {', '.join(pixel_extra)}")
    missed = 0
    with writer_for(reader, out_path, kind="crops", command="crop", args=args, overwrite=overwrite,
                    attrs={"crop_size": size}) as writer:
        for idx in chunks(np.arange(n)):
            sl = slice(int(idx[0]), int(idx[-1]) + 1)
            b = len(idx)
            get = lambda name: reader.read(name, sl) if name in reader else None  # noqa: E731
            images, masks, depth = get("images"), get("masks"), get("depth")
            K, kp, bbox, old_box = get("K"), get("keypoints2d"), get("bbox"), get("crop/box")
            gt = _gt_keypoints(reader, sl) if center == "gt" else None
            out = {
                "images": np.zeros((b, nv, size, size, 3), np.uint8),
                "K": np.zeros((b, nv, 3, 3), np.float32),
                "crop/box": np.zeros((b, nv, 4), np.float32),
            }
            if masks is not None:
                out["masks"] = np.zeros((b, nv, size, size), np.uint8)
            if depth is not None:
                out["depth"] = np.zeros((b, nv, size, size), np.float32)
            if kp is not None:
                out["keypoints2d"] = kp.copy()
            if bbox is not None:
                out["bbox"] = bbox.copy()
            if stereo:
                out["crop/x_offset"] = np.zeros(b, np.float32)
            for i in range(b):
                boxes, _, found = C.view_crop_boxes(
                    center, (w, h), keypoints=None if kp is None else kp[i], bbox=None if bbox is None else bbox[i],
                    gt_keypoints=None if gt is None else gt[i], scale=scale, stereo=stereo)
                missed += int((~found).sum())
                for v in range(nv):
                    box = boxes[v]
                    out["images"][i, v] = C.crop_image(images[i, v], box, size)
                    out["K"][i, v] = C.crop_K(K[i, v], box, size)
                    if masks is not None:
                        out["masks"][i, v] = C.crop_image(masks[i, v], box, size, "nearest")
                    if depth is not None:
                        out["depth"][i, v] = C.crop_image(depth[i, v], box, size, "nearest")
                    if kp is not None and (kp[i, v, :, 2] > 0).any():  # all-zero rows: no hand
                        out["keypoints2d"][i, v] = C.crop_points(kp[i, v], box, size)
                    if bbox is not None and bbox[i, v, 2] > bbox[i, v, 0] and bbox[i, v, 3] > bbox[i, v, 1]:
                        out["bbox"][i, v] = C.crop_points(bbox[i, v].reshape(2, 2), box, size).ravel()
                    if prior:  # express the box in the original frame: undo the earlier crop
                        box = C.uncrop_points(box.reshape(2, 2), old_box[i, v].astype(np.float64),
                                              reader.image_size[0]).ravel()
                    out["crop/box"][i, v] = box
                if stereo:
                    out["crop/x_offset"][i] = out["crop/box"][i, 1, 0] - out["crop/box"][i, 0, 0]
            writer.append(out, copy_from=reader, indices=idx, drop=pixel_extra)
            advance(b)
    if missed:
        log.warning(f"crop: {reader.path.name}: {missed} view(s) without a hand, cropped around the other view "
                    "(stereo) or the whole frame")
