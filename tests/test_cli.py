"""CLI conventions: exit codes, global options, --part, --device, stdin warnings, SIGPIPE."""

from __future__ import annotations

import pytest
import typer

from handtools import __version__
from handtools.errors import ExitCode
from handtools.options import parse_part, resolve_device, select_part
from tests.conftest import handtools_cmd, random_batch, run_shell, write_shard


def test_exit_code_enum():
    assert [int(c) for c in ExitCode] == [0, 1, 2, 130]


def test_version_and_help(cli):
    r = cli("--version")
    assert r.exit_code == 0 and __version__ in r.stdout
    r = cli("--help")
    assert r.exit_code == 0 and "info" in r.stdout


def test_usage_error_exits_2(cli):
    r = cli("info", "--no-such-option")
    assert r.exit_code == 2


def test_part_parsing():
    assert parse_part(None) is None
    assert parse_part("1/3") == (1, 3)
    assert select_part(list(range(7)), (1, 3)) == [1, 4]
    for bad in ["3/3", "x/2", "1", "-1/2", "0/0"]:
        with pytest.raises(typer.BadParameter):
            parse_part(bad)


def test_device_parsing():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(typer.BadParameter):
        resolve_device("tpu")


def test_debug_shows_traceback_only_when_asked(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("nope")
    p = run_shell(f"{handtools_cmd()} info {bad}")
    assert p.returncode == 1 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_shell(f"{handtools_cmd()} --debug info {bad}")
    assert p.returncode == 1 and "Traceback" in p.stderr


def test_sigpipe_ends_quietly(tmp_path):
    paths = [write_shard(tmp_path / f"s{i}.h5", random_batch(1, names=["K"])) for i in range(3)]
    p = run_shell(f"{handtools_cmd()} info {' '.join(map(str, paths * 200))} | head -n 1")
    assert p.returncode == 0 and p.stderr == ""


def test_no_inputs_on_empty_stdin(cli):
    r = cli("info", input="")
    assert r.exit_code == 1 and "no input shards" in r.stderr


def test_auto_device_under_torchrun_is_the_workers_own_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("auto") == torch.device("cuda:2")
    monkeypatch.delenv("LOCAL_RANK")
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert resolve_device("auto") == torch.device("cpu")


def test_config_file_gives_defaults_and_the_command_line_wins(cli, tmp_path):
    import json

    cfg = tmp_path / "run.toml"
    cfg.write_text('[synth]\nnum = 3\nimage-size = "32x24"\nseed = 4\n\n[import.images]\nfocal = 500.0\n')
    res = cli("--config", cfg, "-q", "synth", "--out", tmp_path / "s", "--seed", "9")
    assert res.exit_code == 0, res.stderr
    info = json.loads(cli("info", "--json", tmp_path / "s").stdout)["shards"][0]
    assert info["num_samples"] == 3 and info["image_size"] == [24, 32]  # from the file
    assert info["history"][0]["args"]["seed"] == 9  # the command line wins
    for text, needle in (('[synht]\nnum = 3\n', "[synht] is not a handtools command"),
                         ('[synth]\nnmu = 3\n', "[synth] nmu: no such option"),
                         ('[import.imgs]\nfocal = 1.0\n', "[import.imgs]"),
                         ('[synth\n', "run.toml")):
        cfg.write_text(text)
        res = cli("--config", cfg, "synth", "--out", tmp_path / "t")
        assert res.exit_code == 2 and needle in res.stderr, res.stderr
        assert not (tmp_path / "t").exists()


def test_sigterm_while_the_cli_is_built_exits_130_in_one_line(monkeypatch, capsys):
    """A SIGTERM that lands before any command runs (typer still building the command group,
    where the group's own handler is not yet active) ends like any interrupt: one line, 130.
    It used to escape as a traceback with exit 1 (seen in test_shard_kills under load)."""
    import signal

    from handtools import cli as cli_mod
    from handtools.errors import Terminated

    def app(**_kw):
        cli_mod._terminate(signal.SIGTERM, None)

    monkeypatch.setattr(cli_mod, "app", app)
    old = signal.getsignal(signal.SIGTERM)
    try:
        assert cli_mod.main(["info"]) == ExitCode.INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, old)
    err = capsys.readouterr().err
    assert "handtools: interrupted (SIGTERM)" in err and "Traceback" not in err
    assert issubclass(Terminated, KeyboardInterrupt)
