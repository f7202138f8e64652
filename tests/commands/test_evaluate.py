"""handtools evaluate: every metric against hand-computed values and an independent computation,
selection, CI gates, plots, the FreiHAND submission, pipes and bad input."""

from __future__ import annotations

import json
import sys
import textwrap

import cv2
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from handtools.io.shards import ShardReader, ShardWriter
from tests.conftest import REPO, handtools_cmd, run_shell, write_shard

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def gt_shard(tmp_path_factory):
    """A small labelled stereo synth shard (ground truth of 4 samples)."""
    from typer.testing import CliRunner

    from handtools.cli import app

    out = tmp_path_factory.mktemp("synth")
    res = CliRunner().invoke(app, ["synth", "--out", str(out), "--views", "2", "-n", "4",
                                   "--image-size", "160x120", "--seed", "5"])
    assert res.exit_code == 0, res.stderr
    return res.stdout.strip()


def make_preds(src: str, out_dir, joints_fn, verts_fn=None, name="pred.h5", extra=None, drop=()) -> str:
    """A predictions shard: ground truth carried through, pred/* = fn(ground truth)."""
    r = ShardReader(src)
    j, v = r.read("joints3d").astype(np.float64), r.read("verts3d").astype(np.float64)
    batch = {"pred/joints3d": joints_fn(j)}
    if verts_fn is not None:
        batch["pred/verts3d"] = verts_fn(v)
    batch.update(extra or {})
    with ShardWriter(out_dir, kind="predictions", num_views=r.num_views, producer="tests", history=r.history,
                     name=lambda k: name, overwrite=True) as w:
        w.append(batch, copy_from=r, drop=drop)
    r.close()
    return str(out_dir / name)


def run_eval(cli, *args):
    res = cli("evaluate", *args)
    assert res.exit_code == 0, res.stderr
    return json.loads(res.stdout)


def shift(d):
    return lambda x: x + np.array(d)


# ----------------------------------------------------------------------------- hand-computed values
def test_constant_5mm_offset(cli, gt_shard, tmp_path):
    p = make_preds(gt_shard, tmp_path, shift([0.005, 0, 0]), shift([0.005, 0, 0]))
    m = run_eval(cli, p)
    assert m["num_samples"] == 4 and m["num_shards"] == 1 and m["label"] == tmp_path.name
    for k in ("mpjpe_mm", "mpjpe_median_mm", "mpvpe_mm"):
        assert m[k] == pytest.approx(5.0, abs=1e-4), k
    for k in ("pa_mpjpe_mm", "pa_mpjpe_median_mm", "rr_mpjpe_mm", "rr_mpjpe_median_mm", "pa_mpvpe_mm",
              "rr_mpvpe_mm"):
        assert m[k] == pytest.approx(0.0, abs=1e-3), k
    # PCK over t_k = 50 k / 99 mm: an error of 5 mm first counts at k = 10 (5.05 mm), so the curve is a
    # step 0 -> 1 between t_9 and t_10: trapezoid area (0.5 + 89) steps of 99.
    assert m["pck_auc"] == pytest.approx(89.5 / 99, abs=1e-12)
    assert m["pcv_auc"] == pytest.approx(89.5 / 99, abs=1e-12)
    assert m["stb_pck_auc_20_50"] == 1.0 and m["rr_stb_pck_auc_20_50"] == 1.0
    for k in ("pa_pck_auc", "rr_pck_auc", "pa_pcv_auc", "rr_pcv_auc"):  # 0 at t = 0 at most: >= 98.5/99
        assert 98.5 / 99 - 1e-12 <= m[k] <= 1.0, k
    # F-score: every vertex has a partner 5 mm away (< 15 mm): f15 = 1; after alignment all match.
    assert m["f15"] == 1.0
    for k in ("pa_f5", "pa_f15", "rr_f5", "rr_f15"):
        assert m[k] == 1.0, k
    assert 0.0 < m["f5"] < 1.0  # some nearest neighbours are nearer than 5 mm, not all
    # 2D: u moves by fx * dx / z at each joint (view 0, keypoints2d = projected ground truth)
    r = ShardReader(gt_shard)
    fx, z = r.read("K")[:, 0, 0, 0], r.read("joints3d")[..., 2].astype(np.float64)
    assert m["kp2d_err_px"] == pytest.approx(np.mean(fx[:, None] * 0.005 / z), rel=1e-4)
    assert set(m["curves"]) == {"pck", "pa_pck", "rr_pck", "stb_pck_20_50", "rr_stb_pck_20_50", "pcv", "pa_pcv",
                                "rr_pcv", "pck2d"}
    c = m["curves"]["pck"]
    assert c["unit"] == "mm" and len(c["thresholds"]) == 100 and c["thresholds"][-1] == pytest.approx(50.0)
    assert c["pck"][9] == 0.0 and c["pck"][10] == 1.0


