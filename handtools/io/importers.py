"""Writing imported samples (``handtools import ...``) as a series of frames shards.

The dataset and media readers (:mod:`handtools.io.datasets`) turn sources into
records whose ``load()`` gives one sample dict (schema datasets -> arrays);
:func:`write_series` loads them and writes ``<prefix>-<k>.h5`` shards,
skipping bad samples when asked and reporting each skip on stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from handtools.console import console, log, progress
from handtools.errors import InputError, OutputExistsError
from handtools.io.pipes import emit_path

BATCH = 16  # samples per append: bounds memory for large frames


class Skips:
    """Collects skipped samples (``--skip-bad``) and reports each on stderr.

    Args:
        enabled: skip bad samples (else the first bad one is an error).
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.messages: list[str] = []

    @property
    def on_bad(self) -> Optional[Callable[[str], None]]:
        """The callback for the record readers: ``add`` when skipping, else None (they raise)."""
        return self.add if self.enabled else None

    def add(self, message: str) -> None:
        self.messages.append(message)
        # Printed whole on one line (the log handler would shorten long paths).
        console.print(f"handtools import: skipped: {message}", markup=False, highlight=False, soft_wrap=True)

    def summary(self) -> None:
        if self.messages:
            console.print(f"handtools import: skipped {len(self.messages)} bad sample(s) (listed above)",
                          markup=False, highlight=False, soft_wrap=True)


def import_history(command: str, args: dict) -> list:
    """The ``history`` of shards written by ``handtools import <command>`` with ``args``."""
    from handtools.io.shards import history_entry

    return [history_entry(f"handtools import {command}", args)]


def _stack(samples: list[dict]) -> dict:
    out = {}
    for key in samples[0]:
        vals = [s[key] for s in samples]
        out[key] = np.array(vals, dtype=object) if key == "source" else np.stack([np.asarray(v) for v in vals])
    return out


def _signature(sample: dict) -> dict:
    return {k: (np.shape(v), np.asarray(v).dtype.kind) for k, v in sample.items() if k != "source"}


def _shard_name(prefix: str, k: int) -> str:
    return f"{prefix}-{k:05d}.h5"


def _check_free(out: Path, prefix: str, total: Optional[int], shard_size: int,
                part: Optional[tuple[int, int]], overwrite: bool) -> None:
    """Refuse before any work when a shard this run would write exists (any ``<prefix>-*.h5`` when
    the number of records is unknown) and ``overwrite`` is False."""
    if overwrite or not out.is_dir():
        return
    if total is not None:
        n_shards = -(-total // shard_size)
        taken = [out / _shard_name(prefix, k) for k in range(n_shards) if part is None or k % part[1] == part[0]]
        taken = [p for p in taken if p.exists()]
    else:
        taken = sorted(out.glob(f"{prefix}-*.h5"))
    if taken:
        raise OutputExistsError(f"{taken[0]}: exists (use --overwrite to replace)")


class _ShardOut:
    """One shard of the series: its writer is made on the first sample, samples are appended BATCH at a time."""

    def __init__(self, make_writer: Callable[[int], object]):
        self._make = make_writer  # num_views -> ShardWriter
        self.writer = None
        self.batch: list[dict] = []
        self.written = 0

    def add(self, sample: dict) -> None:
        self.batch.append(sample)
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        if self.writer is None:
            self.writer = self._make(int(self.batch[0]["images"].shape[0]))
        self.writer.append(_stack(self.batch))
        self.written += len(self.batch)
        self.batch = []


def _load(rec, skips: Skips, ref: Optional[dict]) -> tuple[Optional[dict], Optional[dict]]:
    """(sample, reference signature), or (None, ref) for a bad sample that ``skips`` skips.

    Raises InputError for a bad sample when not skipping, and for a sample whose
    datasets or sizes differ from the first one's (a shard holds one size).
    """
    try:
        sample = rec.load()
    except InputError as exc:
        if not skips.enabled:
            raise
        skips.add(str(exc))
        return None, ref
    sig = _signature(sample)
    if ref is not None and sig != ref:
        diff = sorted(set(sig.items()) ^ set(ref.items()))
        raise InputError(f"{sample['source']}: datasets or sizes differ from earlier samples"
                         f" ({', '.join(f'{k_}{s[0]}' for k_, s in diff[:4])})")
    return sample, sig


def write_series(
    records: Iterable,
    *,
    total: Optional[int],
    out: Path,
    prefix: str,
    shard_size: int,
    part: Optional[tuple[int, int]],
    overwrite: bool,
    skips: Skips,
    history: list,
    attrs: Optional[dict] = None,
) -> int:
    """Load records and write them as ``<prefix>-<k>.h5`` frames shards; returns samples written.

    Shard k holds records ``[k S, (k + 1) S)`` (fewer when some are skipped), so
    ``--part I/N`` (``part=(I, N)``) selects shards exactly as for ``synth``: the
    records of other parts' shards are passed over without being loaded. Each
    finished shard's path is printed on stdout; a shard being written when an
    error occurs is removed.

    Raises:
        OutputExistsError: a shard to write exists and ``overwrite`` is False.
        InputError: a bad sample (without ``skips.enabled``), samples of
            different sizes, or nothing to write.
    """
    from handtools.io.shards import ShardWriter

    _check_free(out, prefix, total, shard_size, part, overwrite)
    it = iter(records)
    ref: Optional[dict] = None
    written = attempted = k = 0
    done = False
    with progress() as bar:
        task = bar.add_task(f"import {prefix}", total=total)
        while not done:
            mine = part is None or k % part[1] == part[0]
            shard = _ShardOut(lambda views, k=k: ShardWriter(
                out, kind="frames", num_views=views, producer="handtools import", history=history,
                shard_size=shard_size, name=lambda _, k=k: _shard_name(prefix, k), overwrite=overwrite,
                attrs=attrs, on_shard=emit_path))
            try:
                for _ in range(shard_size):
                    rec = next(it, None)
                    if rec is None:
                        done = True
                        break
                    bar.advance(task)
                    if not mine:
                        continue
                    attempted += 1
                    sample, ref = _load(rec, skips, ref)
                    if sample is not None:
                        shard.add(sample)
                shard.flush()
            except BaseException:
                if shard.writer is not None:
                    shard.writer.abort()
                raise
            finally:
                written += shard.written
            if shard.writer is not None:
                shard.writer.close()
            k += 1
    skips.summary()
    _check_written(written, attempted, skips, part, k)
    return written


def _check_written(written: int, attempted: int, skips: Skips, part: Optional[tuple[int, int]], shards: int) -> None:
    """An import that wrote nothing is an error, unless ``--part`` simply selected no shard."""
    if written:
        return
    if attempted or skips.messages:
        raise InputError(f"nothing imported: every sample was bad ({len(skips.messages)} skipped)")
    if part is None:
        raise InputError("nothing to import: no samples found")
    log.warning(f"part {part[0]}/{part[1]} selects no shard of {shards} (nothing written)")
