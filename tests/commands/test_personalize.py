"""handtools personalize: a tiny run end to end (npz on stdout, loadable by --mano), bad input
as one-line errors, and synth's one-subject rig."""

import json

import h5py
import numpy as np
import pytest

from handtools.core.data.subject import make_test_subject
from handtools.core.hand.mano_io import load_mano
from handtools.core.hand.open_hand import bundled_model_path


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    from typer.testing import CliRunner

    from handtools.cli import app

    d = tmp_path_factory.mktemp("cap")
    np.savez(d / "subject.npz", **make_test_subject(load_mano(bundled_model_path()), seed=0))
    res = CliRunner().invoke(app, ["-q", "synth", "--mano", str(d / "subject.npz"), "--views", "3", "--rig", "dome",
                                   "--image-size", "64x64", "-n", "3", "--out", str(d / "cap")])
    assert res.exit_code == 0, res.output
    return d


def _one_line_error(res, text):
    assert res.exit_code != 0
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and "error" in lines[0] and text in lines[0], res.output


def test_synth_one_subject_sees_the_hand_in_every_view(capture):
    with h5py.File(capture / "cap" / "synth-00000.h5") as f:
        assert f["mano/shape"][:].max() == 0.0  # fixed shape: the subject file's own template
        assert (f["masks"][:] > 0).any(axis=(2, 3)).all()  # every view of every sample
        assert json.loads(f.attrs["history"])[-1]["args"]["rig"] == "dome"


