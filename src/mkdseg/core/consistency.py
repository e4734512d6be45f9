"""The unsupervised part of MKD (spec §4, §5): who teaches whom, on what targets.

``consistency`` takes the step's network outputs over ``[labeled; unlabeled]``:

- students saw ``[x_l; x_mix]``; teachers saw ``[x_l; x_w]`` and their unlabeled half is
  CutMix-ed with the same mask so targets line up with ``x_mix`` (``targets.TargetMixer``);
- every network's logits are feature-augmented with its own estimator;
- ``L_st``: student k learns the argmax of the *other* branch's teacher
  (the same branch's teacher when there is one branch, i.e. mean teacher);
- ``L_ss``: the two students teach each other (CPS), never thresholded by default: on the mixed
  image (MKD), or from their no-grad predictions on the unmixed images, mixed (CPS+CutMix).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mkdseg.core.class_map import class_map
from mkdseg.core.config import MethodConfig
from mkdseg.core.feature_augmentation import ClassFeatureStatistics
from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.core.losses import pseudo_label_ce
from mkdseg.core.model import SegOutput
from mkdseg.core.targets import (
    Branch,
    Grid,
    View,
    feature_augment,
    make_grid,
    make_view,
    teacher_target,
)
from mkdseg.core.views import Views

BACKGROUND_CLASS = 0  # the class the kept-share diagnostic reports apart (VOC and the embedded set)


@dataclass
class PseudoLabels:
    """The targets of one term: student k learns the argmax of ``logits[(k + 1) % n]``, the other
    branch's (its own branch's when there is one)."""

    logits: list[Tensor]  # per branch (B, C, h, w); detached by the loss
    ignore: Tensor  # (B, h, w) bool: the pixels left out
    confidence: list[Tensor] | None = None  # per branch (B, h, w): what ``threshold`` reads
    threshold: float | None = None  # None: every pixel not ignored counts


@dataclass
class ConsistencyResult:
    loss_st: Tensor
    loss_ss: Tensor
    metrics: dict[str, Tensor | float]  # detached 0-d tensors, and lambda


def branches(
    outputs: list[SegOutput], nets: list[nn.Module], stats: list[ClassFeatureStatistics]
) -> list[Branch]:
    """Each network's output with its estimator and classifier weight."""
    return [
        Branch(o, s, net.classifier.weight) for o, net, s in zip(outputs, nets, stats, strict=True)
    ]


def peers_from_unmixed(method: MethodConfig, num_students: int) -> bool:
    """CPS+CutMix: ``L_ss`` targets are the students' no-grad predictions on the unmixed images."""
    return method.student_term and num_students == 2 and method.cps_targets == "unmixed"


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
        feature_augment(v, b.stats, b.classifier, lam, m.feature_aug_students)
        for v, b in zip(own, students, strict=True)
    ]
    with torch.no_grad():
        targets = [teacher_target(m, b, grid, lam) for b in teachers]
    teacher_ignore, peer_ignore = ignore_masks(m, grid)
    teacher_labels = PseudoLabels(
        [t.logits for t in targets],
        teacher_ignore,
        [t.confidence for t in targets],
        m.confidence_threshold,
    )
    with_peers = m.student_term and len(students) == 2
    result = consistency_losses(
        z_s,
        teachers=teacher_labels if m.teacher_term else None,
        peers=_peer_labels(m, own, z_s, unmixed, grid, peer_ignore) if with_peers else None,
        average=m.threshold_average,
    )
    if m.teacher_term or peers_from_unmixed(m, len(students)):  # targets CutMix-ed from x_w
        result.metrics["target_alignment"] = grid.mixer.alignment(grid.valid_mixed)
    result.metrics["lambda"] = lam
    result.metrics.update(
        teacher_diagnostics(
            confidence=[t.unmixed_confidence for t in targets],
            predictions=[t.unmixed_prediction for t in targets],
            valid=grid.valid_unmixed,
            report_threshold=m.confidence_report_threshold,
            n_labeled=grid.n_labeled,
        )
    )
    return result


def ignore_masks(method: MethodConfig, grid: Grid) -> tuple[Tensor, Tensor]:
    """The pixels ``L_st`` and ``L_ss`` leave out over ``[labeled; mixed]`` (B, h, w): padding and
    ignore labels for both; ``teacher_rows: unlabeled`` drops the labeled rows from ``L_st``
    only (``L_ss`` keeps them, as it does with every ``teacher_rows``)."""
    label_ignore = grid.labels == IGNORE_INDEX
    peers = torch.cat([label_ignore, ~grid.valid_mixed])
    if method.teacher_rows == "all":
        return peers, peers
    return torch.cat([torch.ones_like(label_ignore), ~grid.valid_mixed]), peers


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
    if peers_from_unmixed(method, len(augmented)):
        n_l = grid.n_labeled
        with torch.no_grad():
            logits = before_augmentation = [
                torch.cat([torch.zeros_like(z[:n_l]), grid.mixer.mix(o.logits)])
                for z, o in zip(augmented, unmixed, strict=True)
            ]
            ignore = torch.cat([torch.ones_like(grid.labels, dtype=torch.bool), ~grid.valid_mixed])
    confidence = None
    if method.student_confidence_threshold is not None:
        confidence = [z.detach().softmax(1).max(1).values for z in before_augmentation]
    return PseudoLabels(logits, ignore, confidence, method.student_confidence_threshold)


