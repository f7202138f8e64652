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


def fit_interrupted(t: Trainer, at: int) -> Trainer:
    """``t.fit()`` stopped by a real SIGINT after global step ``at`` (it checkpoints there)."""
    def interrupt(event, info):
        if event == "step" and t.global_step == at:
            os.kill(os.getpid(), signal.SIGINT)

    t.report = interrupt
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    return t


def fit_resumed(t: Trainer) -> Trainer:
    """``t`` resumed from its own checkpoint (it must continue mid-run, not start over) and
    trained to the end."""
    t.resume_from(t.out)
    assert t.global_step > 0, "the checkpoint's position was not restored"
    t.fit()
    return t


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    ref = make(tmp_path, "ref.pt")
    ref.fit()

    fit_interrupted(make(tmp_path, "run.pt"), 7)
    ckpt = load_checkpoint(tmp_path / "run.pt")
    assert ckpt["global_step"] == 7 and ckpt["epoch"] == 1 and ckpt["step_in_epoch"] == 2
    assert not ckpt["finished"]

    t2 = fit_resumed(make(tmp_path, "run.pt"))
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


# -- hardening (issue 12) ------------------------------------------------------------------


def test_epoch_batches_merge_a_last_batch_of_one():
    from handtools.core.learning.trainer import epoch_batches

    b = epoch_batches(4, 3, 0, 0)
    assert [len(x) for x in b] == [4]  # 3 + 1 -> one batch of 4
    b = epoch_batches(11, 5, 0, 0)
    assert [len(x) for x in b] == [5, 6] and sorted(np.concatenate(b)) == list(range(11))
    assert [len(x) for x in epoch_batches(10, 5, 0, 0)] == [5, 5]
    assert [len(x) for x in epoch_batches(1, 5, 0, 0)] == [1]  # nothing to merge with
    # under DDP every rank gets the same plan (7 samples, 2 ranks -> 4 each -> 3 + 1 merged)
    assert [len(x) for x in epoch_batches(7, 3, 0, 0, 0, 2)] == [len(x) for x in epoch_batches(7, 3, 0, 0, 1, 2)] == [4]


def _bn_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def make_bn(tmp, out="bn.pt", n=11, **cfg):
    torch.manual_seed(123)
    config = TrainConfig(**{"epochs": 2, "batch_size": 5, "lr": 1e-2, "seed": 1, **cfg})
    return Trainer(_bn_model(), toy_loss, ToyData(n), config, tmp / out, torch.device("cpu"), meta={"kind": "toy"})


def test_a_last_batch_of_one_does_not_stop_batchnorm_training(tmp_path):
    """Before: 'Expected more than 1 value per channel when training' at the last step of epoch 1."""
    ref = make_bn(tmp_path, "ref.pt")
    ref.fit()
    assert load_checkpoint(tmp_path / "ref.pt")["global_step"] == 4  # 2 epochs of [5, 6]

    fit_interrupted(make_bn(tmp_path, "run.pt"), 1)  # the next step is the merged batch of 6
    t2 = fit_resumed(make_bn(tmp_path, "run.pt"))
    for a, b in zip(ref.model.state_dict().values(), t2.model.state_dict().values()):
        assert torch.equal(a, b)


def test_batchnorm_with_single_sample_batches_is_a_clear_error(tmp_path):
    t = make_bn(tmp_path, batch_size=1)
    with pytest.raises(ValueError, match="batches of 1 sample cannot train this network"):
        t.fit()
    assert not (tmp_path / "bn.pt").exists()


def test_resumed_epoch_logs_the_whole_epoch(tmp_path):
    """Before: the epoch interrupted at step 7 logged the mean of its last 3 steps only."""
    ref = make(tmp_path, "ref.pt")
    ref.fit()

    fit_interrupted(make(tmp_path, "run.pt"), 7)
    fit_resumed(make(tmp_path, "run.pt"))

    def lines(name):
        return [{k: v for k, v in json.loads(x).items() if k not in ("seconds", "samples_per_s")}
                for x in (tmp_path / name).read_text().splitlines()]

    assert lines("run.log.jsonl") == lines("ref.log.jsonl")
    assert [r["steps"] for r in lines("run.log.jsonl")] == [5, 5, 5]


def test_an_interrupt_before_the_first_step_writes_nothing(tmp_path):
    (tmp_path / "ckpt.pt").write_bytes(b"an older run")
    (tmp_path / "ckpt.log.jsonl").write_text("{}\n")
    t = make(tmp_path)

    def stop(event, info):
        raise KeyboardInterrupt

    t.report = stop
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert (tmp_path / "ckpt.pt").read_bytes() == b"an older run"
    assert (tmp_path / "ckpt.log.jsonl").read_text() == "{}\n"


