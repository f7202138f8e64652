"""``handtools evaluate``: FreiHAND-benchmark metrics of predictions shards, CI gates, PCK plots.

The metrics are :mod:`handtools.core.eval`; reading shards and earlier runs is
:mod:`handtools.io.evaluation`; this module checks the options, calls them and
writes the JSON, the table, the plot and the gates' verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.console import console, log, state
from handtools.core.eval.registry import CURVES
from handtools.errors import ExitCode, InputError
from handtools.io.pipes import emit_path, read_input_paths
from handtools.options import Inputs, Overwrite

Gate = tuple[str, float, str]  # (metric, threshold, "<" for --fail-under or ">" for --fail-over)


def _parse_gates(specs: Optional[list[str]], option: str, op: str) -> list[Gate]:
    from handtools.core.eval.gates import parse_gate
    from handtools.core.eval.registry import METRICS

    gates = []
    for spec in specs or []:
        try:
            gates.append((*parse_gate(spec, METRICS), op))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=option) from None
    return gates


def _selection(metric: Optional[list[str]], gates: list[Gate], curve: str, plot) -> Optional[list[str]]:
    """Metric names to compute (None: all the inputs allow); a gate's metric and the plotted curve's AUC
    are added to an explicit selection, as they must be computed."""
    from handtools.core.eval.registry import resolve_metrics

    if not metric:
        return None
    try:
        selected = resolve_metrics(metric)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metric") from None
    extra = [n for n, _, _ in gates] + ([CURVES[curve]] if plot is not None else [])
    return resolve_metrics(selected + extra)


def _check_count(n: int, expect_samples: Optional[int], num_shards: int) -> None:
    """``--expect-samples``: a run with fewer (or more) samples than expected fails before any metric."""
    if expect_samples is not None and n != expect_samples:
        raise InputError(f"the inputs hold {n} samples in {num_shards} shard(s), --expect-samples is "
                         f"{expect_samples}: an upstream step may have stopped early")


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


def _plot(path: Path, label: str, c: dict, others: dict, curve: str) -> None:
    """This run's curve ``c`` and the --compare runs' curves in one figure."""
    from handtools.core.eval.registry import METRICS
    from handtools.io.plots import plot_pck

    curves = {label: (c["thresholds"], c["pck"])}
    for k, v in others.items():
        curves[k if k not in curves else k + " (compare)"] = v
    title = METRICS[CURVES[curve]].removeprefix("AUC of the ")  # e.g. "joint PCK curve, 0-50 mm, ..."
    plot_pck(curves, path, title=f"{title[:1].upper()}{title[1:]} ({curve})", unit=c["unit"])
    log.info(f"wrote {path}")


# Long only by its signature (the option table) and docstring (--help); the body is under 50 lines.
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
        str, typer.Option("--curve", help=f"Curve drawn by --plot: {', '.join(CURVES)}.")
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
    expect_samples: Annotated[
        Optional[int], typer.Option("--expect-samples", min=1, metavar="N",
                                    help="Exit 1 unless the inputs hold exactly N samples (catches a truncated run).")
    ] = None,
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
    $ handtools evaluate preds/*.h5 --expect-samples 3960 --fail-over pa_mpjpe_mm=12
    $ handtools evaluate preds_b/ --label b --plot pck.png --compare run_a.json
    $ handtools evaluate --format freihand --out pred.json freihand_eval_preds/
    """
    if fmt not in ("json", "freihand"):
        raise typer.BadParameter(f"expected json or freihand, got {fmt!r}", param_hint="--format")
    gates = _parse_gates(fail_under, "--fail-under", "<") + _parse_gates(fail_over, "--fail-over", ">")
    if curve not in CURVES:
        raise typer.BadParameter(f"unknown curve {curve!r}; choose {', '.join(CURVES)}", param_hint="--curve")
    if compare and plot is None:
        raise typer.BadParameter("--compare needs --plot", param_hint="--compare")
    if fmt == "freihand":
        used = [o for o, v in (("--metric", metric), ("--fail-under", fail_under), ("--fail-over", fail_over),
                               ("--plot", plot), ("--compare", compare)) if v]
        if used:
            raise typer.BadParameter(f"{', '.join(used)} cannot be combined with --format freihand",
                                     param_hint="--format")
        return _write_freihand(inputs, out, overwrite, expect_samples)
    selected = _selection(metric, gates, curve, plot)

    from handtools.core.eval.gates import failed_gates
    from handtools.core.eval.metrics import compute_metrics
    from handtools.io.evaluation import default_label, read_compare_curves, read_eval_inputs
    from handtools.io.files import check_output_file

    paths = read_input_paths(inputs)
    if plot is not None:
        check_output_file(plot, overwrite, "--plot")
    others = read_compare_curves(list(compare or []), curve)
    label = label or default_label(paths)
    data = read_eval_inputs(paths, selected)
    _check_count(data.num_samples, expect_samples, len(paths))
    log.info(f"evaluate: {data.num_samples} samples from {len(paths)} shard(s)"
             + ("" if data.have_mesh else " (no meshes: joint metrics only)"))
    result = compute_metrics(**data.arrays(), selected=selected)
    missing = [n for n, _, _ in gates if n not in result]
    if missing:
        raise InputError(f"gate metric(s) {', '.join(missing)} not computed: the inputs lack the data they need")
    c = result["curves"].get(curve)
    if plot is not None and c is None:
        raise InputError(f"--plot: curve {curve!r} not computed: the inputs lack the data it needs")

    typer.echo(json.dumps({"label": label, "num_shards": len(paths), **result}))
    if state.verbosity >= 0:
        _print_table(result, label)
    if plot is not None:
        _plot(plot, label, c, others, curve)
    failed = failed_gates(result, gates)
    for f in failed:
        console.print(f"handtools evaluate: gate failed: {f}", markup=False, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(ExitCode.ERROR)


def _write_freihand(inputs, out: Path, overwrite: bool, expect_samples: Optional[int]) -> None:
    """``--format freihand``: predictions -> the official ``pred.json`` (atomic)."""
    from handtools.core.eval.freihand import FREIHAND_EVAL_SAMPLES, freihand_submission
    from handtools.io.evaluation import read_pooled
    from handtools.io.files import check_output_file, write_atomic

    paths = read_input_paths(inputs)
    check_output_file(out, overwrite, "--out")
    data, _ = read_pooled(paths, ["pred/joints3d", "pred/verts3d"])
    n = len(data["pred/joints3d"])
    _check_count(n, expect_samples, len(paths))
    if n != FREIHAND_EVAL_SAMPLES:
        log.warning(f"{n} samples; the FreiHAND evaluation set has {FREIHAND_EVAL_SAMPLES} (in its order)")
    write_atomic(out, json.dumps(freihand_submission(data["pred/joints3d"], data["pred/verts3d"])))
    log.info(f"wrote {n} predictions to {out}")
    emit_path(out)
