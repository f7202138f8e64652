"""selfsup-stereo and demo through the CLI: runs, ablation switches, resume, bad input, real pipes."""

from __future__ import annotations

import json

import pytest

from handtools.core.learning.checkpoints import load_checkpoint
from tests.conftest import flat, handtools_cmd, run_cli, run_shell, tiny_training_crops


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny prior and masked stereo crops (64 px)."""
    root = tmp_path_factory.mktemp("ss")
    crops, frames, masked = tiny_training_crops(root, 12)
    run_cli("pretrain", "--encoder", "resnet18", "--epochs", "1", "--batch-size", "4", "--lr", "1e-3", "--milestones", "",
            "--out", root / "prior.pt", *crops)
    # the indoor frames as `detect` would leave them (keypoints/boxes relabelled as a detector's:
    # what selfsup-stereo checks is the shard's history), for the label-free pipe
    from handtools.io.shards import ShardReader, ShardWriter, history_entry

    with ShardReader(frames[0]) as src, ShardWriter(root / "fd", kind="frames", num_views=2, producer="tests",
                                                    history=list(src.history) + [history_entry("handtools detect")],
                                                    name=lambda k: "det.h5") as w:
        w.append(copy_from=src)
    return root, masked


def test_selfsup_stereo_trains_and_predicts_absolute_meshes(cli, setup, tmp_path):
    root, masked = setup
    out = tmp_path / "a.pt"
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--epochs", "1", "--lr", "1e-4", "--milestones", "",
              "--out", out, *masked)
    assert res.exit_code == 0, res.stderr
    ck = load_checkpoint(out)
    assert ck["meta"]["kind"] == "stereo" and ck["meta"]["losses"] == ["photo", "edge", "laplacian", "mask", "chamfer", "normal"]
    assert not ck["meta"]["net"]["with_z"]  # binocular model: u, v only
    log = json.loads(out.with_suffix(".log.jsonl").read_text().splitlines()[-1])
    assert {"loss_photo", "loss_edge", "loss_laplacian", "loss_mask", "loss_chamfer", "loss_normal"} <= set(log)
    res = cli("predict", "-c", out, "--out", tmp_path / "p", *masked)
    assert res.exit_code == 0, res.stderr
    from handtools.io.shards import ShardReader

    r = ShardReader(res.stdout.strip())
    assert r.read("pred/verts3d").shape == (4, 778, 3) and "pred/uv_right" in r


def test_ablation_switches_and_z_head(cli, setup, tmp_path):
    root, masked = setup
    out = tmp_path / "nophoto.pt"
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--no-photo", "--no-chamfer", "--max-steps", "1",
              "--out", out, *masked)
    assert res.exit_code == 0, res.stderr
    assert load_checkpoint(out)["meta"]["losses"] == ["edge", "laplacian", "mask", "normal"]
    out = tmp_path / "mono.pt"
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--z-head", "--max-steps", "1", "--out", out, *masked)
    assert res.exit_code == 0, res.stderr
    assert load_checkpoint(out)["meta"]["net"]["with_z"]
    assert load_checkpoint(out)["meta"]["losses"][-1] == "depth"  # our monocular term, on by default
    res = cli("predict", "-c", out, "--mode", "monocular", "--out", tmp_path / "pm", *masked)
    assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize(
    "extra, code, text",
    [
        (["--weight", "bogus=1"], 2, "bogus"),
        (["--weight", "photo=x"], 2, "NAME=VALUE"),
        (["--resume"], 1, "no checkpoint"),
    ],
)
def test_bad_input(cli, setup, tmp_path, extra, code, text):
    root, masked = setup
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--out", tmp_path / "x.pt", *extra, *masked)
    assert res.exit_code == code and text in res.stderr and "Traceback" not in res.stderr


def test_needs_stereo_masks_and_a_prior(cli, setup, tmp_path):
    root, masked = setup
    mono = list((root / "cs").glob("*.h5"))
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--out", tmp_path / "x.pt", *mono)
    assert res.exit_code == 1 and "baseline: missing dataset" in res.stderr
    res = cli("selfsup-stereo", "--init", masked[0], "--out", tmp_path / "x.pt", *masked)
    assert res.exit_code == 1 and "checkpoint" in res.stderr
    assert not (tmp_path / "x.pt").exists()


def test_real_pipe_crop_mask_selfsup(setup, tmp_path):
    """With `| mask |` the shard's masks are used; the ground truth this pipe used is named."""
    root, _ = setup
    h = handtools_cmd()
    p = run_shell(
        f"ls {root}/fi/*.h5 | {h} crop --size 64 --center gt --out {tmp_path}/c | {h} mask --out {tmp_path}/m"
        f" | {h} selfsup-stereo --init {root}/prior.pt --max-steps 1 --out {tmp_path}/a.pt",
        check=True,
    )
    assert p.stdout.strip() == f"{tmp_path}/a.pt"
    err = flat(p.stderr)
    assert "the shard's masks (handtools mask --method skin" in err
    assert "GROUND TRUTH used" in err and "crop --center gt" in err
    assert "bounded by synth's ground-truth keypoints2d" in err
    assert load_checkpoint(tmp_path / "a.pt")["meta"]["ground_truth_used"]


