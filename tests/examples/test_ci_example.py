"""examples/ci/: the GitHub Actions gate runs as written on the committed predictions shard."""

from __future__ import annotations

import json
import re

from tests.conftest import REPO, run_shell

WORKFLOW = REPO / "examples" / "ci" / "evaluate-gate.yml"


def _steps() -> dict[str, str]:
    """The workflow's `run:` scripts that call handtools, by step name (a small reader for this file's layout)."""
    steps, name = {}, None
    lines = WORKFLOW.read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s+- name: (.*)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s+)run: (.*)", line)
        if m and name:
            if m.group(2).strip() == "|":  # a block: the following lines indented deeper
                indent, body = len(m.group(1)), []
                for follow in lines[i + 1 :]:
                    if follow.strip() and len(follow) - len(follow.lstrip()) <= indent:
                        break
                    body.append(follow.strip())
                script = "\n".join(body)
            else:
                script = m.group(2)
            if "handtools" in script and "pip install" not in script:
                steps[name] = script.replace("\\\n", " ")
    return steps


def _env() -> str:
    m = re.search(r"PREDICTIONS: (\S+)", WORKFLOW.read_text())
    assert m
    return f"export PREDICTIONS={m.group(1)}; "


def test_the_workflow_steps_pass_on_the_committed_predictions(tmp_path):
    steps = _steps()
    assert len(steps) == 2, steps
    show, gate = steps.values()
    p = run_shell(_env() + show, cwd=REPO)
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)  # the PCK numbers on stdout
    assert m["num_samples"] == 8 and {"pck_auc", "pa_pck_auc", "rr_pck_auc"} <= set(m)
    assert "pck_auc" in p.stderr  # and the table in the log
    p = run_shell(_env() + gate.replace("> metrics.json", f"> {tmp_path / 'metrics.json'}"), cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["pa_pck_auc"] > 0.3


def test_the_gate_fails_with_one_line_per_crossed_threshold(tmp_path):
    gate = list(_steps().values())[1].replace("> metrics.json", f"> {tmp_path / 'metrics.json'}")
    p = run_shell(_env() + gate.replace("pa_pck_auc=0.3", "pa_pck_auc=0.9"), cwd=REPO)
    assert p.returncode == 1
    lines = [x for x in p.stderr.splitlines() if "gate failed" in x]
    assert lines == [lines[0]] and "pa_pck_auc" in lines[0] and "< 0.9" in lines[0], p.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["pa_pck_auc"] < 0.9  # the metrics still written
    p = run_shell(_env() + gate.replace("--expect-samples 8", "--expect-samples 9"), cwd=REPO)
    assert p.returncode == 1 and "--expect-samples is 9" in p.stderr and len(p.stderr.strip().splitlines()) == 1
