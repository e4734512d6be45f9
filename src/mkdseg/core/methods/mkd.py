"""MKD, Mutual Knowledge Distillation (docs/method.md): two students, two EMA teachers::

    L = CE_sup(s_1) + CE_sup(s_2) + ramp(t) * (w_st * L_st + w_ss * L_ss)
    L_st = sum_k CE(aug(s_k(x_mix)), argmax aug(T_other(x_w)), mixed)   the other branch's teacher
    L_ss = sum_k CE(aug(s_k(x_mix)), argmax aug(s_other(x_mix)))        the other student

on the consistency grid (``consistency_scale`` times the decoder's resolution), ``aug`` the
ISDA-style feature augmentation of each network's logits with its own estimator, teacher targets
CutMix-ed with the students' mask so they line up with ``x_mix`` (``core/targets.py``).

Its ablation switches (``MethodConfig``): ``teacher_term``/``student_term`` drop a term,
``feature_aug_*`` drop ``aug``, ``cps_targets: unmixed`` takes ``L_ss``'s targets from the
other student's no-grad pass on ``x_w``, mixed (CPS+CutMix's form), ``teacher_rows: unlabeled``
keeps ``L_st`` off the labeled rows. ``MethodConfig``'s defaults are the release's published
values (``MKD_SPEC.md``; the other methods' files layer their own over them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mkdseg.core.consistency import (
    ConsistencyResult,
    PseudoLabels,
    branches,
    consistency_losses,
    ignore_masks,
    teacher_diagnostics,
    unlabeled_rows_only,
    unmixed_targets,
)
from mkdseg.core.fields import check, choice
from mkdseg.core.losses import supervised_ce
from mkdseg.core.methods.record import Method
from mkdseg.core.model import SegOutput
from mkdseg.core.schedules import LAMBDA_SCHEDULES, consistency_rampup, feature_aug_lambda
from mkdseg.core.targets import (
    Branch,
    Grid,
    View,
    feature_augment,
    make_grid,
    make_view,
    teacher_target,
)

if TYPE_CHECKING:
    from mkdseg.core.networks import Networks
    from mkdseg.core.views import Views

MAX_CONSISTENCY_SCALE = 4.0  # the decoder is at 1/4 of the input: 4 puts consistency at input res


def _is_probability(value: float | None) -> bool:
    return value is None or 0.0 < value < 1.0


@dataclass
class MethodConfig:
    """A method's switches (spec §1, §4, §5), as ``Method.switches`` resolves them; the defaults
    are the MKD release's."""

    name: str = "mkd"
    teacher_term: bool = True  # L_st: each student taught by the other branch's teacher
    student_term: bool = True  # L_ss: cross pseudo-supervision between the students
    feature_aug_students: bool = True  # ISDA-style logit augmentation on students
    feature_aug_teachers: bool = True  # ... and on teachers
    confidence_threshold: float | None = None  # release: off; paper: 0.95
    # Thresholded L_st averaged over: "kept" = the pixels that pass (the release's code path, mmseg
    # CE avg_non_ignore); "valid" = all valid pixels, dropped ones counting 0 (FixMatch, UniMatch).
    threshold_average: str = choice("kept", ("kept", "valid"))
    # Where teacher targets are CutMix-ed: "decoder" = logits and features mixed at decoder
    # resolution (1/4) with the mask resized there (nearest), then resized bilinearly to the
    # consistency grid (the release); "grid" = resized to the grid first, mixed with the mask
    # sampled at the grid (misaligned at small crops).
    target_mixing: str = choice("decoder", ("grid", "decoder"))
    # Labels and padding masks on the consistency grid: "corner" = nearest, the top-left pixel of
    # each block (the release, mmseg resize); "centre" = nearest-exact.
    label_sampling: str = choice("corner", ("corner", "centre"))
    # Targets of L_ss: "mixed" = the other student's argmax on the mixed image, over [labeled;
    # unlabeled] (MKD release); "unmixed" = the other student's no-grad prediction on the unmixed
    # unlabeled images, CutMix-ed like the teachers' (TorchSemiSeg CPS+CutMix), unlabeled rows.
    cps_targets: str = choice("mixed", ("mixed", "unmixed"))
    # What CutMix mixes for the students: "strong" views (MKD, mean teacher) or the "weak" ones
    # the targets come from (TorchSemiSeg CPS+CutMix has no strong view).
    mixed_view: str = choice("strong", ("strong", "weak"))
    # Rows of L_st: "all" = labeled and unlabeled images (MKD release); "unlabeled" = unlabeled
    # only (FixMatch/UniMatch's loss_u, the mean-teacher baseline).
    teacher_rows: str = choice("all", ("all", "unlabeled"))
    student_confidence_threshold: float | None = None  # not in the spec (L_ss unthresholded): off
    ema_momentum_end: float = 0.6  # release (a teacher a step or two behind its student)
    weight_teacher: float = 1.5  # w_st, release
    weight_student: float = 1.0  # w_ss, release
    lambda_end: float = 1.5  # feature-augmentation strength at the end, release
    lambda_schedule: str = choice("cosine", LAMBDA_SCHEDULES)  # cosine ramp (release)
    consistency_scale: float = 0.5  # release: 1/2 decoder resolution (1/8 input); 4: input res
    consistency_rampup: int = 0  # iterations of sigmoid ramp on the consistency terms; release: 0
    teacher_bn_mode: str = choice("train", ("train", "eval"))  # release: batch statistics
    confidence_report_threshold: float = 0.95  # only for the logged "confident share" diagnostic

    def __post_init__(self) -> None:
        from mkdseg.core.methods import method_named  # the registry imports this module

        fixed = method_named(self.name).fixed
        check(
            self,
            (0.0 <= self.ema_momentum_end < 1.0, "ema_momentum_end must be in [0, 1)"),
            (
                _is_probability(self.confidence_threshold),
                "confidence_threshold must be null (off) or in (0, 1)",
            ),
            (
                _is_probability(self.student_confidence_threshold),
                "student_confidence_threshold must be null (off) or in (0, 1)",
            ),
            (
                0.0 < self.consistency_scale <= MAX_CONSISTENCY_SCALE,
                f"consistency_scale must be in (0, {MAX_CONSISTENCY_SCALE:g}]",
            ),
            (self.consistency_rampup >= 0, "consistency_rampup must be >= 0"),
            *(
                (getattr(self, key) == value, f"{key} is {value!r} in method {self.name}")
                for key, value in fixed.items()
            ),
        )


