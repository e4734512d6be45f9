"""The unsupervised part of MKD (spec §4, §5): who teaches whom, on what targets.

Everything here works on network outputs already computed by the trainer, over
the concatenation ``[labeled; unlabeled]``:

- students saw ``[x_l; x_mix]``; teachers saw ``[x_l; x_w]`` and their unlabeled
  half is CutMix-ed with the same mask so targets line up with ``x_mix``;
- every network's logits are feature-augmented with its own estimator;
- ``L_st``: student k learns the argmax of the *other* branch's teacher
  (the same branch's teacher when there is one branch, i.e. mean teacher);
- ``L_ss``: the two students teach each other (CPS), never thresholded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mkdseg.core.cutmix import mix
from mkdseg.core.feature_augmentation import (
    ClassFeatureStatistics,
    augment_logits,
    augmentation_table,
)
from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.core.losses import pseudo_label_ce


@dataclass
class View:
    """One network's outputs at consistency resolution, with the labels its estimator uses."""

    logits: Tensor  # (B, C, h, w), float32
    features: Tensor  # (B, A, h, w), float32, detached
    labels: Tensor  # (B, h, w): ground truth on labeled rows, own argmax on unlabeled, 255 = ignore


def to_resolution(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of logits/features (the release downsamples by 0.5)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.float()
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)


def labels_to_resolution(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest resize of integer labels / boolean masks."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    resized = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0]
    return resized.to(labels.dtype)


def make_view(logits: Tensor, features: Tensor, labels_small: Tensor, valid_unlabeled: Tensor) -> View:
    """Resize a network's outputs and attach its estimator labels."""
    size = tuple(labels_small.shape[-2:])
    z = to_resolution(logits, size)
    f = to_resolution(features.detach(), size)
    n_l = labels_small.shape[0]
    own = z[n_l:].detach().argmax(1)
    own = torch.where(valid_unlabeled, own, torch.full_like(own, IGNORE_INDEX))
    return View(z, f, torch.cat([labels_small.long(), own]))


def feature_augment(view: View, stats: ClassFeatureStatistics, classifier_weight: Tensor,
                    lam: float, enabled: bool) -> Tensor:
    """Update the network's estimator with this step's features, then augment its logits.

    The estimator is updated even when augmentation is off so that the statistics
    (and therefore a later switch-on, or a checkpoint) stay meaningful.
    """
    stats.update_from_maps(view.features, view.labels)
    if not enabled or lam == 0.0:
        return view.logits
    weight = classifier_weight.detach().float().flatten(1)
    table = augmentation_table(weight, stats.var.to(weight), lam)
    return augment_logits(view.logits, view.labels, table)


def mix_teacher(z: Tensor, n_labeled: int, mask_small: Tensor) -> Tensor:
    """CutMix a teacher's unlabeled rows with the students' mask so targets line up with x_mix."""
    return torch.cat([z[:n_labeled], mix(z[n_labeled:], mask_small)])


@dataclass
class ConsistencyResult:
    loss_st: Tensor
    loss_ss: Tensor
    metrics: dict[str, float]


def consistency_losses(
    students: list[Tensor],
    teachers: list[Tensor],
    teacher_confidence: list[Tensor],
    ignore: Tensor,
    threshold: float | None,
    student_term: bool,
    student_confidence: list[Tensor] | None = None,
    student_threshold: float | None = None,
) -> ConsistencyResult:
    """``L_st`` and ``L_ss`` from feature-augmented logits (already mixed for teachers).

    ``teachers`` may be empty (CPS / supervised); ``students`` has one or two entries.
    ``teacher_confidence`` is each teacher's max-softmax *before* feature augmentation,
    used only for the optional threshold on ``L_st``; ``student_confidence`` likewise for the
    optional threshold on ``L_ss`` (not in the spec, where ``L_ss`` is never thresholded).
    """
    zero = students[0].new_zeros(())
    loss_st, loss_ss = zero, zero
    kept = []
    n = len(students)
    if teachers:
        for k in range(n):
            other = (k + 1) % n  # the other branch; the same one when there is a single branch
            loss, share = pseudo_label_ce(students[k], teachers[other].detach(), ignore,
                                          teacher_confidence[other], threshold)
            loss_st = loss_st + loss
            kept.append(share)
    if student_term and n == 2:
        for k in range(2):
            conf = student_confidence[1 - k] if student_confidence else None
            loss, _ = pseudo_label_ce(students[k], students[1 - k].detach(), ignore, conf, student_threshold)
            loss_ss = loss_ss + loss
    metrics = {"kept_share_st": float(sum(kept) / len(kept))} if kept else {}
    return ConsistencyResult(loss_st, loss_ss, metrics)


def teacher_diagnostics(confidence: list[Tensor], predictions: list[Tensor], valid: Tensor,
                        report_threshold: float, n_labeled: int) -> dict[str, float]:
    """Mean teacher confidence, share above the threshold, and agreement of the two teachers.

    Takes each teacher's max-softmax and argmax (B, h, w) on ``[x_l; x_w]``, before feature
    augmentation and CutMix, as the trainer already has them; measured on the unlabeled
    weak-view pixels.
    """
    if not confidence:
        return {}
    valid = valid.bool()
    count = valid.sum().clamp(min=1)
    conf = torch.stack([c[n_labeled:] for c in confidence])  # (T, B_u, h, w)
    out = {
        "teacher_confidence": float((conf * valid).sum() / (count * len(confidence))),
        "confident_share": float(((conf >= report_threshold) & valid).sum() / (count * len(confidence))),
    }
    if len(predictions) == 2:
        agree = (predictions[0][n_labeled:] == predictions[1][n_labeled:]) & valid
        out["teacher_agreement"] = float(agree.sum() / count)
    return out

