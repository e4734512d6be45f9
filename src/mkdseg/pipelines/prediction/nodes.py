"""Prediction node: segment a folder of new images with a trained model."""

from __future__ import annotations

from typing import Any

import pandas as pd
from torch import nn

from mkdseg.core.prediction.folder import predict_folder
from mkdseg.core.runtime import resolve_device


def segment_folder(
    prediction_model: nn.Module, class_metadata: dict, prediction: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Masks and overlays under ``prediction.output_dir``; a table of what was done and skipped."""
    records = predict_folder(
        prediction_model,
        prediction["input_dir"],
        prediction["output_dir"],
        class_metadata["colours"],
        str(resolve_device(prediction.get("device", "auto"))),
        prediction.get("long_side"),
    )
    table = pd.DataFrame(records, columns=["image", "status", "reason", "mask", "overlay"])
    counts = table["status"].value_counts()
    return table, {
        "predicted_images": float(counts.get("ok", 0)),
        "skipped_images": float(counts.get("skipped", 0)),
    }