def test_30mm_offset_stb_and_pck(cli, gt_shard, tmp_path):
    p = make_preds(gt_shard, tmp_path, shift([0, 0.018, 0.024]), shift([0, 0.018, 0.024]))  # |d| = 30 mm
    m = run_eval(cli, p, "--metric", "joints")
    assert m["mpjpe_mm"] == pytest.approx(30.0, abs=1e-4)
    # t_k = 50 k / 99: 30 mm first counts at k = 60 -> (0.5 + 39) / 99
    assert m["pck_auc"] == pytest.approx(39.5 / 99, abs=1e-12)
    # STB: linspace(0, 50, 20)[8:] = 21.05, 23.68, 26.32, 28.95, 31.58, ... 50 mm: 0 for four, then 1
    assert m["stb_pck_auc_20_50"] == pytest.approx(7.5 / 11, abs=1e-12)
    assert m["rr_stb_pck_auc_20_50"] == 1.0


def test_scale_about_the_centroid(cli, gt_shard, tmp_path):
    def scale(x):
        c = x.mean(1, keepdims=True)
        return c + 1.1 * (x - c)

    p = make_preds(gt_shard, tmp_path, scale, scale)
    m = run_eval(cli, p, "--metric", "mpjpe", "--metric", "mpvpe")
    r = ShardReader(gt_shard)
    j, v = r.read("joints3d").astype(np.float64), r.read("verts3d").astype(np.float64)
    # error of each point = 0.1 * its distance to the centroid
    assert m["mpjpe_mm"] == pytest.approx(100 * np.linalg.norm(j - j.mean(1, keepdims=True), axis=-1).mean(), rel=1e-5)
    assert m["mpvpe_mm"] == pytest.approx(100 * np.linalg.norm(v - v.mean(1, keepdims=True), axis=-1).mean(), rel=1e-5)
    assert m["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3) and m["pa_mpvpe_mm"] == pytest.approx(0.0, abs=1e-3)
    rr = j - j[:, :1]  # root relative: pred_rr = 1.1 * gt_rr, so the error is 0.1 * |gt_rr|
    assert m["rr_mpjpe_mm"] == pytest.approx(100 * np.linalg.norm(rr, axis=-1).mean(), rel=1e-5)
    assert set(m) - {"label", "num_shards", "num_samples", "curves"} == {
        "mpjpe_mm", "mpjpe_median_mm", "pa_mpjpe_mm", "pa_mpjpe_median_mm", "rr_mpjpe_mm", "rr_mpjpe_median_mm",
        "mpvpe_mm", "pa_mpvpe_mm", "rr_mpvpe_mm"}
    assert m["curves"] == {}


# ----------------------------------------------------------------------------- independent computation
def _similarity_align(p, g):
    """Umeyama (1991) least-squares similarity without reflection handling, via the SVD."""
    mp, mg = p.mean(0), g.mean(0)
    pc, gc = p - mp, g - mg
    u, s, vt = np.linalg.svd(gc.T @ pc)  # cov(gt, pred)
    rot = u @ vt  # pred -> gt
    scale = s.sum() / (pc ** 2).sum()
    return scale * pc @ rot.T + mg


def _pck_auc_ref(err, thresholds, vis=None):
    """Per keypoint: fraction of visible samples with err <= t; trapezoid / range; mean over keypoints."""
    vis = np.ones_like(err, bool) if vis is None else vis
    aucs, curves = [], []
    for k in range(err.shape[1]):
        e = err[vis[:, k], k]
        if e.size == 0:
            continue
        pck = np.array([(e <= t).mean() for t in thresholds])
        area = sum((pck[i] + pck[i + 1]) / 2 * (thresholds[i + 1] - thresholds[i]) for i in range(len(pck) - 1))
        aucs.append(area / (thresholds[-1] - thresholds[0]))
        curves.append(pck)
    return float(np.mean(aucs)), np.mean(curves, 0)


def _mean_ref(err, vis=None):
    vis = np.ones_like(err, bool) if vis is None else vis
    return float(np.mean([err[vis[:, k], k].mean() for k in range(err.shape[1]) if vis[:, k].any()]))


def _fscore_ref(p, g, t):
    d = cdist(p, g)
    prec, rec = (d.min(1) < t).mean(), (d.min(0) < t).mean()
    return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)


