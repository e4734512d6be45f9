"""Cross-entropy losses of MKD (spec §4), safe when every pixel is ignored (0, never NaN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mkdseg.core.class_map import class_map
from mkdseg.core.image_io import IGNORE_INDEX


def supervised_ce(logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean CE over non-ignored pixels; logits (B, C, h, w) upsampled bilinearly to labels
    (B, H, W)."""
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"supervised_ce: logits must be (B, C, h, w) and labels (B, H, W), "
            f"got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    z = logits.float()
    if tuple(z.shape[-2:]) != tuple(labels.shape[-2:]):
        z = F.interpolate(z, size=tuple(labels.shape[-2:]), mode="bilinear", align_corners=False)
    target = labels.long()
    loss = F.cross_entropy(z, target, ignore_index=ignore_index, reduction="sum")
    return loss / (target != ignore_index).sum().clamp(min=1)


AVERAGES = ("kept", "valid")


def pseudo_label_ce(
    student_logits: Tensor,
    teacher_logits: Tensor,
    ignore: Tensor | None,
    confidence: Tensor | None,
    threshold: float | None,
    average: str = "kept",
    target: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """CE of the student against the hard argmax of the (detached) teacher logits.

    ``target``: that argmax (``class_map`` of the teacher logits), when the caller has it already.

    Pixels where ``ignore`` is True, or (with a threshold) ``confidence < threshold``, are left
    out. ``average``: "kept" divides by the pixels left in (the MKD release: thresholded pixels
    become ignore_index of a mean CE), "valid" by the pixels not ignored, thresholded ones
    counting 0 (FixMatch, UniMatch), so the loss's weight does not grow as fewer pixels pass.
    Returns (the loss, 0 if nothing is kept; share of pixels kept as a detached 0-d tensor, so
    logging costs no device sync here).
    """
    if average not in AVERAGES:
        raise ValueError(f"pseudo_label_ce: average must be one of {AVERAGES}, got {average!r}")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 4:
        raise ValueError(
            f"pseudo_label_ce: student and teacher logits must both be (B, C, h, w), "
            f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    pixels = (student_logits.shape[0], *student_logits.shape[2:])
    target = class_map(teacher_logits.detach()) if target is None else target
    keep = torch.ones(pixels, dtype=torch.bool, device=student_logits.device)
    if ignore is not None:
        keep = keep & ~ignore.reshape(pixels).bool()
    valid = keep
    if threshold is not None:
        if confidence is None:
            raise ValueError(
                "pseudo_label_ce: a confidence threshold needs the teacher confidence map"
            )
        keep = keep & (confidence.reshape(pixels) >= threshold)
    ce = F.cross_entropy(student_logits.float(), target, reduction="none")
    denominator = keep.sum() if average == "kept" else valid.sum()
    loss = torch.where(keep, ce, torch.zeros_like(ce)).sum() / denominator.clamp(min=1)
    return loss, keep.float().mean().detach()
