"""``handtools synth``: labelled synthetic frames from the hand model and the renderer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from handtools.console import log, progress
from handtools.io.pipes import emit_path
from handtools.io.shards import ShardWriter, history_entry
from handtools.options import (
    Device,
    Mano,
    Overwrite,
    Part,
    ShardSize,
    SkipExisting,
    parse_part,
    resolve_device,
    select_part,
)


def _name(k: int) -> str:
    return f"synth-{k:05d}.h5"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WxH, e.g. 640x480, got {text!r}", param_hint="--image-size")
    if w < 16 or h < 16 or w > 4096 or h > 4096:
        raise typer.BadParameter(f"image size {text} out of range 16..4096", param_hint="--image-size")
    return h, w


def _is_personal(mano: Optional[Path]) -> bool:
    """True when ``mano`` is a one-person model file: an ``.npz`` written by ``personalize``
    (``handtools_personal``) or by the test-subject generator (``handtools_subject``)."""
    if mano is None or not Path(mano).is_file() or Path(mano).suffix != ".npz":
        return False
    try:
        with np.load(mano, allow_pickle=False) as f:
            return "handtools_personal" in f.files or "handtools_subject" in f.files
    except (OSError, ValueError):
        return False  # HandModel.from_path reports a bad file with its own message


# Long by its option table (30 lines) and --help docstring; the body (about 65 lines) is one linear sequence:
# validate, plan outputs, render, write.
def synth(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder for the shards [default: ./synth].", show_default=False)
    ] = Path("synth"),
    num: Annotated[int, typer.Option("-n", "--num", min=1, help="Number of samples (over all parts).")] = 64,
    views: Annotated[
        int, typer.Option("--views", min=1, max=64, help="1 mono, 2 rectified stereo, N cameras around the hand.")
    ] = 1,
    rig: Annotated[
        str, typer.Option("--rig", help="N > 2 views: ring (horizontal circle) or dome (front hemisphere); the hand "
                          "is centred on the rig's target so every view sees it.")
    ] = "ring",
    shape: Annotated[
        str, typer.Option("--shape", help="random (a shape per sample), fixed (shape zero: one subject, the --mano "
                          "file's template) or auto (fixed for a personal/subject model file, else random).")
    ] = "auto",
    domain: Annotated[str, typer.Option("--domain", help="Domain preset: studio or indoor (see docs/synth.md).")] = "studio",
    image_size: Annotated[str, typer.Option("--image-size", metavar="WxH", help="Frame size in pixels.")] = "640x480",
    focal: Annotated[
        Optional[float], typer.Option("--focal", help="Focal length in px [default: STB's 822.79 scaled to the width].")
    ] = None,
    baseline: Annotated[float, typer.Option("--baseline", help="Stereo baseline in metres (STB: 0.120054).")] = 0.120054,
    kp_noise: Annotated[
        float, typer.Option("--kp-noise", min=0.0, help="Detector-like keypoint noise, px (confidence drops with it).")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; a sample depends only on seed and index.")] = 0,
    backgrounds: Annotated[
        Optional[Path], typer.Option("--backgrounds", help="Folder of background images instead of procedural ones.")
    ] = None,
    shard_size: ShardSize = 256,
    part: Part = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Samples rendered at once.")] = 8,
    renderer: Annotated[str, typer.Option("--renderer", help="auto, nvdiffrast or torch.")] = "auto",
    device: Device = "auto",
    mano: Mano = None,
    overwrite: Overwrite = False,
    skip_existing: SkipExisting = False,
) -> None:
    """Generate labelled frames shards (images, K, T_view, masks, depth, joints, meshes, keypoints).

    Every sample carries images, K, T_view, baseline (stereo), masks, depth, joints3d,
    verts3d, MANO pose/shape, keypoints2d (projected ground truth; --kp-noise adds
    detector-like noise with matching confidence) and bbox.

    \b
    $ handtools synth --views 2 --domain indoor -n 64 --out data/ | handtools info
    $ handtools synth --mano subject.npz --views 8 --rig dome --image-size 128x128 -n 64 --out subject/
    $ handtools synth -n 10000 --shard-size 500 --part $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT --out data/
    """
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer
    from handtools.core.data.synth import DOMAINS, RIGS, STB_FOCAL, camera_rig
    from handtools.io.images import list_images, read_image
    from handtools.core.data.synth_render import SceneRenderer

    if domain not in DOMAINS:
        raise typer.BadParameter(f"unknown domain {domain!r}; choose {', '.join(DOMAINS)}", param_hint="--domain")
    hw = _parse_size(image_size)
    if focal is None:
        focal = STB_FOCAL * hw[1] / 640.0
    if focal <= 0 or baseline <= 0:
        raise typer.BadParameter("--focal and --baseline must be positive")
    if overwrite and skip_existing:
        raise typer.BadParameter("give --overwrite or --skip-existing, not both", param_hint="--skip-existing")
    if rig not in RIGS:
        raise typer.BadParameter(f"unknown rig {rig!r}; choose {', '.join(RIGS)}", param_hint="--rig")
    if shape not in ("auto", "random", "fixed"):
        raise typer.BadParameter(f"unknown shape mode {shape!r}; choose auto, random or fixed", param_hint="--shape")
    fixed_shape = shape == "fixed" or (shape == "auto" and _is_personal(mano))
    parts = parse_part(part)
    bg_files = list_images(backgrounds) if backgrounds is not None else None
    dev = resolve_device(device)

    model = HandModel.from_path(mano, device=dev)
    target_depth = 0.5
    ks, ts = camera_rig(views, hw, focal, baseline, target_depth=target_depth, rig=rig)
    scene = SceneRenderer(
        model, Renderer(renderer, device=dev), DOMAINS[domain], hw, ks, ts, baseline if views == 2 else None,
        kp_noise=kp_noise, seed=seed, backgrounds=bg_files, read_background=read_image,
        fixed_shape=fixed_shape, centre=np.array([0.0, 0.0, target_depth]) if views > 2 else None,
    )

    num_shards = math.ceil(num / shard_size)
    mine = select_part(list(range(num_shards)), parts)
    total = sum(min(num, (k + 1) * shard_size) - k * shard_size for k in mine)
    history = [
        history_entry(
            "handtools synth",
            dict(num=num, views=views, domain=domain, image_size=image_size, focal=focal, baseline=baseline,
                 kp_noise=kp_noise, seed=seed, shard_size=shard_size, part=part,
                 backgrounds=str(backgrounds) if backgrounds else None,
                 **({"rig": rig} if views > 2 else {}), **({"shape": "fixed"} if fixed_shape else {})),
        )
    ]
    kept = set()
    if skip_existing:  # check every kept shard before any work
        from handtools.commands._shards import check_kept

        for k in mine:
            if (out / _name(k)).exists():
                check_kept(out / _name(k), history, {"hand_model": model.identity, "domain": domain})
                kept.add(k)
    log.info(f"synth: {total} {domain} samples x {views} view(s) at {hw[1]}x{hw[0]} into {out} ({model.identity})")
    with progress() as bar, torch.no_grad():
        task = bar.add_task("synth", total=total)
        for k in mine:
            lo, hi = k * shard_size, min(num, (k + 1) * shard_size)
            if k in kept:  # --skip-existing: a complete shard from an earlier run
                emit_path(out / _name(k))
                bar.advance(task, hi - lo)
                continue
            with ShardWriter(
                out, kind="multiview" if views > 2 else "frames", num_views=views, producer="handtools synth",
                history=history, shard_size=shard_size, name=lambda _, k=k: _name(k),
                overwrite=overwrite, attrs={"hand_model": model.identity, "domain": domain}, on_shard=emit_path,
            ) as writer:
                for start in range(lo, hi, batch_size):
                    idx = np.arange(start, min(hi, start + batch_size))
                    writer.append(scene.render_batch(idx))
                    bar.advance(task, len(idx))
