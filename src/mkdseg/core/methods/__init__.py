"""The methods as data: one record each, and the switches (``MethodConfig``) they set.

The methods share one training step; a record says which networks a method trains, whether
it uses unlabeled images, the switches that define it (``fixed``: its consistency terms and
views, which nothing overrides) and its published values (``defaults``). Adding a method is
adding a record to ``METHODS`` and, when its loss is not the shared one of
``core/consistency.py``, a file here with its ``loss`` (``supervised.py``, ``unimatch.py``); the
configuration and the trainer read the record.

A method's switches, lowest first: ``MethodConfig``'s defaults (the MKD release,
``MKD_SPEC.md``), the record's published values, the block ``training.consistency`` (what
every method shares), the method's own block ``training.<method>``. A switch set in either
block that contradicts a fixed one is an error naming both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mkdseg.core.fields import check, choice
from mkdseg.core.methods import supervised, unimatch
from mkdseg.core.schedules import LAMBDA_SCHEDULES

SHARED_BLOCK = "consistency"  # training.consistency: the switches every method shares
MAX_CONSISTENCY_SCALE = 4.0  # the decoder is at 1/4 of the input: 4 puts consistency at input res


@dataclass(frozen=True)
class Method:
    """One method: its networks, its data, the switches that define it and its published values."""

    name: str
    title: str  # how a run description names it
    students: int  # networks trained (each with an EMA teacher when ``teachers``)
    teachers: bool  # EMA teachers teach the students (L_st), unless teacher_term is switched off
    unlabeled: bool  # trains on unlabeled images
    fixed: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    strong_views: int = 1  # strong views of each unlabeled image, each CutMix-ed on its own
    estimators: bool = True  # class feature statistics for feature augmentation
    # The method's own loss(nets, views, method, t) -> (loss, metrics); None: the shared
    # L = CE_sup + ramp(t) * (w_st * L_st + w_ss * L_ss) of core/consistency.py.
    loss: Callable[..., Any] | None = None

    def switches(self, shared: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
        """The method's switches from the shared block and its own block (see the module doc)."""
        user = {**shared, **own}
        for key, value in self.fixed.items():
            if key in user and user[key] != value:
                block = self.name if key in own else SHARED_BLOCK
                raise ValueError(
                    f"training.{block}.{key}: {user[key]!r} contradicts training.method: "
                    f"{self.name}, which fixes {key}: {value!r} (core/methods/); train method "
                    "mkd with its switches to change it"
                )
        return {**self.defaults, **user, **self.fixed, "name": self.name}


NO_CONSISTENCY = {
    "teacher_term": False,
    "student_term": False,
    "feature_aug_students": False,
    "feature_aug_teachers": False,
}
SUPERVISED = Method(
    "supervised",
    "Supervised baseline (labeled images only)",
    students=1,
    teachers=False,
    unlabeled=False,
    fixed=NO_CONSISTENCY,
    loss=supervised.loss,
)
# Mean teacher (Tarvainen & Valpola 2017) in the FixMatch form UniMatch's repository uses for
# segmentation (fixmatch.py): one student on the CutMix-ed strong view learns, on the unlabeled
# images only (loss_u), the argmax of its EMA teacher on the unmixed weak view, mixed with the same
# mask; pixels under 0.95 teacher confidence count 0 and the loss is averaged over all valid pixels
# (loss_u * (conf >= 0.95) / valid), on logits upsampled to the input; unsupervised weight 1, as
# the labeled term ((loss_x + loss_u) / 2). EMA momentum min(1 - 1/t, 0.99): Tarvainen & Valpola's
# schedule (0.999 in long runs).
MEAN_TEACHER = Method(
    "mean_teacher",
    "Mean teacher",
    students=1,
    teachers=True,
    unlabeled=True,
    fixed={**NO_CONSISTENCY, "teacher_term": True, "mixed_view": "strong"},
    defaults={
        "teacher_rows": "unlabeled",
        "ema_momentum_end": 0.99,
        "confidence_threshold": 0.95,
        "threshold_average": "valid",
        "weight_teacher": 1.0,
        "consistency_scale": MAX_CONSISTENCY_SCALE,
    },
)
# Cross pseudo supervision with CutMix (Chen et al. 2021, TorchSemiSeg
# exp.voc/voc8.res50v3+.CPS+CutMix/train.py): each network's no-grad prediction on the unmixed
# unlabeled images, mixed with the CutMix mask, is the other network's target on the mixed image;
# no strong view; loss on logits upsampled to the input (network.py upsamples before the loss);
# cps_weight 1 (that experiment's config.py); no threshold.
CPS = Method(
    "cps",
    "Cross pseudo supervision (CPS)",
    students=2,
    teachers=False,
    unlabeled=True,
    fixed={**NO_CONSISTENCY, "student_term": True, "cps_targets": "unmixed", "mixed_view": "weak"},
    defaults={"weight_student": 1.0, "consistency_scale": MAX_CONSISTENCY_SCALE},
)
# MKD (MKD_SPEC.md): two students, two EMA teachers; its published values are MethodConfig's.
MKD = Method(
    "mkd",
    "MKD (Mutual Knowledge Distillation: two students, two mean teachers)",
    students=2,
    teachers=True,
    unlabeled=True,
)
# UniMatch (core/methods/unimatch.py): one network taught by its own weak-view prediction on two
# strong views and a feature-perturbed stream; threshold 0.95 over all valid pixels (published).
UNIMATCH = Method(
    "unimatch",
    "UniMatch (weak-to-strong with two strong views and feature perturbation)",
    students=1,
    teachers=False,
    unlabeled=True,
    fixed={**NO_CONSISTENCY, "mixed_view": "strong"},
    defaults={"confidence_threshold": 0.95, "threshold_average": "valid"},
    strong_views=unimatch.STRONG_VIEWS,
    estimators=False,
    loss=unimatch.loss,
)
METHODS: dict[str, Method] = {m.name: m for m in (SUPERVISED, MEAN_TEACHER, CPS, MKD, UNIMATCH)}


def method_named(name: str) -> Method:
    """The record of ``training.method``."""
    if name not in METHODS:
        raise ValueError(f"training.method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]


def _is_probability(value: float | None) -> bool:
    return value is None or 0.0 < value < 1.0


@dataclass
class MethodConfig:
    """A method's switches (spec §1, §4, §5), as ``Method.switches`` resolves them."""

    name: str = MKD.name
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
    ema_momentum_end: float = 0.6  # release 0.6 (0.99/0.999 usual elsewhere)
    weight_teacher: float = 1.5  # w_st, release
    weight_student: float = 1.0  # w_ss, release
    lambda_end: float = 1.5  # feature-augmentation strength, release
    lambda_schedule: str = choice("cosine", LAMBDA_SCHEDULES)  # cosine ramp (release)
    consistency_scale: float = 0.5  # release: 1/2 decoder resolution (1/8 input); 4: input res
    consistency_rampup: int = 0  # iterations of sigmoid ramp on w_st, w_ss; release: 0 (none)
    teacher_bn_mode: str = choice("train", ("train", "eval"))  # release: batch statistics
    confidence_report_threshold: float = 0.95  # only for the logged "confident share" diagnostic

    def __post_init__(self) -> None:
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


SWITCHES = frozenset(f.name for f in dataclasses.fields(MethodConfig)) - {"name"}
