"""What validation found per sample, kept between runs so a re-run re-reads only what changed.

A 20,000-image unlabeled pool takes a while to decode; after a user adds a few masks, only
those samples should be opened again. An entry is keyed by the sample's id, subset, origin,
and the path, size, inode, modification and status-change times (ns) of its image and of its
mask, taken *before* the files are read: editing, replacing (``mv``), restoring an old mtime
(``cp -p``, ``rsync -t``: the status-change time still moves), adding or deleting a file
changes the key, and a file that changes while it is read is stored under its old key, so a
stale entry is never used. The whole cache is dropped when the classes or the mask encoding
change (the pixel counts depend on them). One file per dataset (source and root,
``cache_file``); only the entries of the last run are written back, through a temporary file,
so it never grows with files that are gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from mkdseg.core.atomic import atomic_write_text
from mkdseg.core.image_io import MaskEncoding
from mkdseg.sources.validation import Problem, Sample

logger = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when a row's columns, a check or the key change
ROOT_DIGEST_LENGTH = 12


def _stat(path: Path | None) -> list | None:
    """What identifies a file's content without reading it, None for no path or no file."""
    if path is None:
        return None
    try:
        info = path.stat()
    except OSError:
        return None
    return [path.as_posix(), info.st_size, info.st_ino, info.st_mtime_ns, info.st_ctime_ns]


def sample_key(sample: Sample) -> str | None:
    """The entry's key, or None when a file is missing (checking that again costs nothing)."""
    image = _stat(sample.image_path)
    mask = _stat(sample.mask_path) if sample.has_mask else None
    if image is None or (sample.has_mask and mask is None):
        return None
    return json.dumps([sample.id, sample.subset, sample.origin, image, mask])


def cache_file(folder: Path, source: str, root: Path) -> Path:
    """The dataset's own cache file in ``folder``: switching datasets keeps each one's cache."""
    digest = hashlib.sha256(root.as_posix().encode()).hexdigest()[:ROOT_DIGEST_LENGTH]
    return folder / f"{source}-{digest}.json"


def identity(class_names: Sequence[str], encoding: MaskEncoding) -> str:
    """What every entry depends on besides its files: the classes and the mask encoding."""
    payload = json.dumps(
        {"version": CACHE_VERSION, "classes": list(class_names), "encoding": encoding.to_dict()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class ValidationCache:
    """Outcomes of ``check_sample`` by file identity; thread-safe for validation's pool."""

    def __init__(self, identity: str, entries: dict[str, dict] | None = None) -> None:
        self.identity = identity
        self._previous = entries or {}
        self._current: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.hits = self.reads = 0

    @classmethod
    def load(cls, path: Path, identity: str) -> ValidationCache:
        """The cache at ``path``; an empty one if there is none, it is unreadable or it was
        written for other classes (a warning says why it is not used)."""
        if not path.is_file():
            return cls(identity)
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            entries = stored["entries"] if stored.get("identity") == identity else None
        except (OSError, ValueError, KeyError, AttributeError) as exc:
            logger.warning("ignoring the validation cache %s (%s): every file is read", path, exc)
            return cls(identity)
        if entries is None:
            logger.info("validation cache %s is for other classes or version: not used", path)
        return cls(identity, entries)

    @staticmethod
    def key(sample: Sample) -> str | None:
        """``sample_key``: take it before reading the sample's files."""
        return sample_key(sample)

    def lookup(self, key: str | None) -> dict | Problem | None:
        """The stored outcome for ``sample_key`` (same files, same stats), or None."""
        entry = self._previous.get(key) if key is not None else None
        if entry is None:
            return None
        with self._lock:
            self._current[key] = entry
            self.hits += 1
        return Problem(**entry["problem"]) if "problem" in entry else dict(entry["row"])

    def store(self, key: str | None, outcome: dict | Problem) -> None:
        """Keep ``outcome`` under the key taken before the files were read."""
        entry = {"problem": outcome.__dict__} if isinstance(outcome, Problem) else {"row": outcome}
        with self._lock:
            self.reads += 1
            if key is not None:
                self._current[key] = entry

    def save(self, path: Path) -> None:
        """Write this run's entries (only those) through a temporary file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"identity": self.identity, "entries": self._current}
        atomic_write_text(path, json.dumps(payload, separators=(",", ":")))
