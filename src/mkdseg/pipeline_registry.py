"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from mkdseg.pipelines import ingestion
from mkdseg.pipelines.comparison.shape import comparison_grids

# `kedro run` with no --pipeline: raw data to a tracked model, its evaluation and report.
DEFAULT_CHAIN = ("ingestion", "splits", "training", "evaluation", "labelling", "reporting")


def register_pipelines() -> dict[str, Pipeline]:
    """Every pipeline under ``pipelines/`` by name; ``__default__`` chains ``DEFAULT_CHAIN``.

    ``prediction`` (needs a folder of new images) and the comparison grids (hours of training,
    with ingestion in front; one pipeline per grid of ``settings.COMPARISON_GRIDS``, each a
    package of its own so that Kedro finds it by name) are run by name only.
    """
    pipelines = find_pipelines(raise_errors=True)
    # Kedro 1.7 loads only the pipelines a run names; the default exists when its parts do.
    if all(name in pipelines for name in DEFAULT_CHAIN):
        pipelines["__default__"] = sum((pipelines[name] for name in DEFAULT_CHAIN), Pipeline([]))
    for name in comparison_grids():  # with ingestion in front: runs on a fresh checkout too
        if name in pipelines:
            pipelines[name] = ingestion.create_pipeline() + pipelines[name]
    return pipelines
