"""Labelling node: which unlabeled images to label next, with masks proposed to correct."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mkdseg.labelling import Proposals, rank_pool, summary_metrics


def rank_unlabeled(
    trained_networks: dict,
    manifest: pd.DataFrame,
    class_metadata: dict,
    unlabeled_ids: list[str],
    labelling: dict[str, Any],
) -> tuple[pd.DataFrame, Proposals, dict[str, float]]:
    """Score every unlabeled training image; the ranked table, the top images' proposed masks
    and the score's summary."""
    table, proposals = rank_pool(
        trained_networks, manifest, class_metadata, unlabeled_ids, labelling
    )
    return table, proposals, summary_metrics(table, proposals)
