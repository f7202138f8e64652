"""selfsup-mono through the CLI: real pipes from synth | detect | crop to predict | evaluate, ablation
switches, and bad input (no keypoints, 2-view shards, a checkpoint of another kind)."""

from __future__ import annotations

import json

import pytest
import torch

from handtools.core.learning.checkpoints import load_checkpoint
from tests.conftest import flat, handtools_cmd, run_shell

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("mono")
    h = handtools_cmd()
    p = run_shell(f"{h} synth -n 6 --domain indoor --image-size 240x180 --seed 3 --out {root}/f"
                  f" | {h} detect --out {root}/d | {h} crop --size 64 --center bbox --out {root}/c", check=True)
    return root, p.stdout.split()


def test_real_pipe_trains_predicts_and_evaluates(crops, tmp_path):
    root, paths = crops
    h = handtools_cmd()
    p = run_shell(f"ls {root}/c/*.h5 | {h} selfsup-mono --preset cpu --batch-size 3 --max-steps 2 --out {tmp_path}/m.pt",
                  check=True)
    assert p.stdout.strip() == f"{tmp_path}/m.pt"
    ck = load_checkpoint(tmp_path / "m.pt")
    assert ck["meta"]["kind"] == "mono" and ck["meta"]["keypoints"] == ["detect"]
    # --max-steps 2 stops inside stage 1: the 3D branch's terms and the 2D branch's E_2d, no E_con yet
    assert ck["meta"]["losses"] == ["loc", "ori", "pixel", "ssim", "shape", "texture", "scale", "angle", "kp2d"]
    assert ck["meta"]["stage"] == 1 and ck["meta"]["net"]["stacks"] == 2
    p = run_shell(f"{h} predict -c {tmp_path}/m.pt --out {tmp_path}/p {' '.join(paths)}"
                  f" | {h} evaluate", check=True)
    metrics = json.loads(p.stdout)
    assert metrics["num_samples"] > 0 and metrics["pa_mpjpe_mm"] > 0
    from handtools.io.shards import ShardReader

    with ShardReader(next((tmp_path / "p").glob("*.h5"))) as r:
        for name, shape in (("pred/verts3d", (778, 3)), ("pred/joints3d", (21, 3)), ("pred/uv", (778, 2)),
                            ("pred/pose", (48,)), ("pred/shape", (10,)), ("pred/texture", (778, 3)), ("pred/light", (11,))):
            assert r.read(name).shape[1:] == shape


def test_ablation_switches_and_weights(cli, crops, tmp_path):
    _, paths = crops
    out = tmp_path / "a.pt"
    res = cli("selfsup-mono", "--preset", "cpu", "--stacks", "0", "--no", "pixel", "--no", "ssim", "--no", "ori",
              "--weight", "ori=50", "--epochs", "1", "--finetune-epochs", "0", "--batch-size", "3", "--out", out, *paths)
    assert res.exit_code == 0, res.stderr
    meta = load_checkpoint(out)["meta"]
    assert meta["losses"] == ["loc", "shape", "texture", "scale", "angle"] and meta["weights"]["ori"] == 50.0
    log = json.loads(out.with_suffix(".log.jsonl").read_text().splitlines()[-1])
    assert "loss_loc" in log and "loss_pixel" not in log and "loss_kp2d" not in log
    assert "stacks" not in meta["net"] and meta["stage"] == 1


