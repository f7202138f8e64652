"""The resolved configuration of a command run, recorded in what it writes, and printed back as TOML.

Every command function is wrapped by :func:`recorded` (``handtools.commands`` does it for
all of them), which binds its arguments, defaults filled in, once the command line,
``--config`` file and defaults are merged, and keeps them while the command runs
(:func:`current`; a context variable, so ``demo`` calling ``pretrain`` sees pretrain's).
Shards store it in each history step (``history[i]["config"]``) and checkpoints under
``run_config``; ``handtools info --config PATH`` prints it (:func:`to_toml`) as a file
that ``handtools --config FILE <command>`` takes back.

A recorded configuration is ``{"command": ["import", "images"], "params": {...}}``:
``params`` by parameter name, values JSON-like (paths as absolute strings, tuples as
lists); options that only say how to treat existing outputs (``--overwrite``,
``--resume``, ``--allow-change``) and unset (None) values are left out.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import math
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

#: Parameters that say what to do with existing outputs, not what to compute: not recorded.
OPERATIONAL = frozenset({"overwrite", "resume", "allow_change"})

_current: contextvars.ContextVar[Optional[dict]] = contextvars.ContextVar("handtools_run_config", default=None)


def plain(value):
    if isinstance(value, Path):
        return os.path.abspath(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def resolved(command: Sequence[str], params: dict) -> dict:
    """A recorded configuration from a command's bound parameters (see the module doc)."""
    out = {}
    for name, value in params.items():
        if name in OPERATIONAL or value is None:
            continue
        if name == "inputs" and (value == [] or list(value) == ["-"]):
            continue  # read from stdin: the pipe supplies them again
        if name == "inputs":
            value = [v if v == "-" else os.path.abspath(v) for v in map(str, value)]
        out[name] = plain(value)
    return {"command": list(command), "params": out}


def recorded(command: Sequence[str], func: Callable) -> Callable:
    """``func`` (a command function) that records its resolved configuration while it runs."""
    sig = inspect.signature(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        token = _current.set(resolved(command, dict(bound.arguments)))
        try:
            return func(*args, **kwargs)
        finally:
            _current.reset(token)

    return wrapper


def current(**replace) -> Optional[dict]:
    """The running command's recorded configuration (None outside a command), with the
    parameters in ``replace`` set (e.g. ``inputs``: the shard paths a pipe supplied)."""
    cfg = _current.get()
    if cfg is None:
        return None
    cfg = json.loads(json.dumps(cfg))
    for k, v in replace.items():
        if v is not None:
            cfg["params"][k] = [os.path.abspath(x) for x in map(str, v)] if k == "inputs" else plain(v)
    return cfg


# -- TOML ------------------------------------------------------------------------------------
def _key(name: str) -> str:
    ok = name and all(c.isalnum() or c in "-_" for c in name) and name.isascii()
    return name if ok else json.dumps(name)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v), ensure_ascii=False)  # a TOML basic string


def to_toml(configs: Sequence[dict], header: Sequence[str] = ()) -> str:
    """Recorded configurations as one TOML document, a table per command (``[pretrain]``,
    ``[import.images]``); a later configuration of the same command replaces an earlier
    one (a TOML file holds one table per name), noted in a comment. ``header``: comment lines."""
    tables: dict[tuple, dict] = {}
    notes = []
    for cfg in configs:
        name = tuple(cfg["command"])
        if name in tables:
            notes.append(f"an earlier '{' '.join(name)}' step is replaced by the later one")
            del tables[name]
        tables[name] = cfg["params"]
    lines = [f"# {h}" for h in header] + [f"# note: {n}" for n in notes]
    for name, params in tables.items():
        lines += ["", "[" + ".".join(_key(n) for n in name) + "]"]
        lines += [f"{_key(k)} = {_value(v)}" for k, v in params.items()]
    return "\n".join(lines).lstrip("\n") + "\n"
