"""Mean teacher (Tarvainen & Valpola 2017) in the FixMatch form UniMatch's repository uses for
segmentation (``fixmatch.py``): one student, its EMA teacher::

    L = CE_sup(s) + ramp(t) * w * L_u
    L_u = CE(s(x_mix), argmax T(x_w), mixed)   unlabeled rows, teacher confidence >= 0.95

the teacher's prediction on the unmixed weak view, CutMix-ed with the students' mask; pixels
under the threshold count 0 and the term is averaged over all valid pixels, on logits at the
input's resolution. No feature augmentation, so no estimators. Logged as ``loss_st`` (the
student-teacher term of the other methods).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mkdseg.core.consistency import (
    PseudoLabels,
    consistency_losses,
    ignore_masks,
    teacher_diagnostics,
)
from mkdseg.core.losses import supervised_ce
from mkdseg.core.methods.record import NO_CONSISTENCY, Method
from mkdseg.core.resize import to_resolution
from mkdseg.core.schedules import consistency_rampup
from mkdseg.core.targets import Branch, make_grid, teacher_target

if TYPE_CHECKING:
    from mkdseg.core.methods.mkd import MethodConfig
    from mkdseg.core.networks import Networks
    from mkdseg.core.views import Views


@dataclass(frozen=True)
class Published:
    """FixMatch/UniMatch's ``loss_u`` (``fixmatch.py``: ``(loss_x + loss_u) / 2`` weighs the two
    terms alike, ``loss_u * (conf >= 0.95)`` summed over the valid pixels) and Tarvainen &
    Valpola's EMA schedule ``min(1 - 1/t, 0.99)`` (0.999 in long runs)."""

    teacher_rows: str = "unlabeled"
    ema_momentum_end: float = 0.99
    confidence_threshold: float = 0.95
    threshold_average: str = "valid"
    weight_teacher: float = 1.0
    consistency_scale: float = 4.0  # logits upsampled to the input before the loss


PUBLISHED = Published()


def loss(
    nets: Networks, views: Views, method: MethodConfig, t: int
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """Mean teacher's loss for step ``t`` (module doc); the unsupervised term in float32."""
    m, x_l, y_l, u = method, views.labeled, views.labels, views.unlabeled
    n_l = x_l.shape[0]
    student = nets.student_pair(*nets.passes(x_l, u.mixed))[0]
    loss_sup = supervised_ce(student.logits[:n_l], y_l)
    with torch.no_grad():
        teacher = nets.teacher_pair(*nets.passes(x_l, u.weak))[0]
    with torch.autocast(x_l.device.type, enabled=False):
        grid = make_grid(m, tuple(student.logits.shape[-2:]), y_l, u.valid, u.mask)
        with torch.no_grad():
            target = teacher_target(m, Branch(teacher), grid, lam=0.0)
        ignore, _ = ignore_masks(m, grid)
        labels = PseudoLabels([target.logits], ignore, [target.confidence], m.confidence_threshold)
        student_z = to_resolution(student.logits, grid.size)
        c = consistency_losses([student_z], teachers=labels, average=m.threshold_average)
    ramp = consistency_rampup(t - 1, m.consistency_rampup)
    total = loss_sup + ramp * (m.weight_teacher * c.loss_st)
    diagnostics = teacher_diagnostics(
        [target.unmixed_confidence],
        [target.unmixed_prediction],
        grid.valid_unmixed,
        m.confidence_report_threshold,
    )
    return total, {
        "consistency_ramp": ramp,
        "loss": total,
        "loss_sup": loss_sup,
        "loss_st": c.loss_st,
        "target_alignment": grid.mixer.alignment(grid.valid_mixed),
        **c.metrics,
        **diagnostics,
    }


METHOD = Method(
    "mean_teacher",
    "Mean teacher",
    students=1,
    teachers=True,
    unlabeled=True,
    loss=loss,
    fixed={**NO_CONSISTENCY, "teacher_term": True, "mixed_view": "strong"},
    defaults=dataclasses.asdict(PUBLISHED),
)
