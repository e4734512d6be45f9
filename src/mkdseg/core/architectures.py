"""Build the segmentation network a ``ModelConfig`` names, seeded and optionally pretrained.

Students must share a pretrained backbone but differ in their randomly initialised parts (as
in CPS), hence ``build_model`` initialises everything non-pretrained from an explicit
``head_seed``. ``deeplabv3plus`` is the paper's network (spec §6), initialised as the release
does (Kaiming-normal convolutions, a 0.01-std classifier); ``dilated_fcn`` the narrow network of
the embedded texture benchmark, which no checkpoint covers and which keeps PyTorch's default
init, as the calibration probe that chose it (with BatchNorm after every convolution,
Kaiming-normal weights are ~2.4x larger, which shrinks the effective SGD step; one tuning run
with all labels: 0.445 with the default init against 0.423 with Kaiming's, README "Results").
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mkdseg.core.dilated_fcn import DilatedFCN
from mkdseg.core.model import CLASSIFIER_INIT_STD, DeepLabV3Plus, init_weights
from mkdseg.core.pretrained import load_backbone_weights

DEEPLAB, FCN = "deeplabv3plus", "dilated_fcn"
ARCHITECTURES = (DEEPLAB, FCN)
# ModelConfig keys each architecture takes as constructor arguments.
ARCHITECTURE_KEYS = {
    DEEPLAB: (
        "backbone",
        "output_stride",
        "aspp_channels",
        "decoder_channels",
        "low_level_channels",
        "aspp_rates",
    ),
    FCN: ("stem_channels", "decoder_channels", "dilations"),
}


def make_network(num_classes: int, architecture: str, **config: Any) -> nn.Module:
    """The bare network from ``ModelConfig`` fields (other keys are ignored), default-initialised:
    what a saved bundle's weights are loaded into."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    args = {k: config[k] for k in ARCHITECTURE_KEYS[architecture] if k in config}
    if architecture == FCN:
        if "decoder_channels" in args:  # the feature dimension A of feature augmentation
            args["channels"] = args.pop("decoder_channels")
        return DilatedFCN(num_classes, **args)
    return DeepLabV3Plus(num_classes, **args)


def build_model(
    num_classes: int,
    pretrained: str | None = None,
    head_seed: int = 0,
    architecture: str = DEEPLAB,
    **config: Any,
) -> nn.Module:
    """Build the network whose non-pretrained parts come from ``head_seed`` only.

    ``config``: ``ModelConfig`` fields (backbone, output stride, widths, ASPP rates, ...). Same
    seed -> identical weights; different seeds -> different heads (and different backbones when
    ``pretrained`` is None), the same pretrained backbone otherwise.
    """
    if pretrained is not None and architecture != DEEPLAB:
        raise ValueError(
            f"training.model.pretrained: {architecture} has no pretrained weights; "
            "set pretrained: null or architecture: deeplabv3plus"
        )
    with torch.random.fork_rng(devices=[]):  # default inits must not shift the global RNG
        torch.manual_seed(int(head_seed))
        model = make_network(num_classes, architecture, **config)
    if not isinstance(model, DeepLabV3Plus):
        return model  # PyTorch's default init, drawn from head_seed (see module docstring)
    generator = torch.Generator().manual_seed(int(head_seed))
    random_parts: list[nn.Module] = model.head_modules()
    if pretrained is None and isinstance(model, DeepLabV3Plus):
        random_parts = [model.backbone, *random_parts]
    init_weights(random_parts, generator)
    nn.init.normal_(model.classifier.weight, std=CLASSIFIER_INIT_STD, generator=generator)
    if pretrained is not None:
        load_backbone_weights(model.backbone, pretrained)
    return model
