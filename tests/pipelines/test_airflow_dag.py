"""The comparison grid as an Airflow DAG (kedro-airflow, `--group-by memory`): one task per run
(its split, training and evaluation, which pass data in memory), the ingestion before them and
the summary after all of them. The generated file is parsed, not imported: Airflow itself is
not a dependency of the tests."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

TINY_ENV = "comparison_tiny"
TINY_PIPELINE = "comparison_tiny"  # settings.COMPARISON_GRIDS
RUNS = ["comparison.sup_1_16.seed_0", "comparison.mkd_1_16.seed_0"]
STEPS = ("prepare", "train", "evaluate")
TASK = re.compile(
    r'@task\(task_id="([^"]+)"\)\s+def [^\n]+\n\s+_run_kedro_node\(node_names=(\[.*?\])'
)
EDGE = re.compile(r'tasks\["([^"]+)"\] >> tasks\["([^"]+)"\]')


def test_the_dag_has_one_task_per_run_and_the_summary_after_them(tmp_path: Path) -> None:
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    env.pop("KEDRO_ENV", None)
    command = [sys.executable, "-m", "kedro", "airflow", "create", "--pipelines", TINY_PIPELINE]
    command += ["--env", TINY_ENV, "--group-by", "memory", "--target-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout.decode(errors="replace")[-3000:]
    (dag,) = tmp_path.glob("*.py")
    text = dag.read_text()
    tasks = {task: ast.literal_eval(nodes) for task, nodes in TASK.findall(text)}
    by_nodes = {tuple(sorted(nodes)): task for task, nodes in tasks.items()}
    run_tasks = [by_nodes[tuple(sorted(f"{run}.{step}" for step in STEPS))] for run in RUNS]
    summary = by_nodes[("comparison.summarise",)]
    manifest = by_nodes[("build_manifest",)]
    edges = set(EDGE.findall(text))
    for task in run_tasks:
        assert (manifest, task) in edges and (task, summary) in edges
    assert len(tasks) == len(RUNS) + 1 + 2  # the runs, the summary, the ingestion's two nodes
    assert f'env = "{TINY_ENV}"' in text and f'pipeline_name = "{TINY_PIPELINE}"' in text
