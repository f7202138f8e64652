"""Single result files (JSON, PNG, meshes, plots): atomic writes and the checks before them.

Every output appears atomically (docs/design.md, "Pipes"): it is written to a
temporary name in the target folder, then renamed over the target, so a reader
never sees a partial file and an interrupted run leaves no half-written one.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

from handtools.errors import InputError, OutputExistsError


@contextmanager
def atomic_output(path: Path, mode: str = "wb") -> Iterator[IO]:
    """A file object on a temporary file next to ``path``; it replaces ``path`` when the block ends.

    Args:
        path: the target file; its folder must exist.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).

    On an exception inside the block the temporary file is removed and ``path``
    is left as it was. :func:`handtools.durable.atomic_write` does the work (fsync, then
    the rename, then the folder's fsync): the temporary file has the shards' naming
    (``.NAME.tmp-HOST-PID-TOKEN``), so one left by a killed process is cleaned like
    theirs, and the permissions of a newly created file (``0o666`` less the umask).
    """
    from handtools.durable import atomic_write

    with atomic_write(path, mode, overwrite=True) as fh:
        yield fh


def write_atomic(path: Path, data: Union[bytes, str]) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_output(path, "wb" if isinstance(data, bytes) else "w") as fh:
        fh.write(data)
    return Path(path)


def check_output_file(path: Path, overwrite: bool, option: str) -> None:
    """Refuse an output file before any work: a folder, an existing file without
    ``--overwrite``, or a file in a folder that does not exist.

    Args:
        path: the output file. overwrite: ``--overwrite`` given.
        option: the option that named it (``--out``, ``--plot``), for the messages.

    Raises:
        OutputExistsError: ``path`` is a folder, or exists and ``overwrite`` is False.
        InputError: the folder of ``path`` does not exist.
    """
    if path.exists() and path.is_dir():
        raise OutputExistsError(f"{option} {path}: is a folder, expected a file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists (use --overwrite to replace)")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: folder {path.parent} does not exist")