def kept_by_group(
    targets: list[Tensor], confidence: list[Tensor], ignore: Tensor, threshold: float | None
) -> dict[str, Tensor]:
    """Share of the valid pixels that pass the threshold, among those whose target is background
    (class ``BACKGROUND_CLASS``) and among the others: shows when a threshold keeps one group
    only."""
    valid = ~ignore.bool()
    counts = torch.zeros(2, 2, device=valid.device)  # (background, objects) x (kept, valid)
    for logits, conf in zip(targets, confidence, strict=True):
        background = class_map(logits.detach()) == BACKGROUND_CLASS
        keep = valid if threshold is None else valid & (conf.reshape(valid.shape) >= threshold)
        for row, group in enumerate((background, ~background)):
            counts[row, 0] += (keep & group).sum()
            counts[row, 1] += (valid & group).sum()
    share = (counts[:, 0] / counts[:, 1].clamp(min=1)).detach()
    return {"kept_share_st_background": share[0], "kept_share_st_objects": share[1]}


def _term(
    students: list[Tensor], labels: PseudoLabels, average: str
) -> tuple[Tensor, list[Tensor]]:
    """The sum over students of CE against the other branch's pseudo-labels; kept shares."""
    n = len(students)
    loss, kept = students[0].new_zeros(()), []
    for k in range(n):
        other = (k + 1) % n
        confidence = labels.confidence[other] if labels.confidence else None
        ce, share = pseudo_label_ce(
            students[k],
            labels.logits[other].detach(),
            labels.ignore,
            confidence,
            labels.threshold,
            average,
        )
        loss = loss + ce
        kept.append(share)
    return loss, kept


def consistency_losses(
    students: list[Tensor],
    teachers: PseudoLabels | None = None,
    peers: PseudoLabels | None = None,
    average: str = "kept",
) -> ConsistencyResult:
    """``L_st`` against ``teachers`` and ``L_ss`` against ``peers`` (None: that term is 0), from
    the students' feature-augmented logits.

    ``average`` is how thresholded terms are averaged (``pseudo_label_ce``). A teacher's
    confidence is its max-softmax *before* feature augmentation. ``L_ss`` needs two students.
    """
    if peers is not None and len(students) != 2:
        raise ValueError(f"consistency_losses: L_ss needs two students, got {len(students)}")
    loss_st = loss_ss = students[0].new_zeros(())
    metrics: dict[str, Tensor | float] = {}
    if teachers is not None:
        loss_st, kept = _term(students, teachers, average)
        others = [(k + 1) % len(students) for k in range(len(students))]
        metrics["kept_share_st"] = torch.stack(kept).mean()
        metrics.update(
            kept_by_group(
                [teachers.logits[i] for i in others],
                [teachers.confidence[i] for i in others] if teachers.confidence else [],
                teachers.ignore,
                teachers.threshold,
            )
        )
    if peers is not None:
        loss_ss, _ = _term(students, peers, average)
    return ConsistencyResult(loss_st, loss_ss, metrics)


def teacher_diagnostics(
    confidence: list[Tensor],
    predictions: list[Tensor],
    valid: Tensor,
    report_threshold: float,
    n_labeled: int,
) -> dict[str, Tensor]:
    """Mean teacher confidence, share above the threshold, and agreement of the two teachers,
    as detached 0-d tensors (the trainer moves a step's metrics to the host in one transfer).

    Takes each teacher's max-softmax and argmax (B, h, w) on ``[x_l; x_w]``, before feature
    augmentation and CutMix; measured on the unlabeled weak-view pixels.
    """
    if not confidence:
        return {}
    valid = valid.bool()
    count = valid.sum().clamp(min=1)
    conf = torch.stack([c[n_labeled:] for c in confidence])  # (T, B_u, h, w)
    out = {
        "teacher_confidence": ((conf * valid).sum() / (count * len(confidence))).detach(),
        "confident_share": (
            ((conf >= report_threshold) & valid).sum() / (count * len(confidence))
        ).detach(),
    }
    if len(predictions) == 2:
        agree = (predictions[0][n_labeled:] == predictions[1][n_labeled:]) & valid
        out["teacher_agreement"] = (agree.sum() / count).detach()
    return out