def test_two_stages_2d_branch_and_resume(cli, crops, tmp_path):
    """Stage 1 (E_3d + E_2d) then stage 2 (E with E_con, fresh Adam at the fine-tuning rate);
    a run stopped inside stage 1 resumes through both; the 2D switches and weights work."""
    _, paths = crops
    out = tmp_path / "s.pt"
    args = ["selfsup-mono", "--preset", "cpu", "--epochs", "1", "--finetune-epochs", "1", "--finetune-lr", "1e-4",
            "--batch-size", "2", "--weight", "con=0.001", "--weight", "2d=0.002", "--out", out, *paths]
    res = cli(*args, "--max-steps", "1")
    assert res.exit_code == 0, res.stderr
    ck = load_checkpoint(out)
    assert ck["meta"]["stage"] == 1 and ck["global_step"] == 1 and "stopped at epoch 0" in res.stderr
    res = cli(*args, "--resume")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out)
    ck = load_checkpoint(out)
    meta = ck["meta"]
    assert meta["stage"] == 2 and meta["losses"][-2:] == ["kp2d", "con"]
    assert meta["weights"]["con"] == 0.001 and meta["weights"]["2d"] == 0.002
    assert ck["config"]["lr"] == 1e-4 and ck["finished"]
    log = [json.loads(x) for x in out.with_suffix(".log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and log[0]["stage"] == 1 and "stage" not in log[1]
    assert "loss_kp2d" in log[0] and "loss_con" not in log[0] and "kp2d_err_px" in log[0]
    assert "loss_con" in log[1] and log[1]["lr"] == pytest.approx(1e-4)
    res = cli("selfsup-mono", "--preset", "cpu", "--no", "con", "--epochs", "1", "--finetune-epochs", "1",
              "--batch-size", "2", "--max-steps", "1", "--out", tmp_path / "n.pt", *paths)
    assert res.exit_code == 0, res.stderr
    res = cli("selfsup-mono", "--preset", "cpu", "--no", "kp2d", "--no", "con", "--max-steps", "1",
              "--out", tmp_path / "x.pt", *paths)
    assert res.exit_code == 2 and "--stacks 0" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("extra, code, text", [
    (["--no", "bogus"], 2, "bogus"),
    (["--weight", "ori=x"], 2, "NAME=VALUE"),
    (["--weight", "nope=1"], 2, "nope"),
    (["--encoder", "vgg"], 2, "unknown encoder"),
])
def test_bad_options(cli, crops, tmp_path, extra, code, text):
    _, paths = crops
    res = cli("selfsup-mono", "--preset", "cpu", "--max-steps", "1", "--out", tmp_path / "x.pt", *extra, *paths)
    assert res.exit_code == code and text in res.stderr and "Traceback" not in res.stderr


def test_bad_input_is_one_line(cli, crops, tmp_path):
    root, paths = crops
    h = handtools_cmd()
    frames = sorted((root / "f").glob("*.h5"))  # synth frames: keypoints2d are projected ground truth
    p = run_shell(f"{h} selfsup-mono --preset cpu --out {tmp_path}/x.pt {frames[0]}")
    assert p.returncode == 1 and "not detections" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_shell(f"{h} synth --views 2 -n 2 --image-size 160x120 --out {tmp_path}/s2 | {h} selfsup-mono --out {tmp_path}/x.pt")
    assert p.returncode == 1 and "2 views" in p.stderr and "Traceback" not in p.stderr
    p = run_shell(f"{h} crop --size 64 --center gt --out {tmp_path}/nk {frames[0]}"
                  f" | {h} selfsup-mono --preset cpu --out {tmp_path}/x.pt")
    assert p.returncode == 1 and "not detections" in p.stderr
    res = cli("selfsup-mono", "--preset", "cpu", "--max-steps", "1", "--batch-size", "3", "--out", tmp_path / "m.pt", *paths)
    assert res.exit_code == 0, res.stderr
    ck = load_checkpoint(tmp_path / "m.pt")
    torch.save(dict(ck, meta=dict(ck["meta"], kind="stereo")), tmp_path / "s.pt")
    res = cli("selfsup-mono", "--preset", "cpu", "--init", tmp_path / "s.pt", "--out", tmp_path / "y.pt", *paths)
    assert res.exit_code == 1 and "kind 'stereo'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "y.pt").exists()


def test_init_from_a_mono_checkpoint_fine_tunes_the_whole_network(cli, crops, tmp_path):
    """--init mono.pt starts from every weight (a step at lr 1e-12 leaves them there; from
    scratch they differ); --stacks 0 takes the 3D branch alone; another crop size is refused."""
    _, paths = crops
    base = ["selfsup-mono", "--preset", "cpu", "--batch-size", "3", "--max-steps", "1"]
    res = cli(*base, "--seed", "5", "--out", tmp_path / "m.pt", *paths)
    assert res.exit_code == 0, res.stderr
    src = load_checkpoint(tmp_path / "m.pt")["model"]
    res = cli(*base, "--lr", "1e-12", "--init", tmp_path / "m.pt", "--out", tmp_path / "f.pt", *paths)
    assert res.exit_code == 0, res.stderr
    assert "every weight initialised from the selfsup-mono checkpoint" in flat(res.stderr)
    got = load_checkpoint(tmp_path / "f.pt")["model"]
    for key in ("encoder.trunk.conv1.weight", "f_pose.2.weight", "f_light.2.weight", "branch2d.heads.1.weight"):
        assert torch.allclose(got[key], src[key], atol=1e-6), key
    res = cli(*base, "--lr", "1e-12", "--out", tmp_path / "g.pt", *paths)  # from scratch (seed 0): elsewhere
    assert not torch.allclose(load_checkpoint(tmp_path / "g.pt")["model"]["f_pose.2.weight"], src["f_pose.2.weight"])
    res = cli(*base, "--stacks", "0", "--lr", "1e-12", "--init", tmp_path / "m.pt", "--out", tmp_path / "h.pt", *paths)
    assert res.exit_code == 0, res.stderr
    assert "no 2D branch" in flat(res.stderr)
    h = load_checkpoint(tmp_path / "h.pt")["model"]
    assert not any(k.startswith("branch2d.") for k in h)
    assert torch.allclose(h["f_rot.4.weight"], src["f_rot.4.weight"], atol=1e-6)
    # the checkpoint's architecture by default: a resnet10 model fine-tunes without --encoder
    res = cli(*base, "--encoder", "resnet10", "--stacks", "0", "--out", tmp_path / "r10.pt", *paths)
    assert res.exit_code == 0, res.stderr
    res = cli(*base, "--init", tmp_path / "r10.pt", "--out", tmp_path / "f10.pt", *paths)
    assert res.exit_code == 0, res.stderr
    net = load_checkpoint(tmp_path / "f10.pt")["meta"]["net"]
    assert net["encoder"] == "resnet10" and "stacks" not in net
    h = handtools_cmd()
    root = tmp_path / "big"
    p = run_shell(f"{h} crop --size 72 --center bbox --out {root} {' '.join(str(x).replace('/c/', '/d/') for x in paths)}",
                  check=True)
    res = cli(*base, "--init", tmp_path / "m.pt", "--out", tmp_path / "z.pt", *p.stdout.split())
    assert res.exit_code == 1 and "image_size is 64" in res.stderr and "crop --size 64" in res.stderr
