"""Shard writing is durable and exclusive: concurrent writers never interleave, stale
temporary files are cleaned, a full disk is one "disk full" error with nothing left
behind, SIGTERM is handled like Ctrl-C."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import h5py
import numpy as np
import pytest

from handtools import durable
from handtools.errors import DiskFullError, OutputExistsError
from handtools.io.shards import ShardReader, ShardWriter
from tests.conftest import REPO, handtools_cmd, random_batch, run_shell

SYNTH = ["synth", "--image-size", "32x32", "--device", "cpu", "--renderer", "torch"]


def _writer(folder, **kw):
    return ShardWriter(folder, kind="frames", num_views=1, producer="t", name=lambda k: "same.h5", **kw)


def test_two_writers_of_one_name_the_second_fails_and_drops_its_copy(tmp_path):
    a, b = _writer(tmp_path), _writer(tmp_path)  # both start before either has published
    a.append(random_batch(2, v=1, names=["K"], seed=1))
    b.append(random_batch(3, v=1, names=["K"], seed=2))
    a.close()
    with pytest.raises(OutputExistsError, match="appeared while this run was writing it"):
        b.close()
    assert [p.name for p in tmp_path.iterdir()] == ["same.h5"]  # no temp left behind
    with ShardReader(tmp_path / "same.h5") as r:  # the first one's shard, intact
        assert r.num_samples == 2
        np.testing.assert_array_equal(r.read("K"), random_batch(2, v=1, names=["K"], seed=1)["K"])


def test_overwrite_replaces_even_a_concurrent_shard(tmp_path):
    a, b = _writer(tmp_path), _writer(tmp_path, overwrite=True)
    a.append(random_batch(2, v=1, names=["K"], seed=1))
    b.append(random_batch(3, v=1, names=["K"], seed=2))
    a.close()
    b.close()
    assert ShardReader(tmp_path / "same.h5").num_samples == 3


def test_two_synth_runs_into_one_folder_never_interleave(tmp_path):
    """Before: both exited 0 and the folder held shards of both seeds."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "handtools", *SYNTH, "-n", "6", "--shard-size", "2", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen(cmd + ["--seed", str(s)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for s in (1, 2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 1], results
    loser = next(r for r in results if r[0] == 1)
    lines = [line for line in loser[2].splitlines() if line.strip().startswith("handtools synth: error")]
    assert len(lines) == 1 and "synth-0000" in lines[0] and "--overwrite" in lines[0], loser[2]
    seeds = set()
    for p in sorted(out.iterdir()):
        assert not p.name.startswith("."), p  # no temp left
        with ShardReader(p) as r:
            seeds.add(r.history[-1]["args"]["seed"])
    assert len(seeds) == 1 and len(list(out.iterdir())) == 3


def _stale_temp(folder, final="shard-00000.h5"):
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    t = folder / f".{final}.tmp-{durable.host_tag()}-{p.pid}-{uuid.uuid4().hex[:8]}"
    t.write_bytes(b"partial")
    return t


def test_next_writer_cleans_stale_temps_and_keeps_live_ones(tmp_path, caplog):
    stale = _stale_temp(tmp_path)
    live = tmp_path / f".shard-00001.h5.tmp-{durable.host_tag()}-{os.getpid()}-0123abcd"
    live.write_bytes(b"being written")
    with ShardWriter(tmp_path, kind="frames", num_views=1, producer="t", shard_size=5) as w:
        w.append(random_batch(2, v=1, names=["K"]))
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "shard-00000.h5"])


