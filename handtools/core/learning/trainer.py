"""The training loop every learning command shares (pretrain, selfsup-stereo, selfsup-mono, ...).

* Adam with a step schedule (``lr`` decayed by ``gamma`` after each epoch in
  ``milestones``), the papers' defaults living in each command's config.
* Deterministic data order: epoch ``e`` visits the permutation drawn from
  ``(seed, e)``; under DDP each rank takes every ``world``-th element of it.
* Checkpoints (:mod:`handtools.core.learning.checkpoints`) written atomically at the end of every epoch,
  every ``checkpoint_every`` steps, and on Ctrl-C / SIGTERM; each holds model,
  optimizer, scheduler, RNG state, the position in the epoch and the config, so
  ``resume=True`` continues exactly: an interrupted and resumed run ends with the
  same weights as an uninterrupted one.
* Metrics go to a JSON-lines log beside the checkpoint (``<out>.log.jsonl``) and to
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
import torch
import torch.distributed as dist

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


class _Subset(torch.utils.data.Sampler):
    def __init__(self, order: np.ndarray):
        self.order = order

    def __iter__(self):
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)


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
            hand model identity, ...).
        report: ``report(event, info)`` callback for progress (``"epoch_start"``,
            ``"step"``, ``"epoch_end"``) — the CLI's progress bar.
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
        self._stop = False

    # -- checkpoints ------------------------------------------------------------------
    def state(self) -> dict:
        return {
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
        }

    def save(self) -> None:
        if self.rank == 0:
            atomic_save(self.state(), self.out)

    def resume_from(self, path: Path) -> None:
        """Restore everything from a checkpoint written by this trainer."""
        ckpt = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.step_in_epoch = int(ckpt["epoch"]), int(ckpt["step_in_epoch"])
        self.global_step = int(ckpt["global_step"])
        torch.set_rng_state(ckpt["torch_rng"].cpu())

    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- loop ---------------------------------------------------------------------------
    def _loader(self, epoch: int) -> torch.utils.data.DataLoader:
        order = epoch_order(len(self.dataset), self.cfg.seed, epoch, self.rank, self.world)
        order = order[self.step_in_epoch * self.cfg.batch_size :]  # resume mid-epoch
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_size=self.cfg.batch_size,
            sampler=_Subset(order),
            num_workers=self.cfg.num_workers,
            collate_fn=self.collate,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
            # a private generator: creating the loader must not consume the global RNG,
            # or a run resumed mid-epoch would draw different random numbers.
            generator=torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch),
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
        steps_per_epoch = math.ceil(math.ceil(len(self.dataset) / self.world) / self.cfg.batch_size)
        last: dict = {}
        restore = self._catch_signals()
        try:
            while self.epoch < self.cfg.epochs:
                sums: dict[str, float] = {}
                count = 0
                t0 = time.perf_counter()
                self.report("epoch_start", {"epoch": self.epoch, "steps": steps_per_epoch, "done": self.step_in_epoch})
                self.net.train()
                stopped_early = False
                for batch in self._loader(self.epoch):
                    if self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps:
                        stopped_early = True
                        break
                    metrics = self._train_step(self._to_device(batch))
                    self.step_in_epoch += 1
                    self.global_step += 1
                    for k, v in metrics.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    self.report("step", {"epoch": self.epoch, "step": self.step_in_epoch, "metrics": metrics})
                    if self._stop:  # Ctrl-C / SIGTERM arrived during the step: stop between steps
                        raise KeyboardInterrupt
                    if self.cfg.checkpoint_every and self.global_step % self.cfg.checkpoint_every == 0:
                        self.save()
                if stopped_early:  # --max-steps inside an epoch: keep the position, resumable
                    self.save()
                    break
                last = self._reduce({k: v / max(count, 1) for k, v in sums.items()})
                last.update(
                    epoch=self.epoch, lr=self.opt.param_groups[0]["lr"], steps=count,
                    seconds=round(time.perf_counter() - t0, 3),
                    samples_per_s=round(count * self.cfg.batch_size * self.world / max(time.perf_counter() - t0, 1e-9), 3),
                )
                self.sched.step()
                self.epoch += 1
                self.step_in_epoch = 0
                self._log(last)
                self.report("epoch_end", last)
                self.save()
                if self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps:
                    break
        except KeyboardInterrupt:
            self.save()  # resume continues from the last finished step
            raise
        finally:
            restore()
        if self.distributed:  # leave together: a rank that exits early breaks its peers' gloo/nccl pairs
            dist.barrier()
        return last

    def _catch_signals(self) -> Callable[[], None]:
        """Defer SIGINT/SIGTERM to the end of the current step (a second Ctrl-C stops at once)."""
        self._stop = False
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(_signum, _frame):
            if self._stop:
                raise KeyboardInterrupt
            self._stop = True

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()] and None

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
