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

import torch.nn.functional as F
from torch import Tensor, nn

from mkdseg.core.architectures import DEEPLAB, make_network
from mkdseg.core.augmentation import normalize
from mkdseg.core.checkpoint import load_checkpoint, save_checkpoint
from mkdseg.core.config import ModelConfig

BUNDLE_FORMAT = "mkdseg-segmenter/1"
NETWORKS_FORMAT = "mkdseg-networks/1"
# ModelConfig keys that are not architecture arguments: the bundle's weights hold the trained
# backbone, and the rule's rates are stored.
TRAINING_ONLY_KEYS = ("pretrained", "aspp_rule")


class Segmenter(nn.Module):
    """The network with normalisation in front and upsampling behind."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(normalize(x)).logits
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def network(self) -> nn.Module:
        """The bare network, which takes normalised images and returns stride-4 ``SegOutput``:
        what the inference helpers run, on images the caller normalised once."""
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


def make_networks_bundle(
    networks: dict[str, dict[str, Tensor]],
    model: ModelConfig,
    class_names: list[str],
    colours: list[list[int]],
) -> dict[str, Any]:
    """Every network a run trained (students and teachers, by role), for scoring unlabeled
    images; the same architecture and class metadata as ``make_bundle``."""
    bundle = make_bundle({}, model, class_names, colours)
    del bundle["state_dict"]
    return {**bundle, "format": NETWORKS_FORMAT, "state_dicts": dict(networks)}


def segmenter_from_bundle(bundle: dict[str, Any]) -> Segmenter:
    """The bundle's network in inference mode, rebuilt from its stored architecture."""
    _check_format(bundle, BUNDLE_FORMAT)
    return Segmenter(_network(bundle, bundle["state_dict"])).eval()


def networks_from_bundle(bundle: dict[str, Any]) -> dict[str, nn.Module]:
    """The bare networks of a ``make_networks_bundle`` bundle by role, in inference mode: they
    take normalised images and return ``SegOutput``."""
    _check_format(bundle, NETWORKS_FORMAT)
    return {role: _network(bundle, sd).eval() for role, sd in bundle["state_dicts"].items()}


def _check_format(bundle: dict[str, Any], expected: str) -> None:
    if bundle.get("format") != expected:
        raise ValueError(
            f"not an mkdseg bundle of {expected} (format {bundle.get('format')!r}): "
            "re-run the training pipeline"
        )


def _network(bundle: dict[str, Any], state_dict: dict[str, Tensor]) -> nn.Module:
    cfg = dict(bundle["model"])
    for key in TRAINING_ONLY_KEYS:
        cfg.pop(key, None)
    # Bundles saved before architectures were stored hold a DeepLabv3+.
    model = make_network(len(bundle["class_names"]), cfg.pop("architecture", DEEPLAB), **cfg)
    model.load_state_dict(state_dict)
    return model


def save_bundle(bundle: dict[str, Any], path: str | os.PathLike) -> None:
    save_checkpoint(bundle, path)


def load_bundle(path: str | os.PathLike) -> dict[str, Any]:
    return load_checkpoint(path)
