"""A comparison job killed with SIGKILL mid-training and started again resumes from its last
checkpoint and ends with the result of a job that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_ROOT

JOB = "comparison.mkd_1_16.seed_0"
# Long enough to be killed between checkpoints: 120 steps, a checkpoint every 5.
ITERATIONS, EVERY = 120, 5
TRAINING = (
    f"comparison.training.iterations={ITERATIONS},comparison.training.checkpoint_every={EVERY}"
)
TIMEOUT_S = 300


def _command(data: Path, *selection: str) -> list[str]:
    params = f"data_root={data},mlflow_tracking_uri=sqlite:///{data / 'mlflow.db'},{TRAINING}"
    kedro = [sys.executable, "-m", "kedro", "run", "--env", "comparison_tiny"]
    return [*kedro, *selection, "--params", params]


def _run(data: Path, *selection: str) -> None:
    done = subprocess.run(
        _command(data, *selection),
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]


def _env() -> dict[str, str]:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    for name in ("KEDRO_ENV", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return env


def _result(data: Path) -> dict:
    path = data / "07_model_output/comparison/mkd_1_16/seed_0.json"
    return json.loads(path.read_text())


def test_a_killed_job_resumes_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for data in (straight, killed):
        _run(data, "--pipelines", "ingestion")
    _run(straight, "--pipelines", "comparison_tiny", "--namespaces", JOB)

    job = subprocess.Popen(
        _command(killed, "--pipelines", "comparison_tiny", "--namespaces", JOB),
        cwd=PROJECT_ROOT,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = killed / "06_models/checkpoints"
    deadline = time.monotonic() + TIMEOUT_S
    while not list(checkpoints.glob("*/checkpoint_00000010.pt")):
        if job.poll() is not None or time.monotonic() > deadline:
            job.kill()
            pytest.fail("the job ended (or stalled) before its second checkpoint")
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL
    assert not (killed / "07_model_output").exists()  # no result: the summary calls it missing
    _run(killed, "--pipelines", "comparison_tiny", "--namespaces", JOB)
    assert _result(killed) == _result(straight)
    client = MlflowClient(tracking_uri=f"sqlite:///{killed / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mkdseg").experiment_id
    train = client.search_runs([experiment], "tags.`kedro.node` = '" + JOB + ".train'")
    resumed = sorted(r.data.metrics.get("train_resumed_from", -1) for r in train)
    assert resumed[-1] in range(2 * EVERY, ITERATIONS, EVERY)  # a checkpoint's, not 0
