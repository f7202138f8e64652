"""stderr console, logging and progress bars (rich), shared by every command.

stdout carries data only; everything here writes to stderr.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)
log = logging.getLogger("handtools")


class _State:
    verbosity: int = 0  # -1 quiet, 0 normal, >0 verbose
    debug: bool = False


state = _State()


def setup_logging(verbosity: int, debug: bool) -> None:
    """Configure the ``handtools`` logger once, from the root options."""
    state.verbosity = verbosity
    state.debug = debug
    level = logging.DEBUG if (debug or verbosity > 0) else logging.WARNING if verbosity < 0 else logging.INFO
    log.setLevel(level)
    if not any(isinstance(h, RichHandler) for h in log.handlers):
        handler = RichHandler(console=console, show_time=False, show_path=debug, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.propagate = False


@contextmanager
def progress(transient: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr; silent under ``-q``."""
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=state.verbosity < 0,
    )
    with bar:
        yield bar
