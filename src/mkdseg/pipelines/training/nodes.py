"""Training node: the core trainer on the labeled/unlabeled split, with a progress bar."""

from __future__ import annotations

import statistics
from typing import Any

import pandas as pd

from mkdseg import training_inputs
from mkdseg.core.launch import train
from mkdseg.core.prediction.segmenter import make_bundle, make_networks_bundle
from mkdseg.core.trainer import check_unlabeled_pool
from mkdseg.progress import TrainingProgress


def train_model(
    manifest: pd.DataFrame,
    class_metadata: dict,
    labeled_ids: list[str],
    unlabeled_ids: list[str],
    training: dict[str, Any],
) -> tuple[dict, dict, pd.DataFrame, dict[str, float]]:
    """Train; return student 1 (bundle), every trained network (for scoring the unlabeled
    images), the per-iteration history and summary metrics."""
    cfg, run = training_inputs.trainer_config(training), training_inputs.run_settings(training)
    check_unlabeled_pool(cfg, len(unlabeled_ids))
    data = training_inputs.train_data(manifest, class_metadata, labeled_ids, unlabeled_ids)
    checkpoints = training_inputs.checkpoint_dir(
        run.checkpoint_root, cfg, labeled_ids, unlabeled_ids, class_metadata
    )
    with TrainingProgress(cfg.iterations, f"training {cfg.method.name}") as bar:
        result = train(
            cfg,
            data,
            world_size=run.gpus,
            callback=bar.update,
            checkpoint_dir=checkpoints,
            resume=run.resume,
        )
    classes = class_metadata["names"], class_metadata["colours"]
    bundle = make_bundle(result.student, cfg.model, *classes)
    networks = make_networks_bundle(result.networks, cfg.model, *classes)
    history = pd.DataFrame(result.history)
    summary = {
        "train_iterations": float(result.iterations),
        "train_nonfinite_skipped": float(result.nonfinite_skipped),
        "train_resumed_from": float(result.resumed_from),
    }
    if result.history:
        summary["train_images_per_s"] = statistics.median(h["images_per_s"] for h in result.history)
        summary["train_final_loss"] = result.history[-1]["loss"]
    return bundle, networks, history, summary


def export_model(student_model: dict, mlflow: dict[str, Any]) -> dict:
    """Hand the bundle to the MLflow model dataset (a separate step, visible in kedro-viz), with
    the registry name when ``mlflow.registered_model_name`` asks for registration."""
    return {
        "bundle": student_model,
        "registered_model_name": (mlflow or {}).get("registered_model_name"),
    }
