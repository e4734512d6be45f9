"""Cross-entropy losses against direct per-pixel computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mkdseg.core.losses import pseudo_label_ce, supervised_ce


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _pixel_ce(z: torch.Tensor, y: int) -> torch.Tensor:
    return torch.logsumexp(z, 0) - z[y]


def test_supervised_ce_upsamples_and_averages_non_ignored() -> None:
    logits = torch.randn(2, 3, 2, 2, generator=_gen(0), requires_grad=True)
    labels = torch.randint(0, 3, (2, 8, 8), generator=_gen(1))
    labels[0, :3] = 255
    loss = supervised_ce(logits, labels)
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    terms = [
        _pixel_ce(up[b, :, i, j], int(labels[b, i, j]))
        for b in range(2)
        for i in range(8)
        for j in range(8)
        if labels[b, i, j] != 255
    ]
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_supervised_ce_all_ignored_is_zero_not_nan() -> None:
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = supervised_ce(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_pseudo_label_ce_masks_and_threshold() -> None:
    student = torch.randn(2, 4, 3, 3, generator=_gen(2), requires_grad=True)
    teacher = torch.randn(2, 4, 3, 3, generator=_gen(3), requires_grad=True)
    ignore = torch.zeros(2, 3, 3, dtype=torch.bool)
    ignore[0, 0] = True
    conf = torch.rand(2, 3, 3, generator=_gen(4))
    loss, share = pseudo_label_ce(student, teacher, ignore, conf, 0.5)
    keep = ~ignore & (conf >= 0.5)
    target = teacher.argmax(1)
    terms = [
        _pixel_ce(student[b, :, i, j], int(target[b, i, j]))
        for b in range(2)
        for i in range(3)
        for j in range(3)
        if keep[b, i, j]
    ]
    torch.testing.assert_close(loss, torch.stack(terms).mean())
    assert share.item() == pytest.approx(keep.float().mean().item())
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    unthresholded, all_share = pseudo_label_ce(student, teacher, None, conf, None)
    assert all_share.item() == 1.0 and torch.isfinite(unthresholded)
    # a class map the caller already has is the target; here a different one changes the loss
    given, _ = pseudo_label_ce(student, teacher, ignore, conf, 0.5, target=target)
    assert torch.equal(given, loss)
    other, _ = pseudo_label_ce(student, teacher, ignore, conf, 0.5, target=(target + 1) % 4)
    assert not torch.equal(other, loss)


def test_pseudo_label_ce_nothing_kept_and_errors() -> None:
    student = torch.randn(1, 3, 2, 2)
    loss, share = pseudo_label_ce(
        student, student, torch.ones(1, 2, 2, dtype=torch.bool), None, None
    )
    assert loss.item() == 0.0 and share.item() == 0.0
    with pytest.raises(ValueError, match="confidence"):
        pseudo_label_ce(student, student, None, None, 0.9)
    with pytest.raises(ValueError, match="both be"):
        pseudo_label_ce(student, student[:, :2], None, None, None)


def test_pseudo_label_ce_valid_average_counts_dropped_pixels_as_zero() -> None:
    student = torch.randn(2, 4, 3, 3, generator=_gen(5))
    teacher = torch.randn(2, 4, 3, 3, generator=_gen(6))
    ignore = torch.zeros(2, 3, 3, dtype=torch.bool)
    ignore[1] = True  # 9 valid pixels
    conf = torch.rand(2, 3, 3, generator=_gen(7))
    kept, _ = pseudo_label_ce(student, teacher, ignore, conf, 0.5, average="kept")
    valid, share = pseudo_label_ce(student, teacher, ignore, conf, 0.5, average="valid")
    keep = ~ignore & (conf >= 0.5)
    target = teacher.argmax(1)
    total = sum(
        _pixel_ce(student[b, :, i, j], int(target[b, i, j]))
        for b in range(2)
        for i in range(3)
        for j in range(3)
        if keep[b, i, j]
    )
    torch.testing.assert_close(kept, total / keep.sum())
    torch.testing.assert_close(valid, total / 9)
    assert (
        0 < keep.sum() < 9
    )  # the two averages differ exactly by the kept share of the valid pixels
    with pytest.raises(ValueError, match="average"):
        pseudo_label_ce(student, teacher, ignore, conf, 0.5, average="all")
