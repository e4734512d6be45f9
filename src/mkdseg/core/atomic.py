"""Atomic, durable file writes for catalog datasets, checkpoints and reports.

Kedro's stock datasets write straight into the target file, so an interrupted run can
leave a half-written manifest that the next run happily loads. Everything here writes
to a temporary file in the same folder and renames it over the target (``os.replace``
is atomic on POSIX and Windows when both paths are on one filesystem).

Two details matter beyond the rename:

- the temporary file is created with mode 0666 filtered by the process umask, like any
  file ``open()`` creates, so outputs are as readable to a team sharing the project folder
  as the rest of it (``tempfile.mkstemp`` would make them 0600);
- the file's data is flushed to disk (``fsync``) before the rename and the folder after it,
  as SQLite does: without that, a power loss soon after the rename can leave an empty or
  partial file under the new name on common filesystems (ext4, XFS with delayed allocation).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Permission bits asked for when creating a file; the umask removes what the user denies.
log = logging.getLogger(__name__)
NEW_FILE_MODE = 0o666
# How many random names to try before giving up (``tempfile``'s TMP_MAX).
TEMP_NAME_ATTEMPTS = 10000
TEMP_NAME_BYTES = 6
TEMP_SUFFIX = ".tmp"
# Windows cannot open a folder to fsync it, and NTFS journals the rename itself.
CAN_FSYNC_FOLDERS = os.name == "posix"


def _create_temporary(target: Path) -> Path:
    """A new, empty file next to ``target``, created exclusively (no race with another writer)."""
    for _ in range(TEMP_NAME_ATTEMPTS):
        candidate = (
            target.parent / f".{target.name}.{secrets.token_hex(TEMP_NAME_BYTES)}{TEMP_SUFFIX}"
        )
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(
        f"could not create a temporary file next to {target}: every name tried exists"
    )


def fsync_file(path: str | os.PathLike) -> None:
    """Flush ``path``'s data and size to the disk."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: str | os.PathLike) -> None:
    """Flush a folder's entries (a rename into it) to the disk, where the OS allows it."""
    if not CAN_FSYNC_FOLDERS:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        log.warning("could not open folder %s to flush it to disk: %s", path, exc)
        return
    try:
        os.fsync(fd)
    except (
        OSError
    ) as exc:  # some network filesystems refuse fsync on a folder (EINVAL); the file is written
        log.warning("could not flush folder %s to disk: %s", path, exc)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, durably.

    The body writes the temporary file by path (and closes what it opened). If the body
    raises, the temporary file is removed and ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temporary(target)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
