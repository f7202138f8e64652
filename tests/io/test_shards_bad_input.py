"""Bad shards are refused at the door: non-finite values, degenerate intrinsics, a
non-positive baseline, malformed root attributes, non-HDF5, truncated and corrupt files.
Each is one ShardError naming the file (and the dataset and sample where known), and one
line on stderr with exit 1 through the CLI, never a traceback or "internal error"."""

from __future__ import annotations

import faulthandler
import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from handtools.io.shards import ShardError, ShardReader, ShardWriter
from tests.conftest import REPO, random_batch, write_shard

NAMES = ["images", "K", "T_view", "baseline", "keypoints2d", "bbox", "masks", "depth", "joints3d", "verts3d",
         "source"]


@pytest.fixture
def good(tmp_path):
    return write_shard(tmp_path / "good" / "a.h5", random_batch(3, v=2, names=NAMES))


def _edit(good, tmp_path, fn, name="bad.h5"):
    p = tmp_path / "bad" / name
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(good.read_bytes())
    with h5py.File(p, "a") as f:
        fn(f)
    return p


def _set(name, index, value):
    def fn(f):
        a = f[name][...]
        a[index] = value
        f[name][...] = a

    return fn


def _attr(key, value):
    def fn(f):
        f.attrs[key] = value

    return fn


VALUE_CASES = {
    "K_inf": (_set("K", (1, 0, 0, 0), np.inf), "K: contains inf (sample 1)"),
    "K_nan": (_set("K", (2, 1, 0, 2), np.nan), "K: contains NaN (sample 2)"),
    "joints3d_inf": (_set("joints3d", (1, 3, 2), np.inf), "joints3d: contains inf (sample 1)"),
    "keypoints2d_-inf": (_set("keypoints2d", (0, 1, 4, 0), -np.inf), "keypoints2d: contains -inf (sample 0)"),
    "verts3d_nan": (_set("verts3d", (2, 100, 1), np.nan), "verts3d: contains NaN (sample 2)"),
    "T_view_inf": (_set("T_view", (0, 1, 0, 3), np.inf), "T_view: contains inf (sample 0)"),
    "K_zero": (_set("K", (1,), 0.0), "K: not pinhole intrinsics"),
    "K_negative_fx": (_set("K", (2, 1, 0, 0), -300.0), "sample 2, view 1: fx=-300"),
    "K_zero_fy": (_set("K", (0, 0, 1, 1), 0.0), "sample 0, view 0"),
    "K_bottom_row": (_set("K", (1, 0, 2, 2), 0.0), "K: not pinhole intrinsics"),
    "K_skewed_row": (_set("K", (1, 1, 1, 0), 5.0), "sample 1, view 1"),
    "baseline_zero": (_set("baseline", (1,), 0.0), "baseline: stereo baseline must be > 0 metres, got 0 (sample 1)"),
    "baseline_negative": (_set("baseline", (0,), -0.12), "baseline: stereo baseline must be > 0 metres, got -0.12"),
    "baseline_inf": (_set("baseline", (2,), np.inf), "baseline: contains inf (sample 2)"),
}

ATTR_CASES = {
    "schema_text": (_attr("handtools_schema", "x"), "root attribute 'handtools_schema' is 'x', expected an integer"),
    "schema_array": (_attr("handtools_schema", np.array([1, 2])), "'handtools_schema' is array([1, 2])"),
    "schema_float": (_attr("handtools_schema", 1.0), "'handtools_schema' is 1.0, expected an integer"),
    "schema_bool": (_attr("handtools_schema", True), "'handtools_schema' is "),
    "num_samples_text": (_attr("num_samples", "many"), "root attribute 'num_samples' is 'many'"),
    "num_views_float": (_attr("num_views", 2.5), "root attribute 'num_views' is 2.5"),
    "no_num_views": (lambda f: f.attrs.__delitem__("num_views"), "missing root attribute 'num_views'"),
    "history_not_json": (_attr("history", "[{"), "root attribute 'history' is not valid JSON"),
    "history_not_list": (_attr("history", '{"a": 1}'), "'history' is not a JSON list of steps"),
    "kind_number": (_attr("kind", 5), "unknown kind '5'"),
}


