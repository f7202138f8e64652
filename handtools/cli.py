"""The ``handtools`` root: global options, error handling and subcommand wiring.

Every subcommand lives in its own module under :mod:`handtools.commands`; this
module only wires them together. Errors become one line on stderr and an exit
code from :class:`handtools.errors.ExitCode`; tracebacks only with ``--debug``.
"""

from __future__ import annotations

import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from handtools import __version__
from handtools.console import console, setup_logging, state
from handtools.errors import ExitCode, HandtoolsError, Terminated


def _fail(ctx, message: str) -> None:
    name = ctx.invoked_subcommand or ctx.info_name or "handtools"
    # One line: collapse any newlines the underlying library put in its message.
    text = " ".join(str(message).split())
    console.print(f"handtools {name}: error: {text}", markup=False, highlight=False, soft_wrap=True)


class _HandtoolsGroup(TyperGroup):
    """Turns library errors into one-line messages and exit codes (same under CliRunner)."""

    def list_commands(self, ctx) -> list[str]:  # keep registration order
        return list(self.commands)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.TyperException):
            raise
        except (KeyboardInterrupt, typer.Abort) as exc:
            _say_interrupted(exc)
            raise typer.Exit(ExitCode.INTERRUPTED)
        except BrokenPipeError:
            # Downstream closed the pipe (e.g. `| head`): end quietly.
            raise typer.Exit(ExitCode.OK)
        except (HandtoolsError, ValueError, OSError) as exc:
            if state.debug:
                traceback.print_exc(file=sys.stderr)
            _fail(ctx, str(exc) or type(exc).__name__)
            raise typer.Exit(ExitCode.ERROR)
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing escapes as a traceback
            if state.debug:
                traceback.print_exc(file=sys.stderr)
            _fail(ctx, f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
            raise typer.Exit(ExitCode.ERROR)


app = typer.Typer(
    cls=_HandtoolsGroup,
    name="handtools",
    help=(
        "Recover 3D hand meshes from images without 3D labels in the target domain.\n\n"
        "Subcommands read and write HDF5 shards and compose through pipes, e.g.\n\n"
        "  $ handtools synth --views 2 -n 64 --out data/ | handtools info"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"handtools {__version__}")
        raise typer.Exit()


def _load_config(ctx: typer.Context, path: Optional[Path]) -> None:
    """``--config run.toml``: one table per command (``[synth]``, ``[import.images]``) of option
    values by parameter name (``num = 100``, ``image-size`` or ``image_size``); they become the
    commands' defaults, so the command line wins. Unknown commands or options are usage errors."""
    if path is None:
        return
    import tomllib

    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--config") from None

    def convert(group, table: dict, where: str) -> dict:
        out = {}
        for name, values in table.items():
            cmd = group.get_command(ctx, name)
            if cmd is None or not isinstance(values, dict):
                raise typer.BadParameter(f"{path}: [{where}{name}] is not a handtools command", param_hint="--config")
            if hasattr(cmd, "get_command"):  # a group (import): its commands' tables
                out[name] = convert(cmd, values, f"{where}{name}.")
                continue
            params = {p.name for p in cmd.params}
            out[name] = {}
            for key, value in values.items():
                key = key.replace("-", "_")
                if key not in params:
                    raise typer.BadParameter(f"{path}: [{where}{name}] {key}: no such option", param_hint="--config")
                out[name][key] = value
        return out

    ctx.default_map = convert(ctx.command, data, "")


@app.callback()
def root(
    ctx: typer.Context,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (repeatable).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr; no progress bars.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", metavar="RUN.toml", help="Option values per command from a TOML "
                                     "file ([synth] num = 100); the command line wins.")
    ] = None,
) -> None:
    """Global options; they go before the subcommand name."""
    setup_logging(-1 if quiet else verbose, debug)
    _load_config(ctx, config)


def _register() -> None:
    from handtools.commands import COMMANDS

    for name, func in COMMANDS:
        if isinstance(func, typer.Typer):  # a command group, e.g. `handtools import images`
            app.add_typer(func, name=name)
        else:
            app.command(name=name)(func)


_register()


def _say_interrupted(exc: BaseException) -> None:
    why = f" ({exc})" if isinstance(exc, Terminated) and str(exc) else ""
    console.print(f"handtools: interrupted{why}", markup=False)


def _terminate(signum, frame) -> None:
    raise Terminated(signal.Signals(signum).name)


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry point; returns the process exit code."""
    if hasattr(signal, "SIGPIPE"):
        # `handtools ... | head` must end quietly instead of raising BrokenPipeError.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # SIGTERM (kill, SLURM, docker stop) is handled like Ctrl-C: partial outputs are
    # removed and the exit code is 130.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(args=argv, prog_name="handtools", standalone_mode=True)
    except KeyboardInterrupt as exc:  # a signal while the CLI is still being built, before any command runs
        _say_interrupted(exc)
        return ExitCode.INTERRUPTED
    except SystemExit as exc:
        code = exc.code
        if code is None:
            return ExitCode.OK
        return int(code) if isinstance(code, int) else ExitCode.ERROR
    return ExitCode.OK
