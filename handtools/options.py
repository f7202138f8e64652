"""Shared command-line options: defined once, used by many commands.

===================  ========================================================
option               used by
===================  ========================================================
``-v/-q/--debug``    every command (root options, before the subcommand)
``INPUTS...``        every command that reads shards (missing or ``-``: stdin)
``--out``            every command that writes (folder for shards, file else)
``--overwrite``      every command that writes
``--skip-existing``  synth, crop: keep existing outputs, write the missing ones
``--shard-size``     commands that write shards (synth, import, crop, ...)
``--part I/N``       commands that read or generate shards, for array jobs
``--device``         commands that compute with torch
``--mano``           commands that use the hand model
===================  ========================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from handtools.errors import HandtoolsError

Inputs = Annotated[
    Optional[list[str]],
    typer.Argument(
        help="Input shard paths; none or '-' reads paths from stdin, one per line.",
        show_default=False,
    ),
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite/--no-overwrite", help="Replace existing outputs.")
]
SkipExisting = Annotated[
    bool,
    typer.Option(
        "--skip-existing/--no-skip-existing",
        help=(
            "Keep outputs that already exist and write only the missing ones (rerun a killed job or array "
            "task); a kept output is checked to be a complete shard made with the same settings, and its "
            "path is printed like a new one's."
        ),
    ),
]
ShardSize = Annotated[
    int, typer.Option("--shard-size", min=1, help="Samples per output shard (rollover).")
]
Part = Annotated[
    Optional[str],
    typer.Option(
        "--part",
        metavar="I/N",
        help="Process only part I of N (0-based): every N-th shard starting at I.",
    ),
]
Device = Annotated[
    str, typer.Option("--device", metavar="auto|cpu|cuda[:N]", help="Torch device.")
]
Mano = Annotated[
    Optional[Path],
    typer.Option(
        "--mano",
        help="MANO model file (.pkl or .npz); default $HANDTOOLS_MANO, else the bundled open hand model.",
        show_default=False,
    ),
]


def parse_part(spec: Optional[str]) -> Optional[tuple[int, int]]:
    """Parse ``--part I/N`` into ``(I, N)`` with ``0 <= I < N``; None passes through."""
    if spec is None:
        return None
    try:
        i_str, n_str = spec.split("/")
        i, n = int(i_str), int(n_str)
    except ValueError:
        raise typer.BadParameter(f"expected I/N with integers, got {spec!r}", param_hint="--part")
    if n < 1 or not 0 <= i < n:
        raise typer.BadParameter(f"need 0 <= I < N, got {spec!r}", param_hint="--part")
    return i, n


def select_part(items: list, part: Optional[tuple[int, int]]) -> list:
    """Every N-th item starting at I (the ``--part I/N`` rule)."""
    if part is None:
        return list(items)
    i, n = part
    return list(items)[i::n]


def resolve_device(spec: str):
    """``auto`` → CUDA when present (under torchrun the process's own GPU, ``cuda:$LOCAL_RANK``),
    else CPU; validates ``cuda[:N]``."""
    import os

    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local = os.environ.get("LOCAL_RANK")
        if local is not None and local.isdigit() and int(local) < torch.cuda.device_count():
            return torch.device(f"cuda:{int(local)}")  # one GPU per worker, not every worker on cuda:0
        return torch.device("cuda")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise HandtoolsError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HandtoolsError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return dev
    raise typer.BadParameter(f"expected auto, cpu, cuda or cuda:N, got {spec!r}", param_hint="--device")

