"""``handtools evaluate``: FreiHAND-benchmark metrics of predictions shards, CI gates, PCK plots."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.console import console, log, progress, state
from handtools.core.eval.registry import CURVES as CURVE_AUC
from handtools.errors import ExitCode, InputError, OutputExistsError
from handtools.io.pipes import emit_path, read_input_paths
from handtools.options import Inputs, Overwrite


def _parse_gates(specs: list[str], option: str, known) -> list[tuple[str, float]]:
    gates = []
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or not name:
            raise typer.BadParameter(f"expected METRIC=VALUE, got {spec!r}", param_hint=option)
        if name not in known:
            raise typer.BadParameter(
                f"unknown metric {name!r}; known: {', '.join(known)}", param_hint=option
            )
        try:
            threshold = float(value)
        except ValueError:
            raise typer.BadParameter(f"{spec!r}: {value!r} is not a number", param_hint=option) from None
        if not math.isfinite(threshold):
            raise typer.BadParameter(f"{spec!r}: the value must be finite", param_hint=option)
        gates.append((name, threshold))
    return gates


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it (atomic)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600: give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _check_output(path: Path, overwrite: bool, option: str) -> None:
    if path.exists() and path.is_dir():
        raise OutputExistsError(f"{option} {path}: is a folder, expected a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists (use --overwrite to replace)")


def _read_compare(paths: list[Path], curve: str) -> dict:
    """Curves of earlier runs: ``{label: (thresholds, pck)}`` from their evaluate JSON."""
    out = {}
    for p in paths:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"--compare {p}: no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"--compare {p}: not a JSON file from handtools evaluate ({exc})") from None
        c = data.get("curves", {}).get(curve) if isinstance(data, dict) else None
        if not isinstance(c, dict) or "thresholds" not in c or "pck" not in c:
            raise InputError(f"--compare {p}: has no {curve!r} curve (evaluate it with that curve's metric)")
        label = str(data.get("label") or p.stem)
        while label in out:
            label += "'"
        out[label] = (c["thresholds"], c["pck"])
    return out


def _default_label(paths: list[Path]) -> str:
    parents = {p.resolve().parent for p in paths}
    return parents.pop().name if len(parents) == 1 else "run"


def _read_all(paths: list[Path], require: list[str], optional: tuple[str, ...] = ()):
    """Concatenate datasets over all shards: every ``require``d one, and each ``optional`` one
    that every shard has. Returns (name -> array, names read)."""
    import numpy as np

    from handtools.io.shards import open_shards

    readers = open_shards(paths, require=require)
    try:
        in_all = {n for n in optional if all(n in r for r in readers)}
        for n in optional:
            partial = [str(r.path) for r in readers if n in r]
            if partial and n not in in_all:
                log.warning(f"{n} is missing from some shards (present in {len(partial)} of {len(readers)}); not used")
        names = require + sorted(in_all)
        arrays = {n: [] for n in names}
        with progress() as bar:
            task = bar.add_task("read", total=len(readers))
            for r in readers:
                for n in names:
                    a = r.read(n)
                    # only view 0 is evaluated in 2D: keeps mono and stereo shards stackable
                    arrays[n].append(a[:, :1] if n in ("K", "keypoints2d") else a)
                bar.advance(task)
    finally:
        for r in readers:
            r.close()
    return {n: np.concatenate(v) for n, v in arrays.items()}, set(names)


def _projected_keypoints(data: dict, explicit_2d: bool):
    """Prediction joints projected into view 0 (pixels) and view-0 ground truth, or (None, None)."""
    import numpy as np

    pj = data["pred/joints3d"].astype(np.float64)  # (N, 21, 3) metres, camera frame of view 0
    behind = int((pj[..., 2] <= 1e-6).sum())
    if behind:
        msg = f"{behind} predicted joint(s) lie behind the camera of view 0: 2D metrics are undefined"
        if explicit_2d:
            raise InputError(msg)
        log.warning(msg + "; skipping them")
        return None, None
    K0 = data["K"][:, 0].astype(np.float64)  # (N, 3, 3)
    # The pinhole projection of handtools.core.geometry.cameras.project, in numpy: importing torch
    # for one matrix product would triple the start-up time of a CI gate.
    uvw = np.einsum("nij,nkj->nki", K0, pj)  # (N, 21, 3)
    return uvw[..., :2] / uvw[..., 2:3], data["keypoints2d"][:, 0]  # (N, 21, 2) px, (N, 21, 3)


def _print_table(result: dict, label: str) -> None:
    from rich.table import Table

    from handtools.core.eval.registry import METRICS

    table = Table(title=f"{label}: {result['num_samples']} samples", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning", style="dim")
    for k, meaning in METRICS.items():
        if k in result:
            table.add_row(k, f"{result[k]:.4f}" if not k.endswith(("_mm", "_px")) else f"{result[k]:.2f}", meaning)
    console.print(table)


def evaluate(
    inputs: Inputs = None,
    metric: Annotated[
        Optional[list[str]],
        typer.Option("--metric", "-m", help="Metric or group to report (repeatable): all, freihand, mpjpe, pck, "
                     "stb, mpvpe, pcv, fscore, kp2d, pa, rr, joints, mesh, or one name such as pa_mpjpe_mm. "
                     "Default: every metric the inputs allow."),
    ] = None,
    fail_under: Annotated[
        Optional[list[str]],
        typer.Option("--fail-under", metavar="METRIC=VALUE", help="Exit 1 if METRIC < VALUE (repeatable)."),
    ] = None,
    fail_over: Annotated[
        Optional[list[str]],
        typer.Option("--fail-over", metavar="METRIC=VALUE", help="Exit 1 if METRIC > VALUE (repeatable)."),
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Draw the PCK curve of this run (and of --compare runs) here "
                                     "(.png, .pdf or .svg).")
    ] = None,
    curve: Annotated[
        str, typer.Option("--curve", help=f"Curve drawn by --plot: {', '.join(CURVE_AUC)}.")
    ] = "pck",
    compare: Annotated[
        Optional[list[Path]],
        typer.Option("--compare", metavar="RUN.json", help="JSON saved from an earlier evaluate; its curve is drawn "
                     "in the same --plot (repeatable)."),
    ] = None,
    label: Annotated[
        Optional[str], typer.Option("--label", help="Name of this run in the JSON and the plot legend "
                                    "[default: the inputs' folder name].")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="json: metrics JSON on stdout; freihand: write the FreiHAND "
                          "submission file --out (no ground truth needed).")
    ] = "json",
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Submission file for --format freihand.")
    ] = Path("pred.json"),
    overwrite: Overwrite = False,
) -> None:
    """Evaluate predictions shards against their ground truth (FreiHAND benchmark metrics).

    Reads shards holding pred/joints3d (and pred/verts3d) beside the ground truth
    joints3d (verts3d, keypoints2d with K) and prints ONE JSON object on stdout:
    MPJPE/MPVPE raw, Procrustes-aligned (pa_) and root-relative (rr_), PCK AUC over
    0-50 mm, STB 3D PCK AUC over 20-50 mm, F-scores at 5 and 15 mm, 2D keypoint
    error and PCK, and every reported PCK curve. A table goes to stderr. Algorithm:
    docs/metrics.md; options: docs/evaluate.md.

    \b
    $ handtools evaluate preds/*.h5 > run_a.json
    $ handtools predict --checkpoint m.pt data/ --out preds/ | handtools evaluate --metric freihand
    $ handtools evaluate --metric pck preds/*.h5 --fail-under pck_auc=0.8 --fail-over mpjpe_mm=20
    $ handtools evaluate preds_b/ --label b --plot pck.png --compare run_a.json
    $ handtools evaluate --format freihand --out pred.json freihand_eval_preds/
    """
    from handtools.core.eval.registry import METRICS

    if fmt not in ("json", "freihand"):
        raise typer.BadParameter(f"expected json or freihand, got {fmt!r}", param_hint="--format")
    gates = [(n, v, "<") for n, v in _parse_gates(fail_under or [], "--fail-under", METRICS)]
    gates += [(n, v, ">") for n, v in _parse_gates(fail_over or [], "--fail-over", METRICS)]
    if curve not in CURVE_AUC:
        raise typer.BadParameter(f"unknown curve {curve!r}; choose {', '.join(CURVE_AUC)}", param_hint="--curve")
    if compare and plot is None:
        raise typer.BadParameter("--compare needs --plot", param_hint="--compare")
    if fmt == "freihand":
        used = [o for o, v in (("--metric", metric), ("--fail-under", fail_under), ("--fail-over", fail_over),
                               ("--plot", plot), ("--compare", compare)) if v]
        if used:
            raise typer.BadParameter(f"{', '.join(used)} cannot be combined with --format freihand",
                                     param_hint="--format")
        return _write_freihand(inputs, out, overwrite)

    from handtools.core.eval.metrics import compute_metrics
    from handtools.core.eval.registry import METRIC_GROUPS, resolve_metrics

    try:
        selected = resolve_metrics(metric) if metric else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    if selected is not None:  # gates and the plot need their metrics computed
        extra = [n for n, _, _ in gates] + ([CURVE_AUC[curve]] if plot is not None else [])
        selected = resolve_metrics(selected + extra)

    paths = read_input_paths(inputs)
    if plot is not None:
        _check_output(plot, overwrite, "--plot")
        if not plot.parent.is_dir():
            raise InputError(f"--plot {plot}: folder {plot.parent} does not exist")
    others = _read_compare(list(compare or []), curve)
    label = label or _default_label(paths)

    data, present = _read_all(paths, ["pred/joints3d", "joints3d"], ("pred/verts3d", "verts3d", "keypoints2d", "K"))
    have_mesh = {"pred/verts3d", "verts3d"} <= present
    if selected is not None:
        mesh_sel = [k for k in selected if k in METRIC_GROUPS["mesh"]]
        if mesh_sel and not have_mesh:
            raise InputError(f"{', '.join(mesh_sel)} need pred/verts3d and verts3d in every input shard")
        kp_sel = [k for k in selected if k in METRIC_GROUPS["kp2d"]]
        if kp_sel and not {"keypoints2d", "K"} <= present:
            raise InputError(f"{', '.join(kp_sel)} need keypoints2d and K in every input shard")
    want_2d = selected is None or bool(set(selected) & set(METRIC_GROUPS["kp2d"]))
    pred_kp2d = gt_kp2d = None
    if {"keypoints2d", "K"} <= present and want_2d:
        pred_kp2d, gt_kp2d = _projected_keypoints(data, explicit_2d=selected is not None)
    log.info(f"evaluate: {len(data['joints3d'])} samples from {len(paths)} shard(s)"
             + ("" if have_mesh else " (no meshes: joint metrics only)"))
    result = compute_metrics(
        data["pred/joints3d"], data["joints3d"],
        data["pred/verts3d"] if have_mesh else None, data["verts3d"] if have_mesh else None,
        pred_kp2d, gt_kp2d, selected=selected,
    )
    missing = [n for n, _, _ in gates if n not in result]
    if missing:
        raise InputError(f"gate metric(s) {', '.join(missing)} not computed: the inputs lack the data they need")
    c = result["curves"].get(curve)
    if plot is not None and c is None:
        raise InputError(f"--plot: curve {curve!r} not computed: the inputs lack the data it needs")
    report = {"label": label, "num_shards": len(paths), **result}
    typer.echo(json.dumps(report))
    if state.verbosity >= 0:
        _print_table(result, label)

    if plot is not None:
        from handtools.io.plots import plot_pck

        curves = {label: (c["thresholds"], c["pck"])}
        for k, v in others.items():
            curves[k if k not in curves else k + " (compare)"] = v
        title = METRICS[CURVE_AUC[curve]].removeprefix("AUC of the ")  # e.g. "joint PCK curve, 0-50 mm, ..."
        plot_pck(curves, plot, title=f"{title[:1].upper()}{title[1:]} ({curve})", unit=c["unit"])
        log.info(f"wrote {plot}")

    failed = []
    for name, threshold, op in gates:
        value = result[name]
        if (op == "<" and value < threshold) or (op == ">" and value > threshold):
            failed.append(f"{name} = {value:.6g} {op} {threshold:g}")
    for f in failed:
        console.print(f"handtools evaluate: gate failed: {f}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(ExitCode.ERROR)


def _write_freihand(inputs, out: Path, overwrite: bool) -> None:
    """``--format freihand``: predictions -> the official ``pred.json`` (atomic)."""
    from handtools.core.eval.freihand import FREIHAND_EVAL_SAMPLES, freihand_submission

    paths = read_input_paths(inputs)
    _check_output(out, overwrite, "--out")
    if not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    data, _ = _read_all(paths, ["pred/joints3d", "pred/verts3d"])
    n = len(data["pred/joints3d"])
    if n != FREIHAND_EVAL_SAMPLES:
        log.warning(f"{n} samples; the FreiHAND evaluation set has {FREIHAND_EVAL_SAMPLES} (in its order)")
    sub = freihand_submission(data["pred/joints3d"], data["pred/verts3d"])
    _atomic_write_text(out, json.dumps(sub))
    log.info(f"wrote {n} predictions to {out}")
    emit_path(out)
