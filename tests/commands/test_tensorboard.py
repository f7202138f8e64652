"""--tensorboard on the learning commands: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from handtools.core.learning.checkpoints import load_checkpoint

from tests.conftest import run_cli, tiny_training_crops


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Labelled 64 px crops (8) and masked stereo crops (4 pairs)."""
    root = tmp_path_factory.mktemp("tb")
    crops, _, stereo = tiny_training_crops(root, 8)
    return root, crops, stereo


def _events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


PRETRAIN = ["--encoder", "resnet18", "--batch-size", "4", "--lr", "1e-3", "--milestones", "1", "--gamma", "0.5"]


def test_pretrain_and_selfsup_stereo_write_tensorboard_events(cli, data, tmp_path):
    root, crops, stereo = data
    prior, board = tmp_path / "prior.pt", tmp_path / "tb-prior"
    res = cli("pretrain", *PRETRAIN, "--epochs", "2", "--tensorboard", board, "--out", prior, *crops)
    assert res.exit_code == 0, res.stderr
    acc = _events(board)
    tags = acc.Tags()
    # 8 crops, batch 4: 2 steps per epoch, 4 in all
    assert {"loss/total", "lr", "throughput/images_per_s", "epoch/loss"} <= set(tags["scalars"])
    terms = [t for t in tags["scalars"] if t.startswith("loss/") and t != "loss/total"]
    assert terms, tags["scalars"]  # each loss term has its own curve
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Scalars("epoch/loss")] == [2, 4]
    # lr decays x0.5 after epoch 1 (--milestones 1 --gamma 0.5)
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4])
    assert all(e.value > 0 for e in acc.Scalars("throughput/images_per_s"))
    # the JSON-lines log stays, and agrees with the per-epoch curve
    log = [json.loads(x) for x in prior.with_suffix(".log.jsonl").read_text().splitlines()]
    assert [e.value for e in acc.Scalars("epoch/loss")] == pytest.approx([r["loss"] for r in log], rel=1e-6)
    images = acc.Images("predictions")
    assert [e.step for e in images] == [2, 4]
    assert (images[0].width, images[0].height) == (5 * 64, 4 * 64)  # 4 crops: input | mesh | skeleton | side | top

    adapted, board = tmp_path / "a.pt", tmp_path / "tb-stereo"
    res = cli("selfsup-stereo", "--init", prior, "--epochs", "1", "--batch-size", "2", "--lr", "1e-4", "--milestones",
              "", "--tensorboard", board, "--out", adapted, *stereo)
    assert res.exit_code == 0, res.stderr
    acc = _events(board)
    scalars = set(acc.Tags()["scalars"])
    assert {f"loss/loss_{n}" for n in ("photo", "edge", "laplacian", "mask", "chamfer", "normal")} <= scalars
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2]
    assert len(acc.Images("predictions")) == 1
    assert load_checkpoint(adapted)["meta"]["kind"] == "stereo"


def test_tensorboard_changes_nothing_in_the_run(cli, data, tmp_path):
    """Drawing the overlays runs the model on a copy, with the RNG saved and restored."""
    _, crops, _ = data
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for out, extra in ((a, ()), (b, ("--tensorboard", tmp_path / "tb"))):
        res = cli("pretrain", *PRETRAIN, "--epochs", "2", "--max-steps", "3", *extra, "--out", out, *crops)
        assert res.exit_code == 0, res.stderr
    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    assert all(np.array_equal(wa[k].numpy(), wb[k].numpy()) for k in wa)

    # drawing leaves the global RNG as it was (the predictor builds a network: random init)
    from types import SimpleNamespace

    import torch

    from handtools.commands._training import _Overlays
    from handtools.core.hand.model import HandModel
    from handtools.core.learning.nets.prior import build_prior

    ck, hand = load_checkpoint(b), HandModel.from_path(None)
    net = build_prior(ck["meta"]["net"], J_regressor=hand.joint_regressor)
    net.load_state_dict(ck["model"])
    trainer = SimpleNamespace(meta=ck["meta"], model=net, device=torch.device("cpu"))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    image = _Overlays(trainer, hand, n=2).render()
    assert image.shape == (2 * 64, 5 * 64, 3) and image.dtype == np.uint8
    assert torch.equal(torch.get_rng_state(), before)


