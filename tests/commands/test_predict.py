"""predict on crops of another size than the model's: resampled for the model, K scaled,
pred/uv in the crops' own pixels; non-square mismatches are refused in one line."""

from __future__ import annotations

import numpy as np

from handtools.io.shards import ShardReader
from tests.conftest import flat, handtools_cmd, run_shell


def test_crops_of_another_size_are_resized_for_the_model(cli, tmp_path):
    h = handtools_cmd()
    run_shell(f"{h} synth -n 3 --domain studio --image-size 320x240 --seed 4 --out {tmp_path}/f", check=True)
    frames = sorted(str(p) for p in (tmp_path / "f").glob("*.h5"))
    for size in (64, 128):
        run_shell(f"{h} crop --size {size} --center gt --out {tmp_path}/c{size} {' '.join(frames)}", check=True)
    preds = {}
    for size in (64, 128):
        crops = sorted((tmp_path / f"c{size}").glob("*.h5"))
        res = cli("predict", "-c", "default", "--mode", "monocular", "--root-depth", "0.6",
                  "--out", tmp_path / f"p{size}", *crops)
        assert res.exit_code == 0, res.stderr
        assert ("resized for the model" in flat(res.stderr)) == (size == 128)
        with ShardReader(next((tmp_path / f"p{size}").glob("*.h5"))) as r:
            preds[size] = {k: r.read(k) for k in ("pred/uv", "pred/verts3d")}
    # the 128 px crops shrunk to 64 px are the 64 px crops up to resampling: the same meshes,
    # and the uv reported in 128 px coordinates (twice the 64 px ones)
    duv = np.linalg.norm(preds[128]["pred/uv"] - 2 * preds[64]["pred/uv"], axis=-1)
    assert duv.mean() < 1.0, duv.mean()
    dv = np.linalg.norm(preds[128]["pred/verts3d"] - preds[64]["pred/verts3d"], axis=-1)
    assert dv.mean() < 0.003, dv.mean()
    # ... and far from what a wrong scale would give (uv left in 64 px coordinates)
    assert np.linalg.norm(preds[128]["pred/uv"] - preds[64]["pred/uv"], axis=-1).mean() > 10


def test_non_square_mismatch_is_refused(cli, tmp_path):
    h = handtools_cmd()
    p = run_shell(f"{h} synth -n 1 --image-size 96x64 --seed 1 --out {tmp_path}/f", check=True)
    res = cli("predict", "-c", "default", "--mode", "monocular", "--root-depth", "0.6", "--out", tmp_path / "p",
              *p.stdout.split())
    assert res.exit_code == 1 and "crops are 96x64, the model takes 64x64" in res.stderr
    assert "Traceback" not in res.stderr
