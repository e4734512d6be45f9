"""Whole-image and sliding-window inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mkdseg.core.model import SegOutput
from mkdseg.core.prediction.inference import predict_sliding, predict_whole, window_starts

NUM_CLASSES = 4


class Pointwise(nn.Module):
    """A 1x1-conv model: translation-equivariant, so sliding must equal whole."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(3, 6, 1)
        self.classifier = nn.Conv2d(6, NUM_CLASSES, 1)
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor) -> SegOutput:
        self.calls.append(x.shape[0])
        features = torch.relu(self.features(x))
        return SegOutput(self.classifier(features), features)


class Strided(nn.Module):
    """Returns logits at a quarter of the input resolution, like DeepLabv3+."""

    def forward(self, x: torch.Tensor) -> SegOutput:
        pooled = nn.functional.avg_pool2d(x, 4)
        return SegOutput(pooled[:, :2], pooled)


def test_window_starts_cover_the_borders() -> None:
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 2) == [0]


def test_predict_whole_upsamples() -> None:
    images = torch.randn(2, 3, 16, 12)
    logits = predict_whole(Strided(), images)
    assert logits.shape == (2, 2, 16, 12) and not logits.requires_grad
    assert predict_whole(Strided(), images, out_size=(5, 7)).shape == (2, 2, 5, 7)
    constant = torch.ones(1, 3, 8, 8)
    torch.testing.assert_close(predict_whole(Strided(), constant), torch.ones(1, 2, 8, 8))


@pytest.mark.parametrize(("height", "width", "window", "stride"), [(13, 17, 6, 4), (5, 9, 8, 3)])
def test_sliding_equals_whole_for_pointwise_model(height, width, window, stride) -> None:
    model = Pointwise()
    image = torch.randn(1, 3, height, width)
    whole = predict_whole(model, image)
    sliding = predict_sliding(model, image, NUM_CLASSES, window, stride, batch_windows=3)
    assert sliding.shape == (1, NUM_CLASSES, height, width)
    torch.testing.assert_close(sliding, whole)


def test_batched_windows_equal_one_by_one() -> None:
    model = Pointwise()
    image = torch.randn(1, 3, 12, 20)
    batched = predict_sliding(model, image, NUM_CLASSES, 8, 4, batch_windows=4)
    assert max(model.calls) == 4
    model.calls.clear()
    single = predict_sliding(model, image, NUM_CLASSES, 8, 4, batch_windows=1)
    assert set(model.calls) == {1} and len(model.calls) == 2 * 4
    torch.testing.assert_close(batched, single)


def test_sliding_overlaps_are_averaged() -> None:
    class Offset(nn.Module):
        """Logit = the window's top-left input value, constant over the window."""

        def forward(self, x: torch.Tensor) -> SegOutput:
            value = x[:, :1, :1, :1].expand(-1, 1, x.shape[2], x.shape[3])
            return SegOutput(value, value)

    image = torch.zeros(1, 3, 1, 6)
    image[0, 0, 0] = torch.arange(6.0)
    out = predict_sliding(Offset(), image, 1, window=4, stride=2)
    # windows start at 0 and 2 (padded height 4): columns 2-3 average 0 and 2
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([0.0, 0.0, 1.0, 1.0, 2.0, 2.0]))


def test_sliding_rejects_bad_arguments() -> None:
    image = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="stride"):
        predict_sliding(Pointwise(), image, NUM_CLASSES, window=4, stride=5)
    with pytest.raises(ValueError, match="one image"):
        predict_sliding(Pointwise(), torch.randn(2, 3, 8, 8), NUM_CLASSES, 4, 2)
    with pytest.raises(ValueError, match="classes"):
        predict_sliding(Pointwise(), image, NUM_CLASSES + 1, 4, 2)
