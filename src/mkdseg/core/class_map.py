"""The class each pixel of a logit map is assigned: its index of the maximum over classes."""

from __future__ import annotations

from torch import Tensor


def class_map(logits: Tensor) -> Tensor:
    """(B, C, h, w) logits -> (B, h, w) int64: the first class with the maximal logit.

    The same values as ``logits.argmax(1)``, which on the CPU reduces the strided class
    dimension about 10x slower than ``max``'s indices (3.4 against 0.33 ms on a (16, 5, 48, 48)
    map, 2 threads); MKD takes a dozen of them per step at consistency on the input grid.
    """
    return logits.max(1).indices
