"""handtools render's io: which samples are drawn under which names, batches, output checks."""

from __future__ import annotations

import pytest

from handtools.errors import InputError, OutputExistsError
from handtools.io.rendering import SHEET_NAME, batches, check_targets, pick_source, plan_items
from handtools.io.shards import open_shards
from tests.conftest import random_batch, write_shard


@pytest.fixture
def two_shards(tmp_path):
    """Two 3-sample stereo shards with one file name in two folders; the second has predictions."""
    names = ["images", "K", "T_view", "verts3d"]
    a = write_shard(tmp_path / "a" / "s.h5", random_batch(3, names=names))
    b = write_shard(tmp_path / "b" / "s.h5", random_batch(3, names=names + ["pred/verts3d", "joints3d"], seed=1))
    readers = open_shards([a, b])
    yield readers
    for r in readers:
        r.close()


def test_plan_names_and_sources(two_shards):
    items = plan_items(two_shards, "auto", view=1)
    assert [it.stem for it in items] == [f"{k:03d}-s-{i:05d}" for k in range(2) for i in range(3)]  # same stems
    assert [(it.verts, it.joints) for it in (items[0], items[3])] == [("verts3d", None), ("pred/verts3d", None)]
    assert pick_source(two_shards[1], "gt") == ("verts3d", "joints3d")
    with pytest.raises(InputError, match="pred/verts3d: missing dataset"):
        plan_items(two_shards, "pred", view=0)
    with pytest.raises(InputError, match="2 view"):
        plan_items(two_shards, "auto", view=2)


def test_batches_never_span_shards(two_shards):
    items = plan_items(two_shards, "gt", view=0)
    assert [[it.index for it in b] for b in batches(items, 2)] == [[0, 1], [2], [0, 1], [2]]
    assert [len(b) for b in batches(items[::2], 8)] == [2, 1]


def test_existing_outputs_are_refused_before_work(two_shards, tmp_path):
    items = plan_items(two_shards, "gt", view=0)
    out = tmp_path / "vis"
    out.mkdir()
    check_targets(items, out, png=True, export="obj", sheet=True, video=None, overwrite=False)
    (out / SHEET_NAME).write_bytes(b"x")
    (out / "001-s-00002.obj").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="001-s-00002.obj: exists and 1 more"):
        check_targets(items, out, png=True, export="obj", sheet=True, video=None, overwrite=False)
    check_targets(items, out, png=True, export="obj", sheet=True, video=None, overwrite=True)
    check_targets(items, out, png=True, export=None, sheet=False, video=None, overwrite=False)
