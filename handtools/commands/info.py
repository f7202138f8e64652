"""``handtools info``: summarise shards (samples, views, image size, datasets, provenance)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from handtools.io.pipes import read_input_paths
from handtools.io.shards import open_shards
from handtools.options import Inputs


def info(
    inputs: Inputs = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout instead of text.")] = False,
) -> None:
    """Summarise shards: samples, views, image size, datasets present, producer, history.

    \b
    $ handtools synth --views 2 -n 64 --out data/ | handtools info
    $ handtools info --json data/*.h5 | jq .total_samples
    """
    paths = read_input_paths(inputs)
    readers = open_shards(paths)
    try:
        shards = [r.summary() for r in readers]
    finally:
        for r in readers:
            r.close()
    total = {
        "num_shards": len(shards),
        "total_samples": sum(s["num_samples"] for s in shards),
        "kinds": sorted({s["kind"] for s in shards}),
        "shards": shards,
    }
    if as_json:
        typer.echo(json.dumps(total, indent=None))
        return
    for s in shards:
        size = "x".join(map(str, s["image_size"][::-1])) if s["image_size"] else "-"
        typer.echo(f"{s['path']}")
        typer.echo(
            f"  kind {s['kind']}, {s['num_samples']} samples x {s['num_views']} view(s), image {size},"
            f" {s['bytes'] / 1e6:.1f} MB"
        )
        typer.echo(f"  producer: {s['producer']}" + (f"; hand model: {s['hand_model']}" if s["hand_model"] else ""))
        for line in history_table(s["history"]):
            typer.echo(line)
        typer.echo("  datasets:")
        for name, d in s["datasets"].items():
            comp = d["compression"] or "none"
            typer.echo(f"    {name:<16} {d['dtype']:<8} {str(tuple(d['shape'])):<24} {comp}")
    typer.echo(f"total: {total['total_samples']} samples in {total['num_shards']} shard(s)")


#: Widest settings column of the history table (longer settings end in "...").
SETTINGS_WIDTH = 100


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(map(_value, v))
    return str(v)


def history_table(history: list) -> list[str]:
    """A shard's provenance as aligned text lines: step, command, time, version, settings (``k=v``,
    unset options left out), oldest step first; ``history: -`` when it has none."""
    if not history:
        return ["  history: -"]
    rows = [("#", "command", "time", "version", "settings")]
    for k, h in enumerate(history, 1):
        h = h if isinstance(h, dict) else {"command": str(h)}
        args = h.get("args") or {}
        settings = " ".join(f"{a}={_value(v)}" for a, v in args.items() if v is not None and v != [])
        if len(settings) > SETTINGS_WIDTH:
            settings = settings[: SETTINGS_WIDTH - 3] + "..."
        rows.append((str(k), str(h.get("command", "?")), str(h.get("time", "-")), str(h.get("version", "-")),
                     settings or "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    lines = ["  history:"]
    for r in rows:
        lines.append("    " + "  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4])
    return [line.rstrip() for line in lines]
