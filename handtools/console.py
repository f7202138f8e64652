"""stderr console, logging and progress bars (rich), shared by every command.

stdout carries data only; everything here writes to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Optional

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


#: Seconds between two progress lines when stderr is not a terminal ($HANDTOOLS_PROGRESS_SECONDS).
PLAIN_INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s, 3600)
    m, s = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class PlainProgress:
    """Progress as plain lines for batch logs (Slurm output files, CI): no control characters.

    Same calls as :class:`rich.progress.Progress` as the commands use it (``add_task``,
    ``advance``, ``update``). A line per task at most every ``interval`` seconds (and one at
    the end of tasks that printed one), e.g. ``synth: 120/1000 (12%), 4.1/s, 3m35s left``.
    """

    def __init__(self, stream=None, interval: Optional[float] = None, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        if interval is None:
            interval = float(os.environ.get("HANDTOOLS_PROGRESS_SECONDS", PLAIN_INTERVAL_S))
        self.interval, self.clock = interval, clock
        self.tasks: list[dict] = []

    def add_task(self, description: str, total: Optional[float] = None, **_) -> int:
        now = self.clock()
        self.tasks.append(dict(description=description, total=total, completed=0.0, start=now, last=now,
                               printed=False, start_done=0.0))
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, advance=advance)

    def update(self, task: int, *, total: Optional[float] = None, completed: Optional[float] = None,
               advance: Optional[float] = None, description: Optional[str] = None, **_) -> None:
        t = self.tasks[task]
        if total is not None and total != t["total"]:  # a new phase (e.g. an epoch's steps): rate from here
            t.update(total=total, start=self.clock(), start_done=completed if completed is not None else 0.0)
        if description is not None:
            t["description"] = description
        if completed is not None:
            t["completed"] = float(completed)
        if advance is not None:
            t["completed"] += advance
        if self.clock() - t["last"] >= self.interval:
            self._line(t)

    def _line(self, t: dict) -> None:
        now = self.clock()
        t["last"], t["printed"] = now, True
        done, total = t["completed"], t["total"]
        rate = (done - t["start_done"]) / max(now - t["start"], 1e-9)
        text = f"{t['description']}: {done:g}" + (f"/{total:g} ({100 * done / total:.0f}%)" if total else "")
        text += f", {rate:.3g}/s"
        if total and rate > 0:
            text += f", {_duration((total - done) / rate)} left"
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        for t in self.tasks:
            if t["printed"] and t["last"] != self.clock():
                self._line(t)


@contextmanager
def progress(transient: bool = True) -> Iterator[Progress]:
    """A rich progress bar on stderr at a terminal; periodic plain lines otherwise
    (:class:`PlainProgress`: batch logs get progress without control characters); silent under ``-q``."""
    if state.verbosity >= 0 and not console.is_terminal:
        plain = PlainProgress()
        yield plain  # type: ignore[misc]
        plain.finish()
        return
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
