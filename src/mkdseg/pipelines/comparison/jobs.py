"""The comparison grid as jobs, one command per line, for a scheduler (a Slurm array, a shell
loop, an orchestrator's task list): the ingestion first, then one job per run, then the summary.
Printed by ``scripts/comparison_jobs.py``.

A run's job trains and evaluates one variant with one seed and writes its result file
(``data/07_model_output/comparison/<variant>/seed_<seed>.json``); running it again resumes from
its checkpoint (``comparison.training.resume``). The summary job tabulates the runs that
finished and names the others.
"""

from __future__ import annotations

from kedro.framework.startup import bootstrap_project

from mkdseg.catalog.paths import project_root
from mkdseg.pipelines.comparison.shape import grid_in, pipeline_for
from mkdseg.pipelines.comparison.variants import NAMESPACE_ROOT, Grid, namespace

SUMMARY_NODE = f"{NAMESPACE_ROOT}.summarise"


def grid_of(env: str | None) -> Grid:
    """The grid ``params:comparison`` defines in ``env`` (None: Kedro's default environment),
    outside a session (the project's settings bootstrapped first)."""
    bootstrap_project(project_root())
    return grid_in(env)


def job_lines(grid: Grid, env: str | None = None) -> list[str]:
    """``kedro run`` commands: ingestion, one per (variant, seed) in the grid's order, summary;
    each names the environment's comparison pipeline (``settings.COMPARISON_GRIDS``)."""
    run = "kedro run" + (f" --env {env}" if env else "")
    grid_run = f"{run} --pipelines {pipeline_for(env)}"
    return [
        f"{run} --pipelines ingestion",
        *(f"{grid_run} --namespaces {namespace(*r)}" for r in grid.runs),
        f"{grid_run} --nodes {SUMMARY_NODE}",
    ]
