"""Labeled / unlabeled splits of the training set (``splits.labeled``).

A split is either read from a published list file (one id per line as in CPS/U2PL, or
``image_relpath mask_relpath`` per line as in UniMatch; spec §7) or generated: stratified so
every class that can be covered appears in the labeled set, and, among a few seeded
candidates, the one whose class pixel shares are closest to the whole training set's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_CANDIDATES = 32  # seeded candidate splits compared by pixel-share distance
MAX_LISTED_IDS = 5  # how many offending ids an error message shows
TOTAL_ROW = "__all__"  # the summary row of the stats table
STATS_COLUMNS = [
    "class", "pixels_all", "pixels_labeled", "share_all", "share_labeled",
    "images_all", "images_labeled",
]  # fmt: skip
_NUMBER = re.compile(r"^\s*(\d+|\d*\.\d+|\d+\s*/\s*\d+)\s*$")


def _error(message: str) -> ValueError:
    return ValueError(f"splits.labeled: {message}")


def _show(ids: Sequence[str]) -> str:
    more = f" ... ({len(ids)} in all)" if len(ids) > MAX_LISTED_IDS else ""
    return ", ".join(repr(i) for i in list(ids)[:MAX_LISTED_IDS]) + more


# ---------------------------------------------------------------- split files
def _id_lookup(train: pd.DataFrame) -> dict[str, str]:
    """Names a list file may use for a sample -> its id: the id, image stem, path tails."""
    lookup: dict[str, str] = {}
    for sample_id, image_path in zip(train["id"], train["image_path"], strict=True):
        parts = Path(image_path).parts
        keys = [Path(image_path).stem, *("/".join(parts[-k:]) for k in range(1, len(parts)))]
        for key in keys:
            lookup.setdefault(key, sample_id)
    lookup.update({i: i for i in train["id"]})  # a real id always wins
    return lookup


def read_split_file(path: Path, train: pd.DataFrame) -> list[str]:
    """Ids named by a split file (first token of a line: an id or an image path)."""
    lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines()]
    names = [tokens[0] for tokens in lines if tokens]
    if not names:
        raise _error(f"split file {path} is empty")
    lookup = _id_lookup(train)
    ids, unknown = [], []
    for name in names:
        key = name.strip("/")
        found = lookup.get(key) or lookup.get(Path(key).stem)
        (ids if found else unknown).append(found or name)
    if unknown:
        raise _error(
            f"split file {path} names {len(unknown)} sample(s) that are not in the training set: "
            f"{_show(unknown)}. Check that it belongs to this dataset (and not to val), or that "
            "those samples were not quarantined."
        )
    return list(dict.fromkeys(ids))  # drop repeats, keep order


# ---------------------------------------------------------------- generated splits
def _count(labeled: float | int, n_train: int) -> int:
    if isinstance(labeled, bool):
        raise _error(f"expected a fraction, a count or a split file, got {labeled!r}")
    if isinstance(labeled, int):
        if not 1 <= labeled <= n_train:
            raise _error(f"count {labeled} must be between 1 and the {n_train} training images")
        return labeled
    if not 0 < labeled <= 1:
        raise _error(f"fraction {labeled} must be in (0, 1]; give an integer for a count")
    return max(1, round(labeled * n_train))


def _shares(pixels: np.ndarray) -> np.ndarray:
    total = pixels.sum()
    return pixels / total if total > 0 else np.zeros_like(pixels, dtype=float)


def _candidate(presence: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Cover classes rarest first with a random image holding each, then fill at random."""
    chosen = np.zeros(len(presence), bool)
    for cls in np.argsort(presence.sum(0), kind="stable"):
        if chosen.sum() >= count:
            break
        if presence[chosen, cls].any():
            continue
        holders = np.flatnonzero(presence[:, cls] & ~chosen)
        if holders.size:
            chosen[rng.choice(holders)] = True
    rest = np.flatnonzero(~chosen)
    chosen[rng.choice(rest, count - int(chosen.sum()), replace=False)] = True
    return chosen


def generate_split(
    pixels: np.ndarray, count: int, seed: int, candidates: int = DEFAULT_CANDIDATES
) -> np.ndarray:
    """Boolean mask of labeled images: best of ``candidates`` stratified draws (L1 of shares)."""
    target = _shares(pixels.sum(0))
    presence = pixels > 0
    best, best_distance = None, np.inf
    for k in range(candidates):
        chosen = _candidate(presence, count, np.random.default_rng([seed, k]))
        distance = np.abs(_shares(pixels[chosen].sum(0)) - target).sum()
        if distance < best_distance:
            best, best_distance = chosen, distance
    return best