@pytest.mark.parametrize("case", sorted(VALUE_CASES) + sorted(ATTR_CASES))
def test_bad_values_and_attributes_are_refused_on_open(good, tmp_path, cli, case):
    fn, expect = {**VALUE_CASES, **ATTR_CASES}[case]
    bad = _edit(good, tmp_path, fn)
    with pytest.raises(ShardError) as info:
        ShardReader(bad)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: ") and expect in msg and "\n" not in msg, msg
    # through the CLI: exit 1, one line, nothing on stdout
    res = cli("info", bad)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 1 and len(lines) == 1 and expect in lines[0], res.stderr
    assert "internal error" not in res.stderr and res.stdout == ""


@pytest.mark.parametrize("case", ["K_inf", "joints3d_inf", "K_zero", "baseline_zero"])
def test_commands_refuse_bad_values_before_work(good, tmp_path, cli, case):
    """crop (and every command: they open shards the same way) stops before writing anything."""
    fn, expect = VALUE_CASES[case]
    bad = _edit(good, tmp_path, fn)
    res = cli("crop", "--center", "bbox", "--size", "16", "--out", tmp_path / "out", bad)
    assert res.exit_code == 1 and expect in res.stderr and "internal error" not in res.stderr, res.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_depth_is_checked_on_read(good, tmp_path):
    """Per-pixel float data is too large to check on open: each read checks what it read."""
    bad = _edit(good, tmp_path, _set("depth", (2, 0, 3, 4), np.inf))
    with ShardReader(bad) as r:
        r.read("depth", slice(0, 2))  # samples 0..1 are fine
        with pytest.raises(ShardError, match=r"depth: contains inf \(samples 1..2\)"):
            r.read("depth", slice(1, 3))
        with pytest.raises(ShardError, match=r"depth: contains inf \(sample 2\)"):
            r.read_sample(2, ["depth"])


def test_writer_refuses_the_same_values(tmp_path):
    w = ShardWriter(tmp_path, kind="frames", num_views=2, producer="t")
    batch = random_batch(2, v=2, names=["K", "baseline", "joints3d"])
    for name, index, value, expect in [
        ("joints3d", (1, 0, 0), np.inf, "joints3d: contains inf (sample 1) in data to write"),
        ("K", (0, 1, 0, 0), 0.0, "K: not pinhole intrinsics"),
        ("baseline", (0,), 0.0, "baseline: stereo baseline must be > 0"),
    ]:
        bad = {k: v.copy() for k, v in batch.items()}
        bad[name][index] = value
        with pytest.raises(ValueError, match=re.escape(expect)):
            w.append(bad)
    w.append(batch)  # the good batch still goes in
    w.close()
    assert ShardReader(tmp_path / "shard-00000.h5").num_samples == 2


def _file_cases(good, tmp_path):
    data = good.read_bytes()
    cases = {}

    def put(name, content):
        p = tmp_path / "files" / f"{name}.h5"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(content)
        cases[name] = p

    put("empty", b"")
    put("text", b"this is not an HDF5 file\n" * 10)
    put("png", b"\x89PNG\r\n\x1a\n" + bytes(200))
    put("signature_only", data[:8])
    put("superblock_only", data[:48])
    for frac in (0.1, 0.5, 0.9, 0.999):
        put(f"truncated_{frac}", data[: int(len(data) * frac)])
    return cases


FILE_EXPECT = {
    "empty": "empty file (0 bytes), not an HDF5 shard",
    "text": "not an HDF5 file",
    "png": "not an HDF5 file",
    "signature_only": "HDF5 file",
    "superblock_only": "truncated HDF5 file",
    "truncated_0.1": "truncated HDF5 file",
    "truncated_0.5": "truncated HDF5 file",
    "truncated_0.9": "truncated HDF5 file",
    "truncated_0.999": "truncated HDF5 file",
}


