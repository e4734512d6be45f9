"""Report node: gathers what the run produced into the report's content; the catalog renders it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mkdseg.core.architectures import applicable_settings
from mkdseg.core.image_io import read_image
from mkdseg.labelling import SHARE_PREFIX, Proposals
from mkdseg.pipelines.comparison.summary import comparison_table
from mkdseg.reporting.prediction_grid import proposal_grid
from mkdseg.reporting.report import ToLabel
from mkdseg.tracking.run_naming import labels_phrase

METRIC = "val_mIoU_{mode}"
PER_CLASS_METRIC = (
    "val_IoU_{mode}.{name}"  # evaluation's per-class keys: the report's per-class table
)
SCORE_DIGITS = 4  # significant digits, as text: disagreement scores can be 1e-4 and less
MIN_SHOWN_SHARE = 0.01  # predicted classes under 1 % of an image are left out of its phrase
SUMMARY_KEYS = ("method", "iterations", "batch_size", "unlabeled_batch_size", "seed")
DATA_ROWS = {  # split_metrics key (splitting.split_counts) -> how the report's summary says it
    "n_labeled": "labeled images (with a mask)",
    "n_unlabeled": "unlabeled images",
    "n_unlabeled_masked": "unlabeled: masked, not drawn (benchmark protocol)",
    "n_unlabeled_no_mask": "unlabeled: no mask",
    "n_unlabeled_extra": "unlabeled: unlabeled pool",
    "n_val": "validation images (evaluated on)",
}


def data_summary(split_metrics: dict[str, float]) -> dict[str, int]:
    """What the run learnt from and was evaluated on, and where the unlabeled images came from."""
    missing = [key for key in DATA_ROWS if key not in split_metrics]
    if missing:
        raise ValueError(f"split_metrics miss {missing}: re-run the splits pipeline")
    return {text: int(split_metrics[key]) for key, text in DATA_ROWS.items()}


def build_report(
    evaluation_metrics: dict[str, float],
    confusion_matrix: pd.DataFrame,
    training_history: pd.DataFrame,
    prediction_examples: np.ndarray,
    experiment_runs: pd.DataFrame,
    class_metadata: dict,
    split_metrics: dict[str, float],
    labelling_table: pd.DataFrame,
    proposed_masks: Proposals,
    training: dict[str, Any],
    splits: dict[str, Any],
    evaluation: dict[str, Any],
    labelling: dict[str, Any],
) -> dict[str, Any]:
    """The arguments of ``write_report``: summary, metrics, per-class IoU, curves, grid and
    comparison."""
    names = class_metadata["names"]
    mode = evaluation.get("mode", "whole")
    per_class = [PER_CLASS_METRIC.format(mode=mode, name=n) for n in names]
    iou = np.array([evaluation_metrics.get(key, np.nan) for key in per_class], dtype=float)
    overall = {
        k: v for k, v in evaluation_metrics.items() if k not in set(per_class)
    }  # per class: one table
    summary = {
        **{k: training.get(k) for k in SUMMARY_KEYS},
        "labeled": splits.get("labeled"),
        "split_seed": splits.get("seed"),
        "dataset": class_metadata.get("source"),
        "data": data_summary(split_metrics),
        "model": applicable_settings(training.get("model") or {}),
        "evaluation_mode": mode,
    }
    runs = with_current_run(experiment_runs, evaluation_metrics, training, splits)
    return {
        "summary": summary,
        "metrics": overall,
        "class_names": names,
        "iou": iou,
        "matrix": confusion_matrix.to_numpy(),
        "history": training_history,
        "prediction_grid": prediction_examples,
        "comparison": comparison_table(runs, METRIC.format(mode=mode)),
        "title": report_title(training, splits, split_metrics),
        "to_label": to_label(labelling_table, proposed_masks, class_metadata, labelling),
    }


def to_label(
    table: pd.DataFrame, proposals: Proposals, class_metadata: dict, labelling: dict[str, Any]
) -> ToLabel:
    """The labelling section: the proposed images (rank, id, score, what the networks see in
    them), their grid with the proposed masks, and every score for the distribution."""
    proposed = table[table["proposed_mask"].astype(str) != ""]
    shares = proposed[[f"{SHARE_PREFIX}{n}" for n in class_metadata["names"]]].to_numpy(float)
    rows = pd.DataFrame(
        {
            "rank": proposed["rank"].astype(int).to_numpy(),
            "id": proposed["id"].astype(str).to_numpy(),
            "score": [f"{v:.{SCORE_DIGITS}g}" for v in proposed["score"].astype(float)],
            "predicted classes": [class_phrase(row, class_metadata["names"]) for row in shares],
            "proposed mask": proposed["proposed_mask"].astype(str).to_numpy(),
        }
    )
    grid = None
    if proposals.masks:
        images = [read_image(proposals.images[stem]) for stem in proposals.masks]
        masks = list(proposals.masks.values())
        grid = proposal_grid(images, masks, class_metadata["colours"], class_metadata["names"])
    scores = table["score"].to_numpy(dtype=float)
    scored_by = str(table["scored_by"].iloc[0]) if len(table) else str(labelling.get("score"))
    return ToLabel(rows, grid, scores, scored_by)


def class_phrase(shares: np.ndarray, names: list[str]) -> str:
    """``stripes 61%, background 39%``: the predicted classes by share, largest first."""
    order = np.argsort(-shares, kind="stable")
    return ", ".join(f"{names[i]} {shares[i]:.0%}" for i in order if shares[i] >= MIN_SHOWN_SHARE)


def report_title(
    training: dict[str, Any], splits: dict[str, Any], split_metrics: dict[str, float]
) -> str:
    """``mkdseg report: mkd, 1/16 of the labels (125 of 2000 training images)``."""
    labeled, unlabeled = int(split_metrics["n_labeled"]), int(split_metrics["n_unlabeled"])
    return (
        f"mkdseg report: {training.get('method')}, {labels_phrase(splits.get('labeled'))} "
        f"({labeled} of {labeled + unlabeled} training images)"
    )


def with_current_run(
    runs: pd.DataFrame, metrics: dict[str, float], training: dict[str, Any], splits: dict[str, Any]
) -> pd.DataFrame:
    """The experiment's finished runs plus this one (still running while its report is drawn)."""
    row = {
        "run_id": "this run",
        "status": "FINISHED",
        "params.training.method": str(training.get("method")),
        "params.splits.labeled": str(splits.get("labeled")),
        "params.training.seed": str(training.get("seed")),
        "start_time": pd.Timestamp.now(tz="UTC"),
        **{f"metrics.{k}": v for k, v in metrics.items()},
    }
    current = pd.DataFrame([row])
    if runs is None or runs.empty:
        return current
    finished = runs[runs.get("status", pd.Series(dtype=str)) == "FINISHED"]
    return pd.concat([finished, current], ignore_index=True)
