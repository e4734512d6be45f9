"""Build the segmentation network a ``ModelConfig`` names, seeded and optionally pretrained.

Students must share a pretrained backbone but differ in their randomly initialised parts (as
in CPS), hence ``build_model`` initialises everything non-pretrained from an explicit
``head_seed``. ``deeplabv3plus`` is the paper's network (spec §6), initialised as the release
does (Kaiming-normal convolutions, a 0.01-std classifier); ``dilated_fcn`` the narrow network of
the embedded texture benchmark, which no checkpoint covers and which keeps PyTorch's default
init (replayed from ``head_seed``'s own generator: ``default_init``), as the calibration probe
that chose it (with BatchNorm after every convolution,
Kaiming-normal weights are ~2.4x larger, which shrinks the effective SGD step; one tuning run
with all labels: 0.445 with the default init against 0.423 with Kaiming's, README "Results").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
# ModelConfig keys that shape a DeepLabv3+ besides its constructor's: its weights and ASPP rule.
DEEPLAB_SETTINGS = ("pretrained", "aspp_rule")
COMMON_SETTINGS = ("bn_momentum",)  # what every architecture reads besides its constructor's keys
TORCH_BN_MOMENTUM = 0.1  # PyTorch's BatchNorm default: the weight of each batch in running stats


def applicable_settings(model: Mapping[str, Any]) -> dict[str, Any]:
    """The ``training.model`` settings the chosen architecture reads (a report or a run
    description lists these, not the other architecture's defaults)."""
    architecture = model.get("architecture", DEEPLAB)
    keys = ARCHITECTURE_KEYS.get(architecture, ())
    keys += DEEPLAB_SETTINGS if architecture == DEEPLAB else ()
    keys += COMMON_SETTINGS
    return {"architecture": architecture, **{k: model[k] for k in keys if k in model}}


def make_network(num_classes: int, architecture: str, **config: Any) -> nn.Module:
    """The bare network from ``ModelConfig`` fields (other keys are ignored), default-initialised:
    what a saved bundle's weights are loaded into."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    args = {k: config[k] for k in ARCHITECTURE_KEYS[architecture] if k in config}
    if architecture == FCN:
        if "decoder_channels" in args:  # the feature dimension A of feature augmentation
            args["channels"] = args.pop("decoder_channels")
        model: nn.Module = DilatedFCN(num_classes, **args)
    else:
        model = DeepLabV3Plus(num_classes, **args)
    set_bn_momentum(model, config.get("bn_momentum", TORCH_BN_MOMENTUM))
    return model


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Every BatchNorm's running-statistics momentum (PyTorch's convention: the new batch's
    weight), so SyncBN conversion and EMA copies inherit it."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum


def default_init(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default init of every convolution (Kaiming-uniform with a = sqrt(5), bias
    U(+-1/sqrt(fan_in))), drawn from ``generator`` in module order.

    The same weights as the constructors draw from the process-wide generator seeded alike, but
    without it: runs building networks at once in one process (a grid under Kedro's
    ThreadRunner) would otherwise take each other's draws.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                if module.bias is not None:
                    bound = 1 / math.sqrt(module.weight[0].numel())
                    nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif any(True for _ in module.parameters(recurse=False)) and not isinstance(
                module, nn.BatchNorm2d
            ):
                raise TypeError(f"default_init: no default init for {type(module).__name__}")


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
    with torch.random.fork_rng(devices=[]):  # the constructors draw from the global RNG: restore it
        model = make_network(num_classes, architecture, **config)
    generator = torch.Generator().manual_seed(int(head_seed))
    if not isinstance(model, DeepLabV3Plus):
        default_init(model, generator)  # see the module docstring
        return model
    random_parts: list[nn.Module] = model.head_modules()
    if pretrained is None and isinstance(model, DeepLabV3Plus):
        random_parts = [model.backbone, *random_parts]
    init_weights(random_parts, generator)
    nn.init.normal_(model.classifier.weight, std=CLASSIFIER_INIT_STD, generator=generator)
    if pretrained is not None:
        load_backbone_weights(model.backbone, pretrained)
    return model
