"""Pretrained backbone weights: strict loading, clear errors, name resolution (never downloads)."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torchvision

from mkdseg.core.architectures import build_model
from mkdseg.core.model import ResNetBackbone
from mkdseg.core.pretrained import load_backbone_weights, missing_pretrained_file

NARROW = dict(decoder_channels=16, aspp_channels=16, low_level_channels=8)


@pytest.fixture
def resnet18_checkpoint(tmp_path):
    """A torchvision-style checkpoint (fc included) wrapped under 'state_dict'."""
    torch.manual_seed(123)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": state}, path)
    return path, state


def test_pretrained_backbone_shared_heads_differ(resnet18_checkpoint) -> None:
    path, state = resnet18_checkpoint
    s1, s2 = (build_model(3, str(path), seed, backbone="resnet18", **NARROW) for seed in (1, 2))
    for key, value in s1.backbone.state_dict().items():
        torch.testing.assert_close(value, state[key])
        torch.testing.assert_close(value, s2.backbone.state_dict()[key])
    assert not torch.equal(s1.decoder[0][0].weight, s2.decoder[0][0].weight)


def test_mismatched_checkpoint_names_keys(tmp_path, resnet18_checkpoint) -> None:
    _, state = resnet18_checkpoint
    state = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"bad\.pt.*missing keys \[layer4.*more.*extra\.weight"):
        load_backbone_weights(ResNetBackbone("resnet18"), str(path))
    with pytest.raises(ValueError, match="resnet34|missing"):
        load_backbone_weights(ResNetBackbone("resnet34"), resnet18_checkpoint[0])


def test_missing_file_is_clear(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_backbone_weights(ResNetBackbone("resnet18"), str(tmp_path / "nope.pth"))


def test_failed_download_says_what_to_do(monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="local path"):
        load_backbone_weights(ResNetBackbone("resnet18"), "IMAGENET1K_V1")


def test_weights_name_resolves_without_network(monkeypatch) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    urls: list[str] = []

    def fake(url, **kwargs):
        urls.append(url)
        return state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake)
    backbone = ResNetBackbone("resnet18")
    load_backbone_weights(backbone, "ResNet18_Weights.IMAGENET1K_V1")
    assert urls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url]
    torch.testing.assert_close(backbone.conv1.weight, state["conv1.weight"])
    with pytest.raises(ValueError, match="do not fit"):
        load_backbone_weights(backbone, "ResNet50_Weights.IMAGENET1K_V2")
    with pytest.raises(ValueError, match="unknown pretrained weights"):
        load_backbone_weights(backbone, "IMAGENET9K_V7")


def test_missing_pretrained_file_names_only_absent_local_files(
    tmp_path, resnet18_checkpoint
) -> None:
    assert missing_pretrained_file(None) is None
    assert missing_pretrained_file("ResNet50_Weights.IMAGENET1K_V2") is None
    assert missing_pretrained_file(resnet18_checkpoint[0]) is None
    assert missing_pretrained_file(str(tmp_path / "nope.pth")) == tmp_path / "nope.pth"
