"""Durable, exclusive file output (standard library only).

A file is written under a temporary name in its target folder, flushed and
fsync'ed, then *published* under its final name without ever replacing a file
that appeared there meanwhile, and the folder is fsync'ed so the new name
survives a crash. Used by the shard writer; usable by anything that writes one
file (checkpoints, hand models, figures):

    with atomic_write(path, overwrite=False) as f:   # f: binary file object
        torch.save(state, f)

The pieces:

* :func:`temp_path` names a temporary file ``.NAME.tmp-HOST-PID-RANDOM`` next to
  ``NAME``: hidden, and recognisable by :func:`parse_temp_name`, so the next run
  into the folder can tell its own kind of leftovers from other files.
* :func:`publish` makes the temporary file appear as the final name. Without
  ``overwrite`` it is an exclusive create (``os.link``): if the final name exists,
  even one written by a concurrent process a moment ago, it raises
  :class:`PublishConflict` and leaves both files alone. With ``overwrite`` it is
  ``os.replace``. On filesystems without hard links it claims the name with
  ``O_CREAT | O_EXCL`` and renames over its own placeholder (a reader may then see
  an empty file for an instant, never a partial one).
* :func:`clean_stale_temps` removes the temporary files that a killed process
  (SIGKILL, power loss) left in a folder: only those whose writer ran on this host
  and is no longer alive. Others are returned so the caller can report them.
* :class:`LatchingFile` is a file object for C libraries that call back into Python
  for I/O (h5py's ``fileobj`` driver) and must never see an exception: the first
  write error (e.g. ``ENOSPC``) is latched for the caller to raise, later writes
  go to memory, so the library can finish and close cleanly.
* :func:`deferred_signals` holds SIGINT/SIGTERM back while such a library runs,
  so ``KeyboardInterrupt`` is raised in Python code after it returns, never inside
  one of its callbacks.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, NamedTuple, Optional, Union

PathLike = Union[str, os.PathLike]

#: ``.NAME.tmp-HOST-PID-TOKEN`` (HOST with every character outside [A-Za-z0-9_] as ``_``).
_TEMP_RE = re.compile(r"^\.(?P<final>.+)\.tmp-(?P<host>[A-Za-z0-9_]*)-(?P<pid>[0-9]+)-(?P<token>[0-9a-f]{8})$")
#: Errors that mean "no room": full device or exhausted quota.
DISK_FULL_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
#: ``os.link`` failures that mean "this filesystem has no hard links", not "name taken".
_NO_LINK_ERRNOS = frozenset(
    e for e in (errno.EPERM, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", None), errno.EMLINK, errno.EXDEV,
                errno.EACCES, errno.ENOSYS)
    if e is not None
)


class PublishConflict(FileExistsError):
    """The final name was taken (by another process) while the file was being written."""


class TempInfo(NamedTuple):
    """What a temporary file's name says about it."""

    final: str  # the final file name it was meant for
    host: str  # sanitised host name of the writer
    pid: int  # process id of the writer


def host_tag() -> str:
    """This host's name as it appears in temporary file names."""
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:64]


def temp_path(final: PathLike) -> Path:
    """A fresh temporary name for ``final``, in the same folder (so publishing is a rename/link)."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}")


def parse_temp_name(name: str) -> Optional[TempInfo]:
    """The final name, host and pid encoded in a temporary file name; None for any other name."""
    m = _TEMP_RE.match(name)
    if m is None:
        return None
    return TempInfo(m["final"], m["host"], int(m["pid"]))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True  # cannot tell: assume alive, never delete what may be in use
    return True


def is_stale(path: PathLike) -> bool:
    """A temporary file whose writer ran on this host and is gone (safe to delete)."""
    info = parse_temp_name(Path(path).name)
    return info is not None and info.host == host_tag() and not pid_alive(info.pid)


def clean_stale_temps(folder: PathLike) -> tuple[list[Path], list[Path]]:
    """Delete the stale temporary files in ``folder``.

    Returns:
        ``(removed, kept)``: the stale ones deleted, and the temporary files left
        alone because their writer is alive or ran on another host (a shared
        filesystem: this host cannot tell whether it is still running).
    """
    removed: list[Path] = []
    kept: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed, kept
    for entry in entries:
        if parse_temp_name(entry.name) is None or not entry.is_file(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if is_stale(path):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:  # another run cleaned it first
                pass
        else:
            kept.append(path)
    return removed, kept


def create_exclusive(path: PathLike) -> int:
    """Create ``path`` (must not exist) for reading and writing; returns the descriptor."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)


def fsync_path(path: PathLike) -> None:
    """Flush a file's data to the device."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: PathLike) -> None:
    """Make a folder's entries (a new or renamed name) durable; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:  # some filesystems refuse fsync on folders: not an error
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def remove_quietly(path: Optional[PathLike]) -> None:
    """Delete a file if it exists; never raises (clean-up on an error path)."""
    if path is None:
        return
    try:
        os.unlink(path)
    except OSError:
        pass


def publish(tmp: PathLike, final: PathLike, *, overwrite: bool = False) -> None:
    """Give the finished, fsync'ed file ``tmp`` its final name, then make the name durable.

    Args:
        tmp: the temporary file (same folder as ``final``); gone afterwards.
        final: the name to publish under.
        overwrite: replace an existing ``final`` (``os.replace``). Without it an
            existing ``final`` is never replaced, even one created a moment ago by
            another process.

    Raises:
        PublishConflict: ``final`` exists and ``overwrite`` is False (``tmp`` is kept:
            the caller decides whether to delete it).
    """
    tmp, final = Path(tmp), Path(final)
    if overwrite:
        os.replace(tmp, final)
    else:
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise PublishConflict(errno.EEXIST, "exists", str(final)) from None
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise
            # No hard links here (vfat, some FUSE/SMB mounts): claim the name, then
            # rename over our own placeholder.
            try:
                os.close(create_exclusive(final))
            except FileExistsError:
                raise PublishConflict(errno.EEXIST, "exists", str(final)) from None
            os.replace(tmp, final)
        else:
            os.unlink(tmp)
    fsync_dir(final.parent)


