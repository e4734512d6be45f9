"""Atomic writes: permissions follow the umask; data reaches the disk before and after the
rename."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from mkdseg.catalog import JSONDataset, TableDataset
from mkdseg.core import atomic
from mkdseg.core.checkpoint import save_checkpoint

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and folder fsync")


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the previous one back."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@posix_only
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    atomic.atomic_write_text(tmp_path / "a.txt", "x")
    TableDataset(str(tmp_path / "manifest.csv")).save(pd.DataFrame({"id": ["0"]}))
    JSONDataset(str(tmp_path / "class_metadata.json")).save({"names": ["background"]})
    save_checkpoint({"iteration": 1}, tmp_path / "checkpoint_00000001.pt")
    for name in ("a.txt", "manifest.csv", "class_metadata.json", "checkpoint_00000001.pt"):
        assert _mode(tmp_path / name) == expected, name


@posix_only
def test_replacing_a_file_takes_the_umask_mode_not_the_old_one(tmp_path: Path, umask) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    target.chmod(0o600)  # written by an earlier version of mkdseg
    umask(0o022)
    atomic.atomic_write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o644


@posix_only
def test_file_is_flushed_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch
) -> None:
    events: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace
    folder_inode = tmp_path.stat().st_ino

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync folder" if stat.S_ISDIR(info.st_mode) else "fsync file", info.st_ino))
        real_fsync(fd)

    def replace(src: os.PathLike, dst: os.PathLike) -> None:
        events.append(("replace", Path(src).stat().st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic.atomic_write_bytes(tmp_path / "m.csv", b"id\n0\n")

    file_inode = (tmp_path / "m.csv").stat().st_ino
    assert events == [
        ("fsync file", file_inode),
        ("replace", file_inode),
        ("fsync folder", folder_inode),
    ]
    assert (tmp_path / "m.csv").read_bytes() == b"id\n0\n"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_temporary_names_never_clash_with_an_existing_file(tmp_path: Path, monkeypatch) -> None:
    names = iter(["aaaa", "aaaa", "bbbb"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda _n: next(names))
    (tmp_path / ".a.txt.aaaa.tmp").write_text("someone else's")
    atomic.atomic_write_text(tmp_path / "a.txt", "mine")
    assert (tmp_path / "a.txt").read_text() == "mine"
    assert (tmp_path / ".a.txt.aaaa.tmp").read_text() == "someone else's"


def test_a_folder_that_refuses_fsync_does_not_fail_the_write(tmp_path, monkeypatch, caplog):
    real_fsync = atomic.os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    target = tmp_path / "out.txt"
    with atomic.atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and "could not flush folder" in caplog.text
