"""EMA teachers: momentum schedule and in-place parameter averaging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mkdseg.core.ema import ema_momentum, ema_update_


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_momentum_schedule() -> None:
    assert ema_momentum(1, 0.6) == 0.0
    assert ema_momentum(2, 0.6) == 0.5
    assert ema_momentum(3, 0.6) == 0.6
    assert ema_momentum(1000, 0.99) == 0.99
    assert ema_momentum(50, 0.99) == pytest.approx(0.98)
    with pytest.raises(ValueError, match="counts from 1"):
        ema_momentum(0, 0.6)
    with pytest.raises(ValueError, match="ema_momentum_end"):
        ema_momentum(5, 1.0)


def test_step_one_copies_the_student() -> None:
    teacher, student = _net(0), _net(1)
    ema_update_(teacher, student, ema_momentum(1, 0.6))
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        assert torch.equal(t, s)


def test_formula_on_a_toy_module_and_buffers_untouched() -> None:
    teacher, student = _net(0), _net(1)
    student[1].running_mean.fill_(3.0)
    before = [p.detach().clone() for p in teacher.parameters()]
    buffers = [b.clone() for b in teacher.buffers()]
    ema_update_(teacher, student, 0.9)
    for t, t0, s in zip(teacher.parameters(), before, student.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * s)
    for b, b0 in zip(teacher.buffers(), buffers, strict=True):
        assert torch.equal(b, b0)


def test_no_autograd_history_even_with_requires_grad() -> None:
    teacher, student = _net(0), _net(1)
    loss = sum(p.sum() for p in student.parameters())
    ema_update_(teacher, student, 0.5)
    for p in teacher.parameters():
        assert p.is_leaf and p.grad_fn is None and p.grad is None
    loss.backward()  # student graph intact
    assert all(p.grad is not None for p in student.parameters())


def test_architecture_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="same architecture"):
        ema_update_(_net(0), nn.Linear(2, 2), 0.5)
