"""Atomic checkpoints and RNG state capture, for exact resume.

Checkpoints are read with ``torch.load(weights_only=True)``: a checkpoint is a file a user
may have copied from elsewhere, and a full unpickler would run whatever code it names.
Everything stored in one is therefore a tensor, a number, a string, ``None`` or a
list/tuple/dict of those; the NumPy RNG state, which holds an array, is converted to and
from a tensor here.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mkdseg.core.atomic import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d{8})\.pt$")
NUMPY_KEY_DTYPE = np.uint32  # MT19937's state words


def checkpoint_name(iteration: int) -> str:
    return f"checkpoint_{iteration:08d}.pt"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write to a temporary file in the same folder, then rename it: a crash never leaves half
    a file."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint with the safe unpickler (tensors and plain Python values only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (
        Exception
    ) as exc:  # truncated, corrupt, foreign, or holding objects the safe unpickler refuses
        raise ValueError(
            f"checkpoint {path} could not be read ({exc}); delete it to start over"
        ) from exc


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    return sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))
    )


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The checkpoint with the highest iteration in ``directory``, or None."""
    found = _checkpoints(Path(directory))
    return found[-1][1] if found else None


def load_latest_readable(
    directory: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that reads, and its state; None if there is none.

    A newer checkpoint that does not read (truncated by a full disk, a copy cut short) is
    skipped with a warning naming it, so that an intact older one beside it still resumes
    the run; if none reads, the error lists every file and why.
    """
    found = [path for _, path in reversed(_checkpoints(Path(directory)))]
    failures: list[str] = []
    for path in found:
        try:
            state = load_checkpoint(path, map_location=map_location)
        except ValueError as exc:
            log.warning(
                "skipping checkpoint %s: it could not be read (%s)", path, exc.__cause__ or exc
            )
            failures.append(f"{path.name}: {exc.__cause__ or exc}")
            continue
        return path, state
    if failures:
        raise ValueError(
            f"no checkpoint in {directory} could be read ({'; '.join(failures)}); delete them to "
            "start over, or set training.resume: false"
        )
    return None


def prune_checkpoints(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    found = _checkpoints(Path(directory))
    for _, path in found[:-keep] if keep > 0 else found:
        path.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Every RNG a step draws from, in forms ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),  # (version, tuple of ints, None or float)
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    saved = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": saved["bit_generator"],
            "state": {
                "key": saved["key"].cpu().numpy().astype(NUMPY_KEY_DTYPE),
                "pos": saved["pos"],
            },
            "has_gauss": saved["has_gauss"],
            "gauss": saved["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
