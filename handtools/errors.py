"""Exit codes and the user-facing error type.

Library code raises ``ValueError``/``OSError`` (core) or :class:`HandtoolsError`
(io, commands); the CLI root turns them into one line on stderr and an exit code.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every handtools command."""

    OK = 0
    ERROR = 1  # bad input, failed gate, runtime failure
    USAGE = 2  # bad command line
    INTERRUPTED = 130  # Ctrl-C (SIGINT) or SIGTERM: partial outputs removed


class HandtoolsError(Exception):
    """An error the user can act on; its message is printed as one line."""


class InputError(HandtoolsError):
    """An input file or stream is missing, unreadable or malformed."""


class OutputExistsError(HandtoolsError):
    """An output exists and ``--overwrite`` was not given."""


class OutputError(HandtoolsError):
    """An output could not be written (full disk, exhausted quota, I/O error)."""


class DiskFullError(OutputError):
    """The target filesystem is full or the quota is exhausted (``ENOSPC``/``EDQUOT``)."""


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM) turned into an interrupt, handled like Ctrl-C."""
