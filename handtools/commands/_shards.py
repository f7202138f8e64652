"""Output helpers shared by the commands that map input shards to output shards
(detect, crop, mask, predict): one output per input, same file name, checked before work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from handtools.errors import InputError, OutputExistsError
from handtools.io.pipes import emit_path

#: Root attributes the writer sets itself; every other root attribute is carried through.
_OWN_ATTRS = ("handtools_schema", "kind", "producer", "history", "num_samples", "num_views")
#: Samples processed (and appended) at once.
CHUNK = 32


def plan_outputs(paths: Sequence[Path], out: Path, overwrite: bool, skip_existing: bool = False) -> list[Path]:
    """``out/<input file name>`` for every input, checked before any work starts.

    With ``skip_existing`` an existing output is allowed (the caller keeps it after
    :func:`kept_outputs` checked it).

    Raises:
        InputError: two inputs share a file name, or an output would replace an input.
        OutputExistsError: an output exists and neither ``overwrite`` nor ``skip_existing`` is set.
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
        if o.exists() and not overwrite and not skip_existing:
            raise OutputExistsError(f"{o}: exists (use --overwrite to replace)")
        outs.append(o)
    return outs


def _steps(history: Sequence[dict]) -> list[tuple]:
    """The parts of a history that define a shard's content: commands and settings, not
    times, versions or ``--part`` (a rerun may split the work differently)."""
    norm = json.loads(json.dumps(list(history), default=str))
    return [(h.get("command"), {k: v for k, v in (h.get("args") or {}).items() if k != "part"}) for h in norm]


def _difference(got: list[tuple], want: list[tuple]) -> str:
    for i, (g, w) in enumerate(zip(got, want)):
        if g[0] != w[0]:
            return f"step {i + 1} is {g[0]!r}, this run's is {w[0]!r}"
        for k in sorted(set(g[1]) | set(w[1])):
            if g[1].get(k) != w[1].get(k):
                return f"{w[0]} {k}={g[1].get(k)!r}, this run {k}={w[1].get(k)!r}"
    return f"{len(got)} processing step(s), this run's make {len(want)}"


def check_kept(path: Path, history: Sequence[dict], attrs: Optional[dict] = None) -> None:
    """``--skip-existing``: check that the existing output ``path`` is a complete, readable
    shard made by the same steps with the same settings as this run's ``history`` (and
    with the root attributes ``attrs``, e.g. the hand model).

    Raises:
        OutputExistsError: it is unreadable or was made differently (naming the first difference).
    """
    from handtools.io.shards import ShardError, ShardReader

    try:
        with ShardReader(path) as r:
            got, got_attrs = r.history, r.attrs
    except ShardError as exc:
        raise OutputExistsError(f"{exc} (an existing output --skip-existing would keep; use --overwrite "
                                "to replace it)") from None
    if _steps(got) != _steps(history):
        why = _difference(_steps(got), _steps(history))
        raise OutputExistsError(f"{path}: exists but was made with other settings ({why}); "
                                "use --overwrite to replace it, or another --out")
    for k, v in (attrs or {}).items():
        if got_attrs.get(k) != v:
            raise OutputExistsError(f"{path}: exists but was made with {k} {got_attrs.get(k)!r}, this run uses "
                                    f"{v!r}; use --overwrite to replace it, or another --out")


def kept_outputs(readers, outs: Sequence[Path], command: str, args: dict) -> set[Path]:
    """``--skip-existing``: the outputs that exist, each checked by :func:`check_kept`
    against the history ``writer_for`` would give it (before any work starts)."""
    from handtools.io.shards import history_entry

    kept = set()
    for reader, o in zip(readers, outs):
        if o.exists():
            check_kept(o, list(reader.history) + [history_entry(f"handtools {command}", args)])
            kept.add(o)
    return kept


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
