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
from handtools.errors import OutputExistsError


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
    """'new' or 'resume' for the checkpoint path; refuses to clobber without --overwrite."""
    if out.exists() and out.is_dir():
        raise OutputExistsError(f"{out}: is a folder; --out takes a checkpoint file path")
    if resume:
        if not out.exists():
            raise OutputExistsError(f"{out}: --resume given but there is no checkpoint to resume")
        return "resume"
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out}: exists (use --resume to continue it or --overwrite to start over)")
    if out.exists():
        out.unlink()
    log = out.with_suffix(".log.jsonl")
    if log.exists():
        log.unlink()
    return "new"


def run_training(name: str, trainer, out: Path, start: str, summary: str) -> None:
    """Resume if asked, log what runs, train with progress bars, print the checkpoint path (rank 0)."""
    from handtools.console import log
    from handtools.io.pipes import emit_path

    if start == "resume":
        trainer.resume_from(out)
        log.info(f"{name}: resuming {out} at epoch {trainer.epoch}, step {trainer.step_in_epoch}")
    cfg = trainer.cfg
    log.info(f"{name}: {summary}, {cfg.epochs} epochs, batch {cfg.batch_size}, lr {cfg.lr:g}, device {trainer.device}")
    with progress_reporter(name, cfg.epochs) as report:
        trainer.report = report
        trainer.fit()
    if trainer.rank == 0:
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
