"""The shard series of handtools import: shard k holds records [k S, (k + 1) S), parts, skips, failures."""

from __future__ import annotations

import numpy as np
import pytest

from handtools.errors import InputError, OutputExistsError
from handtools.io.importers import BATCH, Skips, import_history, write_series
from handtools.io.shards import ShardReader


class Rec:
    """A record whose load() gives a 1-view 8x8 frame, or fails like a bad file."""

    loaded: list[int] = []

    def __init__(self, i: int, bad: bool = False, size: int = 8):
        self.i, self.bad, self.size = i, bad, size

    def load(self) -> dict:
        Rec.loaded.append(self.i)
        if self.bad:
            raise InputError(f"rec{self.i}: unreadable")
        return {"images": np.full((1, self.size, self.size, 3), self.i, np.uint8),
                "K": np.eye(3, dtype=np.float32)[None], "source": f"rec{self.i}"}


def _write(records, tmp_path, **kw):
    args = dict(total=len(records), out=tmp_path, prefix="t", shard_size=5, part=None, overwrite=False,
                skips=Skips(False), history=import_history("tests", {}))
    args.update(kw)
    return write_series(records, **args)


def _ids(path) -> list[int]:
    return [int(s.removeprefix("rec")) for s in ShardReader(path).read("source")]


def test_shards_parts_and_skips(tmp_path, capsys):
    Rec.loaded = []
    recs = [Rec(i, bad=i in (3, 11)) for i in range(12)]
    assert _write(recs, tmp_path, part=(1, 2), skips=Skips(True)) == 5  # shard 1: records 5-9
    assert Rec.loaded == [5, 6, 7, 8, 9]  # the other parts' records are not loaded
    assert _ids(tmp_path / "t-00001.h5") == [5, 6, 7, 8, 9] and not (tmp_path / "t-00000.h5").exists()
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / "t-00001.h5")]
    assert _write(recs, tmp_path, part=(0, 2), skips=Skips(True)) == 5  # shards 0 and 2, bad 3 and 11 skipped
    assert _ids(tmp_path / "t-00000.h5") == [0, 1, 2, 4] and _ids(tmp_path / "t-00002.h5") == [10]
    with pytest.raises(OutputExistsError, match="t-00001.h5: exists"):
        _write(recs, tmp_path, part=(1, 2))


def test_many_appends_per_shard(tmp_path):
    recs = [Rec(i) for i in range(2 * BATCH + 3)]
    assert _write(recs, tmp_path, shard_size=len(recs)) == len(recs)
    assert _ids(tmp_path / "t-00000.h5") == list(range(len(recs)))


def test_failures_leave_no_partial_shard(tmp_path):
    with pytest.raises(InputError, match="rec2: unreadable"):
        _write([Rec(0), Rec(1), Rec(2, bad=True)], tmp_path)
    with pytest.raises(InputError, match="sizes differ"):
        _write([Rec(0), Rec(1, size=9)], tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="every sample was bad"):
        _write([Rec(0, bad=True)], tmp_path, skips=Skips(True))
    with pytest.raises(InputError, match="no samples found"):
        _write([], tmp_path)
    assert _write([Rec(0)], tmp_path, part=(1, 2)) == 0  # a part with no shard: a warning, not an error