def test_every_metric_matches_an_independent_computation(cli, gt_shard, tmp_path):
    rng = np.random.default_rng(7)
    r = ShardReader(gt_shard)
    jg, vg = r.read("joints3d").astype(np.float64), r.read("verts3d").astype(np.float64)
    kp, K = r.read("keypoints2d"), r.read("K").astype(np.float64)
    noise_j = rng.normal(scale=0.008, size=jg.shape)
    noise_v = rng.normal(scale=0.004, size=vg.shape)
    kp[:, 0, [3, 7, 11], 2] = 0.0  # three keypoints not visible in view 0: left out of 2D metrics
    kp[1, 0, 5, 2] = 0.0
    p = make_preds(gt_shard, tmp_path, lambda x: x + noise_j + 0.01, lambda x: x + noise_v + 0.01,
                   extra={"keypoints2d": kp})
    m = run_eval(cli, p)
    jp = (jg + noise_j + 0.01).astype(np.float32).astype(np.float64)  # stored as float32
    vp = (vg + noise_v + 0.01).astype(np.float32).astype(np.float64)
    t_m = np.linspace(0, 0.05, 100)
    t_stb = np.linspace(0, 0.05, 20)[8:]
    ref = {}
    for pre, (a, b) in {"": (jp, jg), "pa_": (np.stack([_similarity_align(x, y) for x, y in zip(jp, jg)]), jg),
                        "rr_": (jp - jp[:, :1], jg - jg[:, :1])}.items():
        e = np.linalg.norm(a - b, axis=-1)
        ref[f"{pre}mpjpe_mm"] = 1000 * _mean_ref(e)
        ref[f"{pre}mpjpe_median_mm"] = 1000 * np.mean(np.median(e, axis=0))
        ref[f"{pre}pck_auc"], curve = _pck_auc_ref(e, t_m)
        np.testing.assert_allclose(m["curves"][f"{pre}pck"]["pck"], curve, atol=1e-12)
        if pre != "pa_":
            ref[f"{pre}stb_pck_auc_20_50"] = _pck_auc_ref(e, t_stb)[0]
    for pre, (a, b) in {"": (vp, vg), "pa_": (np.stack([_similarity_align(x, y) for x, y in zip(vp, vg)]), vg),
                        "rr_": (vp - jp[:, :1], vg - jg[:, :1])}.items():
        e = np.linalg.norm(a - b, axis=-1)
        ref[f"{pre}mpvpe_mm"] = 1000 * e.mean()
        ref[f"{pre}pcv_auc"] = _pck_auc_ref(e, t_m)[0]
        for t, name in ((0.005, "f5"), (0.015, "f15")):
            ref[f"{pre}{name}"] = np.mean([_fscore_ref(x, y, t) for x, y in zip(a, b)])
    uvw = np.einsum("nij,nkj->nki", K[:, 0], jp)
    e2 = np.linalg.norm(uvw[..., :2] / uvw[..., 2:] - kp[:, 0, :, :2], axis=-1)
    vis = kp[:, 0, :, 2] > 0
    ref["kp2d_err_px"] = _mean_ref(e2, vis)
    ref["kp2d_median_px"] = float(np.mean([np.median(e2[vis[:, k], k]) for k in range(21) if vis[:, k].any()]))
    ref["pck2d_auc"] = _pck_auc_ref(e2, np.arange(0, 50.0), vis)[0]
    from handtools.core.eval.registry import METRICS

    assert set(ref) == set(METRICS)  # every metric is checked
    for k, v in ref.items():
        tol = 1e-4 if k.startswith("kp2d") else 1e-6  # 2D: float64 vs the command's float32 K
        assert m[k] == pytest.approx(v, rel=tol, abs=1e-9), k
    assert 0 < m["f5"] < m["f15"] < 1 and m["pa_mpjpe_mm"] < m["mpjpe_mm"]


