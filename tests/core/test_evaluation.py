"""Evaluation end to end on tiny files: a perfect model gets mIoU 1; names carry the mode."""

import numpy as np
import pytest
import torch
from torch import nn

from mkdseg.core.evaluation import EvalSettings, evaluate, named_metrics
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.model import SegOutput
from mkdseg.core.prediction.segmenter import Segmenter

from .conftest import write_tiny_dataset


class Oracle(nn.Module):
    """Predicts the tiny dataset's classes from brightness: bright = 1, dark = 2, else 0."""

    def forward(self, x):
        gray = x.mean(1, keepdim=True)  # normalised by Segmenter; thresholds in that space
        logits = torch.cat(
            [torch.zeros_like(gray), (gray > 1.5).float() * 10, (gray < -1.5).float() * 10], 1
        )
        return SegOutput(logits, logits)


def test_a_perfect_model_scores_one_in_both_modes(tmp_path):
    samples = write_tiny_dataset(tmp_path, 3)
    segmenter = Segmenter(Oracle())
    for settings in (EvalSettings("whole"), EvalSettings("sliding", window=16, stride=8)):
        result = evaluate(segmenter, samples, MaskEncoding(), 3, settings)
        assert result.miou == 1.0 and result.pixel_accuracy == 1.0
        assert result.matrix.sum() == 3 * 32 * 32 and np.trace(result.matrix) == result.matrix.sum()
        assert len(result.predictions) == 3


def test_metric_names_carry_the_mode():
    from mkdseg.core.evaluation import EvalResult

    result = EvalResult(0.5, 0.9, np.array([0.4, np.nan, 0.6]), np.zeros((3, 3), np.int64))
    names = named_metrics(result, ["bg", "cat", "dog"], "sliding")
    assert names == {
        "val_mIoU_sliding": 0.5,
        "val_pixel_acc_sliding": 0.9,
        "val_IoU_sliding.bg": 0.4,
        "val_IoU_sliding.dog": 0.6,
    }


def test_bf16_evaluation_runs_the_model_under_autocast_and_scores_in_fp32(tmp_path):
    samples = write_tiny_dataset(tmp_path, 2)
    seen = []

    class Recorder(Oracle):
        def forward(self, x):
            seen.append(
                torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
            )
            return super().forward(x)

    result = evaluate(
        Segmenter(Recorder()), samples, MaskEncoding(), 3, EvalSettings("whole", precision="bf16")
    )
    assert seen == [torch.bfloat16, torch.bfloat16] and result.miou == 1.0
    seen.clear()
    evaluate(
        Segmenter(Recorder()), samples, MaskEncoding(), 3, EvalSettings("whole", precision="fp32")
    )
    assert seen == [None, None]


def test_an_unknown_evaluation_precision_is_an_error():
    with pytest.raises(ValueError, match="evaluation.precision"):
        EvalSettings(precision="fp8")
