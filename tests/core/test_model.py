"""DeepLabv3+: shapes, dilation, seeded init, strict backbone loading (never downloads)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from mkdseg.core.architectures import build_model
from mkdseg.core.model import (
    ASPP,
    DeepLabV3Plus,
    ResNetBackbone,
    SegOutput,
    aspp_rates_for,
)

NUM_CLASSES = 3
NARROW = dict(decoder_channels=16, aspp_channels=16, low_level_channels=8)


def narrow_model(seed: int = 0, output_stride: int = 16, pretrained: str | None = None):
    return build_model(
        NUM_CLASSES,
        pretrained=pretrained,
        head_seed=seed,
        backbone="resnet18",
        output_stride=output_stride,
        **NARROW,
    )


@pytest.mark.parametrize("output_stride", [16, 8])
def test_outputs_at_stride_four(output_stride: int) -> None:
    model = narrow_model(output_stride=output_stride)
    out = model(torch.randn(2, 3, 64, 48))
    assert isinstance(out, SegOutput)
    assert out.logits.shape == (2, NUM_CLASSES, 16, 12)
    assert out.features.shape == (2, NARROW["decoder_channels"], 16, 12)
    torch.testing.assert_close(model.classifier(out.features), out.logits)
    low, high = model.backbone(torch.randn(2, 3, 64, 64))
    assert low.shape[-1] == 16 and high.shape[-1] == 64 // output_stride


def test_eval_batch_one_and_train_batch_two() -> None:
    model = narrow_model().eval()
    assert model(torch.randn(1, 3, 32, 32)).logits.shape == (1, NUM_CLASSES, 8, 8)
    model.train()
    assert model(torch.randn(2, 3, 32, 32)).logits.shape == (2, NUM_CLASSES, 8, 8)


@pytest.mark.parametrize("output_stride", [16, 8])
def test_manual_dilation_matches_torchvision(output_stride: int) -> None:
    replace = [False, output_stride == 8, True]
    reference = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=replace)
    ours = ResNetBackbone("resnet50", output_stride)
    ref_convs = {n: m for n, m in reference.named_modules() if isinstance(m, nn.Conv2d)}
    for name, conv in ours.named_modules():
        if isinstance(conv, nn.Conv2d):
            ref = ref_convs[name]
            assert (conv.stride, conv.dilation, conv.padding) == (
                ref.stride,
                ref.dilation,
                ref.padding,
            ), name


def test_basic_block_dilation_os8() -> None:
    backbone = ResNetBackbone("resnet34", 8)
    assert backbone.layer3[0].conv1.stride == (1, 1)
    assert backbone.layer3[0].downsample[0].stride == (1, 1)
    assert backbone.layer3[1].conv1.dilation == (2, 2)
    assert backbone.layer4[1].conv2.dilation == (4, 4)
    assert backbone.layer4[1].conv2.padding == (4, 4)


def test_aspp_rates_double_at_stride_eight() -> None:
    model = DeepLabV3Plus(NUM_CLASSES, "resnet18", 8, 16, 16, 8)
    rates = [branch[0].dilation[0] for branch in model.aspp.branches[1:]]
    assert rates == [12, 24, 36]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="backbone"):
        DeepLabV3Plus(NUM_CLASSES, "vgg16")
    with pytest.raises(ValueError, match="output_stride"):
        DeepLabV3Plus(NUM_CLASSES, "resnet18", 32)


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.state_dict())


def test_head_seed_controls_init() -> None:
    torch.manual_seed(5)
    before = torch.get_rng_state()
    a, b, c = narrow_model(1), narrow_model(1), narrow_model(2)
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is left alone
    for key, value in _params(a).items():
        torch.testing.assert_close(value, _params(b)[key])
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert not torch.equal(a.aspp.project[0].weight, c.aspp.project[0].weight)
    assert not torch.equal(a.backbone.conv1.weight, c.backbone.conv1.weight)
    assert torch.all(a.aspp.project[1].weight == 1) and torch.all(a.aspp.project[1].bias == 0)


def test_narrow_model_learns_on_cpu() -> None:
    torch.manual_seed(0)
    model = narrow_model()
    images = torch.randn(2, 3, 32, 32)
    target = (images[:, :1, ::4, ::4] > 0).long().squeeze(1)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(images).logits, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_aspp_rate_rules() -> None:
    assert aspp_rates_for("fixed", 64, 16) == (6, 12, 18) and aspp_rates_for("fixed", 64, 8) == (
        12,
        24,
        36,
    )
    assert aspp_rates_for("feature_map", 512, 16) == (
        6,
        12,
        18,
    )  # the release's crop: the release's rates
    assert aspp_rates_for("feature_map", 512, 8) == (12, 24, 36)
    assert aspp_rates_for("feature_map", 64, 16) == (1, 2, 3)  # 4 x 4 map
    assert aspp_rates_for("feature_map", 64, 8) == (2, 3, 5)  # 8 x 8 map
    with pytest.raises(ValueError, match="aspp rule"):
        aspp_rates_for("clip", 64, 16)


def _equals_its_centre_tap(branch: nn.Sequential, x: torch.Tensor) -> bool:
    """Whether a dilated 3x3 conv branch gives what a 1x1 conv with its centre weights gives."""
    conv = branch[0]
    centre = torch.nn.functional.conv2d(x, conv.weight[:, :, 1:2, 1:2])
    return torch.allclose(conv(x), centre, atol=1e-6)


def test_fixed_rates_degenerate_on_a_small_map_and_feature_map_rates_do_not() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 4, 4)  # the feature map at stride 16 of a 64 px crop
    for rule, degenerate in (("fixed", True), ("feature_map", False)):
        aspp = ASPP(8, 4, aspp_rates_for(rule, 64, 16))
        for branch in aspp.branches[1:]:
            assert _equals_its_centre_tap(branch, x) is degenerate, (rule, branch[0].dilation)
