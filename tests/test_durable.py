"""handtools.durable: temporary names, exclusive publication, stale-temp clean-up,
the latching file object and deferred signals (standard library only)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from handtools import durable
from tests.conftest import REPO


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_temp_names_are_recognisable(tmp_path):
    final = tmp_path / "synth-00003.h5"
    tmp = durable.temp_path(final)
    assert tmp.parent == tmp_path and tmp.name.startswith(".synth-00003.h5.tmp-")
    info = durable.parse_temp_name(tmp.name)
    assert info == (final.name, durable.host_tag(), os.getpid())
    assert durable.temp_path(final) != tmp  # random part: two writers never share a temp
    for other in ("synth-00003.h5", ".synth-00003.h5.123.tmp", ".x.tmp-host-12-zz", ".x.tmp-host-12-0123456789"):
        assert durable.parse_temp_name(other) is None


def test_publish_never_replaces_an_existing_file(tmp_path):
    final = tmp_path / "out.bin"
    a, b = durable.temp_path(final), durable.temp_path(final)
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    durable.publish(a, final)
    assert final.read_bytes() == b"A" and not a.exists()
    with pytest.raises(durable.PublishConflict):
        durable.publish(b, final)
    assert final.read_bytes() == b"A" and b.exists()  # the loser's file is the caller's to drop
    durable.publish(b, final, overwrite=True)
    assert final.read_bytes() == b"B" and not b.exists()


def test_publish_without_hard_links_stays_exclusive(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(durable.os, "link", no_link)
    final = tmp_path / "out.bin"
    a, b = durable.temp_path(final), durable.temp_path(final)
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    durable.publish(a, final)
    assert final.read_bytes() == b"A" and not a.exists()
    with pytest.raises(durable.PublishConflict):
        durable.publish(b, final)
    assert final.read_bytes() == b"A"


def test_concurrent_writers_exactly_one_publishes(tmp_path):
    """Several processes publish the same name at the same moment: one wins, the others
    get PublishConflict, and the file holds the winner's bytes."""
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from handtools import durable
        final = __import__("pathlib").Path({str(tmp_path / "shard.h5")!r})
        tmp = durable.temp_path(final)
        tmp.write_bytes(sys.argv[1].encode() * 1000)
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        try:
            durable.publish(tmp, final)
        except durable.PublishConflict:
            tmp.unlink()
            sys.exit(3)
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)]) for i in range(4)]
    time.sleep(1.0)
    go.touch()
    codes = [p.wait(timeout=60) for p in procs]
    assert sorted(codes) == [0, 3, 3, 3], codes
    winner = codes.index(0)
    assert (tmp_path / "shard.h5").read_bytes() == str(winner).encode() * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "shard.h5"]


def test_clean_stale_temps_only_removes_dead_local_writers(tmp_path):
    host = durable.host_tag()
    dead = tmp_path / f".a.h5.tmp-{host}-{_dead_pid()}-0123abcd"
    alive = tmp_path / f".b.h5.tmp-{host}-{os.getpid()}-0123abcd"
    foreign = tmp_path / f".c.h5.tmp-{host}x-{_dead_pid()}-0123abcd"
    other = [tmp_path / "a.h5", tmp_path / ".hidden", tmp_path / ".d.h5.99.tmp"]
    for p in [dead, alive, foreign, *other]:
        p.write_bytes(b"x")
    removed, kept = durable.clean_stale_temps(tmp_path)
    assert removed == [dead] and not dead.exists()
    assert sorted(kept) == sorted([alive, foreign])
    assert all(p.exists() for p in [alive, foreign, *other])
    assert durable.clean_stale_temps(tmp_path / "missing") == ([], [])


def test_atomic_write(tmp_path):
    final = tmp_path / "ckpt.pt"
    with durable.atomic_write(final) as f:
        f.write(b"one")
    assert final.read_bytes() == b"one"
    with pytest.raises(durable.PublishConflict):
        with durable.atomic_write(final) as f:
            f.write(b"two")
    with pytest.raises(RuntimeError):
        with durable.atomic_write(final, overwrite=True) as f:
            f.write(b"three")
            raise RuntimeError("boom")
    assert final.read_bytes() == b"one"
    with durable.atomic_write(final, overwrite=True) as f:
        f.write(b"four")
    assert final.read_bytes() == b"four"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_latching_file_never_raises_and_keeps_what_it_could_not_write():
    f = durable.LatchingFile(os.open("/dev/full", os.O_RDWR))
    f.seek(100)
    assert f.write(b"hello") == 5  # ENOSPC is latched, not raised
    assert isinstance(f.error, OSError) and f.error.errno == errno.ENOSPC
    assert durable.is_disk_full(f.error)
    f.seek(98)
    assert f.read(9) == b"\0\0hello\0\0"  # later reads see the unwritten bytes
    assert f.tell() == 107
    with pytest.raises(OSError):
        f.sync()
    f.close()


def test_deferred_signals_hold_ctrl_c_until_the_block_ends():
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with durable.deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_fsync_dir_and_free_bytes(tmp_path):
    durable.fsync_dir(tmp_path)
    durable.fsync_dir(tmp_path / "missing")  # no-op, no error
    assert durable.free_bytes(tmp_path) > 0
    assert durable.free_bytes(tmp_path / "missing") is None
