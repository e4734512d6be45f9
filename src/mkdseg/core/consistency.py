"""The pieces the methods' consistency terms are built from (spec §4, §5; ``core/methods/``).

- ``PseudoLabels``: one term's targets; student k learns the argmax of the *other* branch's
  (its own branch's when there is one, i.e. mean teacher), ``consistency_losses`` sums the
  pseudo-label CE over the students: ``L_st`` against teachers, ``L_ss`` against peers;
- ``ignore_masks``, ``unlabeled_rows_only``: which rows of ``[x_l; x_mix]`` a term reads;
- ``unmixed_targets``: no-grad outputs on ``x_w`` CutMix-ed to line up with ``x_mix``
  (CPS+CutMix's targets);
- the logged diagnostics: kept shares, the teachers' confidence and agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mkdseg.core.class_map import class_map
from mkdseg.core.feature_augmentation import ClassFeatureStatistics
from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.core.losses import pseudo_label_ce
from mkdseg.core.model import SegOutput
from mkdseg.core.targets import Branch, Grid

if TYPE_CHECKING:
    from mkdseg.core.methods import MethodConfig

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


def ignore_masks(method: MethodConfig, grid: Grid) -> tuple[Tensor, Tensor]:
    """The pixels ``L_st`` and ``L_ss`` leave out over ``[labeled; mixed]`` (B, h, w): padding and
    ignore labels for both; ``teacher_rows: unlabeled`` drops the labeled rows from ``L_st``
    only (``L_ss`` keeps them, as it does with every ``teacher_rows``)."""
    label_ignore = grid.labels == IGNORE_INDEX
    peers = torch.cat([label_ignore, ~grid.valid_mixed])
    if method.teacher_rows == "all":
        return peers, peers
    return torch.cat([torch.ones_like(label_ignore), ~grid.valid_mixed]), peers


def unmixed_targets(unmixed: list[SegOutput], grid: Grid) -> list[Tensor]:
    """Each network's no-grad logits on the unmixed ``x_w``, CutMix-ed onto the grid like the
    students' ``x_mix``, under zero rows for ``[x_l]`` (``unlabeled_rows_only`` ignores them)."""
    mixed = [grid.mixer.mix(o.logits) for o in unmixed]
    return [torch.cat([z.new_zeros((grid.n_labeled, *z.shape[1:])), z]) for z in mixed]


def unlabeled_rows_only(grid: Grid) -> Tensor:
    """The ignore mask over ``[x_l; x_mix]`` that keeps the mixed images' valid cells only."""
    return torch.cat([torch.ones_like(grid.labels, dtype=torch.bool), ~grid.valid_mixed])


def kept_by_group(
    targets: list[Tensor], confidence: list[Tensor], ignore: Tensor, threshold: float | None
) -> dict[str, Tensor]:
    """Share of the valid pixels that pass the threshold, among those whose target (class maps
    (B, h, w)) is background (class ``BACKGROUND_CLASS``) and among the others: shows when a
    threshold keeps one group only."""
    valid = ~ignore.bool()
    counts = torch.zeros(2, 2, device=valid.device)  # (background, objects) x (kept, valid)
    for classes, conf in zip(targets, confidence, strict=True):
        background = classes == BACKGROUND_CLASS
        keep = valid if threshold is None else valid & (conf.reshape(valid.shape) >= threshold)
        for row, group in enumerate((background, ~background)):
            counts[row, 0] += (keep & group).sum()
            counts[row, 1] += (valid & group).sum()
    share = (counts[:, 0] / counts[:, 1].clamp(min=1)).detach()
    return {"kept_share_st_background": share[0], "kept_share_st_objects": share[1]}


def _term(
    students: list[Tensor], labels: PseudoLabels, average: str, classes: list[Tensor]
) -> tuple[Tensor, list[Tensor]]:
    """The sum over students of CE against the other branch's pseudo-labels (``classes``: each
    branch's class map of ``labels.logits``); kept shares."""
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
            target=classes[other],
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
    if teachers is not None:  # each target's class map, for its loss and its kept shares
        classes = [class_map(z.detach()) for z in teachers.logits]
        loss_st, kept = _term(students, teachers, average, classes)
        others = [(k + 1) % len(students) for k in range(len(students))]
        metrics["kept_share_st"] = torch.stack(kept).mean()
        metrics.update(
            kept_by_group(
                [classes[i] for i in others],
                [teachers.confidence[i] for i in others] if teachers.confidence else [],
                teachers.ignore,
                teachers.threshold,
            )
        )
    if peers is not None:
        loss_ss, _ = _term(students, peers, average, [class_map(z.detach()) for z in peers.logits])
    return ConsistencyResult(loss_st, loss_ss, metrics)


def teacher_diagnostics(
    confidence: list[Tensor],
    predictions: list[Tensor],
    valid: Tensor,
    report_threshold: float,
) -> dict[str, Tensor]:
    """Mean teacher confidence, share above the threshold, and agreement of the two teachers,
    as detached 0-d tensors (the trainer moves a step's metrics to the host in one transfer).

    Takes each teacher's max-softmax and argmax (B_u, h, w) on ``x_w``, before feature
    augmentation and CutMix, and the weak views' valid pixels (B_u, h, w) they are measured on.
    """
    if not confidence:
        return {}
    valid = valid.bool()
    count = valid.sum().clamp(min=1)
    conf = torch.stack(confidence)  # (T, B_u, h, w)
    out = {
        "teacher_confidence": ((conf * valid).sum() / (count * len(confidence))).detach(),
        "confident_share": (
            ((conf >= report_threshold) & valid).sum() / (count * len(confidence))
        ).detach(),
    }
    if len(predictions) == 2:
        agree = (predictions[0] == predictions[1]) & valid
        out["teacher_agreement"] = (agree.sum() / count).detach()
    return out
