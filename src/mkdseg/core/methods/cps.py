"""Cross pseudo supervision with CutMix (Chen et al. 2021; TorchSemiSeg
``exp.voc/voc8.res50v3+.CPS+CutMix/train.py``): two networks, no teacher, no strong view::

    L = CE_sup(s_1) + CE_sup(s_2) + ramp(t) * w * L_cps
    L_cps = sum_k CE(s_k(x_mix), argmax s_other(x_w), mixed)   unlabeled rows, no threshold

each network's no-grad prediction on the unmixed unlabeled images, CutMix-ed with the mask of
``x_mix`` (here mixed from the weak views), is the other network's target, on logits at the
input's resolution. Logged as ``loss_ss`` (the student-student term, as in MKD).
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
    unlabeled_rows_only,
    unmixed_targets,
)
from mkdseg.core.losses import supervised_ce
from mkdseg.core.methods.record import NO_CONSISTENCY, Method
from mkdseg.core.resize import to_resolution
from mkdseg.core.schedules import consistency_rampup
from mkdseg.core.targets import make_grid

if TYPE_CHECKING:
    from mkdseg.core.methods.mkd import MethodConfig
    from mkdseg.core.networks import Networks
    from mkdseg.core.views import Views


@dataclass(frozen=True)
class Published:
    """That experiment's ``config.py`` (``cps_weight`` 1); its ``network.py`` upsamples the logits
    to the input before the loss."""

    weight_student: float = 1.0
    consistency_scale: float = 4.0


PUBLISHED = Published()


def loss(
    nets: Networks, views: Views, method: MethodConfig, t: int
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """CPS's loss for step ``t`` (module doc); the cross term in float32."""
    m, x_l, y_l, u = method, views.labeled, views.labels, views.unlabeled
    n_l = x_l.shape[0]
    with torch.no_grad():  # the targets: both networks in train mode, on the unmixed images
        unmixed = nets.unwrapped_students(u.weak)
    s_out = nets.student_pair(*nets.passes(x_l, u.mixed))
    loss_sup = sum(supervised_ce(o.logits[:n_l], y_l) for o in s_out)
    with torch.autocast(x_l.device.type, enabled=False):
        grid = make_grid(m, tuple(s_out[0].logits.shape[-2:]), y_l, u.valid, u.mask)
        with torch.no_grad():
            targets = unmixed_targets(unmixed, grid)
        confidence = None  # an option of this project's (student_confidence_threshold), off
        if m.student_confidence_threshold is not None:
            confidence = [z.softmax(1).amax(1) for z in targets]
        labels = PseudoLabels(
            targets, unlabeled_rows_only(grid), confidence, m.student_confidence_threshold
        )
        students_z = [to_resolution(o.logits, grid.size) for o in s_out]
        c = consistency_losses(students_z, peers=labels, average=m.threshold_average)
    ramp = consistency_rampup(t - 1, m.consistency_rampup)
    total = loss_sup + ramp * (m.weight_student * c.loss_ss)
    return total, {
        "consistency_ramp": ramp,
        "loss": total,
        "loss_sup": loss_sup,
        "loss_ss": c.loss_ss,
        "target_alignment": grid.mixer.alignment(grid.valid_mixed),
    }


METHOD = Method(
    "cps",
    "Cross pseudo supervision (CPS)",
    students=2,
    teachers=False,
    unlabeled=True,
    loss=loss,
    fixed={**NO_CONSISTENCY, "student_term": True, "cps_targets": "unmixed", "mixed_view": "weak"},
    defaults=dataclasses.asdict(PUBLISHED),
)
