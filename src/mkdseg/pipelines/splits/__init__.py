"""Splits: which training samples are labeled, which are unlabeled, which are validation."""

from mkdseg.pipelines.splits.pipeline import create_pipeline

__all__ = ["create_pipeline"]
