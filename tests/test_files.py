"""Atomic output files: whole or untouched, plain permissions, one-line errors."""

from __future__ import annotations

import os
import stat

import pytest

from snnbalance.errors import SnnBalanceError
from snnbalance.files import atomic_write


def test_writes_bytes_text_and_streams_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        a = atomic_write(tmp_path / "sub" / "a.txt", "héllo\n")
        b = atomic_write(tmp_path / "b.bin", b"\x00\x01")
        c = atomic_write(tmp_path / "c.bin", lambda f: f.write(b"streamed"))
    finally:
        os.umask(old)
    assert a.read_text() == "héllo\n" and b.read_bytes() == b"\x00\x01" and c.read_bytes() == b"streamed"
    for p in (a, b, c):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert sorted(x.name for x in tmp_path.rglob("*") if x.is_file()) == ["a.txt", "b.bin", "c.bin"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write(tmp_path / "r.json", "old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_unwritable_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SnnBalanceError, match="cannot write"):
        atomic_write(blocker / "out.json", "{}")
