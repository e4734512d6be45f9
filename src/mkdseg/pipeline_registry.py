"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from mkdseg.pipelines import ingestion

# `kedro run` with no --pipeline: raw data to a tracked model, its evaluation and report.
DEFAULT_CHAIN = ("ingestion", "splits", "training", "evaluation", "labelling", "reporting")


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline under ``pipelines/`` by name; ``__default__`` chains ``DEFAULT_CHAIN``.

    ``prediction`` (needs a folder of new images) and ``comparison`` (hours of training, with
    ingestion in front) are run by name only.
    """
    pipelines = find_pipelines(raise_errors=True)
    # Kedro 1.7 loads only the pipelines a run names; the default exists when its parts do.
    if all(name in pipelines for name in DEFAULT_CHAIN):
        pipelines["__default__"] = sum((pipelines[name] for name in DEFAULT_CHAIN), Pipeline([]))
    if "comparison" in pipelines:  # with ingestion in front, so it runs on a fresh checkout too
        pipelines["comparison"] = ingestion.create_pipeline() + pipelines["comparison"]
    return pipelines
