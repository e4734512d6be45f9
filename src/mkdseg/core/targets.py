"""What the networks' outputs become on the consistency grid (spec §4, §5).

The grid is the resolution the consistency terms are computed at (the release: half the
decoder's, 1/8 of the input). There every network's logits are feature-augmented with its own
estimator (``feature_augment``), and the teachers' outputs on ``[x_l; x_w]`` are CutMix-ed so
that they line up with the students' ``[x_l; x_mix]`` (``TargetMixer``, ``teacher_target``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from mkdseg.core.class_map import class_map
from mkdseg.core.cutmix import mix, resize_mask, unmix
from mkdseg.core.feature_augmentation import (
    ClassFeatureStatistics,
    augment_logits,
    augmentation_table,
)
from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.core.model import SegOutput
from mkdseg.core.resize import to_resolution

if TYPE_CHECKING:
    from mkdseg.core.methods import MethodConfig

# Label sampling on a coarser grid: the top-left pixel of each block (F.interpolate "nearest", as
# mmseg's resize in the release) or the pixel at its centre ("nearest-exact").
SAMPLING_MODES = {"corner": "nearest", "centre": "nearest-exact"}
MAJORITY = 0.5  # a grid cell belongs to the image covering more than half of it


@dataclass
class View:
    """One network's outputs at consistency resolution, with the labels its estimator uses."""

    logits: Tensor  # (B, C, h, w), float32
    features: Tensor  # (B, A, h', w') detached, at decoder resolution: the estimator reads them
    # bilinearly resized to the grid without the resize (``update_resized``)
    labels: Tensor  # (B, h, w): ground truth on labeled rows, own argmax on unlabeled, 255 = ignore
    mix_mask: Tensor | None = None  # (B_u, 1, h, w): the last B_u rows of the resized features
    # are CutMix-ed with it on the grid (teacher targets mixed there); None: not mixed there


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
    """Resize a network's logits to the grid and attach its estimator labels; the features
    stay at their resolution (``View``)."""
    z = to_resolution(logits, tuple(labels_small.shape[-2:]))
    n_l = labels_small.shape[0]
    own = class_map(z[n_l:].detach())
    own = torch.where(valid_unlabeled, own, torch.full_like(own, IGNORE_INDEX))
    return View(z, features.detach(), torch.cat([labels_small.long(), own]))


def mix_teacher(z: Tensor, n_labeled: int, mask_small: Tensor) -> Tensor:
    """CutMix a teacher's unlabeled rows with the students' mask so targets line up with x_mix."""
    return torch.cat([z[:n_labeled], mix(z[n_labeled:], mask_small)])


@dataclass
class TargetMixer:
    """Turns outputs on the unmixed unlabeled images into targets aligned with ``x_mix``.

    ``mixing="decoder"`` (the release): the mask is resized (nearest) to the decoder resolution,
    outputs are mixed there, then resized bilinearly to the grid, so a grid cell's target blends
    its sub-cells in about the proportions of the two images. When the grid is finer than the
    decoder (``consistency_scale`` > 1) outputs are upsampled to the grid first and mixed there.
    ``mixing="grid"``: outputs are resized to the grid and mixed with the mask sampled (nearest)
    at the grid, where one top-left pixel decides a whole cell.
    """

    mask: Tensor  # (B_u, 1, H, W) CutMix mask at input resolution: 1 = the sample, 0 = partner
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
        like the outputs; a cell is valid where more than half of its target comes from unpadded
        pixels.
        """
        if self.mixing == "grid":
            return labels_to_resolution(
                mix(valid_unmixed.bool(), self.mask), self.grid, self.sampling
            )
        share = F.interpolate(valid_unmixed.float()[:, None], size=self.mix_size, mode="area")
        return self.mix(share)[:, 0] > MAJORITY

    def weight(self) -> Tensor:
        """(B_u, 1, *grid): the share of each cell's target that comes from the sample."""
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

    def targets(self, x: Tensor, n_labeled: int) -> Tensor:
        """Outputs (B, K, h, w) on ``[x_l; x_w]`` -> (B, K, *grid) float32 on ``[x_l; x_mix]``:
        labeled rows resized, unlabeled rows mixed (``mix``); a new tensor, ``x`` is untouched.

        Mixed on the grid, the whole batch is resized in one call and its unlabeled rows are
        mixed in place: the values of resizing and mixing each part apart, without the copies.
        For targets only (under ``no_grad``): an in-place ``out=`` select has no gradient."""
        if self.mix_size != self.grid:
            return torch.cat([to_resolution(x[:n_labeled], self.grid), self.mix(x[n_labeled:])])
        out = to_resolution(x, self.grid)
        if out is x:  # already float32 at the grid: to_resolution returned x itself
            out = x.clone()
        rows = out[n_labeled:]
        mix(rows, self.mix_mask, out=rows)
        return out

    def view(
        self,
        logits: Tensor,
        features: Tensor,
        n_labeled: int,
        labels_small: Tensor,
        valid_mix: Tensor,
    ) -> View:
        """A teacher's view of ``[x_l; x_w]`` (decoder resolution) as targets for ``[x_l; x_mix]``:
        labeled rows resized, unlabeled rows mixed, then the estimator labels attached. The
        features are mixed as the logits are but not resized: at the decoder's resolution when
        mixed there, else (mixed on the grid) the view says so with ``mix_mask``."""
        z = self.targets(logits, n_labeled)
        f = features.detach()
        if self.mix_size != self.grid:
            return make_view(z, mix_teacher(f, n_labeled, self.mix_mask), labels_small, valid_mix)
        view = make_view(z, f, labels_small, valid_mix)
        view.mix_mask = self.mix_mask
        return view


