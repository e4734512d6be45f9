"""The texture benchmark's dilated FCN: output stride 4, seeded init, bundle round trip."""

from __future__ import annotations

import pytest
import torch

from mkdseg.core import architectures, runtime
from mkdseg.core.architectures import build_model, make_network
from mkdseg.core.config import ModelConfig, config_from_dict
from mkdseg.core.dilated_fcn import FCN_STRIDE, DilatedFCN
from mkdseg.core.prediction.segmenter import make_bundle, segmenter_from_bundle

CFG = ModelConfig(architecture="dilated_fcn", stem_channels=8, decoder_channels=12)


def fcn(seed: int = 0) -> torch.nn.Module:
    return build_model(
        5, head_seed=seed, architecture="dilated_fcn", stem_channels=8, decoder_channels=12
    )


def test_outputs_at_stride_four_with_feature_width() -> None:
    out = fcn()(torch.randn(2, 3, 48, 40))
    assert out.logits.shape == (2, 5, 48 // FCN_STRIDE, 40 // FCN_STRIDE)
    assert out.features.shape == (2, 12, 12, 10)


def test_blocks_follow_dilations_and_stem_sees_full_resolution() -> None:
    net = DilatedFCN(3, stem_channels=4, channels=6, dilations=(1, 3))
    assert [b.conv2[0].dilation for b in net.body] == [(1, 1), (3, 3)]
    assert net.stem[0].stride == (1, 1) and net.stem[0].kernel_size == (3, 3)


def test_features_are_batch_normalised_like_a_decoder_output() -> None:
    """Feature augmentation scales with the features' class variances: the classifier's input
    is a conv-BN-ReLU output (bounded per channel in training mode), not the residual stream,
    whose scale grows with every block."""
    net = DilatedFCN(3, stem_channels=4, channels=6).train()
    with torch.no_grad():
        for block in net.body:  # a residual stream scaled far up
            block.conv2[1].weight.fill_(50.0)
        features = net(torch.randn(4, 3, 32, 32)).features
    assert features.min() >= 0
    pre_relu_std = 1.0  # BN output before ReLU: unit std per channel over the batch
    assert features.std(dim=(0, 2, 3)).max() <= pre_relu_std


def test_seeded_init_is_reproducible_and_seeds_differ() -> None:
    a, b, c = fcn(1).state_dict(), fcn(1).state_dict(), fcn(2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def test_build_does_not_move_the_global_generator() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    fcn(3)
    assert torch.equal(torch.rand(3), expected)


def test_pretrained_weights_refused_with_the_parameter_named() -> None:
    with pytest.raises(ValueError, match="training.model.pretrained"):
        build_model(5, pretrained="x.pth", architecture="dilated_fcn")


def test_unknown_architecture_refused() -> None:
    with pytest.raises(ValueError, match="architecture must be one of"):
        make_network(5, "unet")
    with pytest.raises(ValueError, match="architecture must be one of"):
        config_from_dict({"model": {"architecture": "unet"}})


def test_config_reads_dilations_as_a_tuple() -> None:
    cfg = config_from_dict({"model": {"architecture": "dilated_fcn", "dilations": [1, 2]}})
    assert cfg.model.dilations == (1, 2)
    with pytest.raises(ValueError, match="dilations"):
        config_from_dict({"model": {"dilations": [0]}})


def test_bundle_round_trip_rebuilds_the_fcn() -> None:
    net = fcn(4).eval()
    bundle = make_bundle(net.state_dict(), CFG, ["b", "s", "c", "d", "x"], [[0, 0, 0]] * 5)
    segmenter = segmenter_from_bundle(bundle)
    assert isinstance(segmenter.network(), DilatedFCN)
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        out = segmenter(x)
    assert out.shape == (1, 5, 48, 48) and torch.isfinite(out).all()


def test_init_is_pytorchs_default_drawn_from_the_seed_alone() -> None:
    """The weights the constructors draw from the global generator seeded with ``head_seed``
    (the published results' init), without reading the global generator."""
    torch.manual_seed(4)
    constructed = make_network(5, "dilated_fcn", stem_channels=8, decoder_channels=12)
    torch.manual_seed(99)
    built = fcn(4).state_dict()
    assert all(torch.equal(v, built[k]) for k, v in constructed.state_dict().items())


def test_another_run_seeding_the_global_generator_mid_build_does_not_change_the_weights(
    monkeypatch,
) -> None:
    """A grid under Kedro's ThreadRunner builds networks while other runs seed or draw from the
    process-wide generator (here: just before the constructors draw): the weights must still
    come from ``head_seed`` alone."""
    expected = fcn(4).state_dict()
    real_make_network = architectures.make_network

    def make_network_after_another_run_seeds(*args, **kwargs):
        runtime.seed_everything(123)
        return real_make_network(*args, **kwargs)

    monkeypatch.setattr(architectures, "make_network", make_network_after_another_run_seeds)
    built = fcn(4).state_dict()
    assert all(torch.equal(expected[k], built[k]) for k in expected)


@pytest.mark.parametrize("architecture", ["dilated_fcn", "deeplabv3plus"])
def test_bn_momentum_sets_every_batchnorms_running_statistics_weight(architecture: str) -> None:
    """``training.model.bn_momentum`` (the release: 0.001): each train-mode pass moves the running
    mean by that share of the batch's mean."""
    extra = {"backbone": "resnet18"} if architecture == "deeplabv3plus" else {}
    net = build_model(3, architecture=architecture, bn_momentum=0.001, **extra)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and {m.momentum for m in norms} == {0.001}
    first = norms[0]
    seen: list[torch.Tensor] = []
    first.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    net.train()(torch.rand(2, 3, 32, 32))
    batch_mean = seen[0].mean((0, 2, 3))
    torch.testing.assert_close(first.running_mean, 0.001 * batch_mean)
    default = build_model(3, architecture=architecture, **extra)
    assert {m.momentum for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.1}
    with pytest.raises(ValueError, match="bn_momentum"):
        ModelConfig(bn_momentum=0.0)
