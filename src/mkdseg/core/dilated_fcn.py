"""A narrow dilated FCN for small images on a CPU budget (the embedded texture benchmark).

DeepLabv3+ on a ResNet spends its first 7x7 stride-2 convolution and max-pool before it sees a
texture period of 4.5-8 px at 48 px, and costs ~3.3x the probe's FCN per step (issue 15's probe:
0.9 vs 0.27 s), so on a CPU it stays on the long plateau that precedes learning textures. This
network sees fine structure through a full-resolution 3x3 stem, goes to output stride 4 with two
3x3 stride-2 convolutions, and widens its context with dilated residual blocks (dilations 1, 2,
4, 8 cover the 48 px image). It keeps DeepLabv3+'s contract (``SegOutput`` at output stride 4,
a final 1x1 ``classifier`` whose input is the feature MKD's feature augmentation perturbs), so
every method trains it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mkdseg.core.feature_perturbation import with_perturbed
from mkdseg.core.model import SegOutput, conv_bn_relu

FCN_STRIDE = 4  # two stride-2 convolutions: the decoder resolution of DeepLabv3+


class DilatedBlock(nn.Module):
    """Two dilated 3x3 conv-BN layers with an identity shortcut."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(channels, channels, 3, dilation)
        self.conv2 = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(x + self.conv2(self.conv1(x)))


class DilatedFCN(nn.Module):
    """Full-resolution 3x3 stem, two 3x3 stride-2 convolutions, dilated residual blocks, a 3x3
    conv-BN-ReLU head, 1x1 classifier; ``forward`` returns ``SegOutput`` at output stride 4."""

    def __init__(
        self,
        num_classes: int,
        stem_channels: int = 16,
        channels: int = 32,
        dilations: Sequence[int] = (1, 2, 4, 8),
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.stem = conv_bn_relu(3, stem_channels, 3)
        self.down = nn.Sequential(
            conv_bn_relu(stem_channels, channels, 3, stride=2),
            conv_bn_relu(channels, channels, 3, stride=2),
        )
        self.body = nn.Sequential(*[DilatedBlock(channels, int(d)) for d in dilations])
        # The classifier's input, conv-BN-ReLU as DeepLabv3+'s decoder output: the residual
        # stream itself grows without bound, and feature augmentation's class variances with it
        # (tuning runs, lambda_end 1.5: without this layer MKD's loss ran away from step ~1500
        # and went non-finite at 2342; with it, from ~2400; with lambda_end 0.5 it stayed finite).
        self.head = conv_bn_relu(channels, channels, 3)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.num_classes = num_classes

    def head_modules(self) -> list[nn.Module]:
        """Every part: no pretrained checkpoint covers this network."""
        return [self.stem, self.down, self.body, self.head, self.classifier]

    def forward(
        self, x: Tensor, perturb: float = 0.0, generator: torch.Generator | None = None
    ) -> SegOutput:
        """``perturb`` > 0: the head also runs on the body's features with channel dropout
        ``perturb``, outputs over ``[clean; perturbed]`` (``core/feature_perturbation.py``)."""
        encoded = with_perturbed(self.body(self.down(self.stem(x))), perturb, generator)
        features = self.head(encoded)
        return SegOutput(self.classifier(features), features)
