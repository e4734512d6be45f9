"""FLOP counting against hand counts, and the measured matmul peak."""

from __future__ import annotations

import math

import torch
from torch import nn

from mkdseg.core.flops import count_flops, matmul_peak


def test_conv_flops_match_a_hand_count() -> None:
    conv = nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=False)
    x = torch.randn(2, 8, 10, 12)
    # one multiply-add (2 FLOPs) per weight per output pixel: 2 * B * H * W * Cout * Cin * k * k
    expected = 2 * 2 * 10 * 12 * 16 * 8 * 3 * 3
    assert count_flops(lambda: conv(x)) == expected


def test_backward_counts_twice_the_forward_for_a_conv_with_input_grad() -> None:
    conv = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False)
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    forward = 2 * 1 * 8 * 8 * 4 * 4 * 3 * 3
    # forward + gradient with respect to the input + with respect to the weight
    assert count_flops(lambda: conv(x).sum().backward()) == 3 * forward


def test_matmul_peak_is_a_finite_rate() -> None:
    peak = matmul_peak(torch.device("cpu"), None, size=128, reps=2)
    assert math.isfinite(peak) and peak > 0
