"""Comparison pipeline: every method and ablation of the paper's table, per label budget and
seed, and the table of mean +- std over seeds."""

from mkdseg.pipelines.comparison.pipeline import create_pipeline

__all__ = ["create_pipeline"]
