"""Output helpers shared by the commands that map input shards to output shards
(detect, crop, mask, predict): one output per input, same file name, checked before work."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from handtools.errors import InputError, OutputExistsError
from handtools.io.pipes import emit_path

#: Root attributes the writer sets itself; every other root attribute is carried through.
_OWN_ATTRS = ("handtools_schema", "kind", "producer", "history", "num_samples", "num_views")
#: Samples processed (and appended) at once.
CHUNK = 32


def plan_outputs(paths: Sequence[Path], out: Path, overwrite: bool) -> list[Path]:
    """``out/<input file name>`` for every input, checked before any work starts.

    Raises:
        InputError: two inputs share a file name, or an output would replace an input.
        OutputExistsError: an output exists and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder (--out takes a folder)")
    inputs = {p.resolve(): p for p in paths}
    seen: dict[Path, Path] = {}
    outs = []
    for p in paths:
        o = out / p.name
        if o in seen:
            raise InputError(f"{p} and {seen[o]} would both be written to {o} (same file name)")
        seen[o] = p
        if o.resolve() in inputs:
            raise InputError(f"{o}: output would replace an input shard (choose another --out)")
        if o.exists() and not overwrite:
            raise OutputExistsError(f"{o}: exists (use --overwrite to replace)")
        outs.append(o)
    return outs


def writer_for(reader, out_path: Path, *, kind: str, command: str, args: dict, overwrite: bool,
               attrs: Optional[dict] = None):
    """A :class:`ShardWriter` writing ``out_path`` (one shard) that continues ``reader``'s
    history and carries its extra root attributes (``hand_model``, ``domain``, ...)."""
    from handtools.io.shards import ShardWriter, history_entry

    carried = {}
    for k, v in reader.attrs.items():
        if k in _OWN_ATTRS:
            continue
        carried[k] = v.tolist() if isinstance(v, np.ndarray) else v
    carried.update(attrs or {})
    return ShardWriter(
        out_path.parent, kind=kind, num_views=reader.num_views, producer=f"handtools {command}",
        history=list(reader.history) + [history_entry(f"handtools {command}", args)],
        shard_size=reader.num_samples, name=lambda _k, n=out_path.name: n, overwrite=overwrite,
        attrs=carried, on_shard=emit_path,
    )


def chunks(indices: np.ndarray, size: int = CHUNK):
    """Consecutive pieces of at most ``size`` indices."""
    for s in range(0, len(indices), size):
        yield indices[s : s + size]
