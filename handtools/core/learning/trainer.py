"""The training loop every learning command shares (pretrain, selfsup-stereo, selfsup-mono, ...).

* Adam with a step schedule (``lr`` decayed by ``gamma`` after each epoch in
  ``milestones``), the papers' defaults living in each command's config.
* Deterministic data order: epoch ``e`` visits the permutation drawn from
  ``(seed, e)``; under DDP each rank takes every ``world``-th element of it. A last
  batch of a single sample is merged into the batch before it
  (:func:`epoch_batches`): BatchNorm cannot train on one sample.
* Checkpoints (:mod:`handtools.core.learning.checkpoints`) written durably (temp file,
  fsync, rename) at the end of every epoch, every ``checkpoint_every`` steps, and on
  Ctrl-C / SIGTERM; each holds model, optimizer, scheduler, RNG states (CPU and
  CUDA), the position in the epoch with the epoch's running metric sums, the
  config and ``meta``, so ``resume_from`` continues exactly: an interrupted and
  resumed run ends with the same weights (and log) as an uninterrupted one.
  Resuming compares the saved config and ``meta`` with the new run's and refuses
  a different run (:class:`RunMismatch`) unless a change is explicitly allowed.
  Under DDP the checkpoint holds rank 0's RNG state and running sums.
* Metrics go to a JSON-lines log beside the checkpoint (``<out>.log.jsonl``, rewritten
  atomically from the checkpoint's ``history`` after each checkpoint) and to
  a ``report`` callback (the CLI draws progress bars with it); this module never
  imports rich or typer.
* Multi-GPU / multi-node via ``torchrun`` (DDP, rank 0 writes); mixed precision
  (bfloat16/float16 autocast) on CUDA when ``amp`` is on.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import torch
import torch.distributed as dist

from handtools import durable
from handtools.core.learning.checkpoints import CHECKPOINT_FORMAT, atomic_save, load_checkpoint

@dataclass
class TrainConfig:
    """Optimisation settings (defaults are overridden by each command's paper defaults)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    weight_decay: float = 0.0
    seed: int = 0
    num_workers: int = 0
    amp: bool = True  # autocast on CUDA only; ignored on CPU
    grad_clip: Optional[float] = None
    checkpoint_every: int = 0  # steps; 0 = only at epoch ends (and on interrupt)
    max_steps: Optional[int] = None  # stop after this many optimizer steps in total (tests, smoke runs)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        self.milestones = tuple(int(m) for m in self.milestones)


class LossFn(Protocol):
    def __call__(self, model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss (scalar tensor) and named float metrics for logging."""


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment (0, 1, 0 without it)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> np.ndarray:
    """Sample indices of one epoch for one rank: a seeded permutation, every world-th element.

    Each rank gets the same count (the permutation is padded by wrapping around),
    as DistributedSampler does, so DDP ranks stay in step.
    """
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    per_rank = math.ceil(n / world)
    perm = np.resize(perm, per_rank * world)
    return perm[rank::world]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[np.ndarray]:
    """The batches (arrays of sample indices) one rank visits in one epoch, in order.

    Consecutive ``batch_size`` slices of :func:`epoch_order`; a last batch of a
    single sample is merged into the batch before it (that batch then has
    ``batch_size + 1`` samples): a batch of one cannot train BatchNorm layers and
    would stop the run at the last step of an epoch. Every rank has the same number
    of samples (see :func:`epoch_order`), so under DDP every rank merges alike.
    """
    order = epoch_order(n, seed, epoch, rank, world)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [np.concatenate(batches[-2:])]
    return batches


class _Batches(torch.utils.data.Sampler):
    def __init__(self, batches: list[np.ndarray]):
        self.batches = batches

    def __iter__(self):
        return iter([b.tolist() for b in self.batches])

    def __len__(self) -> int:
        return len(self.batches)


#: Settings a resumed run may change freely: they do not change what is learnt from which sample.
FREE_SETTINGS = frozenset({"epochs", "max_steps", "checkpoint_every", "num_workers", "amp"})
#: Settings that fix the data order: changing them mid-epoch would skip the wrong samples.
ORDER_SETTINGS = frozenset({"batch_size", "seed", "inputs"})
#: ``meta`` entries that can never change on resume (the weights would not fit).
FIXED_META = frozenset({"kind", "net"})
#: Checkpoint entries only a training run writes (needed to resume).
RESUME_KEYS = ("optimizer", "scheduler", "epoch", "step_in_epoch", "global_step", "torch_rng", "config")


class RunMismatch(ValueError):
    """``resume`` was asked to continue a run with different settings.

    Attributes:
        path: the checkpoint. diffs: ``(name, saved, new)`` triples, ``name`` a
            :class:`TrainConfig` field or a ``meta`` key. why: ``"changed"`` (allowed
            only with ``allow_change``), ``"network"`` (never allowed) or
            ``"mid_epoch"`` (data-order settings change only at an epoch boundary).
    """

    def __init__(self, path: Path, diffs: list[tuple[str, object, object]], why: str):
        self.path, self.diffs, self.why = Path(path), diffs, why
        what = ", ".join(f"{k} {_short(a)} -> {_short(b)}" for k, a, b in diffs)
        super().__init__(f"{path}: cannot resume: {what} ({why.replace('_', ' ')})")


def _read_log(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(value):
    """Tuples as lists, recursively (how a value compares after a checkpoint round trip)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def run_differences(ckpt: dict, config: "TrainConfig", meta: dict) -> list[tuple[str, object, object]]:
    """What a new run's ``config`` and ``meta`` change in the run saved in ``ckpt``.

    Returns ``(name, saved, new)`` for every :class:`TrainConfig` field outside
    :data:`FREE_SETTINGS` and every ``meta`` key both hold that differ. ``meta``'s
    ``train_shards`` (paths) is not compared when both hold ``inputs`` (the shards'
    names, sizes and digests): the same data moved to another folder is the same run.
    """
    diffs = []
    saved_cfg = ckpt.get("config", {})
    for key, new in asdict(config).items():
        if key in FREE_SETTINGS or key not in saved_cfg:
            continue
        if _plain(saved_cfg[key]) != _plain(new):
            diffs.append((key, saved_cfg[key], new))
    saved_meta = ckpt.get("meta", {})
    for key, new in meta.items():
        if key not in saved_meta:
            continue
        if key == "train_shards" and "inputs" in meta and "inputs" in saved_meta:
            continue
        if _plain(saved_meta[key]) != _plain(new):
            diffs.append((key, saved_meta[key], new))
    return diffs


class Trainer:
    """Runs ``loss_fn`` over ``dataset`` with Adam and writes resumable checkpoints.

    Args:
        model: the network (moved to ``device``; wrapped in DDP under torchrun).
        loss_fn: ``(model, batch) -> (loss, metrics)``; ``batch`` is the collated dict
            with tensors moved to ``device``.
        dataset: a map-style dataset of dict samples.
        config: :class:`TrainConfig`.
        out: checkpoint path (``.pt``); the log is ``out`` with ``.log.jsonl``.
        device: torch device.
        meta: extra picklable-primitives stored in every checkpoint (command config,
            hand model identity, input shards ...), compared on resume.
        report: ``report(event, info)`` callback for progress (``"epoch_start"``,
            ``"step"``, ``"epoch_end"``) — the CLI's progress bar and TensorBoard
            writer. A ``"step"`` info holds ``epoch``, ``step`` (in the epoch),
            ``global_step``, ``metrics`` (this rank's), ``lr``, ``samples`` (in the step,
            all ranks) and ``seconds`` (wall time since the previous step, data loading
            included); ``"epoch_end"`` gets the epoch's mean metrics.

    Nothing is written before the first checkpoint: an existing checkpoint and log at
    ``out`` stay as they are until the new run's first checkpoint replaces them
    (each by an atomic rename), so a run that fails early destroys nothing.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: LossFn,
        dataset: torch.utils.data.Dataset,
        config: TrainConfig,
        out: Path,
        device: torch.device,
        meta: Optional[dict] = None,
        report: Optional[Callable[[str, dict], None]] = None,
        collate: Optional[Callable] = None,
    ):
        self.rank, self.world, self.local_rank = distributed_env()
        self.distributed = self.world > 1
        if self.distributed and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend)
        self.device = device
        self.model = model.to(device)
        self.net = (
            torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
            if self.distributed
            else self.model
        )
        self.loss_fn, self.dataset, self.cfg = loss_fn, dataset, config
        self.out = Path(out)
        self.log_path = self.out.with_suffix(".log.jsonl")
        self.meta = dict(meta or {})
        self.report = report or (lambda event, info: None)
        self.collate = collate
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, milestones=list(config.milestones), gamma=config.gamma)
        self.amp = bool(config.amp) and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if (self.amp and torch.cuda.is_bf16_supported()) else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.torch_seed = config.seed
        self.history: list[dict] = []  # one record per finished epoch: the log's lines
        self.changes: list[tuple[str, object, object]] = []  # settings changed by resume(allow_change=True)
        self._reset_epoch_sums()
        self._saved_step = 0  # global_step of the last checkpoint (0: nothing learnt yet, nothing to save)
        self._log_lines_written: Optional[int] = None  # history length in the log on disk (None: not written)
        self._stop = False
        self._saving = False
        #: the command's resolved configuration (JSON-like), saved as the checkpoint's ``run_config``
        self.run_config: Optional[dict] = None

    def _reset_epoch_sums(self) -> None:
        self._sums: dict[str, float] = {}
        self._count = 0  # steps of this epoch so far (before an interrupt too)
        self._samples = 0
        self._seconds = 0.0  # time spent on this epoch before the current process took over
        self._t0: Optional[float] = None

    def _epoch_seconds(self) -> float:
        return self._seconds + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    # -- checkpoints ------------------------------------------------------------------
    def state(self) -> dict:
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "torch_rng": torch.get_rng_state(),
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.cfg).items()},
            "meta": self.meta,
            "finished": self.epoch >= self.cfg.epochs,
            "history": list(self.history),
            # running sums of the epoch in progress: a mid-epoch resume logs the whole epoch's means
            "epoch_sums": dict(self._sums),
            "epoch_count": self._count,
            "epoch_samples": self._samples,
            "epoch_seconds": self._epoch_seconds(),
        }
        if self.run_config is not None:
            state["run_config"] = self.run_config
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def save(self) -> None:
        """Write the checkpoint, then the log (rank 0), each atomically and durably.

        The checkpoint first: if the process dies between the two, the log is
        rewritten from the checkpoint's ``history`` by the next save.
        """
        self._saving = True  # a repeated signal must not cut the write short (see _catch_signals)
        try:
            self._write()
        finally:
            self._saving = False
        self._saved_step = self.global_step

    def _write(self) -> None:
        if self.rank == 0:
            atomic_save(self.state(), self.out)
            if self._log_lines_written != len(self.history):
                text = "".join(json.dumps(r) + "\n" for r in self.history)
                with durable.atomic_write(self.log_path, "w", overwrite=True) as f:
                    f.write(text)
                self._log_lines_written = len(self.history)

    def resume_from(self, path: Path, allow_change: bool = False) -> None:
        """Restore everything from a checkpoint written by this trainer.

        The run must be the same: the saved configuration and ``meta`` are compared
        with this trainer's (:func:`run_differences`). With ``allow_change`` the new
        settings replace the saved ones (learning rate, schedule and weight decay take
        effect from the current epoch); settings that fix the data order (batch size,
        seed, inputs) change only at an epoch boundary, the network never.

        Raises:
            RunMismatch: the settings differ (see its ``why``).
            ValueError: the checkpoint is unreadable or was not written by a training run.
        """
        ckpt = load_checkpoint(path, map_location=self.device)
        missing = [k for k in RESUME_KEYS if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: cannot resume: not a training checkpoint (missing {', '.join(missing)})")
        diffs = run_differences(ckpt, self.cfg, self.meta)
        fixed = [d for d in diffs if d[0] in FIXED_META]
        if fixed:
            raise RunMismatch(path, fixed, "network")
        if diffs and not allow_change:
            raise RunMismatch(path, diffs, "changed")
        order = [d for d in diffs if d[0] in ORDER_SETTINGS]
        if order and int(ckpt["step_in_epoch"]):
            raise RunMismatch(path, order, "mid_epoch")
        try:
            self.model.load_state_dict(ckpt["model"])
            self.opt.load_state_dict(ckpt["optimizer"])
            self.sched.load_state_dict(ckpt["scheduler"])
            if "scaler" in ckpt:
                self.scaler.load_state_dict(ckpt["scaler"])
            self.epoch, self.step_in_epoch = int(ckpt["epoch"]), int(ckpt["step_in_epoch"])
            self.global_step = int(ckpt["global_step"])
            torch.set_rng_state(ckpt["torch_rng"].cpu())
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{path}: cannot resume: damaged training state ({first[:200]})") from None
        cuda_rng = ckpt.get("cuda_rng")
        if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([t.cpu() for t in cuda_rng])
        if "history" in ckpt:
            self.history = [dict(r) for r in ckpt["history"]]
        else:  # a checkpoint from before the history was saved: keep the log's finished epochs
            self.history = _read_log(self.log_path)[: self.epoch]
        self._reset_epoch_sums()
        if self.step_in_epoch:
            self._sums = {k: float(v) for k, v in ckpt.get("epoch_sums", {}).items()}
            self._count = int(ckpt.get("epoch_count", 0))
            self._samples = int(ckpt.get("epoch_samples", 0))
            self._seconds = float(ckpt.get("epoch_seconds", 0.0))
        self.changes = diffs
        if diffs:
            self._apply_schedule()
        self._saved_step = self.global_step

    def _apply_schedule(self) -> None:
        """Make the optimizer and scheduler follow ``self.cfg`` from the current epoch on."""
        cfg = self.cfg
        lr = cfg.lr * cfg.gamma ** sum(1 for m in cfg.milestones if m <= self.epoch)
        self.sched.milestones = Counter(cfg.milestones)
        self.sched.gamma = cfg.gamma
        self.sched.base_lrs = [cfg.lr for _ in self.opt.param_groups]
        for g in self.opt.param_groups:
            g.update(lr=lr, initial_lr=cfg.lr, weight_decay=cfg.weight_decay)

    # -- loop ---------------------------------------------------------------------------
    def batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches in ``epoch`` (:func:`epoch_batches`)."""
        return epoch_batches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, epoch, self.rank, self.world)

    def _loader(self, batches: list[np.ndarray], epoch: int) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=_Batches(batches),
            num_workers=self.cfg.num_workers,
            collate_fn=self.collate,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
            # a private generator: creating the loader must not consume the global RNG,
            # or a run resumed mid-epoch would draw different random numbers.
            generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch),
        )

    def _check_batches(self, batches: list[np.ndarray]) -> None:
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
        if has_bn and any(len(b) == 1 for b in batches):
            per_rank = sum(len(b) for b in batches)
            raise ValueError(
                f"batches of 1 sample cannot train this network (BatchNorm layers): batch size {self.cfg.batch_size}, "
                f"{per_rank} sample(s) per process; use a batch size of at least 2 and at least 2 samples per process"
            )

    def _to_device(self, batch):
        if isinstance(batch, dict):
            return {k: self._to_device(v) for k, v in batch.items()}
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        return batch

    def _reduce(self, metrics: dict[str, float]) -> dict[str, float]:
        if not self.distributed:
            return metrics
        keys = sorted(metrics)
        t = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(keys, (t / self.world).tolist()))

    def fit(self) -> dict:
        """Train to ``config.epochs``; returns the last epoch's mean metrics."""
        if self.global_step == 0 and self.epoch == 0:
            torch.manual_seed(self.torch_seed)
        last: dict = {}
        restore = self._catch_signals()
        try:
            while self.epoch < self.cfg.epochs:
                batches = self.batches(self.epoch)
                self._check_batches(batches)
                if self.step_in_epoch == 0:
                    self._reset_epoch_sums()
                self._t0 = time.perf_counter()
                self.report("epoch_start", {"epoch": self.epoch, "steps": len(batches), "done": self.step_in_epoch})
                self.net.train()
                stopped_early = False
                todo = batches[self.step_in_epoch :]  # resume mid-epoch
                if self._stop_requested():  # arrived while the last epoch's checkpoint was written
                    self._raise_stop(self._stop)
                t_prev = time.perf_counter()
                for idx, batch in zip(todo, self._loader(todo, self.epoch)):
                    if self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps:
                        stopped_early = True
                        break
                    metrics = self._train_step(self._to_device(batch))
                    self.step_in_epoch += 1
                    self.global_step += 1
                    for k, v in metrics.items():
                        self._sums[k] = self._sums.get(k, 0.0) + v
                    self._count += 1
                    self._samples += len(idx)
                    now = time.perf_counter()
                    self.report("step", {
                        "epoch": self.epoch, "step": self.step_in_epoch, "metrics": metrics,
                        "global_step": self.global_step, "lr": self.opt.param_groups[0]["lr"],
                        "samples": len(idx) * self.world, "seconds": now - t_prev,
                    })
                    t_prev = now
                    if self.cfg.checkpoint_every and self.global_step % self.cfg.checkpoint_every == 0:
                        self.save()
                    if self._stop_requested():  # Ctrl-C / SIGTERM arrived during the step: stop between steps
                        self._raise_stop(self._stop)
                if stopped_early:  # --max-steps inside an epoch: keep the position, resumable
                    if self._saved_step != self.global_step:
                        self.save()
                    break
                seconds = self._epoch_seconds()
                last = self._reduce({k: v / max(self._count, 1) for k, v in self._sums.items()})
                last.update(
                    epoch=self.epoch, lr=self.opt.param_groups[0]["lr"], steps=self._count,
                    seconds=round(seconds, 3),
                    samples_per_s=round(self._samples * self.world / max(seconds, 1e-9), 3),
                )
                self.sched.step()
                self.epoch += 1
                self.step_in_epoch = 0
                self._reset_epoch_sums()
                self.history.append(last)
                self.report("epoch_end", last)
                self.save()
                if self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps:
                    break
        except KeyboardInterrupt:
            # resume continues from the last finished step; a run that made no step since
            # the last checkpoint (or none at all) writes nothing, so --overwrite keeps the old one
            if self._saved_step != self.global_step:
                self.save()
            raise
        finally:
            self._t0 = None
            restore()
        if self.distributed:  # leave together: a rank that exits early breaks its peers' gloo/nccl pairs
            dist.barrier()
        return last

    def _stop_requested(self) -> bool:
        """Whether a signal asked to stop; under DDP whether any rank got one (every rank
        calls this at the same points, so all stop at the same step boundary)."""
        stop = bool(self._stop)
        if self.distributed:
            flag = torch.tensor([1.0 if stop else 0.0], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() > 0 and not stop:
                self._stop, stop = signal.SIGTERM, True
        return stop

    def _catch_signals(self) -> Callable[[], None]:
        """Defer SIGINT/SIGTERM to the end of the current step, then checkpoint and stop.

        The deferred signal then goes to the handler that was in place before (the
        CLI turns SIGTERM into its own ``KeyboardInterrupt`` subclass), or raises
        ``KeyboardInterrupt``. Once a stop is asked for, more SIGTERMs change nothing
        (Slurm signals every process of a job, torchrun forwards its own, a scheduler
        may repeat itself): the step finishes and the checkpoint is written whole. A
        second Ctrl-C (SIGINT) stops at once, the step in progress lost — but never while a
        checkpoint is being written: that one is finished first.
        """
        self._stop = False
        self._repeats = 0  # signals after the first, for tests and logs
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum, _frame):
            if not self._stop:
                self._stop = signum
                return
            self._repeats += 1
            if signum == signal.SIGINT and not self._saving:
                self._raise_stop(signum)

        self._old_handlers = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in self._old_handlers.items()] and None

    def _raise_stop(self, signum) -> None:
        old = getattr(self, "_old_handlers", {}).get(signum)
        if callable(old) and old is not signal.default_int_handler:
            old(signum, None)  # expected to raise (e.g. the CLI's SIGTERM handler)
        raise KeyboardInterrupt

    def _train_step(self, batch: dict) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            loss, metrics = self.loss_fn(self.net, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.global_step}; lower --lr or check the data")
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics["loss"] = float(loss.detach())
        return metrics