# ----------------------------------------------------------------------------- selection, gates, plots
def test_metric_selection_and_unknown_names(cli, gt_shard, tmp_path):
    p = make_preds(gt_shard, tmp_path, shift([0.005, 0, 0]), shift([0.005, 0, 0]))
    m = run_eval(cli, p, "--metric", "pck", "-m", "pa_mpjpe_mm")
    assert set(m) == {"label", "num_shards", "num_samples", "pck_auc", "pa_pck_auc", "rr_pck_auc", "pa_mpjpe_mm",
                      "curves"}
    res = cli("evaluate", p, "--metric", "nonsense")
    assert res.exit_code == 2 and "nonsense" in res.stderr and res.stdout == ""


def test_gates(cli, gt_shard, tmp_path):
    p = make_preds(gt_shard, tmp_path, shift([0.005, 0, 0]), shift([0.005, 0, 0]))  # pck_auc = 0.904
    ok = cli("evaluate", "--metric", "pck", p, "--fail-under", "pck_auc=0.8", "--fail-over", "mpjpe_mm=6")
    assert ok.exit_code == 0, ok.stderr
    assert "mpjpe_mm" in json.loads(ok.stdout)  # a gate's metric is computed even if not selected
    bad = cli("evaluate", "--metric", "pck", p, "--fail-under", "pck_auc=0.95", "--fail-over", "mpjpe_mm=4.5")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["pck_auc"] == pytest.approx(89.5 / 99)  # the JSON is still printed
    lines = [line for line in bad.stderr.splitlines() if "gate failed" in line]
    assert len(lines) == 2 and "pck_auc" in lines[0] and "< 0.95" in lines[0] and "mpjpe_mm" in lines[1]
    for spec in ("pck_aux=0.8", "pck_auc", "pck_auc=high", "=3"):
        res = cli("evaluate", p, "--fail-under", spec)
        assert res.exit_code == 2, spec
        assert res.stdout == ""
    joints_only = make_preds(gt_shard, tmp_path, shift([0.005, 0, 0]), name="joints.h5")
    res = cli("evaluate", joints_only, "--fail-over", "mpvpe_mm=10")
    assert res.exit_code == 1 and "mpvpe_mm" in res.stderr


def test_joint_only_predictions_skip_mesh_metrics(cli, gt_shard, tmp_path):
    p = make_preds(gt_shard, tmp_path, shift([0.005, 0, 0]))
    m = run_eval(cli, p)
    assert "mpjpe_mm" in m and not any(k in m for k in ("mpvpe_mm", "f5", "pcv_auc"))
    res = cli("evaluate", p, "--metric", "mesh")
    assert res.exit_code == 1 and "pred/verts3d" in res.stderr and res.stdout == ""


def test_predictions_behind_the_camera_skip_2d(cli, gt_shard, tmp_path):
    p = make_preds(gt_shard, tmp_path, lambda x: x * np.array([1, 1, -1]), lambda x: x)
    m = run_eval(cli, p)
    assert "kp2d_err_px" not in m and "mpjpe_mm" in m
    res = cli("evaluate", p, "--metric", "kp2d")
    assert res.exit_code == 1 and "behind the camera" in res.stderr


