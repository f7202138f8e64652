"""``handtools info``: summarise shards (samples, views, image size, datasets, provenance)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from handtools.errors import InputError
from handtools.io.pipes import read_input_paths
from handtools.io.shards import ShardReader, open_shards
from handtools.options import Inputs


def info(
    inputs: Inputs = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout instead of text.")] = False,
    as_config: Annotated[bool, typer.Option(
        "--config", help="Print the full configuration recorded in one checkpoint (.pt) or shard as a TOML file: "
        "`handtools --config FILE <command>` repeats the run (the command line wins).")] = False,
) -> None:
    """Summarise shards: samples, views, image size, datasets present, producer, history.

    \b
    $ handtools synth --views 2 -n 64 --out data/ | handtools info
    $ handtools info --json data/*.h5 | jq .total_samples
    $ handtools info --config prior.pt > run.toml
    $ handtools --config run.toml pretrain --out again.pt
    """
    paths = read_input_paths(inputs)
    if as_config:
        if len(paths) != 1:
            raise InputError(f"--config prints one run's configuration; got {len(paths)} paths")
        typer.echo(config_toml(paths[0]), nl=False)
        return
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


def config_toml(path) -> str:
    """The configuration recorded in a checkpoint (``run_config``) or in a shard's history
    steps (``config``), as TOML (:func:`handtools.runconfig.to_toml`)."""
    import zipfile
    from pathlib import Path

    from handtools import runconfig

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if zipfile.is_zipfile(path):  # a torch checkpoint
        import torch

        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files
            raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
        cfg = ckpt.get("run_config") if isinstance(ckpt, dict) else None
        if cfg is None:
            raise InputError(f"{path}: no recorded configuration (written before handtools recorded it)")
        name = " ".join(cfg["command"])
        header = [f"handtools {name}: the configuration recorded in {path}",
                  f"repeat it: handtools --config THIS.toml {name} --out ANOTHER (the command line wins)"]
        for k, old, new in cfg.get("changed_on_resume", []):
            header.append(f"resumed with --allow-change: {k} {old} -> {new}; the values below are the last run's")
        return runconfig.to_toml([cfg], header)
    with ShardReader(path) as r:
        history = list(r.history)
    configs = [h["config"] for h in history if isinstance(h, dict) and isinstance(h.get("config"), dict)]
    missing = [str(h.get("command", "?")) if isinstance(h, dict) else str(h) for h in history
               if not (isinstance(h, dict) and isinstance(h.get("config"), dict))]
    if not configs:
        raise InputError(f"{path}: no recorded configuration (written before handtools recorded it)")
    pipe = " | ".join(f"handtools --config THIS.toml {' '.join(c['command'])}" for c in configs)
    header = [f"the configuration of each step that made {path}", f"repeat them: {pipe}",
              "(inputs read from a pipe are not recorded: the pipe supplies them again)"]
    header += [f"no configuration recorded for the step '{m}'" for m in missing]
    return runconfig.to_toml(configs, header)
