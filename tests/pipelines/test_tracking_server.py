"""The grid as concurrent jobs against a real MLflow tracking server (`make mlflow-server`):
the tiny grid's run jobs at once as separate processes, pointed at it by MLFLOW_TRACKING_URI,
lose no run, param, metric or artifact, and the summary job tabulates them all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_ROOT

SERVER_START_TIMEOUT_S = 60
JOB_TIMEOUT_S = 300
TINY_ENV = "comparison_tiny"  # settings.COMPARISON_GRIDS: its pipeline has the same name
RUNS = [f"comparison.{v}.seed_0" for v in ("sup_1_16", "mkd_1_16")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    """``mlflow server`` as ``make mlflow-server`` starts it, its store under ``tmp_path``."""
    port = _free_port()
    store = tmp_path / "server"
    (store / "artifacts").mkdir(parents=True)
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}"]
        + ["--artifacts-destination", str(store / "artifacts")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(0.5)
    yield uri
    process.terminate()
    process.wait(timeout=30)


def _job(data: Path, uri: str, *selection: str) -> subprocess.Popen:
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "true"}
    env.pop("KEDRO_ENV", None)
    command = [sys.executable, "-m", "kedro", "run", "--env", TINY_ENV]
    command += [*selection, "--params", f"data_root={data}"]
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(job: subprocess.Popen) -> None:
    output, _ = job.communicate(timeout=JOB_TIMEOUT_S)
    assert job.returncode == 0, output.decode(errors="replace")[-3000:]


def test_concurrent_jobs_against_the_server_lose_nothing(tmp_path: Path, server: str) -> None:
    data = tmp_path / "data"
    _finish(_job(data, server, "--pipelines", "ingestion"))
    jobs = [_job(data, server, "--pipelines", TINY_ENV, "--namespaces", r) for r in RUNS]
    for job in jobs:
        _finish(job)
    _finish(_job(data, server, "--pipelines", TINY_ENV, "--nodes", "comparison.summarise"))

    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("mkdseg")
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # uploaded to the server
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert all(r.info.status == "FINISHED" for r in runs)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 + len(RUNS) + 1  # ingestion, one per job, the summary
    evaluated = {
        r.data.tags["kedro.namespace"]: r
        for r in runs
        if r.data.tags.get("kedro.node", "").endswith(".evaluate")
    }
    assert sorted(evaluated) == sorted(RUNS)
    for name, run in evaluated.items():
        variant, seed = name.split(".")[1], name.rsplit("_", 1)[1]
        assert (run.data.params["variant"], run.data.params["training.seed"]) == (variant, seed)
        assert 0.0 <= run.data.metrics["val_mIoU_whole"] <= 1.0
        assert [a.path for a in client.list_artifacts(run.info.run_id)] == [f"seed_{seed}.json"]
    trained = [r for r in runs if r.data.tags.get("kedro.node", "").endswith(".train")]
    assert len(trained) == len(RUNS) and all(r.data.params for r in trained)
    results = pd.read_csv(data / "08_reporting/comparison/results.csv")
    assert len(results) == len(RUNS)
    # The same grid as one sequential `kedro run` (its own data and SQLite store): the same table.
    sequential = tmp_path / "sequential"
    _finish(_job(sequential, f"sqlite:///{sequential / 'mlflow.db'}", "--pipelines", TINY_ENV))
    expected = pd.read_csv(sequential / "08_reporting/comparison/results.csv")
    pd.testing.assert_frame_equal(results, expected)
    by_run = results.set_index(["variant", "seed"])["val_mIoU_whole"]
    for name, run in evaluated.items():
        key = (name.split(".")[1], int(name.rsplit("_", 1)[1]))
        assert by_run[key] == pytest.approx(run.data.metrics["val_mIoU_whole"])
