"""``class_map`` is ``argmax`` over classes, ties to the first class included."""

from __future__ import annotations

import torch

from mkdseg.core.class_map import class_map


def test_class_map_equals_argmax_over_classes() -> None:
    logits = torch.randn(4, 5, 7, 9, generator=torch.Generator().manual_seed(0))
    out = class_map(logits)
    assert out.shape == (4, 7, 9) and out.dtype == torch.int64
    assert torch.equal(out, logits.argmax(1))


def test_class_map_takes_the_first_of_tied_classes() -> None:
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1:, 0, 0] = 2.0  # classes 1 and 2 tie
    logits[0, :, 0, 1] = 1.0  # all tie
    assert class_map(logits).tolist() == [[[1, 0]]]
    ties = torch.randint(0, 2, (2, 5, 6, 6), generator=torch.Generator().manual_seed(1)).float()
    assert torch.equal(class_map(ties), ties.argmax(1))