def test_killed_writer_leaves_a_recognisable_temp_the_next_run_removes(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from handtools.io.shards import ShardWriter
        w = ShardWriter({str(tmp_path)!r}, kind="frames", num_views=1, producer="t", shard_size=1000)
        for i in range(10000):
            w.append({{"images": np.zeros((1, 1, 32, 32, 3), np.uint8)}})
            if i == 5:
                print("started", flush=True)
            time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = list(tmp_path.iterdir())
    assert len(left) == 1 and durable.parse_temp_name(left[0].name).pid == proc.pid
    with ShardWriter(tmp_path, kind="frames", num_views=1, producer="t") as w:
        w.append(random_batch(1, v=1, names=["K"]))
    assert [p.name for p in tmp_path.iterdir()] == ["shard-00000.h5"]


def test_sigterm_removes_the_partial_shard_and_exits_130(tmp_path):
    out = tmp_path / "out"
    p = subprocess.Popen(
        [sys.executable, "-m", "handtools", *SYNTH, "-n", "200", "--shard-size", "200", "--batch-size", "1",
         "--out", str(out)],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 120
    while not (out.exists() and any(out.iterdir())) and time.time() < deadline:  # a temp is being written
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 130, stderr
    assert "handtools: interrupted (SIGTERM)" in stderr and "Traceback" not in stderr
    assert stdout == "" and list(out.iterdir()) == []


def _fake_full_disk(monkeypatch):
    """Writes to the temp shard fail with ENOSPC: its descriptor is /dev/full."""
    real = durable.create_exclusive

    def create(path):
        os.close(real(path))  # the temp file exists, as on a real disk
        return os.open("/dev/full", os.O_RDWR)

    monkeypatch.setattr(durable, "create_exclusive", create)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_enospc_is_disk_full_and_leaves_nothing(tmp_path, monkeypatch):
    _fake_full_disk(monkeypatch)
    with pytest.raises(DiskFullError, match=r"^disk full: cannot write .*shard-00000\.h5.*partial shard was removed"):
        with ShardWriter(tmp_path, kind="frames", num_views=1, producer="t", shard_size=50) as w:
            for s in range(50):
                w.append(random_batch(1, v=1, hw=(64, 64), names=["images", "K"], seed=s))
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_fails_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(durable, "free_bytes", lambda folder: 1000)
    with pytest.raises(DiskFullError, match="disk full: cannot write .*0.0 MB free"):
        with ShardWriter(tmp_path, kind="frames", num_views=1, producer="t") as w:
            w.append(random_batch(1, v=1, names=["K"]))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {res.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_synth_and_crop_on_a_full_disk(tiny_disk, tmp_path):
    """Before: exit 139 (segfault in HDF5's close), and a temp file left on the disk."""
    h = handtools_cmd()
    p = run_shell(f"{h} synth --image-size 128x128 --device cpu -n 64 --shard-size 64 --out {tiny_disk}/s")
    lines = [line for line in p.stderr.splitlines() if "error" in line]
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("handtools synth: error: disk full: "), p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert list((tiny_disk / "s").iterdir()) == []
    frames = run_shell(f"{h} synth --image-size 160x120 --device cpu -n 4 --views 2 --out {tmp_path}/fr", check=True)
    p = run_shell(f"{h} crop --center gt --size 512 --out {tiny_disk}/c {frames.stdout.strip()}")
    assert p.returncode == 1 and "handtools crop: error: disk full: " in p.stderr, p.stderr
    assert list((tiny_disk / "c").iterdir()) == []


def test_new_shards_have_checksummed_metadata_and_plain_string_attributes(tmp_path):
    with ShardWriter(tmp_path, kind="frames", num_views=1, producer="t", attrs={"hand_model": "open-hand x",
                                                                                 "meta": {"a": 1}}) as w:
        w.append(random_batch(1, v=1, names=["K", "source"]))
    with h5py.File(tmp_path / "shard-00000.h5") as f:
        assert f.id.get_create_plist().get_version()[0] >= 2  # superblock v2+: checksummed
        for key in ("kind", "producer", "history", "hand_model", "meta"):
            assert f.attrs.get_id(key).dtype.kind == "S"  # fixed length: not in the global heap
    with ShardReader(tmp_path / "shard-00000.h5") as r:
        assert r.kind == "frames" and r.attrs["hand_model"] == "open-hand x"
        assert json.loads(r.attrs["meta"]) == {"a": 1} and r.producer.startswith("t ")


def test_ctrl_c_inside_hdf5_is_deferred_not_lost(tmp_path, monkeypatch):
    """A signal that arrives while HDF5 is writing is raised after it returns; the partial
    shard is removed."""
    real_write = durable.LatchingFile.write
    sent = []

    def write(self, buf):
        if not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
        return real_write(self, buf)

    monkeypatch.setattr(durable.LatchingFile, "write", write)
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(tmp_path, kind="frames", num_views=1, producer="t") as w:
            for s in range(20):
                w.append(random_batch(4, v=1, hw=(64, 64), names=["images"], seed=s))
    assert sent and list(tmp_path.iterdir()) == []


def test_enospc_errno_is_recognised():
    assert durable.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not durable.is_disk_full(OSError(errno.EIO, "I/O error"))
