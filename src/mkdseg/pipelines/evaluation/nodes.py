"""Evaluation node: student 1 on the val split, in whole-image or sliding-window mode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mkdseg import training_inputs
from mkdseg.core.evaluation import EvalResult, EvalSettings, evaluate, named_metrics
from mkdseg.core.image_io import MaskEncoding, read_image, read_mask
from mkdseg.core.prediction.segmenter import segmenter_from_bundle
from mkdseg.core.runtime import resolve_device
from mkdseg.reporting.prediction_grid import prediction_grid


def evaluate_model(
    student_model: dict,
    manifest: pd.DataFrame,
    class_metadata: dict,
    val_ids: list[str],
    evaluation: dict[str, Any],
    subset: str = "val",
) -> tuple[dict[str, float], pd.DataFrame, np.ndarray]:
    """Metrics (names carry the subset and the mode: ``val_mIoU_whole``), the confusion matrix
    and a grid of predictions, on the images ``val_ids`` (of ``subset``)."""
    settings = EvalSettings(**{k: v for k, v in evaluation.items() if k != "device"})
    samples = training_inputs.samples_for(manifest, val_ids, subset)
    names = class_metadata["names"]
    encoding = MaskEncoding.from_dict(class_metadata.get("mask_encoding"))
    result = evaluate(
        segmenter_from_bundle(student_model),
        samples,
        encoding,
        len(names),
        settings,
        resolve_device(evaluation.get("device", "auto")),
    )
    confusion = pd.DataFrame(
        result.matrix, index=pd.Index(names, name="ground_truth"), columns=names
    )
    grid = examples_grid(result, samples, encoding, class_metadata["colours"], names)
    return named_metrics(result, names, settings.mode, subset), confusion, grid


def examples_grid(
    result: EvalResult,
    samples: list[tuple[str, str]],
    encoding: MaskEncoding,
    colours: list,
    class_names: list[str],
) -> np.ndarray:
    """Image | ground truth | prediction rows for the predictions evaluation kept, enlarged to be
    legible, with the classes' colours named below."""
    images = [read_image(samples[i][0]) for i, _ in result.predictions]
    truths = [read_mask(samples[i][1], encoding) for i, _ in result.predictions]
    predictions = [pred for _, pred in result.predictions]
    return prediction_grid(images, truths, predictions, colours, class_names=class_names)
