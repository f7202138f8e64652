"""Atomic single-file writes and the output checks made before any work."""

from __future__ import annotations

import os
import stat

import pytest

from handtools.errors import InputError, OutputExistsError
from handtools.io.files import atomic_output, check_output_file, write_atomic


def test_write_atomic_bytes_and_text(tmp_path):
    assert write_atomic(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    write_atomic(tmp_path / "b.json", '{"µ": 1}')
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.json").read_text(encoding="utf-8") == '{"µ": 1}'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as fh:
            fh.write(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_check_output_file(tmp_path):
    (tmp_path / "exists.json").write_text("{}")
    check_output_file(tmp_path / "new.json", False, "--out")
    check_output_file(tmp_path / "exists.json", True, "--out")
    with pytest.raises(OutputExistsError, match="exists.json: exists"):
        check_output_file(tmp_path / "exists.json", False, "--out")
    with pytest.raises(OutputExistsError, match="--plot .*: is a folder"):
        check_output_file(tmp_path, True, "--plot")
    with pytest.raises(InputError, match="--out .*: folder .*missing does not exist"):
        check_output_file(tmp_path / "missing" / "x.json", False, "--out")


def test_the_temporary_file_is_named_for_the_stale_cleaner(tmp_path):
    """While writing, the temporary file has durable's name (host, pid), so a writer killed
    mid-write leaves one clean_stale_temps removes; the text is UTF-8 whatever the locale."""
    from handtools.durable import clean_stale_temps, host_tag, parse_temp_name

    target = tmp_path / "metrics.json"
    with atomic_output(target, "w") as fh:
        fh.write("µ")
        (tmp,) = [p for p in tmp_path.iterdir()]
        info = parse_temp_name(tmp.name)
        assert info is not None and info.final == "metrics.json" and info.pid == os.getpid()
        assert info.host == host_tag()
        assert clean_stale_temps(tmp_path) == ([], [tmp])  # its writer is alive: kept
    assert target.read_bytes() == "µ".encode("utf-8")
