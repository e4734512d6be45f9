"""The unsupervised part of MKD (spec §4, §5): who teaches whom, on what targets.

Everything here works on network outputs already computed by the trainer, over
the concatenation ``[labeled; unlabeled]``:

- students saw ``[x_l; x_mix]``; teachers saw ``[x_l; x_w]`` and their unlabeled
  half is CutMix-ed with the same mask so targets line up with ``x_mix`` (``TargetMixer``);
- every network's logits are feature-augmented with its own estimator;
- ``L_st``: student k learns the argmax of the *other* branch's teacher
  (the same branch's teacher when there is one branch, i.e. mean teacher);
- ``L_ss``: the two students teach each other (CPS), never thresholded: on the mixed image
  (MKD), or from their no-grad predictions on the unmixed images, mixed (CPS+CutMix).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mkdseg.core.cutmix import mix, resize_mask
from mkdseg.core.feature_augmentation import (
    ClassFeatureStatistics,
    augment_logits,
    augmentation_table,
)
from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.core.losses import pseudo_label_ce

# Label sampling on a coarser grid: the top-left pixel of each block (F.interpolate "nearest", as
# mmseg's resize in the release) or the pixel at its centre ("nearest-exact").
SAMPLING_MODES = {"corner": "nearest", "centre": "nearest-exact"}
BACKGROUND_CLASS = 0  # the class the kept-share diagnostic reports apart (VOC and the embedded set)
MAJORITY = 0.5  # a grid cell belongs to the image covering more than half of it


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


def labels_to_resolution(labels: Tensor, size: tuple[int, int], sampling: str = "corner") -> Tensor:
    """Resize integer labels / boolean masks (B, H, W) by sampling one pixel per cell.

    "corner" takes each block's top-left pixel: at 64 px on an 8 x 8 grid a quarter of the object
    cells then get a label that is not their block's majority; "centre" takes its centre pixel.
    """
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"label sampling must be one of {tuple(SAMPLING_MODES)}, got {sampling!r}")
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    resized = F.interpolate(labels[:, None].float(), size=size, mode=SAMPLING_MODES[sampling])[:, 0]
    return resized.to(labels.dtype)


def make_view(
    logits: Tensor, features: Tensor, labels_small: Tensor, valid_unlabeled: Tensor
) -> View:
    """Resize a network's outputs and attach its estimator labels."""
    size = tuple(labels_small.shape[-2:])
    z = to_resolution(logits, size)
    f = to_resolution(features.detach(), size)
    n_l = labels_small.shape[0]
    own = z[n_l:].detach().argmax(1)
    own = torch.where(valid_unlabeled, own, torch.full_like(own, IGNORE_INDEX))
    return View(z, f, torch.cat([labels_small.long(), own]))


def feature_augment(
    view: View, stats: ClassFeatureStatistics, classifier_weight: Tensor, lam: float, enabled: bool
) -> Tensor:
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
class TargetMixer:
    """Turns outputs on the unmixed unlabeled images into targets aligned with ``x_mix`` on the grid.

    ``mixing="decoder"`` (the release): the mask is resized (nearest) to the decoder resolution,
    outputs are mixed there, then resized bilinearly to the grid, so a grid cell's target blends
    its sub-cells in about the proportions of the two images. When the grid is finer than the
    decoder (``consistency_scale`` > 1) outputs are upsampled to the grid first and mixed there.
    ``mixing="grid"``: outputs are resized to the grid and mixed with the mask sampled (nearest)
    at the grid, where one top-left pixel decides a whole cell.
    """

    mask: Tensor  # (B_u, 1, H, W) the CutMix mask at input resolution, 1 = the sample, 0 = its partner
    decoder: tuple[int, int]
    grid: tuple[int, int]
    mixing: str = "decoder"
    sampling: str = "corner"  # how padding masks are sampled (labels_to_resolution)

    def __post_init__(self) -> None:
        if self.mixing not in ("grid", "decoder"):
            raise ValueError(f"target mixing must be grid or decoder, got {self.mixing!r}")
        finer = self.grid[0] * self.grid[1] > self.decoder[0] * self.decoder[1]
        self.mix_size = self.grid if self.mixing == "grid" or finer else self.decoder
        self.mix_mask = resize_mask(self.mask, self.mix_size)

    def mix(self, x: Tensor) -> Tensor:
        """(B_u, K, h, w) outputs on the unmixed images -> (B_u, K, *grid) float32, mixed."""
        mixed = mix(to_resolution(x, self.mix_size), self.mix_mask)
        return to_resolution(mixed, self.grid)

    def valid(self, valid_unmixed: Tensor) -> Tensor:
        """Padding mask (B_u, H, W) bool of the unmixed images -> the mixed targets' (B_u, *grid).

        ``grid`` mixing: the input-resolution mixed mask sampled at the grid (``sampling``).
        ``decoder`` mixing: each image's unpadded share of every decoder cell, mixed and resized
        like the outputs; a cell is valid where more than half of its target comes from unpadded pixels.
        """
        if self.mixing == "grid":
            return labels_to_resolution(
                mix(valid_unmixed.bool(), self.mask), self.grid, self.sampling
            )
        share = F.interpolate(valid_unmixed.float()[:, None], size=self.mix_size, mode="area")
        return self.mix(share)[:, 0] > MAJORITY

    def weight(self) -> Tensor:
        """(B_u, 1, *grid): how much of each cell's target comes from the sample (not its partner)."""
        return to_resolution(self.mix_mask.float(), self.grid)

    def alignment(self, valid: Tensor) -> Tensor:
        """Share of the valid cells (B_u, *grid) whose target does not come mostly from the image
        covering the minority of the cell, measured against the input-resolution mask (detached
        0-d tensor). A target blended half and half, or a cell split exactly in half, counts as
        aligned: neither image is the minority's."""
        weight = self.weight()[:, 0]
        truth = F.interpolate(self.mask.float(), size=self.grid, mode="area")[:, 0]
        aligned = (
            ((weight > MAJORITY) == (truth > MAJORITY)) | (weight == MAJORITY) | (truth == MAJORITY)
        )
        valid = valid.bool()
        return ((aligned & valid).sum() / valid.sum().clamp(min=1)).float().detach()

    def view(
        self,
        logits: Tensor,
        features: Tensor,
        n_labeled: int,
        labels_small: Tensor,
        valid_mix: Tensor,
    ) -> View:
        """A teacher's view of ``[x_l; x_w]`` (decoder resolution) as targets for ``[x_l; x_mix]``:
        labeled rows resized, unlabeled rows mixed, then the estimator labels attached."""
        z = torch.cat([to_resolution(logits[:n_labeled], self.grid), self.mix(logits[n_labeled:])])
        f = features.detach()
        f = torch.cat([to_resolution(f[:n_labeled], self.grid), self.mix(f[n_labeled:])])
        return make_view(z, f, labels_small, valid_mix)


