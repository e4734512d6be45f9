"""Both pipelines through a real KedroSession: kedro-mlflow's parent run + our per-node runs.

Everything is written under tmp_path (data via the `data_root` runtime param, MLflow via
`mlflow_tracking_uri` / `mlflow_artifact_location`): the repo's data/ and mlflow.db stay untouched.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow.tracking import MlflowClient

import mkdseg.pipeline_registry
from mkdseg.pipelines import ingestion, splits
from tests.conftest import PROJECT_ROOT, TINY_IMAGE_SIZE, TINY_N_TRAIN, TINY_N_VAL

N_LABELED = 2
INGESTION_NODES = {"build_manifest", "draw_sample_grid"}


def _our_pipelines() -> dict:
    """Only the two pipelines under test: the test must not depend on the others importing."""
    registered = {"ingestion": ingestion.create_pipeline(), "splits": splits.create_pipeline()}
    return {**registered, "__default__": registered["ingestion"] + registered["splits"]}


def _runtime_params(tmp_path: Path, labeled: object) -> dict:
    return {
        "data_root": str(tmp_path / "data"),
        "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "mlflow_artifact_location": str(tmp_path / "mlartifacts"),
        "dataset": {
            "textures": {
                "image_size": TINY_IMAGE_SIZE,
                "n_train": TINY_N_TRAIN,
                "n_val": TINY_N_VAL,
                "n_test": TINY_N_VAL,
            }
        },
        "sample_grid": {"rows": 1, "cols": 2, "tile_size": TINY_IMAGE_SIZE},
        "splits": {"labeled": labeled},
    }


def _run(tmp_path: Path, labeled: object, pipelines: list[str]) -> None:
    bootstrap_project(PROJECT_ROOT)
    params = _runtime_params(tmp_path, labeled)
    with KedroSession.create(project_path=PROJECT_ROOT, runtime_params=params) as session:
        session.run(pipeline_names=pipelines)


def _runs(tmp_path: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mkdseg")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    return client, runs


def _split(runs: list) -> tuple[list, dict]:
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {}
    for run in runs:
        children.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)
    return parents, children


def test_session_logs_parent_and_one_child_per_node_then_a_failure(
    tmp_path: Path, isolated_mlflow: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mkdseg.pipeline_registry, "register_pipelines", _our_pipelines)
    started, start_run = [], mlflow.start_run

    def recording_start_run(*args: object, **kwargs: object) -> object:
        started.append(kwargs.get("run_name"))
        return start_run(*args, **kwargs)

    monkeypatch.setattr(mlflow, "start_run", recording_start_run)  # kedro-mlflow starts the parent
    _run(tmp_path, N_LABELED, ["ingestion", "splits"])
    # started under its final name: the console announces one name, not __default__ then another
    assert started[0] == f"ingestion+splits: {N_LABELED} labels seed 0"
    assert mlflow.active_run() is None  # nothing left on MLflow's run stack for the next session
    assert (tmp_path / "data" / "03_primary" / "splits" / "labeled.txt").read_text().count(
        "\n"
    ) == N_LABELED
    assert (tmp_path / "data" / "08_reporting" / "sample_grid.png").is_file()

    client, runs = _runs(tmp_path)
    parents, children = _split(runs)
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    # not kedro-mlflow's pipeline name
    assert parent.info.run_name == f"ingestion+splits: {N_LABELED} labels seed 0"
    assert (
        "Kedro pipeline `ingestion+splits` on the `textures` dataset"
        in parent.data.tags["mlflow.note.content"]
    )
    experiment = client.get_experiment_by_name("mkdseg")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.data.params["dataset.source"] == "textures"
    assert parent.data.params["dataset.textures.n_train"] == str(TINY_N_TRAIN)
    assert parent.data.params["splits.labeled"] == str(N_LABELED)
    assert parent.data.metrics["n_labeled"] == N_LABELED
    assert (
        parent.data.metrics["n_train"] == TINY_N_TRAIN and parent.data.metrics["n_quarantined"] == 0
    )

    nodes = {run.info.run_name: run for run in children[parent.info.run_id]}
    assert set(nodes) == INGESTION_NODES | {"make_split"}
    assert {run.info.status for run in nodes.values()} == {"FINISHED"}
    assert nodes["make_split"].data.params == {
        "splits.labeled": str(N_LABELED),
        "splits.draw": "uniform",
        "splits.seed": "0",
    }
    assert nodes["draw_sample_grid"].data.params["sample_grid.cols"] == "2"
    assert "dataset.source" not in nodes["make_split"].data.params
    assert nodes["make_split"].data.metrics["n_unlabeled"] == TINY_N_TRAIN - N_LABELED
    assert all("node_seconds" in run.data.metrics for run in nodes.values())
    artifacts = {a.path for a in client.list_artifacts(nodes["build_manifest"].info.run_id)}
    assert artifacts == {"manifest.csv", "class_metadata.json", "quarantine.csv"}
    split_files = {a.path for a in client.list_artifacts(nodes["make_split"].info.run_id)}
    split_outputs = {"labeled.txt", "unlabeled.txt", "val.txt", "split_stats.csv"}
    assert split_outputs | {"split_metrics.json"} == split_files
    assert parent.data.metrics["n_unlabeled_masked"] == TINY_N_TRAIN - N_LABELED
    assert parent.data.metrics["n_unlabeled_no_mask"] == 0

    # A bad `splits.labeled` fails make_split: child and parent FAILED, error recorded.
    with pytest.raises(ValueError, match="not found"):
        _run(tmp_path, "no/such/split.txt", ["splits"])
    client, runs = _runs(tmp_path)
    parents, children = _split(runs)
    failed_parent = parents[-1]
    assert failed_parent.info.status == "FAILED"
    assert "no/such/split.txt" in failed_parent.data.tags["error"]
    (failed_child,) = children[failed_parent.info.run_id]
    assert failed_child.info.run_name == "make_split" and failed_child.info.status == "FAILED"
    assert failed_child.data.tags["error"].startswith("ValueError:")
    assert not [run for run in runs if run.info.status == "RUNNING"]
