"""``handtools demo``: the main job end to end on bundled synthetic data and the bundled hand model."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from handtools.console import console, log
from handtools.errors import OutputExistsError
from handtools.options import Device


@dataclass(frozen=True)
class DemoPreset:
    """Sizes of one demo run (the presets below; the README's demo section says what they give)."""

    studio: int  # labelled studio frames for the prior
    indoor_train: int  # unlabelled indoor stereo pairs for adaptation
    indoor_test: int  # held-out indoor stereo pairs for evaluation
    frame: str  # synth frame size
    focal: float  # synth focal length, px
    crop: int  # crop size (network input)
    encoder: str
    prior_batch: int
    prior_epochs: int
    prior_lr: float
    prior_milestones: str
    prior_scales: tuple[float, ...]
    adapt_epochs: int
    adapt_lr: float


PRESETS = {
    # about 7 minutes on a 2-core CPU (README, "Set-up")
    "default": DemoPreset(studio=2000, indoor_train=1000, indoor_test=50, frame="320x240", focal=411.4, crop=64,
                          encoder="resnet10", prior_batch=32, prior_epochs=3, prior_lr=1e-3,
                          prior_milestones="", prior_scales=(1.25, 1.45, 1.7), adapt_epochs=8,
                          adapt_lr=1e-4),
    # seconds: for tests and smoke checks
    "quick": DemoPreset(studio=24, indoor_train=8, indoor_test=4, frame="160x120", focal=205.7, crop=64,
                        encoder="resnet10", prior_batch=8, prior_epochs=1, prior_lr=1e-3,
                        prior_milestones="", prior_scales=(1.4,), adapt_epochs=1,
                        adapt_lr=1e-4),
}


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for everything the demo makes.")] = Path("demo-out"),
    preset: Annotated[str, typer.Option("--preset", help="default (minutes on a CPU) or quick (seconds).")] = "default",
    seed: Annotated[int, typer.Option("--seed", help="Seed for data and training.")] = 0,
    device: Device = "auto",
    threads: Annotated[int, typer.Option("--threads", min=1, help="torch CPU threads (fixed, so runs repeat).")] = 2,
    prior_source: Annotated[str, typer.Option(
        "--prior", help="shipped: adapt the prior shipped in the package (trained by bench/bench_prior.py "
        "--preset shipped); train: pretrain one on a synthesised studio set first (the preset's budget).",
    )] = "shipped",
    overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace an earlier demo in --out.")] = False,
) -> None:
    """Run the whole pipeline on synthetic data and show before/after errors.

    Takes the hand prior shipped in the package (or, with --prior train, synthesises a
    labelled studio-domain set and pretrains one), synthesises an unlabelled
    indoor-domain stereo set, finds, crops and masks its hands from the images alone,
    tests the prior directly on held-out indoor pairs, adapts it with selfsup-stereo on
    the unlabelled pairs, tests again, and renders a before/after picture.
    stdout: the files made; training curves and pictures in <out>/tensorboard/
    (tensorboard --logdir).

    \b
    $ handtools demo --out demo-out
    $ handtools demo --preset quick --out /tmp/demo
    $ handtools demo --prior train --out demo-trained
    """
    if preset not in PRESETS:
        raise typer.BadParameter(f"unknown preset {preset!r}; choose {', '.join(PRESETS)}", param_hint="--preset")
    if prior_source not in ("shipped", "train"):
        raise typer.BadParameter(f"unknown prior {prior_source!r}; choose shipped or train", param_hint="--prior")
    p = PRESETS[preset]
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: exists and is not empty (use --overwrite to replace the demo there)")
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    run = _Runner(out, overwrite=True)

    console.print(f"[bold]handtools demo[/] ({preset} preset, {prior_source} prior) -> {out}")
    if prior_source == "train":
        run.step("synth studio (labelled)", "synth", out=out / "studio/frames", num=p.studio, views=1,
                 domain="studio", image_size=p.frame, focal=p.focal, seed=seed)
        frames, studio = run.last, []
        for scale in p.prior_scales:  # windows of several sizes, as detection boxes vary (bench_prior "shipped")
            run.step(f"crop studio at scale {scale} (labelled: windows from the projected ground-truth joints)",
                     "crop", inputs=frames, out=out / f"studio/crops-{scale}", size=p.crop, center="gt", scale=scale)
            studio += run.last
    run.step("synth indoor stereo (unlabelled for training)", "synth", out=out / "indoor/train-frames",
             num=p.indoor_train, views=2, domain="indoor", image_size=p.frame, focal=p.focal, seed=seed + 1)
    # Label-free from here on: the crop windows and masks come from the images alone (MediaPipe
    # keypoints replace synth's projected ground truth; pairs where it misses a hand are dropped).
    run.step("detect hands (MediaPipe) in the indoor pairs", "detect", inputs=run.last, out=out / "indoor/train-det")
    run.step("crop indoor around the detections", "crop", inputs=run.last, out=out / "indoor/train-crops",
             size=p.crop, center="bbox")
    run.step("skin masks refined by the detected keypoints", "mask", inputs=run.last, out=out / "indoor/train",
             method="skin")
    train = run.last
    run.step("synth indoor stereo (held-out test)", "synth", out=out / "indoor/test-frames", num=p.indoor_test,
             views=2, domain="indoor", image_size=p.frame, focal=p.focal, seed=seed + 2)
    run.step("detect hands (MediaPipe) in the test pairs", "detect", inputs=run.last, out=out / "indoor/test-det")
    run.step("crop indoor test around the detections", "crop", inputs=run.last, out=out / "indoor/test",
             size=p.crop, center="bbox")
    test = run.last
    adapted = out / "adapted.pt"
    if prior_source == "train":
        prior = out / "prior.pt"
        labels = "the studio set's meshes (pretrain labels) and its projected joints (studio crop windows)"
    else:
        from handtools.core.learning.checkpoints import shipped_prior_path

        prior = shipped_prior_path()
        labels = (f"the meshes and projected joints of the synthetic studio frames that trained the prior shipped in "
                  f"the package ({prior}, bench/bench_prior.py --preset shipped)")
    log.info(f"demo: ground truth used for training: {labels}. The indoor pairs selfsup-stereo reads are cropped "
             "from MediaPipe detections and masked by skin colour + detected keypoints: no indoor label is read for "
             "training; the indoor ground truth is used only to evaluate.")
    if prior_source == "train":
        run.step("pretrain prior on studio", "pretrain", inputs=studio, out=prior, encoder=p.encoder,
                 epochs=p.prior_epochs, lr=p.prior_lr, milestones=p.prior_milestones, batch_size=p.prior_batch,
                 seed=seed, device=device, tensorboard=out / "tensorboard" / "pretrain")
    run.step("predict before (test directly, binocular)", "predict", inputs=test, checkpoint=prior,
             out=out / "pred-before", mode="binocular", device=device)
    before = run.evaluate(run.last, out / "metrics-before.json")
    # --z-head: the prior's root-relative depth gives each vertex's bounded offset around the
    # stereo (mean-disparity) depth; the paper's u, v-only model is bench_demo_ablation's "u, v only" row
    run.step("selfsup-stereo on unlabelled indoor pairs", "selfsup-stereo", inputs=train, init=prior, out=adapted,
             epochs=p.adapt_epochs, lr=p.adapt_lr, milestones="", seed=seed, z_head=True, device=device,
             tensorboard=out / "tensorboard" / "selfsup-stereo", tensorboard_images=Path(test[0]))
    run.step("predict after", "predict", inputs=test, checkpoint=adapted, out=out / "pred-after", device=device)
    after = run.evaluate(run.last, out / "metrics-after.json")
    picture = _before_after(out, out / "pred-before", out / "pred-after", device)

    console.print(f"\n[bold]Indoor held-out stereo pairs ({before['num_samples']} of {p.indoor_test} synthesised: "
                  "MediaPipe found the hand in both views), mean joint error[/]")
    for name, key in (("absolute 3D (mm)", "mpjpe_mm"), ("root-relative (mm)", "rr_mpjpe_mm"),
                      ("Procrustes-aligned (mm)", "pa_mpjpe_mm"), ("PCK AUC 0-50 mm", "pck_auc")):
        console.print(f"  {name:<26} before {before[key]:8.2f}   after {after[key]:8.2f}")
    console.print(f"  done in {time.perf_counter() - t0:.0f} s")
    for path in (prior, adapted, out / "metrics-before.json", out / "metrics-after.json", picture):
        typer.echo(str(path))


