"""A fingerprint of the default run's trained weights: a refactor must leave it unchanged.

Runs the default run's ingestion, splits and training pipelines through a KedroSession
(the project's own parameters, so the whole path from YAML to the loss is covered) for a
short schedule on the CPU in fp32, with every output under a temporary folder, then prints
the SHA-256 of student 1's weights (every tensor's bytes, in key order).

    .venv/bin/python scripts/weights_fingerprint.py                # prints student_sha256=...
    .venv/bin/python scripts/weights_fingerprint.py --expect HASH  # exit 1 if it differs

The hash depends on the torch build and the CPU's kernels: compare two commits on one machine.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ["ingestion", "splits", "training"]


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def train_default(root: Path, iterations: int, seed: int) -> dict[str, torch.Tensor]:
    params = {
        "data_root": str(root / "data"),
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_location": str(root / "mlartifacts"),
        "training": {
            "iterations": iterations,
            "seed": seed,
            "device": "cpu",
            "precision": "fp32",
            "resume": False,
        },
    }
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(project_path=PROJECT_ROOT, runtime_params=params) as session:
        session.run(pipeline_names=PIPELINES)
    bundle = torch.load(
        root / "data" / "06_models" / "student.pt", map_location="cpu", weights_only=True
    )
    return bundle["state_dict"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--expect", help="the hash a previous commit printed; exit 1 if this differs"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mkdseg-fingerprint-") as tmp:
        digest = weights_sha256(train_default(Path(tmp), args.iterations, args.seed))
    print(f"student_sha256={digest}")
    if args.expect and args.expect != digest:
        print(f"differs from the expected {args.expect}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
