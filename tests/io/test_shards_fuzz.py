"""Property test of the shard reader over damaged files.

Random truncations, flipped bits, random root-attribute values and datasets replaced by
wrong dtypes, shapes or values: the only outcomes are a valid read (open, every dataset,
one sample, the summary) or one :class:`ShardError` whose message is one line. Any other
exception fails the test.

Harness: the cases run in this process (no subprocess per case, so it stays fast). HDF5
itself could loop forever on some damaged files (a corrupt global heap, found by this
test: the reader now checks heaps before HDF5 reads them), holding the GIL so that no
Python timeout can interrupt it; a C-level watchdog (:mod:`faulthandler`) therefore ends
the whole test run with a traceback if one case takes over 60 s, so a hang fails loudly
instead of stalling CI. A crash inside HDF5 would likewise end the run (none is known).
120 examples per property by default; ``HANDTOOLS_FUZZ_EXAMPLES=2500`` for a longer search.
"""

from __future__ import annotations

import faulthandler
import functools
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handtools.io.shards import ShardError, ShardReader
from tests.conftest import random_batch, write_shard

NAMES = ["images", "K", "T_view", "baseline", "keypoints2d", "masks", "depth", "joints3d", "source"]
ATTRS = ["handtools_schema", "kind", "num_samples", "num_views", "history", "producer", "hand_model"]
WORK = Path(tempfile.gettempdir()) / f"handtools-fuzz-{os.getpid()}"  # made by _good(), removed at the end
FUZZ = settings(max_examples=int(os.environ.get("HANDTOOLS_FUZZ_EXAMPLES", 120)), deadline=5000, database=None,
                print_blob=True, suppress_health_check=[HealthCheck.too_slow])


@functools.lru_cache(maxsize=None)
def _good() -> bytes:
    p = write_shard(WORK / "good" / "a.h5", random_batch(2, v=2, hw=(6, 8), names=NAMES), overwrite=True,
                    attrs={"hand_model": "open-hand fuzz"})
    return p.read_bytes()


def _read_everything(path: Path) -> None:
    """What a command may do with a shard; raises ShardError or nothing."""
    with ShardReader(path, require=["K"]) as r:
        for name in r.names:
            r.read(name)
            r.read(name, slice(0, 1))
            r.read(name, np.array([1, 0]))
        r.read_sample(r.num_samples - 1)
        r.summary()


def _outcome(path: Path) -> str:
    faulthandler.dump_traceback_later(60, exit=True)
    try:
        _read_everything(path)
        return "ok"
    except ShardError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path)), str(exc)
        return "error"
    finally:
        faulthandler.cancel_dump_traceback_later()


_counter = iter(range(10**9))


def _case_file(data: bytes) -> Path:
    p = WORK / f"case-{next(_counter)}.h5"
    p.write_bytes(data)
    return p


@FUZZ
@given(cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(cut):
    data = _good()
    p = _case_file(data[: int(len(data) * cut)])
    assert _outcome(p) == "error"  # every truncation is detected (the stored end-of-file is known)
    p.unlink()


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)), min_size=1,
                      max_size=4),
       head=st.booleans())
def test_flipped_bits(flips, head):
    data = bytearray(_good())
    span = min(len(data), 4096) if head else len(data)  # the head holds most of the metadata
    for where, bit in flips:
        data[int(where * span)] ^= 1 << bit
    p = _case_file(bytes(data))
    _outcome(p)
    p.unlink()


_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=30).filter(lambda s: "\x00" not in s), st.binary(max_size=30).filter(lambda b: b"\x00" not in b),
    st.lists(st.integers(-5, 5), min_size=0, max_size=3).map(lambda v: np.array(v, dtype=np.int64)),
    st.sampled_from(["frames", "crops", "predictions", "multiview", "[]", "[{}]", "[1]", "null", "1", "2"]),
)


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(ATTRS + ["extra"]), st.one_of(_scalars, st.none())),
                        min_size=1, max_size=3))
def test_random_root_attributes(changes):
    p = _case_file(_good())
    with h5py.File(p, "a") as f:
        for key, value in changes:
            if value is None:
                if key in f.attrs:
                    del f.attrs[key]
            else:
                f.attrs[key] = value
    _outcome(p)
    p.unlink()


_dtypes = st.sampled_from(["float32", "float64", "float16", "int32", "uint8", "int8", "bool", "str"])
_fill = st.one_of(st.sampled_from([0.0, -1.0, 1.0, np.nan, np.inf, -np.inf, 1e30, 255.0]),
                  st.floats(-1e3, 1e3))


@FUZZ
@given(name=st.sampled_from(NAMES + ["extra/unknown"]), dtype=_dtypes, fill=_fill, keep=st.booleans(),
       reshape=st.sampled_from(["same", "fewer", "more", "drop_axis", "add_axis", "samples"]))
def test_datasets_with_wrong_dtype_shape_or_values(name, dtype, fill, keep, reshape):
    p = _case_file(_good())
    with h5py.File(p, "a") as f:
        shape = list(f[name].shape) if name in f else [2, 3]
        if name in f:
            del f[name]
        if reshape == "fewer":
            shape[-1] = max(0, shape[-1] - 1)
        elif reshape == "more":
            shape[-1] += 1
        elif reshape == "drop_axis" and len(shape) > 1:
            shape = shape[:-1]
        elif reshape == "add_axis":
            shape = shape + [2]
        elif reshape == "samples":
            shape[0] = 3
        if dtype == "str":
            arr = np.array([str(fill)] * int(np.prod(shape)), dtype=object).reshape(shape)
            f.create_dataset(name, data=arr, dtype=h5py.string_dtype())
        else:
            with np.errstate(invalid="ignore", over="ignore"):
                arr = np.full(shape, fill if np.dtype(dtype).kind == "f" or np.isfinite(fill) else 0).astype(dtype)
            if keep and arr.size:  # a mostly valid array with one odd value
                arr.flat[0] = arr.flat[-1]
            f.create_dataset(name, data=arr, chunks=True if arr.ndim and arr.size else None)
    _outcome(p)
    p.unlink()


def test_the_undamaged_shard_reads():
    assert _outcome(_case_file(_good())) == "ok"


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    import shutil

    shutil.rmtree(WORK, ignore_errors=True)