def loss(
    nets: Networks, views: Views, method: MethodConfig, t: int
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """MKD's loss for step ``t`` (module doc): students on ``[x_l; x_mix]``, teachers on
    ``[x_l; x_w]``, the consistency terms in float32."""
    m, x_l, y_l, u = method, views.labeled, views.labels, views.unlabeled
    n_l = x_l.shape[0]
    if nets.student_stats:  # once a step, for the CE and the four estimators' class weights
        nets.student_stats[0].check_labels(y_l)
    with torch.no_grad():  # CPS+CutMix targets: the students in train mode, before x_mix
        unmixed = nets.unwrapped_students(u.weak) if peers_from_unmixed(m) else []
    s_out = nets.student_pair(*nets.passes(x_l, u.mixed))
    loss_sup = sum(supervised_ce(o.logits[:n_l], y_l) for o in s_out)
    with torch.no_grad():
        t_out = nets.teacher_pair(*nets.passes(x_l, u.weak)) if m.teacher_term else []
    # lambda ramps over the whole run: its length is the networks' training configuration's
    lam = feature_aug_lambda(t, nets.cfg.iterations, m.lambda_end, m.lambda_schedule)
    with torch.autocast(x_l.device.type, enabled=False):
        c = consistency(
            m,
            views,
            students=branches(s_out, nets.students, nets.student_stats),
            teachers=branches(t_out, nets.teachers, nets.teacher_stats),
            unmixed=unmixed,
            lam=lam,
        )
    ramp = consistency_rampup(t - 1, m.consistency_rampup)
    total = loss_sup + ramp * (m.weight_teacher * c.loss_st + m.weight_student * c.loss_ss)
    parts = {"consistency_ramp": ramp, "loss": total, "loss_sup": loss_sup}
    return total, {**parts, "loss_st": c.loss_st, "loss_ss": c.loss_ss, **c.metrics}


def peers_from_unmixed(method: MethodConfig) -> bool:
    """CPS+CutMix: ``L_ss`` targets are the students' no-grad predictions on the unmixed images."""
    return method.student_term and method.cps_targets == "unmixed"


def consistency(
    method: MethodConfig,
    views: Views,
    students: list[Branch],
    teachers: list[Branch],
    unmixed: list[SegOutput],
    lam: float,
) -> ConsistencyResult:
    """``L_st`` and ``L_ss`` of one step, with their diagnostics.

    ``unmixed``: the students' no-grad outputs on ``x_w`` when ``peers_from_unmixed``, else empty;
    ``lam``: this step's feature-augmentation strength.
    """
    m, u = method, views.unlabeled
    decoder = tuple(students[0].output.logits.shape[-2:])
    grid = make_grid(m, decoder, views.labels, u.valid, u.mask)
    own = [
        make_view(b.output.logits, b.output.features, grid.labels, grid.valid_mixed)
        for b in students
    ]
    z_s = [
        feature_augment(v, b.stats, b.classifier, lam, m.feature_aug_students, check_labels=False)
        for v, b in zip(own, students, strict=True)
    ]
    with torch.no_grad():
        targets = [teacher_target(m, b, grid, lam, check_labels=False) for b in teachers]
    teacher_ignore, peer_ignore = ignore_masks(m, grid)
    teacher_labels = PseudoLabels(
        [t.logits for t in targets],
        teacher_ignore,
        [t.confidence for t in targets],
        m.confidence_threshold,
    )
    result = consistency_losses(
        z_s,
        teachers=teacher_labels if m.teacher_term else None,
        peers=_peer_labels(m, own, z_s, unmixed, grid, peer_ignore) if m.student_term else None,
        average=m.threshold_average,
    )
    if m.teacher_term or peers_from_unmixed(m):  # targets CutMix-ed from x_w
        result.metrics["target_alignment"] = grid.mixer.alignment(grid.valid_mixed)
    result.metrics["lambda"] = lam
    result.metrics.update(
        teacher_diagnostics(
            confidence=[t.unmixed_confidence for t in targets],
            predictions=[t.unmixed_prediction for t in targets],
            valid=grid.valid_unmixed,
            report_threshold=m.confidence_report_threshold,
        )
    )
    return result


def _peer_labels(
    method: MethodConfig,
    own: list[View],
    augmented: list[Tensor],
    unmixed: list[SegOutput],
    grid: Grid,
    ignore: Tensor,
) -> PseudoLabels:
    """``L_ss`` targets: the other student's augmented logits on the mixed image, over ``ignore``'s
    complement (MKD); or, with ``peers_from_unmixed``, its no-grad prediction on the unmixed
    images, mixed, on the unlabeled rows only (CPS+CutMix). A threshold reads the confidence of
    the logits before feature augmentation."""
    logits, before_augmentation = augmented, [v.logits for v in own]
    if peers_from_unmixed(method):
        with torch.no_grad():
            logits = before_augmentation = unmixed_targets(unmixed, grid)
            ignore = unlabeled_rows_only(grid)
    confidence = None
    if method.student_confidence_threshold is not None:
        confidence = [z.detach().softmax(1).amax(1) for z in before_augmentation]
    return PseudoLabels(logits, ignore, confidence, method.student_confidence_threshold)


METHOD = Method(
    "mkd",
    "MKD (Mutual Knowledge Distillation: two students, two mean teachers)",
    students=2,
    teachers=True,
    unlabeled=True,
    loss=loss,
    estimators=True,
)