def test_plot_with_comparison(cli, gt_shard, tmp_path, monkeypatch):
    a = make_preds(gt_shard, tmp_path / "a", shift([0.005, 0, 0]), shift([0.005, 0, 0]))
    b = make_preds(gt_shard, tmp_path / "b", shift([0.02, 0, 0]), shift([0.02, 0, 0]))
    (tmp_path / "a.json").write_text(cli("evaluate", a).stdout)
    png = tmp_path / "pck.png"
    m = run_eval(cli, b, "--label", "run b", "--plot", png, "--compare", tmp_path / "a.json")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 100 and m["label"] == "run b"
    # what is drawn: both runs' curves under their labels
    import handtools.io.plots as plots

    seen = {}
    monkeypatch.setattr(plots, "plot_pck", lambda curves, path, **kw: seen.update(curves=curves, **kw))
    run_eval(cli, b, "--plot", tmp_path / "p2.png", "--compare", tmp_path / "a.json", "--curve", "pa_pck",
             "--metric", "mpjpe")
    assert set(seen["curves"]) == {"b", "a"} and seen["unit"] == "mm"
    a_json = json.loads((tmp_path / "a.json").read_text())
    assert seen["curves"]["a"] == (a_json["curves"]["pa_pck"]["thresholds"], a_json["curves"]["pa_pck"]["pck"])
    # refusals: existing plot, --compare without --plot, a compare file without that curve
    res = cli("evaluate", b, "--plot", png)
    assert res.exit_code == 1 and "exists" in res.stderr and res.stdout == ""
    assert cli("evaluate", b, "--compare", tmp_path / "a.json").exit_code == 2
    (tmp_path / "c.json").write_text(json.dumps({"label": "c", "curves": {}}))
    res = cli("evaluate", b, "--plot", tmp_path / "p3.png", "--compare", tmp_path / "c.json")
    assert res.exit_code == 1 and "curve" in res.stderr and not (tmp_path / "p3.png").exists()


def test_expect_samples_fails_a_truncated_run(cli, gt_shard, tmp_path):
    """A CI gate must not pass when an upstream step died part-way and left fewer samples."""
    a = make_preds(gt_shard, tmp_path / "a", shift([0.005, 0, 0]), shift([0.005, 0, 0]))
    b = make_preds(gt_shard, tmp_path / "b", shift([0.005, 0, 0]), shift([0.005, 0, 0]))
    m = run_eval(cli, a, b, "--expect-samples", "8", "--fail-over", "mpjpe_mm=6")
    assert m["num_samples"] == 8
    # the second shard never came: 4 samples of the 8 expected; the other gates would all pass
    res = cli("evaluate", a, "--expect-samples", "8", "--fail-over", "mpjpe_mm=6")
    assert res.exit_code == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "4 samples" in lines[0] and "--expect-samples is 8" in lines[0], res.stderr
    assert cli("evaluate", a, b, "--expect-samples", "4").exit_code == 1  # more than expected fails too
    assert cli("evaluate", a, "--expect-samples", "0").exit_code == 2
    # the same check guards the FreiHAND submission: nothing is written
    out = tmp_path / "pred.json"
    res = cli("evaluate", "--format", "freihand", "--out", out, "--expect-samples", "3960", a)
    assert res.exit_code == 1 and "--expect-samples is 3960" in res.stderr and not out.exists()
    assert cli("evaluate", "--format", "freihand", "--out", out, "--expect-samples", "4", a).exit_code == 0


