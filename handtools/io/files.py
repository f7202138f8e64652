"""Single result files (JSON, PNG, meshes, plots): atomic writes and the checks before them.

Every output appears atomically (docs/design.md, "Pipes"): it is written to a
temporary name in the target folder, then renamed over the target, so a reader
never sees a partial file and an interrupted run leaves no half-written one.
"""

from __future__ import annotations

import os
import tempfile
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
    is left as it was. The file gets the permissions of a newly created file
    (``0o666`` less the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # durable before the rename, as handtools.durable does for shards
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so a rename in it survives a crash (best effort: some filesystems refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
