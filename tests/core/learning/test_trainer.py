"""The shared training loop: exact resume after an interrupt, schedule, logs, DDP (gloo, 2 processes)."""

from __future__ import annotations

import json
import os
import signal
import socket

import numpy as np
import pytest
import torch

from handtools.core.learning.checkpoints import load_checkpoint
from handtools.core.learning.trainer import Trainer, TrainConfig, epoch_order


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=24):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(n, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def toy_loss(model, batch):
    pred = model(batch["x"])
    noise = 0.01 * torch.randn_like(pred)  # uses the torch RNG: resume must restore it
    loss = ((pred + noise - batch["y"]) ** 2).mean()
    return loss, {"mse": float(loss.detach())}


def make(tmp, out="ckpt.pt", **cfg):
    torch.manual_seed(123)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    config = TrainConfig(**{"epochs": 3, "batch_size": 5, "lr": 1e-2, "milestones": (2,), "seed": 1, **cfg})
    return Trainer(model, toy_loss, ToyData(), config, tmp / out, torch.device("cpu"), meta={"kind": "toy"})


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    ref = make(tmp_path, "ref.pt")
    ref.fit()

    def interrupt_at_7(event, info):
        if event == "step" and t.global_step == 7:
            os.kill(os.getpid(), signal.SIGINT)

    t = make(tmp_path, "run.pt")
    t.report = interrupt_at_7
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    ckpt = load_checkpoint(tmp_path / "run.pt")
    assert ckpt["global_step"] == 7 and ckpt["epoch"] == 1 and ckpt["step_in_epoch"] == 2
    assert not ckpt["finished"]

    t2 = make(tmp_path, "run.pt")
    t2.resume_from(tmp_path / "run.pt")
    t2.fit()
    for a, b in zip(ref.model.state_dict().values(), t2.model.state_dict().values()):
        assert torch.equal(a, b)
    assert load_checkpoint(tmp_path / "run.pt")["finished"]


def test_schedule_log_and_learning(tmp_path):
    t = make(tmp_path, epochs=4, milestones=(1, 3))
    t.fit()
    lines = [json.loads(x) for x in (tmp_path / "ckpt.log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2, 3]
    np.testing.assert_allclose([r["lr"] for r in lines], [1e-2, 1e-3, 1e-3, 1e-4], rtol=1e-9)
    assert lines[-1]["mse"] < lines[0]["mse"]
    assert t.opt.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_checkpoint_is_weights_only_loadable(tmp_path):
    t = make(tmp_path, epochs=1)
    t.fit()
    ck = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    assert ck["meta"] == {"kind": "toy"} and ck["config"]["batch_size"] == 5
    bad = tmp_path / "bad.pt"
    bad.write_text("garbage")
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(bad)


def test_epoch_order_partitions_across_ranks():
    full = epoch_order(10, 0, 3)
    assert sorted(full) == list(range(10))
    r0, r1 = epoch_order(10, 0, 3, 0, 2), epoch_order(10, 0, 3, 1, 2)
    assert sorted(np.concatenate([r0, r1])) == list(range(10))
    assert not np.array_equal(full, epoch_order(10, 0, 4))


def _ddp_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    import torch.distributed as dist

    torch.manual_seed(123)
    model = torch.nn.Linear(4, 1)
    cfg = TrainConfig(epochs=2, batch_size=3, lr=1e-2, seed=1)
    t = Trainer(model, _mse, ToyData(), cfg, out, torch.device("cpu"))
    t.fit()
    dist.barrier()
    dist.destroy_process_group()


def _mse(model, batch):
    loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
    return loss, {}


def test_ddp_two_processes_match_single_process(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_worker, args=(port, tmp_path / "ddp.pt"), nprocs=2, join=True)
    ddp = load_checkpoint(tmp_path / "ddp.pt")["model"]
    torch.manual_seed(123)
    single = Trainer(torch.nn.Linear(4, 1), _mse, ToyData(), TrainConfig(epochs=2, batch_size=6, lr=1e-2, seed=1),
                     tmp_path / "one.pt", torch.device("cpu"))
    single.fit()
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6)
