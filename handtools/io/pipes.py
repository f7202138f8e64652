"""The stdin/stdout shard-path protocol.

Inputs are shard paths given as arguments, or read one per line from stdin when
none (or ``-``) are given. Outputs are announced one path per line on stdout.
A folder argument stands for the ``*.h5`` shards inside it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

from handtools.console import log
from handtools.errors import InputError


def read_input_paths(args: Optional[Sequence[str]], *, allow_empty: bool = False) -> list[Path]:
    """Resolve the command's inputs to existing shard paths, in order.

    ``args`` empty/None or ``['-']`` reads paths from stdin (one per line, blank
    lines ignored); a warning goes to stderr when stdin is a terminal. Folders are
    expanded to their ``*.h5`` files (sorted).
    """
    items = list(args or [])
    if not items or items == ["-"]:
        if sys.stdin is None:
            raise InputError("no inputs given and no standard input")
        if sys.stdin.isatty():
            log.warning("reading shard paths from the terminal (stdin); end with Ctrl-D")
        items = [line.strip() for line in sys.stdin if line.strip()]
    elif "-" in items:
        raise InputError("'-' (stdin) cannot be mixed with path arguments")
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("*.h5"))
            if not found:
                raise InputError(f"{p}: folder holds no .h5 shards")
            paths.extend(found)
        elif not p.exists():
            raise InputError(f"{p}: no such file")
        else:
            paths.append(p)
    if not paths and not allow_empty:
        raise InputError("no input shards (give paths as arguments or one per line on stdin)")
    return paths


#: Open :func:`collect_outputs` lists, innermost last (a program calling commands as functions).
_collectors: list[list[Path]] = []


def emit_path(path: Path) -> None:
    """Announce a finished output: one path per line on stdout, flushed for pipes, or
    into the innermost :func:`collect_outputs` list when one is open."""
    if _collectors:
        _collectors[-1].append(Path(path))
        return
    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()


@contextmanager
def collect_outputs() -> Iterator[list[Path]]:
    """Call commands as Python functions and get their outputs as values instead of on stdout::

        with collect_outputs() as made:
            synth(out=Path("frames"), num=8)
        # made == [Path("frames/synth-00000.h5")]
    """
    made: list[Path] = []
    _collectors.append(made)
    try:
        yield made
    finally:
        _collectors.remove(made)