def test_real_pipe_detect_crop_selfsup_computes_masks_on_the_fly(setup, tmp_path):
    """`detect | crop | selfsup-stereo`: no masks in the shard; computed as mask would, said in the log."""
    root, _ = setup
    h = handtools_cmd()
    p = run_shell(
        f"ls {root}/fd/det.h5 | {h} crop --size 64 --out {tmp_path}/c"
        f" | {h} selfsup-stereo --init {root}/prior.pt --max-steps 1 --out {tmp_path}/a.pt",
        check=True,
    )
    assert p.stdout.strip() == f"{tmp_path}/a.pt"
    err = flat(p.stderr)
    assert "computed on the fly as handtools mask --method skin would" in err
    assert "ground truth used: none" in err and "GROUND TRUTH" not in err
    meta = load_checkpoint(tmp_path / "a.pt")["meta"]
    assert meta["ground_truth_used"] == [] and "on the fly" in meta["masks"][0]


def test_ground_truth_keypoints_are_refused_unless_asked(cli, setup, tmp_path):
    """synth | crop (no detect, no mask): on-the-fly masks would need synth's keypoints."""
    root, _ = setup
    crops = sorted(str(p) for p in (root / "ci").glob("*.h5"))
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--max-steps", "1", "--out", tmp_path / "a.pt", *crops)
    assert res.exit_code == 1 and "--gt-keypoints" in flat(res.stderr) and "detect" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "a.pt").exists()
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--max-steps", "1", "--gt-keypoints",
              "--out", tmp_path / "a.pt", *crops)
    assert res.exit_code == 0, res.stderr
    assert "GROUND TRUTH used" in flat(res.stderr) and "ground-truth keypoints2d" in flat(res.stderr)


def test_prior_without_z_head_is_refused_for_the_edge_loss(cli, setup, tmp_path):
    import torch

    from handtools.core.learning.checkpoints import atomic_save

    root, masked = setup
    ck = load_checkpoint(root / "prior.pt")
    ck["meta"]["net"] = dict(ck["meta"]["net"], with_z=False)
    ck["model"] = {k: v for k, v in ck["model"].items() if ".conv_z_" not in k}
    atomic_save(ck, tmp_path / "noz.pt")
    res = cli("selfsup-stereo", "--init", tmp_path / "noz.pt", "--max-steps", "1", "--out", tmp_path / "a.pt",
              *masked)
    assert res.exit_code == 1 and "no z head" in flat(res.stderr) and "--no-edge" in flat(res.stderr)
    res = cli("selfsup-stereo", "--init", tmp_path / "noz.pt", "--max-steps", "1", "--no-edge",
              "--out", tmp_path / "a.pt", *masked)
    assert res.exit_code == 0, res.stderr
    assert "pseudo labels" not in res.stderr and isinstance(torch.load(tmp_path / "a.pt", weights_only=True), dict)


def test_depth_term_switch(cli, setup, tmp_path):
    root, masked = setup
    res = cli("selfsup-stereo", "--init", root / "prior.pt", "--z-head", "--no-depth", "--max-steps", "1",
              "--out", tmp_path / "m.pt", *masked)
    assert res.exit_code == 0, res.stderr
    meta = load_checkpoint(tmp_path / "m.pt")["meta"]
    assert "depth" not in meta["losses"] and meta["depth_unit"] == 100.0
    log = json.loads((tmp_path / "m.log.jsonl").read_text().splitlines()[-1])
    assert "loss_depth" not in log


def test_demo_quick_preset(cli, tmp_path):
    res = cli("demo", "--preset", "quick", "--out", tmp_path / "demo")
    assert res.exit_code == 0, res.stderr
    made = res.stdout.split()
    assert [p.split("/")[-1] for p in made] == ["prior_default.pt", "adapted.pt", "metrics-before.json",
                                                 "metrics-after.json", "before_after.png"]
    before = json.loads((tmp_path / "demo" / "metrics-before.json").read_text())
    assert before["num_samples"] >= 3 and before["mpjpe_mm"] > 0
    assert "before" in res.stderr and "after" in res.stderr
    assert "shipped in the package" in flat(res.stderr)  # the log names the prior's labels
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run in ("selfsup-stereo",):  # TensorBoard events, read back with its own reader
        acc = EventAccumulator(str(tmp_path / "demo" / "tensorboard" / run))
        acc.Reload()
        assert acc.Scalars("loss/total") and acc.Images("predictions"), run
    res = cli("demo", "--preset", "quick", "--out", tmp_path / "demo")
    assert res.exit_code == 1 and "--overwrite" in res.stderr


def test_demo_quick_preset_trains_its_own_prior(cli, tmp_path):
    res = cli("demo", "--preset", "quick", "--prior", "train", "--out", tmp_path / "demo")
    assert res.exit_code == 0, res.stderr
    assert [p.split("/")[-1] for p in res.stdout.split()][:2] == ["prior.pt", "adapted.pt"]
    assert "pretrain labels" in flat(res.stderr)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run in ("pretrain", "selfsup-stereo"):  # TensorBoard events, read back with its own reader
        acc = EventAccumulator(str(tmp_path / "demo" / "tensorboard" / run))
        acc.Reload()
        assert acc.Scalars("loss/total") and acc.Images("predictions"), run
    res = cli("demo", "--preset", "quick", "--prior", "nope", "--out", tmp_path / "d2")
    assert res.exit_code == 2 and "--prior" in res.stderr
