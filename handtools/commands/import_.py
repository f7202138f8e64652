"""``handtools import``: images, videos, stereo pairs and hand datasets -> frames shards.

A sub-app: ``handtools import images|video|stereo|freihand|stb|ho3d``. Parsing lives
in :mod:`handtools.io.datasets`, writing the shard series in
:mod:`handtools.io.importers`; this module validates the options and calls them.
Units, joint order, camera frames and handedness are converted to docs/design.md;
see docs/import.md for every conversion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.console import log
from handtools.errors import InputError
from handtools.io.importers import Skips, import_history, write_series
from handtools.options import Overwrite, Part, ShardSize, parse_part

app = typer.Typer(
    name="import",
    help=(
        "Turn images, videos, stereo pairs or a hand dataset (FreiHAND, STB, HO-3D) into frames shards.\n\n"
        "  $ handtools import images photos/ --out data/ | handtools info"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder for the shards [default: ./import].", show_default=False)]
SkipBad = Annotated[
    bool,
    typer.Option("--skip-bad/--no-skip-bad", help="Skip missing or malformed files/labels (reported on stderr)."),
]
Prefix = Annotated[Optional[str], typer.Option("--prefix", help="Shard file name prefix [default: the source kind].")]
Focal = Annotated[
    Optional[float],
    typer.Option("--focal", help="Focal length in pixels of the input images [default: guess 1.2 x max(W, H)]."),
]
Resize = Annotated[
    Optional[str],
    typer.Option("--resize", metavar="WxH", help="Letterbox every frame to WxH (needed when sizes differ)."),
]


def _parse_resize(text: Optional[str]) -> Optional[tuple[int, int]]:
    if text is None:
        return None
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WxH, e.g. 640x480, got {text!r}", param_hint="--resize")
    if not (8 <= w <= 8192 and 8 <= h <= 8192):
        raise typer.BadParameter(f"size {text} out of range 8..8192", param_hint="--resize")
    return h, w


def _check_focal(focal: Optional[float]) -> None:
    if focal is not None and not focal > 0:
        raise typer.BadParameter("must be positive (pixels)", param_hint="--focal")


def _guess_note(focal: Optional[float], calibrated: bool = False) -> None:
    if focal is None and not calibrated:
        log.warning("no --focal: intrinsics are a GUESS (focal = 1.2 x max(W, H), principal point at the centre)")


def _require_dir(root: Path, what: str) -> None:
    if not root.is_dir():
        raise InputError(f"{root}: not a folder ({what} root expected)")


# --------------------------------------------------------------------------- media
@app.command("images")
def images(
    inputs: Annotated[list[str], typer.Argument(help="Image files, folders or globs (quoted).", show_default=False)],
    out: Out = Path("import"),
    focal: Focal = None,
    resize: Resize = None,
    prefix: Prefix = None,
    shard_size: ShardSize = 256,
    part: Part = None,
    skip_bad: SkipBad = False,
    overwrite: Overwrite = False,
) -> None:
    """Import image files (any format imageio reads) as mono frames (V=1) with intrinsics.

    A shard holds images of one size: images of different sizes go to one shard
    series per size (<prefix>-<W>x<H>-*.h5), or give --resize WxH to letterbox them
    all to one size (scale to fit, keep the aspect, pad black; K follows). Without
    --focal, K is a guess.

    \b
    $ handtools import images photos/ 'more/*.jpg' --out data/ | handtools info
    $ handtools import images shots/ --resize 640x480 --focal 1500 --skip-bad --out data/
    """
    from handtools.io.datasets.media import expand_image_inputs, image_records, image_records_by_size

    _check_focal(focal)
    hw = _parse_resize(resize)
    parts = parse_part(part)
    skips = Skips(skip_bad)
    paths = expand_image_inputs(inputs)
    if hw is None:
        groups = image_records_by_size(paths, focal=focal, on_bad=skips.on_bad)
    else:
        groups = {hw: image_records(paths, focal=focal, resize=hw, on_bad=skips.on_bad)}
    _guess_note(focal)
    base = prefix or "images"
    for (h, w), records in groups.items():
        name = base if len(groups) == 1 else f"{base}-{w}x{h}"
        log.info(f"import images: {len(records)} image(s) of {w}x{h} into {out}")
        write_series(records, total=len(records), out=out, prefix=name, shard_size=shard_size, part=parts,
                     overwrite=overwrite, skips=skips,
                     history=import_history("images", dict(inputs=list(inputs), focal=focal, resize=resize, part=part)))


@app.command("video")
def video(
    inputs: Annotated[list[Path], typer.Argument(help="Video files (mp4, avi, gif, ...).", show_default=False)],
    out: Out = Path("import"),
    every: Annotated[int, typer.Option("--every", min=1, help="Keep every N-th frame.")] = 1,
    max_frames: Annotated[
        Optional[int], typer.Option("--max-frames", min=1, help="Stop after this many kept frames per video.")
    ] = None,
    focal: Focal = None,
    resize: Resize = None,
    prefix: Prefix = None,
    shard_size: ShardSize = 256,
    overwrite: Overwrite = False,
) -> None:
    """Import video frames (decoded by imageio) as mono frames (V=1) with intrinsics.

    Source of each sample: ``<file>#<frame index>``. Without --focal, K is a guess.

    \b
    $ handtools import video clip.mp4 --every 5 --out data/ | handtools info
    """
    from itertools import chain

    from handtools.io.datasets.media import video_samples

    _check_focal(focal)
    hw = _parse_resize(resize)
    for p in inputs:
        if not p.is_file():
            raise InputError(f"{p}: no such file")
    _guess_note(focal)
    records = chain.from_iterable(
        video_samples(p, every=every, focal=focal, resize=hw, max_frames=max_frames) for p in inputs
    )
    n = write_series(records, total=None, out=out, prefix=prefix or "video", shard_size=shard_size, part=None,
                     overwrite=overwrite, skips=Skips(False),
                     history=import_history("video", dict(inputs=[str(p) for p in inputs], every=every,
                                                          focal=focal, resize=resize, max_frames=max_frames)))
    log.info(f"import video: {n} frame(s) into {out}")


@app.command("stereo")
def stereo(
    out: Out = Path("import"),
    inputs: Annotated[
        Optional[list[str]],
        typer.Argument(help="Side-by-side frames (files, folders, globs): left half = left view.", show_default=False),
    ] = None,
    left: Annotated[Optional[str], typer.Option("--left", help="Left views: folder or glob.")] = None,
    right: Annotated[Optional[str], typer.Option("--right", help="Right views: folder or glob (same count).")] = None,
    baseline: Annotated[Optional[float], typer.Option("--baseline", help="Baseline in metres.")] = None,
    focal: Focal = None,
    calib: Annotated[
        Optional[Path], typer.Option("--calib", help="Calibration JSON/YAML with K_left, K_right, baseline.")
    ] = None,
    resize: Resize = None,
    prefix: Prefix = None,
    shard_size: ShardSize = 256,
    part: Part = None,
    skip_bad: SkipBad = False,
    overwrite: Overwrite = False,
) -> None:
    """Import rectified stereo pairs as V=2 frames (view 0 left) with K, T_view and baseline.

    Pairs come from --left/--right folders (paired in sorted order) or from
    side-by-side frames. Calibration: --calib FILE (docs/import.md), or --baseline
    with --focal (principal point at the centre; without --focal a guess).

    \b
    $ handtools import stereo --left cam0/ --right cam1/ --calib rig.json --out data/ | handtools info
    $ handtools import stereo 'sbs/*.png' --baseline 0.12 --focal 820 --out data/
    """
    from handtools.io.datasets.media import expand_image_inputs, read_calibration, stereo_records

    _check_focal(focal)
    hw = _parse_resize(resize)
    parts = parse_part(part)
    if (left is None) != (right is None):
        raise typer.BadParameter("give both --left and --right", param_hint="--left/--right")
    if left is not None and inputs:
        raise typer.BadParameter("give --left/--right or side-by-side frames, not both")
    if left is None and not inputs:
        raise typer.BadParameter("give --left and --right folders, or side-by-side frames")
    if calib is not None and (focal is not None or baseline is not None):
        raise typer.BadParameter("--calib already holds K and baseline; drop --focal/--baseline")
    K, calib_hw = None, None
    if calib is not None:
        c = read_calibration(calib)
        K, baseline, calib_hw = c["K"], c["baseline"], c["image_size"]
    elif baseline is None:
        raise typer.BadParameter("needed (metres) unless --calib is given", param_hint="--baseline")
    elif not baseline > 0:
        raise typer.BadParameter("must be positive (metres)", param_hint="--baseline")
    if baseline > 2.0:
        log.warning(f"baseline {baseline} m is unusually large: is it in millimetres?")
    if K is not None and hw is not None:
        raise typer.BadParameter("--resize cannot be combined with --calib (the calibration is for the stored size)")
    skips = Skips(skip_bad)
    if left is not None:
        ls, rs = expand_image_inputs([left]), expand_image_inputs([right])
        if len(ls) != len(rs):
            raise InputError(f"{left} has {len(ls)} images, {right} has {len(rs)}: pairs need equal counts")
        pairs = list(zip(ls, rs))
    else:
        pairs = [(p, None) for p in expand_image_inputs(inputs)]
    records = stereo_records(pairs, baseline=baseline, K=K, calib_hw=calib_hw, focal=focal, resize=hw,
                             on_bad=skips.on_bad)
    _guess_note(focal, calibrated=K is not None)
    log.info(f"import stereo: {len(records)} pair(s), baseline {baseline} m, into {out}")
    write_series(records, total=len(records), out=out, prefix=prefix or "stereo", shard_size=shard_size, part=parts,
                 overwrite=overwrite, skips=skips,
                 history=import_history("stereo", dict(inputs=list(inputs or []), left=left, right=right,
                                                       baseline=baseline, focal=focal, calib=calib, resize=resize,
                                                       part=part)))


# --------------------------------------------------------------------------- datasets
@app.command("freihand")
def freihand(
    root: Annotated[Path, typer.Argument(help="FreiHAND folder (holds training_K.json, training/).")],
    out: Out = Path("import"),
    split: Annotated[str, typer.Option("--split", help="training or evaluation.")] = "training",
    versions: Annotated[
        str, typer.Option("--versions", help="Training image versions, comma-separated: gs,hom,sample,auto.")
    ] = "gs,hom,sample,auto",
    prefix: Prefix = None,
    shard_size: ShardSize = 1000,
    part: Part = None,
    skip_bad: SkipBad = False,
    overwrite: Overwrite = False,
) -> None:
    """Import FreiHAND (mono, 224x224): images, K, joints3d, verts3d, MANO, keypoints2d, bbox, masks.

    \b
    $ handtools import freihand ~/FreiHAND_pub_v2 --versions gs --out data/fh/ | handtools info
    $ handtools import freihand ~/FreiHAND_pub_v2 --split evaluation --out data/fh-eval/
    """
    from handtools.io.datasets.freihand import FLAT_HAND_MEAN, SPLITS, VERSIONS, freihand_records

    if split not in SPLITS:
        raise typer.BadParameter(f"choose {' or '.join(SPLITS)}", param_hint="--split")
    vs = [v.strip() for v in versions.split(",") if v.strip()]
    if not vs or any(v not in VERSIONS for v in vs):
        raise typer.BadParameter(f"choose from {','.join(VERSIONS)}", param_hint="--versions")
    parts = parse_part(part)
    _require_dir(root, "FreiHAND")
    skips = Skips(skip_bad)
    records = freihand_records(root, split, versions=vs, on_bad=skips.on_bad)
    log.info(f"import freihand: {len(records)} {split} sample(s) into {out}")
    write_series(records, total=len(records), out=out, prefix=prefix or f"freihand-{split}", shard_size=shard_size,
                 part=parts, overwrite=overwrite, skips=skips,
                 history=import_history("freihand", dict(root=root, split=split, versions=vs, part=part)),
                 attrs={"dataset": "freihand", "mano_flat_hand_mean": int(FLAT_HAND_MEAN)})


@app.command("stb")
def stb(
    root: Annotated[Path, typer.Argument(help="STB folder (holds images/ and labels/).")],
    out: Out = Path("import"),
    sequences: Annotated[
        Optional[str], typer.Option("--sequences", help="Comma-separated, e.g. B1Counting,B1Random [default: all].")
    ] = None,
    prefix: Prefix = None,
    shard_size: ShardSize = 500,
    part: Part = None,
    skip_bad: SkipBad = False,
    overwrite: Overwrite = False,
) -> None:
    """Import the STB Bumblebee2 stereo pairs (V=2), mirrored to right hands, with joints in metres.

    The palm-centre root becomes an extrapolated wrist and the joint order is
    converted (docs/import.md); the pairs get STB's intrinsics and 120.054 mm baseline.

    \b
    $ handtools import stb ~/STB --sequences B1Counting,B1Random --out data/stb-test/ | handtools info
    """
    from handtools.io.datasets.stb import stb_records

    parts = parse_part(part)
    _require_dir(root, "STB")
    seqs = [s.strip() for s in sequences.split(",") if s.strip()] if sequences else None
    skips = Skips(skip_bad)
    records = stb_records(root, seqs, on_bad=skips.on_bad)
    log.info(f"import stb: {len(records)} stereo pair(s) into {out} (left hands mirrored to right)")
    write_series(records, total=len(records), out=out, prefix=prefix or "stb", shard_size=shard_size, part=parts,
                 overwrite=overwrite, skips=skips,
                 history=import_history("stb", dict(root=root, sequences=seqs, part=part)),
                 attrs={"dataset": "stb", "mirrored": 1})


@app.command("ho3d")
def ho3d(
    root: Annotated[Path, typer.Argument(help="HO-3D folder (holds train/ and/or evaluation/).")],
    out: Out = Path("import"),
    split: Annotated[str, typer.Option("--split", help="train or evaluation.")] = "train",
    sequences: Annotated[
        Optional[str], typer.Option("--sequences", help="Comma-separated sequence names [default: all].")
    ] = None,
    prefix: Prefix = None,
    shard_size: ShardSize = 500,
    part: Part = None,
    skip_bad: SkipBad = False,
    overwrite: Overwrite = False,
) -> None:
    """Import HO-3D v2/v3 frames (mono): images, K, joints3d (OpenCV frame), MANO, keypoints2d, bbox.

    \b
    $ handtools import ho3d ~/HO3D_v3 --sequences ABF10,MC1 --out data/ho3d/ | handtools info
    """
    from handtools.io.datasets.ho3d import FLAT_HAND_MEAN, SPLITS, ho3d_records

    if split not in SPLITS:
        raise typer.BadParameter(f"choose {' or '.join(SPLITS)}", param_hint="--split")
    parts = parse_part(part)
    _require_dir(root, "HO-3D")
    seqs = [s.strip() for s in sequences.split(",") if s.strip()] if sequences else None
    skips = Skips(skip_bad)
    records = ho3d_records(root, split, seqs, on_bad=skips.on_bad)
    log.info(f"import ho3d: {len(records)} {split} frame(s) into {out}")
    write_series(records, total=len(records), out=out, prefix=prefix or f"ho3d-{split}", shard_size=shard_size,
                 part=parts, overwrite=overwrite, skips=skips,
                 history=import_history("ho3d", dict(root=root, split=split, sequences=seqs, part=part)),
                 attrs={"dataset": "ho3d", "mano_flat_hand_mean": int(FLAT_HAND_MEAN)})


# --------------------------------------------------------------------------- multi-view rigs
@app.command("multiview")
def multiview(
    root: Annotated[Path, typer.Argument(help="Capture folder: cameras.json and one folder per camera.")],
    out: Out = Path("import"),
    depth: Annotated[bool, typer.Option("--depth/--no-depth", help="Read each view's depth map.")] = True,
    prefix: Prefix = None,
    shard_size: ShardSize = 256,
    part: Part = None,
    skip_bad: SkipBad = False,
    overwrite: Overwrite = False,
) -> None:
    """Import a calibrated multi-view capture (with depth) as V-view frames for personalize.

    Layout: docs/import.md ("multiview"): cameras.json (K, T_world_to_cam, depth_scale) and
    per camera a folder of frames (image + <frame>.depth.png uint16 or .depth.npy metres).

    \b
    $ handtools import multiview studio/take1 --out take1/ | handtools detect | handtools personalize --out me.npz
    """
    from handtools.io.datasets.multiview import multiview_records

    _require_dir(root, "capture")
    records = multiview_records(root, use_depth=depth)
    log.info(f"import multiview: {len(records)} frame(s) from {root} into {out}")
    write_series(records, total=len(records), out=out, prefix=prefix or "multiview", shard_size=shard_size,
                 part=parse_part(part), overwrite=overwrite, skips=Skips(skip_bad),
                 history=import_history("multiview", dict(root=str(root), depth=depth, part=part)))
