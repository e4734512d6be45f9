"""What kedro-mlflow's parent run and its experiment say: the run's name and description, and
the experiment's kind.

The parent run is named after what it trained (``mkd 1/16 seed 0``, ``run_naming``) before
kedro-mlflow starts it (``RunNameHook``), or renamed once it has started where that could not
happen (``name_and_describe``, called by ``hooks.MkdsegTrackingHook``). A name set in
``mlflow.yml`` (``tracking.run.name``) is kept. The experiment opens on MLflow's model-training
view (``mark_experiment_kind``) unless it has a kind already; the console's last lines say
where the run is (``say_where_it_is``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline
from mlflow.tracking import MlflowClient

from mkdseg.tracking import conventions, mlflow_ui, run_naming

logger = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # the model-training view, not GenAI's
DESCRIPTION_TAG = "mlflow.note.content"
ALL_PARAMETERS_DATASET = "parameters"
Described = tuple[list[str] | None, set[str], dict[str, Any]]  # run_description's arguments


def mark_experiment_kind(client: MlflowClient, experiment_id: str) -> None:
    """Open the experiment on MLflow's model-training view (a kind set by the user is kept)."""
    experiment = client.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in experiment.tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def name_and_describe(
    client: MlflowClient,
    run_id: str,
    run_params: dict[str, Any],
    pipeline: Pipeline,
    catalog: CatalogProtocol,
) -> Described | None:
    """Rename kedro-mlflow's parent run after what it does and describe it; returns what the
    description was made of (to complete it with the headline metric), None if left alone."""
    if ALL_PARAMETERS_DATASET not in catalog:
        return None
    names, groups, params = described = _described(run_params, pipeline, catalog)
    name = run_naming.run_name(names, groups, params)
    parent = client.get_run(run_id)
    if parent.info.run_name not in (run_naming.pipeline_label(names), name):
        return None  # named in mlflow.yml (tracking.run.name): the user's choice
    if parent.info.run_name != name:  # RunNameHook could not name it before it started
        client.update_run(run_id, name=name)
        logger.info("MLflow run %s is named %r", run_id, name)
    client.set_tag(run_id, DESCRIPTION_TAG, run_naming.run_description(*described))
    return described


def _described(
    run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
) -> Described:
    """What a run's name and description are made of: pipelines, parameter groups, parameters."""
    names = run_naming.pipeline_names_of(run_params)
    groups = run_naming.consumed_groups(pipeline.all_inputs())
    return names, groups, catalog.load(ALL_PARAMETERS_DATASET)


def say_where_it_is(
    client: MlflowClient,
    experiment_id: str,
    run_id: str,
    catalog: CatalogProtocol | None,
    report: Path | None,
) -> None:
    """Log the run's closing lines: the headline metric, the report and the run's UI page."""
    has_params = catalog is not None and ALL_PARAMETERS_DATASET in catalog
    params = catalog.load(ALL_PARAMETERS_DATASET) if has_params else {}
    mode = (params.get("evaluation") or {}).get("mode", run_naming.DEFAULT_EVALUATION_MODE)
    metrics = client.get_run(run_id).data.metrics
    url = mlflow_ui.run_url(mlflow_ui.DEFAULT_BASE_URL, experiment_id, run_id)
    headline = run_naming.HEADLINE_METRIC.format(mode=mode)
    for line in conventions.closing_lines(headline, metrics, report, url):
        logger.info(line)


class RunNameHook:
    """Names kedro-mlflow's parent run before it starts (``mkd 1/16 seed 0``), so the console
    announces one name instead of ``__default__`` and then another.

    kedro-mlflow names the run ``tracking.run.name`` or the pipeline's name; this hook fills an
    empty ``tracking.run.name`` of the session's kedro-mlflow configuration (``context.mlflow``)
    just before kedro-mlflow's ``before_pipeline_run`` reads it. A name set in ``mlflow.yml`` is
    kept. ``MkdsegTrackingHook`` then only describes the run.
    """

    def __init__(self) -> None:
        self._config: Any = None

    @hook_impl(trylast=True)  # after kedro-mlflow has put its configuration on the context
    def after_context_created(self, context: Any) -> None:
        self._config = getattr(context, "mlflow", None)

    @hook_impl(tryfirst=True)  # before kedro-mlflow starts the run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        run = getattr(getattr(self._config, "tracking", None), "run", None)
        if run is None or run.name or ALL_PARAMETERS_DATASET not in catalog:
            return
        run.name = run_naming.run_name(*_described(run_params, pipeline, catalog))
        self._config = None  # one session, one run: a later session brings its own context