class _Runner:
    """Calls the commands' Python entry points in turn, keeping each one's outputs for the next step."""

    def __init__(self, out: Path, overwrite: bool):
        self.out, self.overwrite = out, overwrite
        self.last: list[str] = []

    def step(self, title: str, command: str, **kwargs) -> None:
        from handtools.commands import COMMANDS
        from handtools.io.pipes import collect_outputs

        func = dict(COMMANDS)[command]
        console.print(f"[cyan]>[/] {title}")
        kwargs.setdefault("overwrite", self.overwrite)
        with collect_outputs() as made:
            func(**kwargs)
        self.last = [str(p) for p in made]
        log.debug(f"demo: {command} wrote {self.last}")

    def evaluate(self, inputs: list[str], path: Path) -> dict:
        """FreiHAND-official metrics of prediction shards (library call), saved atomically as JSON."""
        import numpy as np

        from handtools.core.eval.metrics import compute_metrics
        from handtools.io.files import write_atomic
        from handtools.io.shards import ShardReader

        names = ("pred/joints3d", "joints3d", "pred/verts3d", "verts3d")
        readers = [ShardReader(Path(p)) for p in inputs]
        data = {n: np.concatenate([r.read(n) for r in readers]) for n in names}
        metrics = compute_metrics(*(data[n] for n in names))
        metrics = {"label": path.stem, "num_shards": len(inputs), **metrics}
        write_atomic(path, json.dumps(metrics, indent=1))
        return metrics


