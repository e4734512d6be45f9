"""Labelling pipeline: the trained networks score the unlabeled images -> a ranked table and
proposed masks for the images to label next."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.labelling.nodes import rank_unlabeled

RANK_INPUTS = [
    "trained_networks",
    "manifest",
    "class_metadata",
    "unlabeled_ids",
    "params:labelling",
]
RANK_OUTPUTS = ["labelling_table", "proposed_masks", "labelling_metrics"]


def create_pipeline(**kwargs: object) -> Pipeline:
    rank = node(rank_unlabeled, RANK_INPUTS, RANK_OUTPUTS, name="rank_unlabeled")
    return Pipeline([rank], tags="labelling")
