"""MkdsegTrackingHook on a toy pipeline: real SequentialRunner, real (temporary) SQLite store.

The parent run is started here the way kedro-mlflow starts it; the session test covers
the two hooks together.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kedro.framework.hooks import _create_hook_manager
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from mlflow.tracking import MlflowClient

from mkdseg.catalog import JSONDataset, TableDataset
from mkdseg.tracking.hooks import ERROR_TAG, NAMESPACE_TAG, NODE_SECONDS_METRIC, MkdsegTrackingHook
from mkdseg.tracking.parent_run import DESCRIPTION_TAG, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG


class _FolderDataset(MemoryDataset):
    """Writes a folder of two files: the hook must log it as a folder."""

    def __init__(self, filepath: str) -> None:
        super().__init__()
        self._filepath = filepath

    def save(self, data: dict[str, str]) -> None:
        Path(self._filepath).mkdir(parents=True, exist_ok=True)
        for name, text in data.items():
            (Path(self._filepath) / name).write_text(text)


def _prepare(rate: float) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    table = pd.DataFrame({"x": [1, 2]})
    history = pd.DataFrame({"step": [0, 1, 2], "loss": [3.0, 2.0, 1.0], "tag": ["a", "b", "c"]})
    return table, {"score": rate * 2, "name": "ignored"}, history


def _report(table: pd.DataFrame) -> tuple[dict, dict]:
    return {"rows": len(table)}, {"a.txt": "A", "b.txt": "B"}


def _explode(table: pd.DataFrame, threshold: dict) -> dict:
    raise RuntimeError(f"boom with {len(table)} rows")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[MlflowClient, str]:
    """One SQLite store for the module (creating its tables costs seconds)."""
    root = tmp_path_factory.mktemp("mlflow")
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.create_experiment("hooktest", artifact_location=(root / "art").as_uri())
    yield client, experiment
    mlflow.set_tracking_uri(None)


def _run(
    pipeline: Pipeline,
    catalog: DataCatalog,
    experiment: str,
    run_name: str = "parent",
    pipeline_names: list[str] | None = None,
) -> str:
    """Run like a session does: parent run open, pipeline hooks around the runner."""
    hook = MkdsegTrackingHook()
    manager = _create_hook_manager()
    manager.register(hook)
    run = mlflow.start_run(experiment_id=experiment, run_name=run_name)
    params = {"runner": "SequentialRunner", "pipeline_names": pipeline_names}
    hook.before_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
    try:
        SequentialRunner().run(pipeline, catalog, manager)
    except Exception as error:
        hook.on_pipeline_error(error=error, run_params=params, pipeline=pipeline, catalog=catalog)
        mlflow.end_run("FAILED")
        return run.info.run_id
    hook.after_pipeline_run(run_params=params, pipeline=pipeline, catalog=catalog)
    mlflow.end_run()
    return run.info.run_id


def _children(client: MlflowClient, experiment: str, parent: str) -> dict[str, object]:
    runs = client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    return {run.info.run_name: run for run in runs}


def test_child_runs_params_metrics_history_artifacts(store, tmp_path: Path) -> None:
    client, experiment = store
    catalog = DataCatalog(
        {
            "table": TableDataset(str(tmp_path / "table.csv")),
            "report_metrics": JSONDataset(str(tmp_path / "report.json")),
            "plots": _FolderDataset(str(tmp_path / "plots")),
            "params:train.rate": MemoryDataset(0.5),
        }
    )
    pipeline = Pipeline(
        [
            node(
                _prepare,
                "params:train.rate",
                ["table", "fit_metrics", "fit_history"],
                name="prepare",
            ),
            node(_report, "table", ["report_metrics", "plots"], name="report", namespace=None),
        ]
    )
    parent_id = _run(pipeline, catalog, experiment)
    parent = client.get_run(parent_id)
    children = _children(client, experiment, parent_id)
    assert set(children) == {"prepare", "report"}
    prepare, report = children["prepare"], children["report"]
    assert {prepare.info.status, report.info.status, parent.info.status} == {"FINISHED"}
    assert prepare.data.params == {"train.rate": "0.5"}
    assert prepare.data.tags[NAMESPACE_TAG] == ""
    assert prepare.data.metrics["score"] == 1.0 and "name" not in prepare.data.metrics
    assert prepare.data.metrics[NODE_SECONDS_METRIC] >= 0.0
    # *_metrics also reach the parent; a file-backed *_metrics is still logged as metrics
    assert parent.data.metrics["score"] == 1.0 and parent.data.metrics["rows"] == 2.0
    losses = client.get_metric_history(prepare.info.run_id, "loss")
    assert [(m.step, m.value) for m in losses] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    # artifacts are logged once saved: files by name, folders as folders
    assert [a.path for a in client.list_artifacts(prepare.info.run_id)] == ["table.csv"]
    logged = {a.path for a in client.list_artifacts(report.info.run_id)}
    assert logged == {"report.json", "plots"}
    assert {a.path for a in client.list_artifacts(report.info.run_id, "plots")} == {
        "plots/a.txt",
        "plots/b.txt",
    }
    local = client.download_artifacts(prepare.info.run_id, "table.csv", str(tmp_path / "dl"))
    assert pd.read_csv(local)["x"].tolist() == [1, 2]


def test_failing_node_marks_child_and_parent_failed(store, tmp_path: Path) -> None:
    client, experiment = store
    catalog = DataCatalog(
        {
            "table": TableDataset(str(tmp_path / "t.csv")),
            "params:threshold": MemoryDataset({"max": 3}),
            "params:threshold.max": MemoryDataset(3),
        }
    )
    pipeline = Pipeline(
        [
            node(_prepare, "params:threshold.max", ["table", "a_metrics", "a_history"], name="ok"),
            node(_explode, ["table", "params:threshold"], "b_metrics", name="explode"),
        ]
    )
    parent_id = _run(pipeline, catalog, experiment)
    children = _children(client, experiment, parent_id)
    assert children["ok"].info.status == "FINISHED"
    failed = children["explode"]
    assert failed.info.status == "FAILED"
    assert failed.data.tags[ERROR_TAG] == "RuntimeError: boom with 2 rows"
    assert failed.data.params == {"threshold.max": "3"}  # the dict input, flattened
    parent = client.get_run(parent_id)
    assert parent.info.status == "FAILED" and "boom with 2 rows" in parent.data.tags[ERROR_TAG]
    running = client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
    assert running == []


def test_no_active_run_means_no_tracking(store, tmp_path: Path) -> None:
    client, experiment = store
    hook = MkdsegTrackingHook()
    manager = _create_hook_manager()
    manager.register(hook)
    pipeline = Pipeline(
        [node(_prepare, "params:r", ["table", "x_metrics", "x_history"], name="alone")]
    )
    catalog = DataCatalog(
        {"table": TableDataset(str(tmp_path / "t.csv")), "params:r": MemoryDataset(1.0)}
    )
    before = len(client.search_runs([experiment]))
    hook.before_pipeline_run(run_params={}, pipeline=pipeline, catalog=catalog)
    SequentialRunner().run(pipeline, catalog, manager)
    assert len(client.search_runs([experiment])) == before
    assert (tmp_path / "t.csv").is_file()


class _BrokenDataset(TableDataset):
    def save(self, data: pd.DataFrame) -> None:
        raise OSError("disk full")


def test_failed_save_after_the_node_ran_marks_child_failed(store, tmp_path: Path) -> None:
    client, experiment = store
    catalog = DataCatalog(
        {"table": _BrokenDataset(str(tmp_path / "t.csv")), "params:rate": MemoryDataset(1.0)}
    )
    pipeline = Pipeline(
        [node(_prepare, "params:rate", ["table", "p_metrics", "p_history"], name="unsaved")]
    )
    parent_id = _run(pipeline, catalog, experiment)
    (child,) = _children(client, experiment, parent_id).values()
    assert child.info.status == "FAILED" and "disk full" in child.data.tags[ERROR_TAG]
    assert child.data.metrics["score"] == 2.0  # what the node computed is still recorded
    assert client.get_run(parent_id).info.status == "FAILED"


def _evaluate(training: dict) -> dict:
    return {"val_mIoU_whole": 0.4321, "n_labeled": 125.0, "n_unlabeled": 1875.0}


def _named_run_catalog(tmp_path: Path) -> DataCatalog:
    params = {
        "training": {
            "method": "mkd",
            "seed": 3,
            "iterations": 600,
            "batch_size": 8,
            "unlabeled_batch_size": 8,
            "model": {"backbone": "resnet18"},
        },
        "splits": {"labeled": 0.0625, "seed": 3},
        "dataset": {"source": "synthetic", "root": "data/x"},
        "evaluation": {"mode": "whole"},
    }
    return DataCatalog(
        {"parameters": MemoryDataset(params), "params:training": MemoryDataset(params["training"])}
    )


def test_parent_run_is_named_and_described_and_the_experiment_opens_on_training(
    store, tmp_path: Path
) -> None:
    client, experiment = store
    pipeline = Pipeline([node(_evaluate, "params:training", "run_metrics", name="evaluate")])
    parent_id = _run(pipeline, _named_run_catalog(tmp_path), experiment, run_name="__default__")
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "mkd 1/16 seed 3"
    description = parent.data.tags[DESCRIPTION_TAG]
    assert description.startswith("**MKD (Mutual Knowledge Distillation")
    for part in (
        "1/16 of the labels (125 of 2000 training images)",
        "`synthetic` dataset",
        "seed 3",
        "resnet18 DeepLabv3+",
        "600 iterations",
        "val_mIoU_whole **0.432**",
    ):
        assert part in description, part
    assert client.get_experiment(experiment).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    assert parent.data.tags["runner"] == "SequentialRunner"


def test_the_console_ends_on_the_headline_the_report_and_the_run_page(
    store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, experiment = store
    report = tmp_path / "report"

    def write_report(training: dict) -> dict[str, str]:
        return {"report.html": "<html>report</html>"}

    catalog = _named_run_catalog(tmp_path)
    catalog["report"] = _FolderDataset(str(report))
    pipeline = Pipeline(
        [
            node(_evaluate, "params:training", "run_metrics", name="evaluate"),
            node(write_report, "params:training", "report", name="report"),
        ]
    )
    with caplog.at_level("INFO", logger="mkdseg.tracking.parent_run"):
        parent_id = _run(pipeline, catalog, experiment, run_name="__default__")
    last = [r.getMessage() for r in caplog.records][-3:]
    assert last[0] == "val_mIoU_whole: 0.4321"
    assert last[1] == f"report: {report / 'report.html'}"
    assert last[2].startswith(f"MLflow run: http://127.0.0.1:5000/#/experiments/{experiment}/runs/")
    assert last[2].split("/runs/")[1].startswith(parent_id)


def test_a_run_name_from_mlflow_yml_and_a_chosen_experiment_kind_are_kept(
    store, tmp_path: Path
) -> None:
    client, experiment = store
    client.set_experiment_tag(experiment, EXPERIMENT_KIND_TAG, "forecasting")
    pipeline = Pipeline([node(_evaluate, "params:training", "run_metrics", name="evaluate")])
    parent_id = _run(
        pipeline,
        _named_run_catalog(tmp_path),
        experiment,
        run_name="my sweep",
        pipeline_names=["training"],
    )
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "my sweep" and DESCRIPTION_TAG not in parent.data.tags
    assert client.get_experiment(experiment).tags[EXPERIMENT_KIND_TAG] == "forecasting"
    client.set_experiment_tag(experiment, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


SLOW_SAVE_S = 0.3


class _SlowSave(MemoryDataset):
    """An output whose save takes time, as logging an MLflow model does (and may then fail)."""

    def __init__(self, fails: bool) -> None:
        super().__init__()
        self.fails = fails

    def save(self, data: object) -> None:
        time.sleep(SLOW_SAVE_S)
        if self.fails:
            raise OSError("disk full")
        super().save(data)


@pytest.mark.parametrize(("fails", "status"), [(False, "FINISHED"), (True, "FAILED")])
def test_node_seconds_include_saving_the_outputs(store, fails: bool, status: str) -> None:
    client, experiment = store
    catalog = DataCatalog({"params:rate": MemoryDataset(1.0), "model": _SlowSave(fails)})
    pipeline = Pipeline([node(lambda rate: rate, "params:rate", "model", name="export")])
    parent_id = _run(pipeline, catalog, experiment)
    (child,) = _children(client, experiment, parent_id).values()
    assert child.info.status == status
    assert child.data.metrics["node_seconds"] >= SLOW_SAVE_S
