"""A feature-perturbed stream beside the clean one, in one pass (UniMatch's ``need_fp``).

UniMatch (Yang et al., CVPR 2023) decodes the encoder's features twice: as they are and with
channel dropout (``nn.Dropout2d(0.5)``), concatenated along the batch so the decoder (and its
BatchNorm) sees both at once; the perturbed stream's prediction is then taught by the clean one.
Each architecture calls ``with_perturbed`` on its encoder outputs when ``forward`` is given
``perturb > 0``, and returns ``SegOutput`` over ``[clean; perturbed]`` (2B rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def with_perturbed(features: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """``[f; Dropout2d(p)(f)]`` along the batch; ``f`` itself when ``p`` is 0.

    Dropout2d zeroes whole channels per image and scales the rest by 1/(1-p). The channels are
    drawn from ``generator`` (the training step's seeded stream: runs training at once in one
    process, as under Kedro's ThreadRunner, do not take each other's draws, and a resumed run
    replays them); without one, from torch's global generator, as ``F.dropout2d``.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"feature perturbation: dropout must be in [0, 1), got {p}")
    if p == 0.0:
        return features
    if generator is None:
        return torch.cat([features, F.dropout2d(features, p, training=True)])
    draw = torch.rand(features.shape[:2], generator=generator, device=generator.device)
    scale = (draw.to(features.device) >= p).to(features.dtype) / (1.0 - p)
    return torch.cat([features, features * scale[..., None, None]])