@pytest.mark.parametrize("case", sorted(FILE_EXPECT))
def test_non_hdf5_and_truncated_files_name_their_cause(good, tmp_path, cli, case):
    bad = _file_cases(good, tmp_path)[case]
    with pytest.raises(ShardError, match=re.escape(FILE_EXPECT[case])):
        ShardReader(bad)
    res = cli("crop", "--out", tmp_path / "out", bad)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 1 and len(lines) == 1, res.stderr
    assert str(bad) in lines[0] and FILE_EXPECT[case] in lines[0]
    assert "Unable to synchronously open file" not in lines[0] and "internal error" not in lines[0]


def _heap_flip_cases(good: bytes):
    """Bit flips in the global heap that holds variable-length strings (HDF5 1.14 loops
    forever on some of them): every bit of the first object headers of the collection."""
    at = good.find(b"GCOL")
    assert at > 0
    return [(off, bit) for off in range(at + 16, at + 16 + 48) for bit in range(8)]


def test_corrupt_string_heap_is_an_error_not_a_hang(good, tmp_path):
    """Runs in a subprocess with a timeout so a regression fails instead of hanging the suite."""
    data = good.read_bytes()
    folder = tmp_path / "flips"
    folder.mkdir()
    paths = []
    for off, bit in _heap_flip_cases(data):
        d = bytearray(data)
        d[off] ^= 1 << bit
        p = folder / f"{off}-{bit}.h5"
        p.write_bytes(bytes(d))
        paths.append(p)
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from handtools.io.shards import ShardError, ShardReader
        for p in sys.argv[1:]:
            try:
                with ShardReader(p) as r:
                    for n in r.names:
                        r.read(n)
                print("ok", p)
            except ShardError as e:
                assert "\\n" not in str(e)
                print("error", p, e)
        """
    )
    res = subprocess.run([sys.executable, "-c", script, *map(str, paths)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    outcomes = [line.split()[0] for line in res.stdout.splitlines()]
    assert len(outcomes) == len(paths) and set(outcomes) <= {"ok", "error"}
    assert "error" in outcomes  # the flips that used to hang are now errors


def test_bit_flipped_shard_through_crop_is_one_line(good, tmp_path, cli):
    """Corrupt object headers (the 'Object visitation failed' RuntimeError of h5py) and corrupt
    chunks become one-line errors naming the file; no 'internal error'."""
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    seen = set()
    faulthandler.dump_traceback_later(120, exit=True)  # HDF5 can hang holding the GIL: fail loudly instead
    try:
        _crop_flipped(data, rng, tmp_path, cli, seen)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert 1 in seen


def _crop_flipped(data, rng, tmp_path, cli, seen):
    for k in range(60):
        d = bytearray(data)
        off = int(rng.integers(0, min(len(d), 8192)))
        d[off] ^= 1 << int(rng.integers(0, 8))
        p = tmp_path / "flip" / f"{k}.h5"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(bytes(d))
        res = cli("crop", "--center", "bbox", "--size", "16", "--out", tmp_path / f"out{k}", p)
        lines = [line for line in res.stderr.splitlines() if line.strip() and "INFO" not in line]
        assert res.exit_code in (0, 1) and "Traceback" not in res.stderr, res.stderr
        assert "internal error" not in res.stderr, res.stderr
        if res.exit_code == 1:
            assert len(lines) == 1 and str(p) in lines[0], res.stderr
        seen.add(res.exit_code)


def test_string_dataset_copied_one_sample_per_chunk(tmp_path):
    """Variable-length strings are not raw-chunk copied: that copied references into the
    input's heap, and `source` of the output was unreadable ('bad heap index')."""
    src_path = write_shard(tmp_path / "in" / "a.h5", random_batch(1, v=1, names=["images", "K", "source"]),
                           num_views=1, shard_size=1)
    with h5py.File(src_path) as f:
        assert f["source"].chunks == (1,)
    with ShardReader(src_path) as src, ShardWriter(tmp_path / "out", kind="crops", num_views=1, producer="t",
                                                   shard_size=1) as w:
        w.append(copy_from=src)
    with ShardReader(tmp_path / "out" / "shard-00000.h5") as out:
        assert list(out.read("source")) == ["sample-0-0"]
