"""MLflow tracking per node, on top of kedro-mlflow's one-run-per-``kedro run``.

kedro-mlflow opens the *parent* run of a ``kedro run``, logs every consumed parameter on it
(flattened, ``conf/base/mlflow.yml``) and closes it (FAILED when the pipeline raises).
``MkdsegTrackingHook`` adds, for EVERY node, a nested *child* run named after the node:

- tags ``kedro.node`` / ``kedro.namespace``, ``mlflow.parentRunId`` = the parent run;
- params: the parameters the node consumed, flattened (``dataset.source`` ...);
- metric ``node_seconds``: wall time of the node function and the saving of its outputs;
- outputs, by name (``conventions``): ``*_metrics`` as metrics on the child AND the parent
  (namespace-prefixed there, so parent runs have comparable columns), ``*_params`` as params,
  ``*_history`` (a ``step`` column) as step-wise metrics, a local ``filepath`` as an artifact
  (logged in ``after_dataset_saved``: Kedro saves outputs AFTER ``after_node_run``);
- status FINISHED once its outputs are saved, or FAILED with tag ``error`` (truncated), as
  the parent on a pipeline error.

It also marks the experiment's kind, names and describes the parent run after what it trained
(``parent_run``) and completes the description with the headline metric at the end. It knows
naming conventions, not pipelines, and logs through ``MlflowClient`` by run id (kedro-mlflow
keeps the active-run stack). Runners: SequentialRunner, ThreadRunner and ParallelRunner with
forked workers (Linux's default, ``KEDRO_MP_CONTEXT``), where a worker carries this hook's state
from ``before_pipeline_run`` and records its nodes' child runs itself; spawned workers record
none (the parent still is; a warning says so). Tested in test_comparison_pipeline.py.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from mlflow.entities import Metric, Param, RunStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from mkdseg.tracking import conventions, parent_run, run_naming

logger = logging.getLogger(__name__)

NODE_SECONDS_METRIC = "node_seconds"
ERROR_TAG = "error"
NODE_TAG = "kedro.node"
NAMESPACE_TAG = "kedro.namespace"
PARALLEL_RUNNER = "ParallelRunner"
MP_CONTEXT_VARIABLE = "KEDRO_MP_CONTEXT"  # ParallelRunner's choice of process start method
REPORT_DATASET = "report"  # its path closes the run's console output
RUNNER_TAG = "runner"
FINISHED = RunStatus.to_string(RunStatus.FINISHED)
FAILED = RunStatus.to_string(RunStatus.FAILED)
RUNNING = RunStatus.to_string(RunStatus.RUNNING)


@dataclass
class _ChildRun:
    """State of one node's child run between its hooks."""

    run_id: str
    started: float
    pending_artifacts: set[str] = field(default_factory=set)
    unsaved: set[str] = field(default_factory=set)  # outputs Kedro has not saved yet


def _workers_are_forked() -> bool:
    """Whether ParallelRunner's workers will be forked (it reads ``KEDRO_MP_CONTEXT``)."""
    method = os.environ.get(MP_CONTEXT_VARIABLE) or multiprocessing.get_start_method()
    return method == "fork"


