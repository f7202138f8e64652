"""The generated man pages, shell completions and docs/cli.md (docs/scripts/gen_cli_docs.py).

They must match the CLI exactly (regenerate with ``python docs/scripts/gen_cli_docs.py``),
cover every command and option, render with man/groff and be valid shell.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from handtools.cli import app

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "docs" / "scripts" / "gen_cli_docs.py"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return gen.generate()


def _cli_commands() -> dict[tuple[str, ...], list[str]]:
    """{command path: every option string}, read straight from the click objects (not via the generator)."""
    out = {}

    def walk(cmd, name, parent, path):
        ctx = cmd.context_class(cmd, info_name=name, parent=parent, **(cmd.context_settings or {}))
        opts = [o for p in cmd.get_params(ctx) if p.param_type_name == "option" for o in p.opts + p.secondary_opts]
        out[tuple(path)] = opts
        for sub in (cmd.list_commands(ctx) if hasattr(cmd, "commands") else []):
            walk(cmd.get_command(ctx, sub), sub, ctx, [*path, sub])

    walk(typer.main.get_command(app), "handtools", None, [])
    return out


def test_committed_files_are_up_to_date(files):
    stale = gen.check(REPO, files)
    assert not stale, f"out of date: {stale}; run: python docs/scripts/gen_cli_docs.py"


def test_check_flags_changed_missing_and_stale_files(tmp_path, files):
    assert gen.main(["--root", str(tmp_path)]) == 0
    assert gen.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "docs/cli.md").write_text("edited by hand\n")
    (tmp_path / "completions/handtools.fish").unlink()
    stale_page = tmp_path / "man/handtools-removed.1"
    stale_page.write_text(f'.\\" {gen.MARKER}\n')
    (tmp_path / "man/handtools-handwritten.1").write_text(".TH X 1\n")  # not ours: left alone
    assert gen.check(tmp_path, files) == ["completions/handtools.fish", "docs/cli.md", "man/handtools-removed.1"]
    assert gen.main(["--check", "--root", str(tmp_path)]) == 1
    gen.main(["--root", str(tmp_path)])  # regenerating repairs all three
    assert gen.check(tmp_path, files) == []
    assert not stale_page.exists() and (tmp_path / "man/handtools-handwritten.1").exists()


def test_check_as_a_script_exits_1_when_stale(tmp_path):
    run = [sys.executable, str(SCRIPT), "--root", str(tmp_path)]
    assert subprocess.run(run, capture_output=True).returncode == 0
    (tmp_path / "man/handtools.1").write_text("stale\n")
    res = subprocess.run([*run, "--check"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "man/handtools.1" in res.stderr and "gen_cli_docs.py" in res.stderr


def test_output_is_deterministic_and_independent_of_the_terminal(tmp_path, files):
    gen.write(tmp_path, files)
    for seed in ("1", "2"):  # set iteration order (e.g. click's help option names) must not leak out
        env = {**os.environ, "PYTHONHASHSEED": seed, "COLUMNS": "37", "TERM": "dumb"}
        res = subprocess.run([sys.executable, str(SCRIPT), "--check", "--root", str(tmp_path)],
                             capture_output=True, text=True, env=env)
        assert res.returncode == 0, res.stderr
    assert not any(re.search(r"\b20\d\d-\d\d-\d\d\b", text) for text in files.values())  # no dates


def test_every_command_has_a_man_page_listing_all_its_options(files):
    commands = {"-".join(["handtools", *path]): opts for path, opts in _cli_commands().items()}
    assert {"handtools", "handtools-import", "handtools-import-images", "handtools-info"} <= set(commands)
    pages = {Path(p).stem: text for p, text in files.items() if p.startswith("man/")}
    assert set(pages) == set(commands)
    for page, opts in commands.items():
        text = pages[page]
        assert re.search(rf"^\.TH {re.escape(page.upper().replace('-', chr(92) + '-'))} 1 ", text, re.M), page
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS"):
            assert re.search(rf"^\.SH (GLOBAL )?{section}$", text, re.M), (page, section)
        for opt in opts:
            assert f"\\fB{opt.replace('-', chr(92) + '-')}\\fR" in text, (page, opt)
        for code in (0, 1, 2, 130):
            assert f"\\fB{code}\\fR" in text
        if page != "handtools":
            assert "\\fBhandtools\\fR(1)" in text  # SEE ALSO


def test_cli_md_documents_every_command_and_option(files):
    text = files["docs/cli.md"]
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.split("\n", 1)[0].strip("`"): s for s in sections}
    for path, opts in _cli_commands().items():
        prog = " ".join(["handtools", *path])
        section = by_title[prog]
        for opt in opts:
            assert re.search(rf"`[^`]*(?<![\w-]){re.escape(opt)}(?![\w-])", section), (prog, opt)


def _man_env(tmp_path):
    return {**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80", "HOME": str(tmp_path)}


@pytest.mark.skipif(shutil.which("man") is None or shutil.which("groff") is None, reason="man/groff not installed")
def test_man_pages_render_without_warnings(tmp_path):
    for page in sorted((REPO / "man").glob("handtools*.1")):
        res = subprocess.run(
            ["groff", "-man", "-ww", "-z", "-Tutf8", str(page)], capture_output=True, text=True
        )
        assert res.returncode == 0 and res.stderr == "", (page.name, res.stderr)
    res = subprocess.run(
        ["man", "-l", str(REPO / "man/handtools-import-images.1")],
        capture_output=True, text=True, env=_man_env(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "handtools-import-images - Import image files" in " ".join(out.split())
    assert "-o, --out <path>" in out  # \- renders as a plain hyphen: copy-pasteable
    assert "$ handtools import images photos/" in out


# --------------------------------------------------------------------------------------
# Completions
# --------------------------------------------------------------------------------------

BASH = REPO / "completions" / "handtools.bash"
FISH = REPO / "completions" / "handtools.fish"


def test_bash_completion_is_valid_bash():
    assert subprocess.run(["bash", "-n", str(BASH)], capture_output=True).returncode == 0


def _complete(words: list[str], cwd: Path = REPO) -> list[str]:
    """Run the bash completion function as bash would for the command line ``words`` (last is the cursor)."""
    script = (
        f'source "{BASH}"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _handtools; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    res = subprocess.run(["bash", "-c", script, "bash", *words], capture_output=True, text=True, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return sorted(filter(None, res.stdout.split("\n")))


def test_bash_completes_commands_options_and_values(tmp_path):
    top = sorted(path[0] for path in _cli_commands() if len(path) == 1)
    assert "import" in top and "info" in top
    assert _complete(["handtools", ""]) == top
    assert _complete(["handtools", "sy"]) == ["synth"]
    assert _complete(["handtools", "-v", "import", ""]) == ["freihand", "ho3d", "images", "multiview", "stb", "stereo", "video"]
    assert _complete(["handtools", "--"]) == ["--config", "--debug", "--help", "--quiet", "--verbose", "--version"]
    assert _complete(["handtools", "synth", "--ove"]) == ["--overwrite"]
    assert _complete(["handtools", "import", "images", "--o"]) == ["--out", "--overwrite"]
    assert _complete(["handtools", "mask", "--method", ""]) == ["gt", "keypoints", "skin"]
    assert _complete(["handtools", "mask", "--method", "k"]) == ["keypoints"]
    assert _complete(["handtools", "synth", "--device", ""]) == ["auto", "cpu", "cuda"]
    assert _complete(["handtools", "synth", "--seed", ""]) == []  # free value: nothing to offer
    # Files for path options and positional inputs; an option's value is not taken for a command.
    (tmp_path / "a.h5").touch()
    (tmp_path / "b.h5").touch()
    (tmp_path / "info").mkdir()
    assert _complete(["handtools", "info", ""], cwd=tmp_path) == ["a.h5", "b.h5", "info"]
    assert _complete(["handtools", "mask", "-o", "info", "a"], cwd=tmp_path) == ["a.h5"]
    assert _complete(["handtools", "synth", "--out", ""], cwd=tmp_path) == ["a.h5", "b.h5", "info"]
    assert _complete(["handtools", "synth", "--out", "=", ""], cwd=tmp_path) == ["a.h5", "b.h5", "info"]


@pytest.mark.parametrize("shell, path", [("zsh", "completions/handtools.zsh"), ("fish", "completions/handtools.fish")])
def test_zsh_and_fish_completions_parse(shell, path):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} not installed")
    res = subprocess.run([shell, "-n", str(REPO / path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_zsh_and_fish_completions_cover_every_command_and_option(files):
    zsh, fish = files["completions/handtools.zsh"], files["completions/handtools.fish"]
    for path, opts in _cli_commands().items():
        page = "-".join(["handtools", *path])
        fn = "_" + page.replace("-", "_")
        assert re.search(rf"^{fn}\(\) {{$", zsh, re.M), page
        body = zsh.split(f"\n{fn}() {{\n", 1)[1].split("\n}\n", 1)[0]
        for opt in opts:
            assert re.search(rf"'[^']*{re.escape(opt)}=?\[", body), (page, opt)
            flag = f"-l {opt[2:]}" if opt.startswith("--") else f"-s {opt[1:]}"
            assert flag in fish, (page, opt)
    assert "-a images -d " in fish and "-l method -x -a 'skin keypoints gt'" in fish


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish not installed")
def test_fish_completes_commands_options_and_values():
    def complete(line: str) -> list[str]:
        script = f"source {FISH}; complete -C {line!r}"
        res = subprocess.run(["fish", "-c", script], capture_output=True, text=True, cwd=REPO)
        assert res.returncode == 0, res.stderr
        return sorted(row.split("\t")[0] for row in res.stdout.splitlines())

    assert complete("handtools sy") == ["synth"]
    assert complete("handtools import ") == ["freihand", "ho3d", "images", "multiview", "stb", "stereo", "video"]
    assert complete("handtools import images --o") == ["--out", "--overwrite"]
    assert complete("handtools mask --method ") == ["gt", "keypoints", "skin"]
