"""The feature-perturbed stream (core/feature_perturbation.py) and the networks that run it."""

from __future__ import annotations

import pytest
import torch

from mkdseg.core.dilated_fcn import DilatedFCN
from mkdseg.core.feature_perturbation import with_perturbed
from mkdseg.core.model import DeepLabV3Plus


def test_with_perturbed_appends_a_channel_dropped_copy():
    torch.manual_seed(0)
    f = torch.rand(3, 16, 5, 5) + 0.1
    out = with_perturbed(f, 0.5)
    assert out.shape == (6, 16, 5, 5) and torch.equal(out[:3], f)
    dropped = out[3:]
    zero = (dropped == 0).all(dim=(2, 3))  # whole channels are zeroed ...
    kept = torch.isclose(dropped, 2 * f).all(dim=(2, 3))  # ... the rest scaled by 1 / (1 - p)
    assert bool((zero | kept).all()) and zero.any() and kept.any()


def test_no_perturbation_returns_the_features_themselves():
    f = torch.rand(2, 4, 3, 3)
    assert with_perturbed(f, 0.0) is f


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_a_dropout_outside_0_1_is_refused(p):
    with pytest.raises(ValueError, match="dropout must be in"):
        with_perturbed(torch.rand(1, 2, 2, 2), p)


@pytest.mark.parametrize(
    "net",
    [
        lambda: DilatedFCN(3, stem_channels=8, channels=8, dilations=(1, 2)),
        lambda: DeepLabV3Plus(3, "resnet18", aspp_channels=16, decoder_channels=16),
    ],
    ids=["dilated_fcn", "deeplabv3plus"],
)
def test_a_perturbed_pass_decodes_clean_then_perturbed_features(net):
    """In eval mode the clean half equals the plain pass; the perturbed half differs."""
    torch.manual_seed(0)
    model = net().eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        plain, both = model(x), model(x, 0.5)
    assert both.logits.shape[0] == 4 and both.features.shape[0] == 4
    torch.testing.assert_close(both.logits[:2], plain.logits)
    assert not torch.allclose(both.logits[2:], plain.logits)


def test_the_dropped_channels_come_from_the_given_generator() -> None:
    """With the step's generator the perturbed copy is a function of its seed alone: the same
    seed drops the same whole channels (scaled by 1/(1-p)) whatever the global generator did."""
    features = torch.rand(3, 8, 4, 4) + 0.5

    def perturbed(seed: int) -> torch.Tensor:
        torch.rand(7)  # the global generator moves; the draws must not
        return with_perturbed(features, 0.5, torch.Generator().manual_seed(seed))[3:]

    first, again, other = perturbed(1), perturbed(1), perturbed(2)
    assert torch.equal(first, again) and not torch.equal(first, other)
    kept = first.flatten(2).amax(2) > 0  # (B, C): a channel is kept or dropped whole
    torch.testing.assert_close(first[kept], (features * 2)[kept])
    assert torch.equal(first[~kept], torch.zeros_like(first[~kept]))
    assert 0 < kept.sum() < kept.numel()