@dataclass
class Grid:
    """One step's consistency grid: the labels and padding there, and how targets are mixed."""

    labels: Tensor  # y_l sampled at the grid (B_l, h, w)
    valid_unmixed: Tensor  # (B_u, h, w) bool: the weak views' image pixels, sampled at the grid
    valid_mixed: Tensor  # (B_u, h, w) bool: the cells whose mixed target is mostly image
    mixer: TargetMixer

    @property
    def n_labeled(self) -> int:
        return self.labels.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return self.mixer.grid


def make_grid(
    method: MethodConfig, decoder: tuple[int, int], labels: Tensor, valid: Tensor, mask: Tensor
) -> Grid:
    """The grid at ``consistency_scale`` times the decoder's resolution, for labels (B_l, H, W),
    the unlabeled images' padding mask (B_u, H, W) and their CutMix mask (B_u, 1, H, W)."""
    scale, sampling = method.consistency_scale, method.label_sampling
    size = (max(1, round(decoder[0] * scale)), max(1, round(decoder[1] * scale)))
    mixer = TargetMixer(mask, decoder, size, method.target_mixing, sampling)
    return Grid(
        labels=labels_to_resolution(labels, size, sampling),
        valid_unmixed=labels_to_resolution(valid, size, sampling),
        valid_mixed=mixer.valid(valid),
        mixer=mixer,
    )


@dataclass
class Branch:
    """One network's pass over ``[labeled; unlabeled]``, with what feature augmentation needs."""

    output: SegOutput  # logits and decoder features at decoder resolution
    stats: ClassFeatureStatistics | None = None  # its own estimator; None: a method without one
    classifier: Tensor | None = None  # W: the weight of the network's final 1x1 classifier


@dataclass
class TeacherTarget:
    """A teacher's target for the other branch's student, and what the diagnostics read."""

    logits: Tensor  # feature-augmented; unlabeled rows CutMix-ed to line up with x_mix
    confidence: Tensor  # max-softmax before feature augmentation, mixed likewise
    unmixed_confidence: Tensor  # (B_u, h, w) max-softmax on x_w, before augmentation and CutMix
    unmixed_prediction: Tensor  # (B_u, h, w) argmax on x_w, what the teachers' agreement compares


def feature_augment(
    view: View,
    stats: ClassFeatureStatistics | None,
    classifier_weight: Tensor | None,
    lam: float,
    enabled: bool,
    check_labels: bool = True,
) -> Tensor:
    """Update the network's estimator with this step's features, then augment its logits.

    The estimator is updated even when augmentation is off so that the statistics
    (and therefore a later switch-on, or a checkpoint) stay meaningful; a network without one
    (``stats`` None: its method never augments) keeps its logits. ``check_labels=False``: the
    caller has checked the grid's labels (the view's others are argmaxes).
    """
    if stats is None:
        return view.logits
    weights = onehot = stats.class_weights(view.labels, check=check_labels)
    if view.mix_mask is not None:  # the mixed rows' weights go back to the pixels they came from
        n_u = view.mix_mask.shape[0]
        weights = torch.cat([onehot[:-n_u], unmix(onehot[-n_u:], view.mix_mask)])
    stats.update_resized(view.features, weights)
    if not enabled or lam == 0.0:
        return view.logits
    weight = classifier_weight.detach().float().flatten(1)
    table = augmentation_table(weight, stats.var.to(weight), lam)
    return augment_logits(view.logits, view.labels, table, onehot=onehot)


def teacher_target(
    method: MethodConfig, teacher: Branch, grid: Grid, lam: float, check_labels: bool = True
) -> TeacherTarget:
    """A teacher's output on ``[x_l; x_w]`` as a target for ``[x_l; x_mix]`` on the grid
    (``check_labels``: as ``feature_augment``'s)."""
    o, n_l, mixer = teacher.output, grid.n_labeled, grid.mixer
    on, check = method.feature_aug_teachers, check_labels
    if method.target_mixing == "grid":  # augment the unmixed view, then mix at the grid
        view = make_view(o.logits, o.features, grid.labels, grid.valid_unmixed)
        conf = view.logits.softmax(1).amax(1)
        z = feature_augment(view, teacher.stats, teacher.classifier, lam, on, check)
        return TeacherTarget(
            logits=mix_teacher(z, n_l, mixer.mix_mask),
            confidence=mix_teacher(conf[:, None], n_l, mixer.mix_mask)[:, 0],
            unmixed_confidence=conf[n_l:],
            unmixed_prediction=view.labels[n_l:],  # its own argmax on the unlabeled rows
        )
    # The release: mix logits and features at decoder resolution, then resize and augment.
    view = mixer.view(o.logits, o.features, n_l, grid.labels, grid.valid_mixed)
    confidence = view.logits.softmax(1).amax(1)
    unmixed = to_resolution(o.logits[n_l:], grid.size)
    return TeacherTarget(
        logits=feature_augment(view, teacher.stats, teacher.classifier, lam, on, check),
        confidence=confidence,
        unmixed_confidence=unmixed.softmax(1).amax(1),
        unmixed_prediction=class_map(unmixed),
    )