def test_resume_refuses_a_different_run_unless_allowed(tmp_path):
    from handtools.core.learning.trainer import RunMismatch

    t = make(tmp_path, max_steps=7)  # stops inside epoch 1
    t.fit()
    saved = (tmp_path / "ckpt.pt").read_bytes()
    with pytest.raises(RunMismatch, match=r"lr 0\.01 -> 0\.05") as e:
        make(tmp_path, lr=0.05).resume_from(tmp_path / "ckpt.pt")
    assert e.value.why == "changed" and [d[0] for d in e.value.diffs] == ["lr"]
    with pytest.raises(RunMismatch, match="batch_size") as e:
        make(tmp_path, batch_size=4).resume_from(tmp_path / "ckpt.pt", allow_change=True)
    assert e.value.why == "mid_epoch"  # would skip the wrong samples
    t = make(tmp_path)
    t.meta["kind"] = "other"
    with pytest.raises(RunMismatch, match="kind") as e:
        t.resume_from(tmp_path / "ckpt.pt", allow_change=True)
    assert e.value.why == "network"
    assert (tmp_path / "ckpt.pt").read_bytes() == saved
    # free settings: more epochs, another --max-steps
    make(tmp_path, epochs=5, max_steps=9).resume_from(tmp_path / "ckpt.pt")
    # an allowed lr change takes effect with the schedule of the new settings (epoch 1, milestone 2: no decay yet)
    t = make(tmp_path, lr=0.05)
    t.resume_from(tmp_path / "ckpt.pt", allow_change=True)
    assert t.opt.param_groups[0]["lr"] == pytest.approx(0.05) and [d[0] for d in t.changes] == ["lr"]
    t.fit()
    lines = [json.loads(x) for x in (tmp_path / "ckpt.log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in lines] == pytest.approx([1e-2, 0.05, 0.005])
    assert load_checkpoint(tmp_path / "ckpt.pt")["config"]["lr"] == 0.05


def test_resume_from_a_checkpoint_without_training_state_is_one_line(tmp_path):
    t = make(tmp_path, epochs=1)
    t.fit()
    ck = load_checkpoint(tmp_path / "ckpt.pt")
    del ck["optimizer"]
    torch.save(ck, tmp_path / "model-only.pt")
    with pytest.raises(ValueError, match=r"model-only\.pt: cannot resume: not a training checkpoint \(missing optimizer\)"):
        make(tmp_path).resume_from(tmp_path / "model-only.pt")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """Before: RuntimeError '[enforce fail at inline_container.cc:672]' and a temp file left."""
    import errno

    from handtools import durable

    t = make(tmp_path, epochs=1)
    t.fit()
    before = (tmp_path / "ckpt.pt").read_bytes()
    real = durable.create_exclusive

    def create(path):
        os.close(real(path))
        return os.open("/dev/full", os.O_RDWR)

    monkeypatch.setattr(durable, "create_exclusive", create)
    t = make(tmp_path, epochs=2)
    with pytest.raises(OSError, match="disk full: cannot write checkpoint .*ckpt.pt") as e:
        t.fit()
    assert e.value.errno == errno.ENOSPC
    assert (tmp_path / "ckpt.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.log.jsonl", "ckpt.pt"]


def _ddp_bn_worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
    import torch.distributed as dist

    torch.manual_seed(123)
    cfg = TrainConfig(epochs=2, batch_size=3, lr=1e-2, seed=1)
    t = Trainer(_bn_model(), _mse, ToyData(7), cfg, out, torch.device("cpu"))  # 4 per rank: 3 + 1 -> 4
    t.fit()
    dist.barrier()
    dist.destroy_process_group()


def test_ddp_merges_the_last_batch_of_one_on_every_rank(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_ddp_bn_worker, args=(port, tmp_path / "ddp.pt"), nprocs=2, join=True)
    ck = load_checkpoint(tmp_path / "ddp.pt")
    assert ck["finished"] and ck["global_step"] == 2


@pytest.mark.gpu
def test_cuda_rng_state_is_saved_and_restored(tmp_path):
    dev = torch.device("cuda")

    def cuda_noise_loss(model, batch):
        pred = model(batch["x"])
        loss = ((pred + 0.01 * torch.randn_like(pred) - batch["y"]) ** 2).mean()
        return loss, {}

    def mk(out):
        torch.manual_seed(123)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
        cfg = TrainConfig(epochs=2, batch_size=5, lr=1e-2, seed=1, amp=False)
        return Trainer(model, cuda_noise_loss, ToyData(), cfg, tmp_path / out, dev)

    ref = mk("ref.pt")
    ref.fit()
    t = mk("run.pt")
    t.cfg.max_steps = 3
    t.fit()
    assert "cuda_rng" in load_checkpoint(tmp_path / "run.pt")
    torch.cuda.manual_seed_all(999)  # another process would start from another CUDA RNG state
    t2 = mk("run.pt")
    t2.resume_from(tmp_path / "run.pt")
    t2.fit()
    for a, b in zip(ref.model.state_dict().values(), t2.model.state_dict().values()):
        assert torch.equal(a, b)
