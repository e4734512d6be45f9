"""Comparison pipeline: one Kedro namespace per variant and seed (split -> train -> evaluate),
then one summary. Each run writes its result file (``conf/base/catalog.yml``), so a run is also
a job of its own (``--namespaces comparison.<variant>.seed_<seed>``, ``jobs.py``) and the
summary reads whichever runs finished.

Which variants and seeds exist comes from the grid's environment (``settings.COMPARISON_GRIDS``,
``shape.py``); what each run trains with is read at run time like any parameter.
"""

from __future__ import annotations

from functools import partial, update_wrapper

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.comparison.nodes import evaluate_variant, prepare, summarise, train_variant
from mkdseg.pipelines.comparison.shape import comparison_grids, grid_in
from mkdseg.pipelines.comparison.variants import NAMESPACE_ROOT, Built, Grid, namespace

SHARED_INPUTS = {"manifest", "class_metadata"}
PARAMETERS = {"params:comparison", "params:training", "params:evaluation"}
SUMMARY_OUTPUTS = ("results", "table", "table_markdown", "chart", "summary_metrics")


def variant_pipeline(variant: str, seed: int, built: Built | None = None) -> Pipeline:
    """prepare (split, settings) -> train -> evaluate for one variant and seed, in namespace
    ``comparison.<variant>.seed_<seed>``; ``built``: the grid the pipeline was built from, which
    the run checks against the session's (default: this run alone)."""
    built = built or Built(NAMESPACE_ROOT, ((variant, seed),))
    bound = {"variant": variant, "seed": seed, "built": built}
    nodes = [
        node(
            update_wrapper(partial(prepare, **bound), prepare),
            ["manifest", "class_metadata", "params:comparison", "params:training"],
            [
                "labeled_ids",
                "unlabeled_ids",
                "val_ids",
                "test_ids",
                "training_settings",
                "run_identity",
            ],
            name="prepare",
        ),
        node(
            train_variant,
            [
                "manifest",
                "class_metadata",
                "labeled_ids",
                "unlabeled_ids",
                "training_settings",
                "run_identity",
            ],
            ["student_model", "training_history", "training_metrics", "training_params"],
            name="train",
        ),
        node(
            evaluate_variant,
            [
                "student_model",
                "manifest",
                "class_metadata",
                "val_ids",
                "test_ids",
                "params:evaluation",
                "run_identity",
            ],
            ["evaluation_metrics", "evaluation_params", "run_result"],
            name="evaluate",
        ),
    ]
    return Pipeline(
        nodes,
        namespace=namespace(variant, seed),
        inputs=SHARED_INPUTS,
        parameters=PARAMETERS,
    )


def create_pipeline(grid: Grid | None = None, name: str = NAMESPACE_ROOT) -> Pipeline:
    """Every run of ``grid`` (by default that of ``name``'s environment,
    ``settings.COMPARISON_GRIDS``), then the summary."""
    runs = (grid or grid_in(comparison_grids().get(name))).runs
    built = Built(name, runs)
    names = tuple(namespace(*run) for run in runs)
    summary = node(
        update_wrapper(partial(summarise, runs=names), summarise),
        ["params:evaluation"] + [f"{name}.run_result" for name in names],
        [f"{NAMESPACE_ROOT}.{name}" for name in SUMMARY_OUTPUTS],
        name="summarise",
        namespace=NAMESPACE_ROOT,
    )
    runs_pipelines = [variant_pipeline(*run, built) for run in runs]
    return Pipeline(runs_pipelines + [summary], tags="comparison")


def grid_pipeline(name: str) -> Pipeline:
    """The comparison pipeline ``name`` of ``settings.COMPARISON_GRIDS``: the grid of its
    environment (each grid's package calls this)."""
    return create_pipeline(grid_in(comparison_grids()[name]), name)
