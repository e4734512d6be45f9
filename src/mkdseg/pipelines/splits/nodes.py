"""Splits node: a thin wrapper; the protocol logic lives in ``mkdseg.splitting``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mkdseg import splitting
from mkdseg.catalog.paths import project_root

REQUIRED_KEYS = ("labeled", "seed", "draw")


def make_split(
    manifest: pd.DataFrame, class_metadata: dict, splits: dict[str, Any]
) -> tuple[list[str], list[str], list[str], pd.DataFrame, dict[str, float]]:
    """Labeled/unlabeled/val ids (one per line on disk), per-subset class stats, summary metrics."""
    missing = [key for key in REQUIRED_KEYS if key not in splits]
    if missing:
        raise ValueError(f"parameters 'splits' miss {missing}: see conf/base/parameters_splits.yml")
    labeled, unlabeled, val, stats = splitting.make_split(
        manifest,
        class_metadata["names"],
        splits["labeled"],
        splits["seed"],
        project_root(),
        splits["draw"],
    )
    counts = splitting.split_counts(manifest, labeled, unlabeled, val)
    return labeled, unlabeled, val, stats, splitting.split_summary(counts, stats)