class MkdsegTrackingHook:
    """One nested MLflow child run per Kedro node (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self._client: MlflowClient | None = None
        self._parent_id: str | None = None
        self._experiment_id: str | None = None
        self._catalog: CatalogProtocol | None = None
        self._children: dict[str, _ChildRun] = {}
        self._parent_was_active = False
        self._describe: tuple[list[str] | None, set[str], dict[str, Any]] | None = None

    # ---------------------------------------------------------------- pipeline
    @hook_impl(tryfirst=True)  # before kedro-mlflow may start or adopt a run
    def after_context_created(self, context: Any) -> None:
        self._parent_was_active = mlflow.active_run() is not None

    @hook_impl(trylast=True)  # after kedro-mlflow has started the parent run
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        self._reset()
        parent = mlflow.active_run()
        if parent is None:
            logger.info("No active MLflow run (tracking disabled): no per-node runs.")
            return
        if PARALLEL_RUNNER in str(run_params.get("runner", "")) and not _workers_are_forked():
            logger.warning(
                "ParallelRunner with spawned workers: per-node MLflow runs are not recorded "
                "(set KEDRO_MP_CONTEXT=fork, or use the default runner or ThreadRunner)."
            )
        self._client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
        self._parent_id = parent.info.run_id
        self._experiment_id = parent.info.experiment_id
        self._catalog = catalog
        parent_run.mark_experiment_kind(self._client, self._experiment_id)
        if not self._parent_was_active:  # a caller's own run keeps its name
            self._describe = parent_run.name_and_describe(
                self._client, self._parent_id, run_params, pipeline, catalog
            )
        if "runner" in run_params:  # kedro-mlflow tags the runner object's repr
            self._client.set_tag(
                self._parent_id, RUNNER_TAG, conventions.runner_label(run_params["runner"])
            )

    @hook_impl(trylast=True)  # after kedro-mlflow has ended the parent run
    def after_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        for name in list(self._children):
            self._finish(name, FINISHED)
        if self._describe is not None and self._client is not None:  # now with the headline metric
            metrics = self._client.get_run(self._parent_id).data.metrics
            self._client.set_tag(
                self._parent_id,
                parent_run.DESCRIPTION_TAG,
                run_naming.run_description(*self._describe, metrics),
            )
        if self._client is not None:
            self._say_where_it_is(pipeline)
        self._drop_stale_parent_entries()
        self._reset()

    def _say_where_it_is(self, pipeline: Pipeline) -> None:
        """The console's last lines: the headline metric, the report and the run's UI page."""
        report = self._local_path(REPORT_DATASET) if REPORT_DATASET in pipeline.outputs() else None
        parent_run.say_where_it_is(
            self._client, self._experiment_id, self._parent_id, self._catalog, report
        )

    def _drop_stale_parent_entries(self) -> None:
        """Pop the parent run's leftover entries off MLflow's active-run stack: kedro-mlflow
        2.0.3 re-enters the parent in every ``before_node_run`` (MLflow 3 pushes it each time)
        and pops it once, so the next session in this process (tests, notebooks) would log into
        it. A run already active before the session is the caller's: left alone."""
        if self._parent_id is None or self._parent_was_active:
            return
        while (run := mlflow.active_run()) is not None and run.info.run_id == self._parent_id:
            mlflow.end_run()  # already FINISHED by kedro-mlflow; this only pops the stack

    @hook_impl(trylast=True)  # after kedro-mlflow has closed its runs FAILED
    def on_pipeline_error(
        self,
        error: Exception,
        run_params: dict[str, Any],
        pipeline: Pipeline,
        catalog: CatalogProtocol,
    ) -> None:
        if self._client is None or self._parent_id is None:
            return
        message = conventions.truncate(
            f"{type(error).__name__}: {error}", conventions.MAX_TAG_LENGTH
        )
        for name in list(self._children):  # e.g. a save that failed after the node ran
            child = self._children[name]
            self._client.set_tag(child.run_id, ERROR_TAG, message)
            self._log_metrics(
                child.run_id, {NODE_SECONDS_METRIC: time.perf_counter() - child.started}
            )
            self._finish(name, FAILED)
        self._client.set_tag(self._parent_id, ERROR_TAG, message)
        still_running = self._client.get_run(self._parent_id).info.status == RUNNING
        if still_running and not self._parent_was_active:  # a caller's own run stays theirs
            self._client.set_terminated(self._parent_id, FAILED)
        self._reset()

    # -------------------------------------------------------------------- node
    @hook_impl
    def before_node_run(self, node: Node, catalog: CatalogProtocol, inputs: dict[str, Any]) -> None:
        if self._client is None:
            return
        tags = {
            MLFLOW_PARENT_RUN_ID: self._parent_id,
            MLFLOW_RUN_NAME: node.name,
            NODE_TAG: node.name,
            NAMESPACE_TAG: node.namespace or "",
        }
        run = self._client.create_run(self._experiment_id, tags=tags, run_name=node.name)
        self._children[node.name] = _ChildRun(run.info.run_id, time.perf_counter())
        self._log_params(
            run.info.run_id, conventions.param_strings(conventions.node_params(inputs))
        )

    @hook_impl
    def after_node_run(self, node: Node, catalog: CatalogProtocol, outputs: dict[str, Any]) -> None:
        child = self._children.get(node.name)
        if child is None:
            return
        child.unsaved = set(outputs)
        for name, data in outputs.items():
            metrics = conventions.pick_metrics(name, data)
            if metrics:
                self._log_metrics(child.run_id, metrics)
                self._log_metrics(
                    self._parent_id, conventions.parent_metric_keys(metrics, node.namespace)
                )
            if params := conventions.pick_params(name, data):
                self._log_params(child.run_id, params)
            if conventions.is_history(name, data):
                self._log_history(child.run_id, data)
            if self._local_path(name) is not None:
                child.pending_artifacts.add(name)
        if not child.unsaved:
            self._finish_timed(node.name)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        child = self._children.get(node.name)
        if child is None:
            return
        if dataset_name in child.pending_artifacts:
            self._log_artifact(child, dataset_name, node)
        child.unsaved.discard(dataset_name)
        if not child.unsaved:  # the node's work includes saving (an MLflow model: seconds)
            self._finish_timed(node.name)

    def _log_artifact(self, child: _ChildRun, dataset_name: str, node: Node) -> None:
        path = self._local_path(dataset_name)
        if path is not None and path.is_dir():
            self._client.log_artifacts(child.run_id, str(path), artifact_path=path.name)
        elif path is not None and path.is_file():
            self._client.log_artifact(child.run_id, str(path))
        else:
            logger.warning(
                "Output %r of node %r was not found at %s; not logged.",
                dataset_name,
                node.name,
                path,
            )
        child.pending_artifacts.discard(dataset_name)

    @hook_impl
    def on_node_error(self, error: Exception, node: Node) -> None:
        child = self._children.get(node.name)
        if child is None:
            return
        message = conventions.truncate(
            f"{type(error).__name__}: {error}", conventions.MAX_TAG_LENGTH
        )
        self._client.set_tag(child.run_id, ERROR_TAG, message)
        self._log_metrics(child.run_id, {NODE_SECONDS_METRIC: time.perf_counter() - child.started})
        self._finish(node.name, FAILED)

    # ----------------------------------------------------------------- helpers
    def _reset(self) -> None:
        self._client, self._parent_id, self._experiment_id, self._catalog = None, None, None, None
        self._children = {}
        self._describe = None

    def _finish_timed(self, node_name: str) -> None:
        """FINISHED, with the wall time from the node's start to its last output's save."""
        child = self._children[node_name]
        self._log_metrics(child.run_id, {NODE_SECONDS_METRIC: time.perf_counter() - child.started})
        self._finish(node_name, FINISHED)

    def _finish(self, node_name: str, status: str) -> None:
        child = self._children.pop(node_name)
        self._client.set_terminated(child.run_id, status)

    def _local_path(self, dataset_name: str) -> Path | None:
        if self._catalog is None or dataset_name not in self._catalog:
            return None
        return conventions.dataset_local_path(self._catalog.get(dataset_name))

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        for batch in conventions.chunked(list(params.items()), conventions.PARAMS_PER_BATCH):
            self._client.log_batch(run_id, params=[Param(k, v) for k, v in batch])

    def _log_metrics(self, run_id: str, values: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, 0) for key, value in values.items()]
        for batch in conventions.chunked(metrics, conventions.METRICS_PER_BATCH):
            self._client.log_batch(run_id, metrics=batch)

    def _log_history(self, run_id: str, history: Any) -> None:
        now = int(time.time() * 1000)
        points = [
            Metric(key, value, now, step)
            for key, value, step in conventions.history_points(history)
        ]
        for batch in conventions.chunked(points, conventions.METRICS_PER_BATCH):
            self._client.log_batch(run_id, metrics=batch)
