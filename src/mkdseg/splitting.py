"""Labeled / unlabeled splits of the training set (``splits.labeled``).

Only training images with a mask (manifest ``origin`` = ``mask``) can be labeled; images
without one (``no_mask``, ``extra``) are always unlabeled. The labeled images are either
every masked image (``masked``: your own data, where you labeled what you labeled), read
from a published list file (one id per line as in CPS/U2PL, or ``image_relpath
mask_relpath`` per line as in UniMatch; spec §7), or drawn among the masked images
(``splits.draw``): ``uniform``, a seeded uniform draw as CPS's and U2PL's published lists
are, which reads no mask; or ``class_balanced``, stratified so every class appears and, among
a few seeded candidates, the one whose class pixel shares are closest to those of *every*
masked training image - it reads the masks of images that then end up unlabeled, so a
figure measured with it is slightly optimistic.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mkdseg.sources.validation import EXTRA, MASKED, NO_MASK

logger = logging.getLogger(__name__)

MASKED_KEYWORD = "masked"  # splits.labeled: every training image that has a mask
UNIFORM, CLASS_BALANCED = "uniform", "class_balanced"
DRAWS = (UNIFORM, CLASS_BALANCED)
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
            raise _error(
                f"count {labeled} must be between 1 and the {n_train} masked training images"
            )
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


def _parse_labeled(labeled: float | int | str, project_root: Path) -> float | int | str | Path:
    """A number stays a number; ``masked`` stays itself; another string is a path if such a
    file exists or it is not numeric."""
    if not isinstance(labeled, str):
        return labeled
    if labeled.strip() == MASKED_KEYWORD:
        return MASKED_KEYWORD
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


def draw_labeled(
    masked: pd.DataFrame, class_names: list[str], count: int, seed: int, draw: str
) -> list[str]:
    """``count`` ids among the masked training images (sorted by id), drawn as ``draw`` says."""
    if draw == UNIFORM:
        chosen = np.random.default_rng(seed).choice(len(masked), size=count, replace=False)
        return sorted(masked["id"].to_numpy()[chosen].tolist())
    if draw == CLASS_BALANCED:
        pixels = masked[[f"px_{c}" for c in class_names]].to_numpy(np.int64)
        return sorted(masked["id"].to_numpy()[generate_split(pixels, count, seed)].tolist())
    raise ValueError(f"splits.draw must be one of {DRAWS}, got {draw!r}")


def _origins(frame: pd.DataFrame) -> pd.Series:
    """Each row's origin; a manifest from before origins existed had a mask for every image."""
    if "origin" in frame:
        return frame["origin"]
    return pd.Series(MASKED, index=frame.index)


def _checked_file_ids(path: Path, train: pd.DataFrame, masked_ids: set[str]) -> list[str]:
    if not path.is_file():
        raise _error(f"split file {path} not found (relative paths start at the project root)")
    ids = read_split_file(path, train)
    if unmasked := [i for i in ids if i not in masked_ids]:
        raise _error(
            f"split file {path} names {len(unmasked)} training image(s) without a mask: "
            f"{_show(unmasked)}. A labeled image needs its mask (add it, or drop the line)."
        )
    return sorted(ids)


def labeled_ids_for(
    train: pd.DataFrame,
    class_names: list[str],
    labeled: float | int | str,
    seed: int,
    project_root: Path,
    draw: str = UNIFORM,
) -> list[str]:
    """The labeled ids (sorted) among the masked rows of ``train``, as ``splits.labeled`` says."""
    masked = train[_origins(train) == MASKED]
    spec = _parse_labeled(labeled, project_root)
    if spec == MASKED_KEYWORD:
        return sorted(masked["id"])
    if isinstance(spec, Path):
        return _checked_file_ids(spec, train, set(masked["id"]))
    count = _count(spec, len(masked))
    if len(masked) < len(train):
        logger.info(
            "splits.labeled %s: %d of the %d masked training images drawn as labeled (%s); "
            "the %d images without a mask are unlabeled. `masked` labels every masked image.",
            labeled, count, len(masked), draw, len(train) - len(masked),
        )  # fmt: skip
    return draw_labeled(masked, class_names, count, seed, draw)


# ---------------------------------------------------------------- entry points
def split_stats(
    manifest: pd.DataFrame, class_names: list[str], labeled_ids: list[str]
) -> pd.DataFrame:
    """Per-class pixels and pixel shares, masked training images vs labeled, plus a TOTAL_ROW
    summary (``*_all``: every training image with a mask; images without one have no pixels
    to count)."""
    train = manifest[manifest["subset"] == "train"]
    train = train[_origins(train) == MASKED]
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
    draw: str = UNIFORM,
) -> tuple[list[str], list[str], list[str], pd.DataFrame]:
    """(labeled_ids, unlabeled_ids, val_ids, stats); ids sorted. Unlabeled: every training
    image that is not labeled (masked ones not drawn, and all without a mask)."""
    train = manifest[manifest["subset"] == "train"].sort_values("id", kind="stable")
    val_ids = sorted(manifest.loc[manifest["subset"] == "val", "id"])
    if train.empty:
        raise _error("the manifest has no training samples to split")
    labeled_ids = labeled_ids_for(train, class_names, labeled, seed, project_root, draw)
    chosen_set = set(labeled_ids)
    unlabeled_ids = [i for i in train["id"] if i not in chosen_set]
    return labeled_ids, unlabeled_ids, val_ids, split_stats(manifest, class_names, labeled_ids)


def split_counts(
    manifest: pd.DataFrame,
    labeled: Sequence[str],
    unlabeled: Sequence[str],
    val: Sequence[str],
) -> dict[str, int]:
    """How many images the run learns from and evaluates on, and where the unlabeled ones come
    from: masked but not drawn (a benchmark's protocol), without a mask, or an unlabeled pool."""
    origins = _origins(manifest).set_axis(manifest["id"])
    pool = origins.reindex(list(unlabeled)).value_counts()
    return {
        "n_labeled": len(labeled),
        "n_unlabeled": len(unlabeled),
        "n_val": len(val),
        "n_unlabeled_masked": int(pool.get(MASKED, 0)),
        "n_unlabeled_no_mask": int(pool.get(NO_MASK, 0)),
        "n_unlabeled_extra": int(pool.get(EXTRA, 0)),
    }


def split_summary(counts: dict[str, int], stats: pd.DataFrame) -> dict[str, float]:
    """Flat metrics for MLflow: sizes and origins, per-class shares and their L1 distance."""
    per_class = stats[stats["class"] != TOTAL_ROW]
    summary = {key: float(value) for key, value in counts.items()}
    for name, share_labeled, share_all in zip(
        per_class["class"], per_class["share_labeled"], per_class["share_all"], strict=True
    ):
        summary[f"share_labeled.{name}"] = float(share_labeled)
        summary[f"share_all.{name}"] = float(share_all)
    summary["share_l1_distance"] = float(
        (per_class["share_labeled"] - per_class["share_all"]).abs().sum()
    )
    return summary