def test_personalize_writes_a_mano_model_every_command_loads(cli, capture, tmp_path):
    out = tmp_path / "me.npz"
    res = cli("-q", "personalize", capture / "cap" / "synth-00000.h5", "--out", out, "--steps", "3",
              "--depth-size", "16")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str(out)
    arrays = load_mano(out)
    meta = json.loads(str(arrays["handtools_personal"]))
    assert meta["method"] == "deephandmesh" and meta["regressor_residual_m"] < 1e-9
    assert out.with_suffix(".pt").is_file()
    res = cli("-q", "synth", "--mano", out, "-n", "1", "--image-size", "32x32", "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    with h5py.File(tmp_path / "s" / "synth-00000.h5") as f:
        assert f["mano/shape"][:].max() == 0.0  # a personal model is one subject
    # exists without --overwrite; --resume continues
    _one_line_error(cli("personalize", capture / "cap" / "synth-00000.h5", "--out", out, "--steps", "3"), "exists")
    res = cli("-q", "personalize", capture / "cap" / "synth-00000.h5", "--out", out, "--steps", "5",
              "--depth-size", "16", "--resume", "--overwrite")
    assert res.exit_code == 0, res.output


def test_bad_inputs_are_one_line_errors(cli, capture, tmp_path):
    from tests.conftest import random_batch, write_shard

    mono = write_shard(tmp_path / "mono.h5", random_batch(2, v=1, hw=(16, 16), names=["K", "T_view", "depth",
                                                                                       "joints3d"]), num_views=1)
    _one_line_error(cli("personalize", mono, "--out", tmp_path / "a.npz"), "needs multi-view shards")
    batch = random_batch(2, v=3, hw=(16, 16), names=["K", "T_view", "depth", "joints3d"])
    batch["depth"][0, 1] = 0.0
    nodepth = write_shard(tmp_path / "nodepth.h5", batch, kind="multiview", num_views=3)
    _one_line_error(cli("personalize", nodepth, "--out", tmp_path / "b.npz"), "hold no depth")
    (tmp_path / "bad.npz").write_bytes(b"PK not a zip")
    _one_line_error(cli("personalize", capture / "cap" / "synth-00000.h5", "--out", tmp_path / "c.npz",
                        "--mano", tmp_path / "bad.npz"), "bad.npz")
    np.savez(tmp_path / "notmano.npz", v_template=np.zeros((10, 3)))
    _one_line_error(cli("personalize", capture / "cap" / "synth-00000.h5", "--out", tmp_path / "d.npz",
                        "--mano", tmp_path / "notmano.npz"), "not a MANO model")


def test_personalize_from_triangulated_keypoints(cli, capture, tmp_path):
    from handtools.commands.personalize import _read_capture

    paths = [capture / "cap" / "synth-00000.h5"]
    tri, ok, _, _, _ = _read_capture(paths, False, "triangulate", None)
    gt, _, _, _, _ = _read_capture(paths, False, "joints3d", None)
    assert ok.all() and np.abs(tri - gt).max() < 1e-4  # exact keypoints: DLT gives the joints back
    out = tmp_path / "tri.npz"
    res = cli("-q", "personalize", *paths, "--out", out, "--steps", "2", "--depth-size", "16", "--joints", "triangulate")
    assert res.exit_code == 0, res.output


@pytest.fixture(scope="module")
def personal(capture, tmp_path_factory):
    """An exported personal model whose correctives are visibly non-zero (a few large steps)."""
    from typer.testing import CliRunner

    from handtools.cli import app

    out = tmp_path_factory.mktemp("me") / "me.npz"
    res = CliRunner().invoke(app, ["-q", "personalize", str(capture / "cap" / "synth-00000.h5"), "--out", str(out),
                                   "--steps", "8", "--lr", "0.03", "--depth-size", "16"])
    assert res.exit_code == 0, res.output
    me, bundled = load_mano(out), load_mano(bundled_model_path())
    assert np.abs(me["v_template"] - bundled["v_template"]).max() > 5e-5  # the subject's own template
    assert np.abs(me["J_regressor"] - bundled["J_regressor"]).max() > 1e-6  # and its re-solved skeleton
    return out


def test_render_and_predict_take_the_personal_model(cli, personal, tmp_path):
    """synth / render / predict --mano me.npz: the meshes are the personal model's, not the bundled one's."""
    import torch
    import trimesh

    from handtools.core.hand.model import HandModel
    from handtools.core.learning.nets.prior import regress_joints21
    from handtools.io.shards import ShardReader

    res = cli("-q", "synth", "--mano", personal, "-n", "3", "--image-size", "64x64", "--seed", "4",
              "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    shard = res.stdout.strip()
    with ShardReader(shard) as r:
        pose, shape, trans, verts3d = (r.read(k) for k in ("mano/pose", "mano/shape", "synth/trans", "verts3d"))
    t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    mine = HandModel.from_path(personal)(t(pose), t(shape), trans=t(trans)).verts.numpy()
    theirs = HandModel.from_path(None)(t(pose), t(shape), trans=t(trans)).verts.numpy()
    np.testing.assert_allclose(verts3d, mine, atol=1e-5)
    assert np.abs(verts3d - theirs).max() > 1e-4

    # render --mano: the exported meshes are the subject's
    res = cli("-q", "render", shard, "--mano", personal, "--source", "gt", "--export", "obj", "--no-png",
              "--out", tmp_path / "vis")
    assert res.exit_code == 0, res.output
    objs = sorted((tmp_path / "vis").glob("*.obj"))
    assert len(objs) == 3
    for i, p in enumerate(objs):
        mesh = trimesh.load(p, process=False)
        np.testing.assert_allclose(mesh.vertices, mine[i], atol=1e-5)
        np.testing.assert_array_equal(mesh.faces, load_mano(personal)["f"])

    # predict --mano: joints come from the subject's re-solved regressor
    res = cli("-q", "crop", "--size", "32", "--center", "gt", "--out", tmp_path / "c", shard)
    assert res.exit_code == 0, res.output
    crops = res.stdout.strip()
    ck = tmp_path / "ck.pt"
    res = cli("-q", "pretrain", "--encoder", "resnet18", "--batch-size", "3", "--epochs", "1", "--max-steps", "1",
              "--milestones", "", "--mano", personal, "--out", ck, crops)
    assert res.exit_code == 0, res.output
    preds = {}
    for name, extra in (("mine", ["--mano", personal]), ("bundled", [])):
        res = cli("-q", "predict", "-c", ck, *extra, "--out", tmp_path / name, crops)
        assert res.exit_code == 0, res.output
        with ShardReader(res.stdout.strip()) as r:
            preds[name] = (r.read("pred/verts3d"), r.read("pred/joints3d"))
    v, j = preds["mine"]
    J_me = torch.as_tensor(load_mano(personal)["J_regressor"], dtype=torch.float32)
    np.testing.assert_allclose(j, regress_joints21(torch.as_tensor(v), J_me).numpy(), atol=1e-5)
    assert np.abs(j - preds["bundled"][1]).max() > 1e-5


def test_encoder_mode_trains_and_resumes_exactly(cli, capture, tmp_path):
    """--encoder (§4: ResNet -> pose, trained with the decoder): tiny settings; a run resumed from
    its checkpoint ends where the uninterrupted run ends; a checkpoint of the other mode is refused."""
    import torch

    shard = capture / "cap" / "synth-00000.h5"
    tiny = ["--encoder", "--preset", "paper", "--encoder-arch", "resnet18", "--image-size", "32", "--depth-size", "16"]
    straight = tmp_path / "straight.npz"
    res = cli("-q", "personalize", shard, "--out", straight, *tiny, "--steps", "4")
    assert res.exit_code == 0, res.output
    state = torch.load(straight.with_suffix(".pt"), weights_only=True)
    assert state["mode"] == "encoder" and state["step"] == 4 and "encoder" in state
    meta = json.loads(str(load_mano(straight)["handtools_personal"]))
    assert meta["mode"] == "encoder" and meta["pose_corrective"] == "mlp"  # exported on the encoder's poses
    # a run stopped after 2 steps (the paper preset's milestones are absolute: 30, 32), then resumed
    mid = tmp_path / "mid.npz"
    res = cli("-q", "personalize", shard, "--out", mid, *tiny, "--steps", "2")
    assert res.exit_code == 0, res.output
    assert torch.load(mid.with_suffix(".pt"), weights_only=True)["step"] == 2
    res = cli("-q", "personalize", shard, "--out", mid, *tiny, "--steps", "4", "--resume", "--overwrite")
    assert res.exit_code == 0, res.output
    a, b = load_mano(straight), load_mano(mid)
    np.testing.assert_allclose(a["v_template"], b["v_template"], atol=1e-7)
    np.testing.assert_allclose(a["J_regressor"] @ a["v_template"], b["J_regressor"] @ b["v_template"], atol=1e-7)
    _one_line_error(cli("personalize", shard, "--out", mid, "--steps", "5", "--resume", "--overwrite",
                        "--depth-size", "16"), "was trained with --encoder")