def test_tensorboard_refuses_a_file(cli, data, tmp_path):
    _, crops, _ = data
    (tmp_path / "f").write_text("x")
    res = cli("pretrain", *PRETRAIN, "--max-steps", "1", "--tensorboard", tmp_path / "f", "--out", tmp_path / "p.pt",
              *crops)
    assert res.exit_code != 0 and "--tensorboard takes a folder" in res.stderr
    assert not (tmp_path / "p.pt").exists()
    # a new run into a folder with an earlier run's events: refused, or replaced with --overwrite
    board = tmp_path / "tb"
    args = ["pretrain", *PRETRAIN, "--max-steps", "1", "--tensorboard", board, *crops]
    assert cli(*args, "--out", tmp_path / "a.pt").exit_code == 0
    res = cli(*args, "--out", tmp_path / "b.pt")
    assert res.exit_code != 0 and "events of an earlier run" in res.stderr
    assert cli(*args, "--out", tmp_path / "b.pt", "--overwrite").exit_code == 0
    assert len(list(board.glob("events.out.tfevents.*"))) == 1


def test_personalize_writes_tensorboard_scalars(cli, tmp_path):
    from handtools.core.data.subject import make_test_subject
    from handtools.core.hand.mano_io import load_mano
    from handtools.core.hand.open_hand import bundled_model_path

    np.savez(tmp_path / "subject.npz", **make_test_subject(load_mano(bundled_model_path()), seed=0))
    res = cli("-q", "synth", "--mano", tmp_path / "subject.npz", "--views", "3", "--rig", "dome", "--image-size",
              "64x64", "-n", "3", "--out", tmp_path / "cap")
    assert res.exit_code == 0, res.output
    board = tmp_path / "tb"
    res = cli("-q", "personalize", res.stdout.strip(), "--out", tmp_path / "me.npz", "--steps", "3", "--depth-size",
              "16", "--tensorboard", board)
    assert res.exit_code == 0, res.output
    acc = _events(board)
    scalars = set(acc.Tags()["scalars"])
    assert {"loss/total", "lr", "throughput/frames_per_s"} <= scalars and len(scalars) > 4
    assert [e.step for e in acc.Scalars("loss/total")] == [1, 2, 3]
    # the checkpoint beside the model records the run's configuration too
    import tomllib

    res = cli("info", "--config", tmp_path / "me.pt")
    assert res.exit_code == 0, res.stderr
    cfg = tomllib.loads(res.stdout)["personalize"]
    assert cfg["steps"] == 3 and cfg["depth_size"] == 16 and cfg["tensorboard"] == str(board)


def test_tensorboard_images_draws_the_given_held_out_crops(cli, data, tmp_path):
    root, crops, _ = data
    held_out = run_cli("crop", "--size", "64", "--center", "gt", "--out", tmp_path / "ho",
                       *run_cli("synth", "-n", "3", "--image-size", "160x120", "--seed", "9", "--out", tmp_path / "f"))
    prior, board = tmp_path / "p.pt", tmp_path / "tb"
    res = cli("pretrain", *PRETRAIN, "--epochs", "1", "--tensorboard", board, "--tensorboard-images", held_out[0],
              "--out", prior, *crops)
    assert res.exit_code == 0, res.stderr
    images = _events(board).Images("predictions")
    assert len(images) == 1 and (images[0].width, images[0].height) == (5 * 64, 3 * 64)  # the 3 held-out crops

    # the overlays read the given shard, not the training one
    from types import SimpleNamespace

    from handtools.commands._training import _Overlays
    from handtools.io.shards import ShardReader

    trainer = SimpleNamespace(meta=load_checkpoint(prior)["meta"])
    drawn = _Overlays(trainer, None, held_out[0]).batch["images"]
    np.testing.assert_array_equal(drawn, ShardReader(held_out[0]).read("images"))
    assert not np.array_equal(_Overlays(trainer, None).batch["images"][:3], drawn)

    # without --tensorboard it has nowhere to go: a one-line error
    res = cli("pretrain", *PRETRAIN, "--epochs", "1", "--tensorboard-images", held_out[0], "--out", tmp_path / "q.pt",
              *crops)
    assert res.exit_code == 1 and "--tensorboard-images needs --tensorboard" in res.stderr
    assert "Traceback" not in res.stderr
