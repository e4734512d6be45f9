"""The deployable model: bundle round trip, normalisation inside, logits at input size."""

import pytest
import torch

from mkdseg.core.architectures import build_model
from mkdseg.core.augmentation import normalize
from mkdseg.core.config import ModelConfig
from mkdseg.core.prediction.segmenter import (
    load_bundle,
    make_bundle,
    save_bundle,
    segmenter_from_bundle,
)

CFG = ModelConfig(backbone="resnet18", decoder_channels=16, aspp_channels=16, low_level_channels=8)


def _model():
    return build_model(
        3,
        backbone="resnet18",
        output_stride=16,
        decoder_channels=16,
        aspp_channels=16,
        low_level_channels=8,
        pretrained=None,
        head_seed=3,
    ).eval()


def test_bundle_round_trip_gives_the_same_predictions(tmp_path):
    model = _model()
    bundle = make_bundle(
        model.state_dict(), CFG, ["a", "b", "c"], [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    )
    save_bundle(bundle, tmp_path / "m.pt")
    segmenter = segmenter_from_bundle(load_bundle(tmp_path / "m.pt"))
    x = torch.rand(2, 3, 45, 61)
    out = segmenter(x)
    assert out.shape == (2, 3, 45, 61)
    with torch.no_grad():
        direct = torch.nn.functional.interpolate(
            model(normalize(x)).logits, size=(45, 61), mode="bilinear", align_corners=False
        )
    torch.testing.assert_close(out, direct)


def test_a_foreign_file_is_refused():
    with pytest.raises(ValueError, match="not an mkdseg bundle of mkdseg-segmenter"):
        segmenter_from_bundle({"state_dict": {}})


def test_bundle_keeps_the_aspp_rates_it_was_trained_with():
    cfg = ModelConfig(
        backbone="resnet18",
        decoder_channels=16,
        aspp_channels=16,
        low_level_channels=8,
        aspp_rule="feature_map",
        aspp_rates=(1, 2, 3),
    )
    model = build_model(
        3,
        backbone="resnet18",
        output_stride=16,
        decoder_channels=16,
        aspp_channels=16,
        low_level_channels=8,
        head_seed=3,
        aspp_rates=cfg.aspp_rates,
    )
    segmenter = segmenter_from_bundle(
        make_bundle(model.state_dict(), cfg, ["a", "b", "c"], [[0, 0, 0]] * 3)
    )
    assert [b[0].dilation[0] for b in segmenter.network().aspp.branches[1:]] == [1, 2, 3]
    old = make_bundle(model.state_dict(), CFG, ["a", "b", "c"], [[0, 0, 0]] * 3)
    old["model"].pop("aspp_rates")
    old["model"].pop(
        "aspp_rule"
    )  # a bundle saved before the rates were stored: the release's rates
    assert [b[0].dilation[0] for b in segmenter_from_bundle(old).network().aspp.branches[1:]] == [
        6,
        12,
        18,
    ]
