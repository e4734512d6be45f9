"""ImageNet weights for the backbone: from a local checkpoint or a torchvision weights name.

Kept apart from the architecture (``mkdseg.core.model``) because resolving a name, reading a
file and downloading are I/O with their own failure modes, each needing a message that says
what to pass instead; the launcher checks a named local file before any worker starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

CHECKPOINT_WRAPPER_KEYS = ("state_dict", "model")
DROPPED_KEY_PREFIXES = ("fc.",)  # ImageNet classifier, not part of the backbone
MAX_KEYS_LISTED = 10
OPTIONAL_KEY_SUFFIX = "num_batches_tracked"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


def _truncated(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:MAX_KEYS_LISTED])
    more = len(keys) - MAX_KEYS_LISTED
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"


def _looks_like_path(source: str) -> bool:
    return (
        os.sep in source
        or "/" in source
        or source.lower().endswith(CHECKPOINT_SUFFIXES)
        or Path(source).exists()
    )


def missing_pretrained_file(source: str | os.PathLike | None) -> Path | None:
    """The local checkpoint ``source`` names, when that file does not exist; None when it
    exists, when ``source`` is None, or when it is a torchvision weights name."""
    if source is None:
        return None
    source_str = os.fspath(source)
    if not _looks_like_path(source_str) or Path(source_str).is_file():
        return None
    return Path(source_str)


def _read_checkpoint(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained backbone checkpoint {path} does not exist: pass an existing "
            "local file or a torchvision weights name such as 'ResNet50_Weights.IMAGENET1K_V2'"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in CHECKPOINT_WRAPPER_KEYS:
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
            break
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state_dict (got {type(state).__name__})")
    return dict(state)


def _resolve_weights(backbone_module: nn.Module, name: str) -> torchvision.models.WeightsEnum:
    """The torchvision weights ``name`` means for the backbone's ``arch`` (a ResNet name)."""
    arch = getattr(backbone_module, "arch", None)
    try:
        if "." in name:
            weights = torchvision.models.get_weight(name)
        else:
            if arch is None:
                raise ValueError("a bare weights name needs a backbone with an 'arch' attribute")
            weights = torchvision.models.get_model_weights(arch)[name]
    except (KeyError, ValueError, AttributeError) as err:
        raise ValueError(
            f"unknown pretrained weights {name!r} for backbone {arch!r}: pass a local checkpoint "
            f"path or a torchvision name such as 'ResNet50_Weights.IMAGENET1K_V2' ({err})"
        ) from err
    if arch is not None and type(weights) is not torchvision.models.get_model_weights(arch):
        expected = torchvision.models.get_model_weights(arch).__name__
        raise ValueError(f"weights {name!r} do not fit backbone {arch!r} (expected {expected}.*)")
    return weights


def _download_state_dict(url: str) -> dict[str, Tensor]:
    """Fetch (or reuse from the torch hub cache) a torchvision checkpoint."""
    try:
        return torch.hub.load_state_dict_from_url(
            url, map_location="cpu", progress=False, weights_only=True
        )
    except Exception as err:  # URLError, HTTPError, socket errors, partial files ...
        raise RuntimeError(
            f"could not download pretrained weights from {url} ({err}). Download the file "
            "elsewhere and pass its local path as the 'pretrained' setting."
        ) from err


def load_backbone_weights(backbone_module: nn.Module, source: str | os.PathLike) -> None:
    """Load ImageNet weights into ``backbone_module`` strictly (``fc.*`` keys dropped).

    ``source`` is a local .pth/.pt state_dict (possibly under "state_dict"/"model") or a
    torchvision weights name ("ResNet50_Weights.IMAGENET1K_V2", or "IMAGENET1K_V1" for the
    backbone's own architecture).
    """
    source_str = os.fspath(source)
    if _looks_like_path(source_str):
        origin = source_str
        state = _read_checkpoint(Path(source_str))
    else:
        weights = _resolve_weights(backbone_module, source_str)
        origin = f"{source_str} ({weights.url})"
        state = _download_state_dict(weights.url)
    state = {k: v for k, v in state.items() if not k.startswith(DROPPED_KEY_PREFIXES)}
    expected = backbone_module.state_dict()
    for key in set(expected) - set(state):
        if key.endswith(OPTIONAL_KEY_SUFFIX):  # absent from older torchvision checkpoints
            state[key] = expected[key]
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    if missing or unexpected:
        raise ValueError(
            f"pretrained weights {origin} do not match the backbone: "
            f"missing keys {_truncated(missing)}, unexpected keys {_truncated(unexpected)}"
        )
    wrong_shape = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong_shape:
        raise ValueError(
            f"pretrained weights {origin} have wrong shapes for keys {_truncated(wrong_shape)}"
        )
    backbone_module.load_state_dict(state, strict=True)
