"""UniMatch (Yang et al., CVPR 2023; ``unimatch.py`` of github.com/LiheYoung/UniMatch).

One network, no EMA teacher. Its own no-grad prediction on the weak view ``x_w`` teaches three
streams: two strong views, each CutMix-ed with its own mask (targets mixed with the same mask),
and the weak view decoded from features with channel dropout (``core/feature_perturbation.py``)::

    L = (CE_sup(x_l) + ramp(t) * (0.25 L_s1 + 0.25 L_s2 + 0.5 L_fp)) / 2

each unsupervised term the pseudo-label CE of the weak argmax, pixels under the confidence
threshold (0.95) counting 0, averaged over the valid pixels; on logits upsampled to the input.
Where this project differs from the published code, and why (``docs/method.md``): the strong
view is this project's (``augmentation.strong_augment``) and CutMix is its 3-box mask with the
batch rolled by one as partner (the published code draws one box with p = 0.5 and predicts a
separate mix batch in eval mode); ``ramp(t)`` is the ramp-up every method here shares.

"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mkdseg.core.cutmix import mix
from mkdseg.core.losses import pseudo_label_ce, supervised_ce
from mkdseg.core.methods.record import NO_CONSISTENCY, Method
from mkdseg.core.resize import to_resolution
from mkdseg.core.schedules import consistency_rampup

if TYPE_CHECKING:
    from mkdseg.core.methods.mkd import MethodConfig
    from mkdseg.core.networks import Networks
    from mkdseg.core.views import UnlabeledViews, Views


@dataclass(frozen=True)
class UniMatchWeights:
    """The published weights (``unimatch.py``: ``loss_u_s1 * 0.25 + loss_u_s2 * 0.25 +
    loss_u_w_fp * 0.5``, then ``(loss_x + loss_u) / 2``) and dropout (``nn.Dropout2d(0.5)``)."""

    strong: float = 0.25  # each of the two strong views
    perturbed: float = 0.5  # the feature-perturbed weak view
    dropout: float = 0.5
    overall: float = 0.5  # (loss_x + loss_u) / 2


PUBLISHED = UniMatchWeights()
STRONG_VIEWS = 2


@dataclass
class WeakTargets:
    """The weak view's prediction at input resolution: logits (argmax = label) and confidence."""

    logits: Tensor  # (B_u, C, H, W) float32, detached
    confidence: Tensor  # (B_u, 1, H, W): max softmax
    valid: Tensor  # (B_u, 1, H, W) bool

    def mixed(self, mask: Tensor) -> WeakTargets:
        """The targets of a view CutMix-ed with ``mask`` (the same partner as the images)."""
        return WeakTargets(
            mix(self.logits, mask), mix(self.confidence, mask), mix(self.valid, mask)
        )


def _term(student: Tensor, target: WeakTargets, method: MethodConfig) -> Tensor:
    """One unsupervised term: CE of the student's logits, upsampled to the input as the
    published model does before its losses, against the target's argmax."""
    size = tuple(target.logits.shape[-2:])
    loss, _ = pseudo_label_ce(
        to_resolution(student, size),
        target.logits,
        ~target.valid,
        target.confidence,
        method.confidence_threshold,
        method.threshold_average,
    )
    return loss


def weak_targets(logits: Tensor, u: UnlabeledViews) -> WeakTargets:
    """The detached weak-view prediction at input resolution, with its confidence."""
    z = to_resolution(logits.detach(), tuple(u.weak.shape[-2:]))
    return WeakTargets(z, z.softmax(1).amax(1, keepdim=True), u.valid.unsqueeze(1))


def loss(
    nets: Networks, views: Views, method: MethodConfig, t: int, w: UniMatchWeights = PUBLISHED
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """UniMatch's loss for step ``t`` (module doc); two passes of the one network."""
    x_l, u, n_l = views.labeled, views.unlabeled, views.labeled.shape[0]
    if u is None or len(u.extra) != STRONG_VIEWS - 1:
        raise ValueError(f"unimatch needs the weak view and {STRONG_VIEWS} strong views")
    out = nets.student_pair(torch.cat([x_l, u.weak]), perturb=w.dropout, generator=views.rng)[0]
    clean, perturbed = out.logits.chunk(2)  # [clean; perturbed] rows of [x_l; x_w]
    (x_s2, mask_2) = u.extra[0]
    s1, s2 = nets.student_pair(torch.cat([u.mixed, x_s2]))[0].logits.chunk(2)
    loss_sup = supervised_ce(clean[:n_l], views.labels)
    with torch.autocast(clean.device.type, enabled=False):  # targets and terms in float32
        target = weak_targets(clean[n_l:], u)
        loss_s1 = _term(s1, target.mixed(u.mask), method)
        loss_s2 = _term(s2, target.mixed(mask_2), method)
        loss_fp = _term(perturbed[n_l:], target, method)
    ramp = consistency_rampup(t - 1, method.consistency_rampup)
    loss_u = w.strong * (loss_s1 + loss_s2) + w.perturbed * loss_fp
    total = w.overall * (loss_sup + ramp * loss_u)
    return total, {
        "consistency_ramp": ramp,
        "loss": total,
        "loss_sup": loss_sup,
        "loss_s1": loss_s1,
        "loss_s2": loss_s2,
        "loss_fp": loss_fp,
        "confident_share": confident_share(target, method.confidence_report_threshold),
    }


def confident_share(target: WeakTargets, threshold: float) -> Tensor:
    """Share of the valid weak-view pixels predicted with at least ``threshold`` confidence."""
    kept = (target.confidence >= threshold) & target.valid
    return (kept.sum() / target.valid.sum().clamp(min=1)).detach()


METHOD = Method(
    "unimatch",
    "UniMatch (weak-to-strong with two strong views and feature perturbation)",
    students=1,
    teachers=False,
    unlabeled=True,
    loss=loss,
    fixed={**NO_CONSISTENCY, "mixed_view": "strong"},
    # Published: loss_u * (conf >= 0.95), summed over the valid pixels (unimatch.py).
    defaults={"confidence_threshold": 0.95, "threshold_average": "valid"},
    strong_views=STRONG_VIEWS,
)