def _before_after(out: Path, before_dir: Path, after_dir: Path, device: str) -> Path:
    """A picture: for a few test pairs, the input, the mesh before and after adaptation."""
    import numpy as np
    import torch

    from handtools.core.hand.model import HandModel
    from handtools.core.render import Renderer
    from handtools.core.render.visualize import contact_sheet, hstack, put_label, render_panels
    from handtools.io.shards import ShardReader
    from handtools.options import resolve_device

    dev = resolve_device(device)
    hand = HandModel.from_path(None)
    renderer = Renderer("auto", device=dev)
    b = ShardReader(sorted(before_dir.glob("*.h5"))[0])
    a = ShardReader(sorted(after_dir.glob("*.h5"))[0])
    n = min(4, b.num_samples)
    images, K = b.read("images")[:n, 0], torch.from_numpy(b.read("K")[:n, 0])
    scale = max(1, 192 // images.shape[2])  # draw small crops larger; K follows (pixel i covers [i, i+1))
    if scale > 1:
        import cv2

        images = np.stack([cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for im in images])
        K = K.clone()
        K[:, :2] *= scale
    w = images.shape[2]
    strips = {}
    for name, r, key in (("before", b, "pred/"), ("after", a, "pred/"), ("ground truth", b, "")):
        verts = torch.from_numpy(r.read(key + "verts3d")[:n])
        joints = torch.from_numpy(r.read(key + "joints3d")[:n])
        strips[name] = render_panels(renderer, images, verts, hand.faces, K, joints=joints, labels=False)
    panel = lambda strip, k: np.ascontiguousarray(strip[:, :, k * w:(k + 1) * w])  # noqa: E731  (1 mesh, 3 side view)
    tiles = []
    for i in range(n):
        parts = [put_label(images[i], "input")]
        parts += [put_label(panel(strips[name], 1)[i], name) for name in strips]
        parts += [put_label(panel(strips[name], 3)[i], name + " side") for name in strips]
        tiles.append(hstack(parts))
    sheet = contact_sheet(tiles, cols=1)
    path = out / "before_after.png"
    import imageio.v3 as iio

    from handtools.io.files import write_atomic

    write_atomic(path, iio.imwrite("<bytes>", np.asarray(sheet), extension=".png"))
    return path
