"""DeepLabv3+ on a torchvision ResNet (spec §6), returning logits and the decoder feature.

MKD's feature augmentation needs the feature that feeds the final 1x1 classifier, so the
model returns both at output stride 4 and leaves upsampling to the caller
(``core/architectures.py`` builds it, or the small-image ``DilatedFCN``, from the config).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from mkdseg.core.feature_perturbation import with_perturbed

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
OUTPUT_STRIDES = (8, 16)
ASPP_RATES = (6, 12, 18)  # DeepLabv3+ at output stride 16 (spec §6); doubled at stride 8
ASPP_RATE_STRIDE = 16  # the stride ASPP_RATES are given for
# The release's feature map side: 512 px crops at stride 16.
ASPP_REFERENCE_MAP = 512 // ASPP_RATE_STRIDE
ASPP_RULES = ("fixed", "feature_map")
LOW_LEVEL_STRIDE = 4  # layer1 of a ResNet: the decoder's (and the outputs') resolution
CLASSIFIER_INIT_STD = 0.01  # mmseg decode-head ``conv_seg`` init used by the release


class SegOutput(NamedTuple):
    """Class logits and the classifier's input feature, both at output stride 4."""

    logits: Tensor
    features: Tensor


def conv_bn_relu(
    in_ch: int, out_ch: int, kernel: int = 1, dilation: int = 1, stride: int = 1
) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(
            in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation, bias=False
        ),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _dilate_stage(stage: nn.Sequential, previous_dilation: int, dilation: int) -> None:
    """Turn a strided ResNet stage into a dilated one, as torchvision's
    ``replace_stride_with_dilation`` does (which BasicBlock refuses): the first block keeps
    the previous dilation but loses its stride, later blocks use the new dilation."""
    for block_idx, block in enumerate(stage):
        block_dilation = previous_dilation if block_idx == 0 else dilation
        for module in block.modules():
            if not isinstance(module, nn.Conv2d):
                continue
            module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = (block_dilation, block_dilation)
                module.padding = (block_dilation, block_dilation)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without pooling/fc; keeps torchvision's parameter names so
    ImageNet checkpoints load directly. Returns (layer1 output, layer4 output)."""

    def __init__(self, name: str = "resnet50", output_stride: int = 16) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
        net = getattr(torchvision.models, name)(weights=None)
        self.arch = name
        self.output_stride = output_stride
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        if output_stride == 8:
            _dilate_stage(self.layer3, previous_dilation=1, dilation=2)
            _dilate_stage(self.layer4, previous_dilation=2, dilation=4)
        else:
            _dilate_stage(self.layer4, previous_dilation=1, dilation=2)
        self.low_level_channels = _stage_out_channels(self.layer1)
        self.out_channels = _stage_out_channels(self.layer4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        low = self.layer1(x)
        high = self.layer4(self.layer3(self.layer2(low)))
        return low, high


def _stage_out_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    bn = last.bn3 if hasattr(last, "bn3") else last.bn2
    return int(bn.num_features)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three atrous 3x3, image pooling; no dropout."""

    def __init__(self, in_ch: int, out_ch: int, rates: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_ch, out_ch, 1)]
            + [conv_bn_relu(in_ch, out_ch, 3, dilation=r) for r in rates]
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv_bn_relu(in_ch, out_ch, 1))
        self.project = conv_bn_relu(out_ch * (len(rates) + 2), out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.image_pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        outs = [branch(x) for branch in self.branches] + [pooled]
        return self.project(torch.cat(outs, dim=1))


def aspp_rates_for(
    rule: str, crop_size: int, output_stride: int, rates: Sequence[int] = ASPP_RATES
) -> tuple[int, ...]:
    """The ASPP dilations for a training crop.

    ``fixed``: ``rates`` at stride 16, doubled at stride 8, whatever the crop (the release).
    ``feature_map``: the same rates scaled by the feature map's side (``ceil(crop / stride)``)
    against the release's 32 (512 px at stride 16), rounded up so they stay distinct, and kept
    below the map's side. A 3x3 convolution dilated by at least the map's side only ever sees
    padding off its centre tap, i.e. it is a 1x1 convolution: at 64 px and stride 16 the map is
    4x4 and the fixed rates 6/12/18 are all such. Both rules give 6/12/18 at 512 px, stride 16.
    """
    if rule not in ASPP_RULES:
        raise ValueError(f"aspp rule must be one of {ASPP_RULES}, got {rule!r}")
    if output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride}")
    if rule == "fixed":
        return tuple(r * ASPP_RATE_STRIDE // output_stride for r in rates)
    side = math.ceil(crop_size / output_stride)
    return tuple(max(1, min(math.ceil(r * side / ASPP_REFERENCE_MAP), side - 1)) for r in rates)


class DeepLabV3Plus(nn.Module):
    """DeepLabv3+ whose ``forward`` returns ``SegOutput`` at output stride 4."""

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet50",
        output_stride: int = 16,
        aspp_channels: int = 256,
        decoder_channels: int = 256,
        low_level_channels: int = 48,
        aspp_rates: Sequence[int] | None = None,
    ) -> None:
        """``aspp_rates``: the dilations at this output stride; None: the release's
        (``aspp_rates_for`` with the fixed rule), which is also what bundles saved before the
        rates were stored used."""
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = ResNetBackbone(backbone, output_stride)
        if aspp_rates is None:
            aspp_rates = aspp_rates_for("fixed", 0, output_stride)
        self.aspp = ASPP(self.backbone.out_channels, aspp_channels, list(aspp_rates))
        self.low_level = conv_bn_relu(self.backbone.low_level_channels, low_level_channels, 1)
        self.decoder = nn.Sequential(
            conv_bn_relu(aspp_channels + low_level_channels, decoder_channels, 3),
            conv_bn_relu(decoder_channels, decoder_channels, 3),
        )
        self.classifier = nn.Conv2d(decoder_channels, num_classes, 1)
        self.num_classes = num_classes

    def head_modules(self) -> list[nn.Module]:
        """The parts never covered by a pretrained checkpoint."""
        return [self.aspp, self.low_level, self.decoder, self.classifier]

    def forward(
        self, x: Tensor, perturb: float = 0.0, generator: torch.Generator | None = None
    ) -> SegOutput:
        """``perturb`` > 0: the decoder also runs on the backbone's features with channel dropout
        ``perturb``, outputs over ``[clean; perturbed]`` (``core/feature_perturbation.py``)."""
        low, high = (with_perturbed(f, perturb, generator) for f in self.backbone(x))
        context = F.interpolate(
            self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False
        )
        features = self.decoder(torch.cat([context, self.low_level(low)], dim=1))
        return SegOutput(self.classifier(features), features)


def init_weights(modules: Iterable[nn.Module], generator: torch.Generator) -> None:
    """Kaiming-normal convs (bias 0), BN weight 1 / bias 0, drawing only from ``generator``."""
    for root in modules:
        for module in root.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=generator
                )
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
