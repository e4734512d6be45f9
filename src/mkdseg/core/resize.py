"""Bilinear resizes of logits and features, shared by every method's targets.

A leaf module (torch only): ``core/methods/`` files import it, and ``core/config`` imports those.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_resolution(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of logits/features (the release downsamples by 0.5), float32.

    Resized in channels-last layout: the same values as the contiguous kernel (tested) in about
    a fifth of its time on a CPU, and a (B, h, w, A) layout the feature statistics read as is.
    """
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    x = x.float().contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