def free_bytes(folder: PathLike) -> Optional[int]:
    """Bytes available to this user in ``folder``'s filesystem (None when unknown)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def is_disk_full(exc: BaseException) -> bool:
    """Whether an exception is a full device or exhausted quota (``ENOSPC``/``EDQUOT``)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


@contextmanager
def atomic_write(final: PathLike, mode: str = "wb", *, overwrite: bool = False) -> Iterator[IO]:
    """Write ``final`` durably: a file object on a temporary name, published on success.

    Text modes write UTF-8. The temporary name is :func:`temp_path`'s, so a writer killed
    mid-write leaves a file :func:`clean_stale_temps` recognises.

    On an exception (or Ctrl-C) inside the block the temporary file is deleted and
    ``final`` is untouched. Raises :class:`PublishConflict` when ``final`` exists
    (or appears meanwhile) and ``overwrite`` is False.
    """
    if "w" not in mode:
        raise ValueError(f"atomic_write needs a write mode, got {mode!r}")
    final = Path(final)
    if final.exists() and not overwrite:
        raise PublishConflict(errno.EEXIST, "exists", str(final))
    tmp = temp_path(final)
    fd = create_exclusive(tmp)
    try:
        text = {} if "b" in mode else {"encoding": "utf-8"}
        with os.fdopen(fd, mode.replace("w", "r+") if "+" not in mode else mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        publish(tmp, final, overwrite=overwrite)
    except BaseException:
        remove_quietly(tmp)
        raise


@contextmanager
def deferred_signals(signums=(signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold the given signals back inside the block; the first one is handled when it ends.

    Inside the block a signal is only recorded; on leaving, the handlers in place
    before are restored and the recorded signal goes to its handler (Ctrl-C's
    ``KeyboardInterrupt`` is raised there, in the caller's code, not inside a C
    library's callback). Outside the main thread (where handlers cannot be set)
    the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def record(signum, frame):
        caught.append(signum)

    previous = {}
    try:
        for s in signums:
            previous[s] = signal.signal(s, record)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if caught:
            _redeliver(caught[0], previous.get(caught[0]))


def _redeliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action (terminate), now that it is not held


class LatchingFile:
    """A binary file whose I/O methods never raise: the first error is latched.

    For C libraries that do their I/O through Python callbacks (h5py's ``fileobj``
    driver) and can crash or print unraisable tracebacks when a callback raises.
    After the first failed write (``error`` is then set), writes go to an in-memory
    overlay that later reads see, so the library can finish its work and close
    consistently; the caller checks :attr:`error` after each call into the library,
    raises it, and deletes the file.

    Args:
        fd: a descriptor opened for reading and writing (taken over: closed by :meth:`close`).
    """

    def __init__(self, fd: int):
        self._raw = os.fdopen(fd, "r+b", buffering=0)
        self._pos = 0
        self._size = os.fstat(fd).st_size
        self._overlay: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self.error: Optional[BaseException] = None

    # -- the file protocol h5py uses: seek, tell, readinto/read, write, truncate, flush
    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = int(pos)
        elif whence == 1:
            self._pos += int(pos)
        else:
            self._pos = self._size + int(pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = len(view)
        got = 0
        try:
            self._raw.seek(self._pos)
            while got < n:
                k = self._raw.readinto(view[got:])
                if not k:
                    break
                got += k
        except BaseException as exc:  # noqa: BLE001 - never raise into the C library
            self._latch(exc)
        view[got:] = bytes(n - got)  # past the end of the file: zeros, as for a sparse file
        for off, data in self._overlay:  # writes that never reached the disk
            lo, hi = max(off, self._pos), min(off + len(data), self._pos + n)
            if lo < hi:
                view[lo - self._pos : hi - self._pos] = data[lo - off : hi - off]
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(0, self._size - self._pos)
        buf = bytearray(size)
        self.readinto(buf)
        return bytes(buf)

    def write(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = len(view)
        if self.error is None:
            try:
                self._raw.seek(self._pos)
                done = 0
                while done < n:
                    done += self._raw.write(view[done:])
            except BaseException as exc:  # noqa: BLE001 - never raise into the C library
                self._latch(exc)
        if self.error is not None:
            self._overlay.append((self._pos, bytes(view)))
        self._pos += n
        self._size = max(self._size, self._pos)
        return n

    def truncate(self, size: Optional[int] = None) -> int:
        size = self._pos if size is None else int(size)
        if self.error is None:
            try:
                self._raw.truncate(size)
            except BaseException as exc:  # noqa: BLE001
                self._latch(exc)
        self._size = size
        return size

    def flush(self) -> None:
        pass  # unbuffered

    # -- for the owner
    def _latch(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc

    def fileno(self) -> int:
        return self._raw.fileno()

    def sync(self) -> None:
        """fsync the data written so far (raises, unlike the I/O methods)."""
        if self.error is not None:
            raise self.error
        os.fsync(self._raw.fileno())

    def close(self) -> None:
        try:
            self._raw.close()
        except OSError as exc:  # close can report a delayed write error (NFS)
            self._latch(exc)
        self._overlay = []

    @property
    def closed(self) -> bool:
        return self._raw.closed
