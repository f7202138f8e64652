"""Options and helpers shared by the learning commands (pretrain, selfsup-stereo, ...).

Each command keeps its paper's defaults in its own signature; the option
definitions live here once.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from handtools.console import progress
from handtools.errors import DiskFullError, InputError, OutputExistsError


class TrainOptions:
    Epochs = Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")]
    BatchSize = Annotated[int, typer.Option("--batch-size", min=1, help="Images per step (per process under torchrun).")]
    Lr = Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")]
    Milestones = Annotated[str, typer.Option("--milestones", metavar="E1,E2", help="Epochs after which lr decays.")]
    Gamma = Annotated[float, typer.Option("--gamma", help="lr decay factor at each milestone.")]
    Seed = Annotated[int, typer.Option("--seed", help="Seed for initialisation and data order.")]
    Workers = Annotated[int, typer.Option("--workers", min=0, help="DataLoader worker processes.")]
    MaxSteps = Annotated[Optional[int], typer.Option("--max-steps", min=1, help="Stop after this many steps (smoke runs).")]
    CheckpointEvery = Annotated[
        int, typer.Option("--checkpoint-every", min=0, help="Also checkpoint every N steps (0: epoch ends only).")
    ]
    Amp = Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA (ignored on CPU).")]
    Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out exactly where it stopped.")]
    TensorBoard = Annotated[
        Optional[Path],
        typer.Option("--tensorboard", metavar="DIR",
                     help="Also write TensorBoard events to DIR (rank 0): per step each loss term, lr and images/s; "
                          "per epoch the model's meshes drawn over a few crops (--tensorboard-images)."),
    ]
    TensorBoardImages = Annotated[
        Optional[Path],
        typer.Option("--tensorboard-images", metavar="SHARD",
                     help="Crops shard whose first 4 samples --tensorboard draws the predictions on each epoch, "
                          "e.g. held-out crops [default: the first training shard]."),
    ]
    AllowChange = Annotated[
        bool,
        typer.Option("--allow-change", help="With --resume: continue with changed settings (lr, schedule, loss "
                     "weights; batch size, seed or shards at an epoch end) instead of refusing."),
    ]


def parse_milestones(text: str) -> tuple[int, ...]:
    text = text.strip()
    if not text:
        return ()
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated epochs, got {text!r}", param_hint="--milestones")
    if any(v < 1 for v in values):
        raise typer.BadParameter("milestones must be >= 1", param_hint="--milestones")
    return values


def train_config(epochs, batch_size, lr, milestones, gamma, seed, workers, max_steps, checkpoint_every, amp, **extra):
    from handtools.core.learning.trainer import TrainConfig

    if lr <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--lr")
    return TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, milestones=parse_milestones(milestones), gamma=gamma,
        seed=seed, num_workers=workers, max_steps=max_steps, checkpoint_every=checkpoint_every, amp=amp, extra=extra,
    )


def checkpoint_target(out: Path, *, resume: bool, overwrite: bool) -> str:
    """'new' or 'resume' for the checkpoint path; refuses to clobber without --overwrite.

    Nothing is deleted here: with --overwrite the old checkpoint and its log stay
    until the new run's first checkpoint replaces them (an atomic rename), so a run
    that fails before (empty stdin, bad option or shard, no GPU) loses nothing.
    Temporary files a killed run left beside ``out`` are removed.
    """
    from handtools import durable
    from handtools.console import log

    if out.exists() and out.is_dir():
        raise OutputExistsError(f"{out}: is a folder; --out takes a checkpoint file path")
    removed, kept = durable.clean_stale_temps(out.parent if str(out.parent) else Path("."))
    if removed:
        log.info(f"removed {len(removed)} temporary file(s) left by a killed run in {out.parent}")
    if resume:
        if not out.exists():
            raise OutputExistsError(f"{out}: --resume given but there is no checkpoint to resume")
        return "resume"
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists (use --resume to continue it or --overwrite to start over)")
    return "new"


#: Bytes read from each end of an input shard for its digest.
_DIGEST_BYTES = 1 << 20


def input_fingerprints(paths: list[Path]) -> list[dict]:
    """What identifies each input shard for --resume: file name, size in bytes, and the
    SHA-256 of its size and its first and last MiB (cheap for any size; an HDF5 file's
    metadata sits at both ends)."""
    import hashlib

    out = []
    for p in paths:
        size = p.stat().st_size
        h = hashlib.sha256(str(size).encode())
        with open(p, "rb") as f:
            h.update(f.read(_DIGEST_BYTES))
            if size > _DIGEST_BYTES:
                f.seek(max(_DIGEST_BYTES, size - _DIGEST_BYTES))
                h.update(f.read(_DIGEST_BYTES))
        out.append({"name": p.name, "bytes": size, "sha256": h.hexdigest()[:16]})
    return out


#: How the settings compared on --resume are called on the command line.
_SETTING_NAMES = {
    "batch_size": "--batch-size", "lr": "--lr", "milestones": "--milestones", "gamma": "--gamma", "seed": "--seed",
    "weight_decay": "weight decay", "grad_clip": "gradient clipping", "extra": "settings", "inputs": "input shards",
    "train_shards": "input shards", "hand_model": "hand model (--mano)", "loss_weights": "loss weights",
    "losses": "losses", "alpha": "--alpha", "init": "--init", "net": "network", "kind": "checkpoint kind",
}


def _describe(name: str, old, new) -> str:
    label = _SETTING_NAMES.get(name, name)
    if name == "inputs":
        if len(old) != len(new):
            return f"{label}: {len(old)} saved, {len(new)} given"
        for a, b in zip(old, new):
            if a != b:
                what = "differs" if a.get("name") == b.get("name") else f"-> {b.get('name')}"
                return f"{label}: {a.get('name')} ({a.get('bytes')} bytes) {what}" + (
                    f" ({b.get('bytes')} bytes)" if a.get("bytes") != b.get("bytes") else "")
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        return f"{label}: " + ", ".join(f"{k} {_val(old.get(k))} -> {_val(new.get(k))}" for k in keys[:4])
    return f"{label} {_val(old)} -> {_val(new)}"


def _val(v) -> str:
    text = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    text = text or "(none)"
    return text if len(text) <= 50 else text[:47] + "..."


def _resume(trainer, out: Path, allow_change: bool) -> None:
    from handtools.console import log
    from handtools.core.learning.trainer import RunMismatch

    try:
        trainer.resume_from(out, allow_change=allow_change)
    except RunMismatch as exc:
        what = "; ".join(_describe(*d) for d in exc.diffs)
        if exc.why == "network":
            raise InputError(f"{out}: --resume cannot continue it with a different {what}; "
                             "start a new run (another --out, or --overwrite)") from None
        if exc.why == "mid_epoch":
            raise InputError(f"{out}: --resume: {what} changes the data order, and the checkpoint stopped inside an "
                             "epoch; resume with the saved settings until an epoch ends, then change them") from None
        raise InputError(f"{out}: --resume would continue a different run ({what}); repeat the saved settings, "
                         "pass --allow-change to continue with the new ones, or --overwrite to start over") from None
    for d in trainer.changes:
        log.warning(f"--allow-change: {_describe(*d)}")


def run_training(name: str, trainer, out: Path, start: str, summary: str, allow_change: bool = False,
                 tensorboard: Optional[Path] = None, hand=None, images_per_sample: int = 1,
                 overwrite: bool = False, emit: bool = True, tensorboard_images: Optional[Path] = None) -> None:
    """Resume if asked, log what runs, train with progress bars, print the checkpoint path (rank 0;
    ``emit=False``: not yet, a later stage will).

    With ``tensorboard`` (a folder) rank 0 also writes TensorBoard events there
    (:func:`tensorboard_reporter`; ``hand`` draws the per-epoch overlays,
    ``images_per_sample`` turns samples/s into images/s: 2 for stereo pairs; a new run
    refuses a folder holding earlier events unless ``overwrite``, which deletes them;
    ``tensorboard_images``: the crops shard drawn, default the first training shard).
    A full disk while writing a checkpoint is a one-line :class:`DiskFullError`; the
    previous checkpoint is kept.
    """
    from handtools import durable, runconfig
    from handtools.console import log
    from handtools.io.pipes import emit_path

    if tensorboard_images is not None and tensorboard is None:
        raise InputError("--tensorboard-images needs --tensorboard DIR (where the pictures go)")
    if start == "resume":
        _resume(trainer, out, allow_change)
        log.info(f"{name}: resuming {out} at epoch {trainer.epoch}, step {trainer.step_in_epoch}")
    # the full configuration (`handtools info --config out.pt`), with the shards a pipe supplied
    trainer.run_config = runconfig.current(inputs=trainer.meta.get("train_shards"))
    if trainer.run_config is not None and trainer.changes:
        trainer.run_config["changed_on_resume"] = [[k, runconfig.plain(a), runconfig.plain(b)]
                                                   for k, a, b in trainer.changes]
    cfg = trainer.cfg
    log.info(f"{name}: {summary}, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g}, device {trainer.device}")
    try:
        with progress_reporter(name, cfg.epochs) as report, \
                tensorboard_reporter(name, trainer, tensorboard, hand, images_per_sample,
                                     fresh=start == "new", overwrite=overwrite, images=tensorboard_images) as board:
            trainer.report = report if board is None else _both(report, board)
            trainer.fit()
    except OSError as exc:
        if durable.is_disk_full(exc):
            raise DiskFullError(exc.strerror if str(exc.strerror).startswith("disk full") else
                                f"disk full: cannot write {out}; the previous checkpoint, if any, is kept") from None
        raise
    if emit and trainer.rank == 0:
        emit_path(out)


@contextmanager
def progress_reporter(name: str, epochs: int) -> Iterator:
    """A Trainer ``report`` callback drawing an epoch bar and a step bar on stderr."""
    with progress(transient=True) as bar:
        ep = bar.add_task(f"{name} epochs", total=epochs)
        st = bar.add_task("steps", total=None)

        def report(event: str, info: dict) -> None:
            if event == "epoch_start":
                bar.update(ep, completed=info["epoch"])
                bar.update(st, total=info["steps"], completed=info["done"], description=f"epoch {info['epoch'] + 1}")
            elif event == "step":
                m = info["metrics"]
                bar.update(st, completed=info["step"], description=f"epoch {info['epoch'] + 1} loss {m['loss']:.4g}")
            elif event == "epoch_end":
                bar.update(ep, completed=info["epoch"] + 1)
                from handtools.console import log

                log.info(f"{name} epoch {info['epoch'] + 1}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in info.items() if k not in ("epoch",) and isinstance(v, float)))

        yield report


def _both(first, second):
    def report(event: str, info: dict) -> None:
        first(event, info)
        second(event, info)

    return report


@contextmanager
def tensorboard_reporter(name: str, trainer, logdir: Optional[Path], hand=None, images_per_sample: int = 1,
                         fresh: bool = True, overwrite: bool = False, images: Optional[Path] = None) -> Iterator:
    """A Trainer ``report`` callback writing TensorBoard events to ``logdir`` (None: yields None).

    Per step (x = global step): ``loss/<term>`` for each metric of the loss (rank 0's
    batch under DDP; ``loss/total`` the optimised sum), ``lr`` and
    ``throughput/images_per_s`` (the step's images, all ranks, over its wall time).
    Per epoch: ``epoch/<name>`` (the epoch means the JSON-lines log holds, reduced over
    ranks) and, with ``hand``, an image ``predictions``: the current weights' meshes over
    the first crops of ``images`` (a crops shard, e.g. held-out; default the first
    training shard; :class:`_Overlays`). Only rank 0 writes;
    a resumed run hides the events an interrupted one wrote after its checkpoint. A
    ``fresh`` (not resumed) run refuses a folder with event files unless ``overwrite``
    (then they are deleted: two runs' curves in one folder would interleave).
    """
    if logdir is None or trainer.rank != 0:
        yield None
        return
    from handtools.console import log
    from handtools.io.tensorboard import TensorBoardWriter

    if logdir.exists() and not logdir.is_dir():
        raise OutputExistsError(f"{logdir}: --tensorboard takes a folder; this is a file")
    old = sorted(logdir.glob("events.out.tfevents.*")) if fresh and logdir.is_dir() else []
    if old and not overwrite:
        raise OutputExistsError(f"{logdir}: holds TensorBoard events of an earlier run (use --overwrite to "
                                "replace them, --resume to continue that run, or another --tensorboard folder)")
    for f in old:
        f.unlink()
    writer = TensorBoardWriter(logdir, purge_step=trainer.global_step or None)
    overlays = _Overlays(trainer, hand, images) if hand is not None else None

    def report(event: str, info: dict) -> None:
        nonlocal overlays
        if event == "step":
            values = {f"loss/{'total' if k == 'loss' else k}": v for k, v in info["metrics"].items()}
            values["lr"] = info["lr"]
            if info["seconds"] > 0:
                values["throughput/images_per_s"] = info["samples"] * images_per_sample / info["seconds"]
            writer.scalars(info["global_step"], values)
        elif event == "epoch_end":
            step = trainer.global_step
            writer.scalars(step, {f"epoch/{k}": v for k, v in info.items()
                                  if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool)})
            if overlays is not None:
                try:
                    writer.image("predictions", step, overlays.render())
                except Exception as exc:  # noqa: BLE001 - a picture never stops a training run
                    log.warning(f"{name}: --tensorboard: no prediction overlays ({type(exc).__name__}: {exc})")
                    overlays = None
            writer.flush()

    try:
        yield report
    finally:
        writer.close()


class _Overlays:
    """The current weights' predictions drawn over a few training crops (``input | mesh |
    skeleton | side | top`` strips, :func:`handtools.core.render.overlay.panels_in_view`).

    The crops are the first ``n`` samples of ``shard`` (default: the run's first training
    shard, ``meta["train_shards"]``); the model is run through its registered predictor
    (what ``handtools predict`` does), on a copy of the weights, with the RNG state
    saved and restored, so drawing changes nothing in the run.
    """

    def __init__(self, trainer, hand, shard: Optional[Path] = None, n: int = 4):
        from handtools.io.shards import ShardReader

        self.trainer, self.hand = trainer, hand
        path = Path(shard) if shard is not None else Path(trainer.meta["train_shards"][0])
        with ShardReader(path) as r:
            k = min(n, r.num_samples)
            names = ("images", "K", "T_view", "joints3d", "baseline", "hand/is_left")
            self.batch = {m: r.read(m, slice(0, k)) for m in names if m in r}
        self.renderer = None

    def render(self):
        """(n H, 5 W, 3) uint8."""
        import numpy as np
        import torch

        from handtools.core.learning.predictors import predictor_for
        from handtools.core.methods import register_predictors
        from handtools.core.render import Renderer
        from handtools.core.render.overlay import panels_in_view

        dev = self.trainer.device
        register_predictors()
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            if self.renderer is None:
                self.renderer = Renderer("auto", device=dev)
            ckpt = {"meta": self.trainer.meta, "model": self.trainer.model.state_dict()}
            predictor = predictor_for(ckpt, self.hand, dev, source="--tensorboard")
            batch = dict(self.batch)
            if predictor.needs_root_depth and "joints3d" not in batch:
                batch["root_depth"] = np.full(len(batch["images"]), 0.5, np.float32)  # any depth: uv stay the same
            pred = predictor.predict(batch, 0)
            strips = panels_in_view(
                self.renderer, self.hand, batch["images"][:, 0],
                torch.from_numpy(pred["pred/verts3d"]).to(dev), torch.from_numpy(batch["K"][:, 0]).float().to(dev),
                joints0=torch.from_numpy(pred["pred/joints3d"]).to(dev),
            )
        return np.ascontiguousarray(np.concatenate(list(strips), axis=0))


def parse_weights(items: list[str], known: dict) -> dict:
    """``--weight NAME=VALUE`` items as ``{name: float}``; names must be keys of ``known``.

    Raises:
        typer.BadParameter: an unknown name (listing the known ones) or a value that is not a number.
    """
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in known:
            raise typer.BadParameter(f"unknown weight {name!r} (known: {', '.join(known)})", param_hint="--weight")
        try:
            weights[name] = float(value)
        except ValueError:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--weight")
    return weights