# ----------------------------------------------------------------------------- FreiHAND submission
def test_freihand_submission(cli, gt_shard, tmp_path):
    rng = np.random.default_rng(3)
    j, v = rng.normal(size=(3, 21, 3)).astype(np.float32), rng.normal(size=(3, 778, 3)).astype(np.float32)
    src = write_shard(tmp_path / "p.h5", {"pred/joints3d": j, "pred/verts3d": v}, kind="predictions", num_views=1)
    out = tmp_path / "sub" / "pred.json"
    (tmp_path / "sub").mkdir()
    res = cli("evaluate", "--format", "freihand", "--out", out, src)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(out) and "3960" in res.stderr  # warns: not the full evaluation set
    xyz, verts = json.loads(out.read_text())
    np.testing.assert_allclose(np.array(xyz), j, rtol=1e-7)
    np.testing.assert_allclose(np.array(verts), v, rtol=1e-7)
    assert len(xyz) == 3 and len(xyz[0]) == 21 and len(verts[0]) == 778
    before = out.read_text()
    res = cli("evaluate", "--format", "freihand", "--out", out, src)
    assert res.exit_code == 1 and "exists" in res.stderr and out.read_text() == before
    assert cli("evaluate", "--format", "freihand", "--out", out, "--overwrite", src).exit_code == 0
    assert cli("evaluate", "--format", "freihand", "--metric", "pck", "--out", out, src).exit_code == 2
    joints_only = write_shard(tmp_path / "j.h5", {"pred/joints3d": j}, kind="predictions", num_views=1)
    res = cli("evaluate", "--format", "freihand", "--out", tmp_path / "x.json", joints_only)
    assert res.exit_code == 1 and "pred/verts3d" in res.stderr and not (tmp_path / "x.json").exists()
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["pred.json"]  # no temporary files left


# ----------------------------------------------------------------------------- bad input, pipes
def test_bad_inputs_fail_with_one_line(cli, gt_shard, tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not a shard")
    for args, needle in (([text], "not an HDF5 file"), ([gt_shard], "pred/joints3d"),
                         ([tmp_path / "missing.h5"], "no such file")):
        res = cli("evaluate", *args)
        assert res.exit_code == 1, args
        assert res.stdout == "" and needle in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_shell_pipeline(gt_shard, tmp_path):
    maker = tmp_path / "make_preds.py"
    maker.write_text(textwrap.dedent(f"""
        # Ground truth in, predictions shard out: pred/* = ground truth + 3 mm on each axis.
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from handtools.io.shards import ShardReader, ShardWriter
        for line in sys.stdin:
            r = ShardReader(line.strip())
            batch = {{"pred/joints3d": r.read("joints3d") + 0.003, "pred/verts3d": r.read("verts3d") + 0.003}}
            with ShardWriter({str(tmp_path)!r}, kind="predictions", num_views=r.num_views, producer="tests",
                             name=lambda k: "pred.h5") as w:
                w.append(batch, copy_from=r)
            print(Path({str(tmp_path)!r}) / "pred.h5")
    """))
    ht = handtools_cmd()
    p = run_shell(f"echo {gt_shard} | {sys.executable} {maker} | {ht} evaluate --metric freihand "
                  f"--fail-under pa_pck_auc=0.9 --fail-over mpjpe_mm=10")
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)
    assert m["mpjpe_mm"] == pytest.approx(3 * np.sqrt(3), rel=1e-4)  # |(3, 3, 3) mm| = 5.196 mm
    assert "pa_f5" in m and "kp2d_err_px" not in m  # the freihand group only
    p = run_shell(f"{ht} -q evaluate {tmp_path / 'pred.h5'} --fail-over mpjpe_mm=5 > {tmp_path / 'm.json'}")
    assert p.returncode == 1 and "gate failed: mpjpe_mm" in p.stderr
    assert json.loads((tmp_path / "m.json").read_text())["mpjpe_mm"] > 5


def test_mono_and_stereo_shards_pool(cli, gt_shard, tmp_path):
    stereo = make_preds(gt_shard, tmp_path, shift([0.005, 0, 0]), shift([0.005, 0, 0]))
    r = ShardReader(stereo)
    mono = {n: r.read(n) for n in ("pred/joints3d", "pred/verts3d", "joints3d", "verts3d")}
    mono.update(K=r.read("K")[:, :1], keypoints2d=r.read("keypoints2d")[:, :1])
    write_shard(tmp_path / "mono" / "m.h5", mono, kind="predictions", num_views=1)
    both = run_eval(cli, stereo, tmp_path / "mono" / "m.h5")
    one = run_eval(cli, stereo)
    assert both["num_samples"] == 8 and both["num_shards"] == 2 and both["label"] == "run"
    for k in ("mpjpe_mm", "pck_auc", "f5", "kp2d_err_px", "pck2d_auc"):
        assert both[k] == pytest.approx(one[k], rel=1e-9), k  # the same samples twice
