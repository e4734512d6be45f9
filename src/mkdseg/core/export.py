"""Student 1 as a deployable model, and its on-disk bundle.

``Segmenter`` takes plain RGB floats in [0, 1] (B, 3, H, W) and returns class
logits at the input size, so an MLflow pyfunc user, the prediction pipeline and
evaluation all feed images without knowing the normalisation or output stride.
The bundle stores the architecture next to the weights, so loading needs no
training configuration.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdseg.core.augmentation import IMAGENET_MEAN, IMAGENET_STD
from mkdseg.core.checkpoint import load_checkpoint, save_checkpoint
from mkdseg.core.config import ModelConfig
from mkdseg.core.model import DeepLabV3Plus

BUNDLE_FORMAT = "mkdseg-segmenter/1"
TRAINING_ONLY_KEYS = (
    "pretrained",
    "aspp_rule",
)  # ModelConfig keys that are not architecture arguments


class Segmenter(nn.Module):
    """DeepLabv3+ with normalisation in front and upsampling behind."""

    def __init__(self, model: DeepLabV3Plus) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def normalise(self, x: Tensor) -> Tensor:
        """RGB floats in [0, 1] -> the network's input (ImageNet statistics)."""
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(self.normalise(x)).logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def normalised(self) -> nn.Module:
        """The bare network, for inference helpers that work on normalised images."""
        return self.model


def make_bundle(
    state_dict: dict[str, Tensor],
    model: ModelConfig,
    class_names: list[str],
    colours: list[list[int]],
) -> dict[str, Any]:
    """What the training node returns: weights + architecture + class metadata."""
    return {
        "format": BUNDLE_FORMAT,
        "model": {**asdict(model), "pretrained": None},
        "class_names": list(class_names),
        "colours": [list(c) for c in colours],
        "state_dict": state_dict,
    }


def segmenter_from_bundle(bundle: dict[str, Any]) -> Segmenter:
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(
            f"not an mkdseg model bundle (format {bundle.get('format')!r}, expected {BUNDLE_FORMAT})"
        )
    cfg = dict(bundle["model"])
    for key in (
        TRAINING_ONLY_KEYS
    ):  # the weights below hold the trained backbone; the rule's rates are stored
        cfg.pop(key, None)
    model = DeepLabV3Plus(len(bundle["class_names"]), **cfg)
    model.load_state_dict(bundle["state_dict"])
    return Segmenter(model).eval()


def save_bundle(bundle: dict[str, Any], path: str | os.PathLike) -> None:
    save_checkpoint(bundle, path)


def load_bundle(path: str | os.PathLike) -> dict[str, Any]:
    return load_checkpoint(path)