@dataclass
class ConsistencyResult:
    loss_st: Tensor
    loss_ss: Tensor
    metrics: dict[str, Tensor]  # detached 0-d tensors


def kept_by_group(
    targets: list[Tensor], confidence: list[Tensor], ignore: Tensor, threshold: float | None
) -> dict[str, Tensor]:
    """Share of the valid pixels that pass the threshold, among those whose target is background
    (class ``BACKGROUND_CLASS``) and among the others: shows when a threshold keeps one group only."""
    valid = ~ignore.bool()
    counts = torch.zeros(2, 2, device=valid.device)  # (background, objects) x (kept, valid)
    for logits, conf in zip(targets, confidence, strict=True):
        background = logits.detach().argmax(1) == BACKGROUND_CLASS
        keep = valid if threshold is None else valid & (conf.reshape(valid.shape) >= threshold)
        for row, group in enumerate((background, ~background)):
            counts[row, 0] += (keep & group).sum()
            counts[row, 1] += (valid & group).sum()
    share = (counts[:, 0] / counts[:, 1].clamp(min=1)).detach()
    return {"kept_share_st_background": share[0], "kept_share_st_objects": share[1]}


def consistency_losses(
    students: list[Tensor],
    teachers: list[Tensor],
    teacher_confidence: list[Tensor],
    ignore: Tensor,
    threshold: float | None,
    student_term: bool,
    student_confidence: list[Tensor] | None = None,
    student_threshold: float | None = None,
    average: str = "kept",
    student_targets: list[Tensor] | None = None,
    student_ignore: Tensor | None = None,
) -> ConsistencyResult:
    """``L_st`` and ``L_ss`` from feature-augmented logits (already mixed for teachers).

    ``teachers`` may be empty (CPS / supervised); ``students`` has one or two entries.
    ``teacher_confidence`` is each teacher's max-softmax *before* feature augmentation,
    used only for the optional threshold on ``L_st``; ``student_confidence`` likewise for the
    optional threshold on ``L_ss`` (not in the spec, where ``L_ss`` is never thresholded);
    ``average`` is how thresholded terms are averaged (``pseudo_label_ce``).
    ``student_targets``: what student k learns in ``L_ss`` is the argmax of
    ``student_targets[1 - k]`` (CPS+CutMix: the other student's prediction on the unmixed
    images, mixed), over the pixels not in ``student_ignore``; by default it is the other
    student's own logits on the mixed image, over the pixels not in ``ignore``.
    """
    zero = students[0].new_zeros(())
    loss_st, loss_ss = zero, zero
    kept = []
    n = len(students)
    metrics: dict[str, Tensor] = {}
    if teachers:
        used = []
        for k in range(n):
            other = (k + 1) % n  # the other branch; the same one when there is a single branch
            loss, share = pseudo_label_ce(
                students[k],
                teachers[other].detach(),
                ignore,
                teacher_confidence[other],
                threshold,
                average,
            )
            loss_st = loss_st + loss
            kept.append(share)
            used.append(other)
        metrics["kept_share_st"] = torch.stack(kept).mean()
        metrics.update(
            kept_by_group(
                [teachers[i] for i in used],
                [teacher_confidence[i] for i in used],
                ignore,
                threshold,
            )
        )
    if student_term and n == 2:
        targets = student_targets if student_targets is not None else students
        mask = student_ignore if student_targets is not None else ignore
        for k in range(2):
            conf = student_confidence[1 - k] if student_confidence else None
            loss, _ = pseudo_label_ce(
                students[k], targets[1 - k].detach(), mask, conf, student_threshold, average
            )
            loss_ss = loss_ss + loss
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
    augmentation and CutMix, as the trainer already has them; measured on the unlabeled
    weak-view pixels.
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