def _parse_labeled(labeled: float | int | str, project_root: Path) -> float | int | Path:
    """A number stays a number; a string is a path if such a file exists or it is not numeric."""
    if not isinstance(labeled, str):
        return labeled
    path = Path(labeled).expanduser()
    path = path if path.is_absolute() else Path(project_root) / path
    if path.is_file() or not _NUMBER.match(labeled):
        return path
    text = labeled.strip()
    if "/" in text:
        num, den = (int(v) for v in text.split("/"))
        if den == 0:
            raise _error(f"{labeled!r} divides by zero")
        return num / den
    return float(text) if "." in text else int(text)


# ---------------------------------------------------------------- entry points
def split_stats(
    manifest: pd.DataFrame, class_names: list[str], labeled_ids: list[str]
) -> pd.DataFrame:
    """Per-class pixels and pixel shares, all train vs labeled, plus a TOTAL_ROW summary."""
    train = manifest[manifest["subset"] == "train"]
    pixels = train[[f"px_{c}" for c in class_names]].to_numpy(np.int64)
    chosen = train["id"].isin(set(labeled_ids)).to_numpy()
    all_px, lab_px = pixels.sum(0), pixels[chosen].sum(0)
    stats = pd.DataFrame(
        {
            "class": class_names,
            "pixels_all": all_px,
            "pixels_labeled": lab_px,
            "share_all": _shares(all_px),
            "share_labeled": _shares(lab_px),
            "images_all": (pixels > 0).sum(0),
            "images_labeled": (pixels[chosen] > 0).sum(0),
        }
    )
    total = {
        "class": TOTAL_ROW,
        "pixels_all": int(all_px.sum()),
        "pixels_labeled": int(lab_px.sum()),
        "share_all": 1.0,
        "share_labeled": 1.0 if lab_px.sum() else 0.0,
        "images_all": len(train),
        "images_labeled": int(chosen.sum()),
    }
    return pd.concat([stats, pd.DataFrame([total])], ignore_index=True)[STATS_COLUMNS]


def make_split(
    manifest: pd.DataFrame,
    class_names: list[str],
    labeled: float | int | str,
    seed: int,
    project_root: Path,
) -> tuple[list[str], list[str], list[str], pd.DataFrame]:
    """(labeled_ids, unlabeled_ids, val_ids, stats); ids sorted, labeled from file or generated."""
    train = manifest[manifest["subset"] == "train"].sort_values("id", kind="stable")
    val_ids = sorted(manifest.loc[manifest["subset"] == "val", "id"])
    if train.empty:
        raise _error("the manifest has no training samples to split")
    spec = _parse_labeled(labeled, project_root)
    if isinstance(spec, Path):
        if not spec.is_file():
            raise _error(f"split file {spec} not found (relative paths start at the project root)")
        labeled_ids = sorted(read_split_file(spec, train))
    else:
        count = _count(spec, len(train))
        pixels = train[[f"px_{c}" for c in class_names]].to_numpy(np.int64)
        chosen = generate_split(pixels, count, seed)
        labeled_ids = sorted(train["id"].to_numpy()[chosen].tolist())
    chosen_set = set(labeled_ids)
    unlabeled_ids = [i for i in train["id"] if i not in chosen_set]
    return labeled_ids, unlabeled_ids, val_ids, split_stats(manifest, class_names, labeled_ids)


def split_summary(
    labeled: Sequence[str], unlabeled: Sequence[str], val: Sequence[str], stats: pd.DataFrame
) -> dict[str, float]:
    """Flat metrics for MLflow: sizes, per-class shares and their L1 distance."""
    per_class = stats[stats["class"] != TOTAL_ROW]
    summary = {
        "n_labeled": float(len(labeled)),
        "n_unlabeled": float(len(unlabeled)),
        "n_val": float(len(val)),
    }
    for name, share_labeled, share_all in zip(
        per_class["class"], per_class["share_labeled"], per_class["share_all"], strict=True
    ):
        summary[f"share_labeled.{name}"] = float(share_labeled)
        summary[f"share_all.{name}"] = float(share_all)
    summary["share_l1_distance"] = float(
        (per_class["share_labeled"] - per_class["share_all"]).abs().sum()
    )
    return summary
