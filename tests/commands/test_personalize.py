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
