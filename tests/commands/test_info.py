"""handtools info: a shard's history as a readable table."""

from __future__ import annotations

from handtools.commands.info import SETTINGS_WIDTH, history_table
from handtools.io.shards import history_entry
from tests.conftest import REPO


def test_history_table_columns_and_settings():
    steps = [history_entry("handtools synth", dict(num=8, seed=6, focal=205.69812, backgrounds=None, part="0/2")),
             history_entry("handtools crop", dict(size=32, scale=1.4, views=[0, 1])),
             history_entry("handtools predict", {"checkpoint": "x" * 200})]
    lines = history_table(steps)
    assert lines[0] == "  history:"
    head, *rows = lines[1:]
    assert head.split() == ["#", "command", "time", "version", "settings"]
    assert rows[0].split()[:3] == ["1", "handtools", "synth"]
    assert rows[0].endswith("num=8 seed=6 focal=205.698 part=0/2")  # unset options left out
    assert rows[1].endswith("size=32 scale=1.4 views=0,1")
    assert rows[2].endswith("...") and len(rows[2].split("  ")[-1].strip()) == SETTINGS_WIDTH
    col = head.index("time")  # columns line up
    assert all(r[col : col + 4] == steps[0]["time"][:4] for r in rows)
    assert history_table([]) == ["  history: -"]


def test_info_prints_the_table(cli):
    res = cli("info", REPO / "examples" / "ci" / "predictions.h5")
    assert res.exit_code == 0, res.stderr
    out = res.stdout.splitlines()
    k = out.index("  history:")
    assert [line.split()[2] for line in out[k + 2 : k + 5]] == ["synth", "crop", "predict"]
    assert "center=gt" in out[k + 3] and out[k + 5] == "  datasets:"
