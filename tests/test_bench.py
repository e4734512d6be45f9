"""The benchmark's contract: which precisions it times, and the lines it ends with."""

from __future__ import annotations

import copy
import re

import bench  # benchmarks/bench.py (pytest's pythonpath)
import pytest
import torch

from mkdseg.core import runtime

TINY = {"backbone": "resnet18", "channels": 8, "crop": 32, "batch": 2, "classes": 3}


@pytest.mark.parametrize(
    ("native", "expected"), [(True, ("bf16", ["bf16", "fp32"])), (False, ("fp32", ["fp32"]))]
)
def test_auto_precision_is_timed_first_then_fp32(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: tuple
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert bench.precisions_to_run(None, torch.device("cpu")) == expected
    assert bench.precisions_to_run(["auto", "fp32", "bf16"], torch.device("cpu"))[1] == list(
        dict.fromkeys([expected[0], "fp32", "bf16"])
    )


def test_the_last_lines_say_precision_speedup_mfu_and_overhead(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(bench.PRESETS, "cpu", TINY)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    bench.main(
        ["--device", "cpu", "--preset", "cpu", "--reps", "1", "--warmup", "0", "--workers", "0"]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-4] == "precision_auto=fp32"
    assert lines[-3] == "speedup_vs_fp32=1.00"
    assert re.fullmatch(r"mfu=\d+\.\d\d", lines[-2])  # a noisy machine can put a tiny step above 1
    assert re.fullmatch(r"overhead_ratio=\d+\.\d{3}", lines[-1])
    step_line = next(line for line in lines if line.startswith("[fp32]"))
    assert float(re.search(r"step_GFLOP=([\d.]+)", step_line).group(1)) > 0


def test_the_texture_preset_is_conf_base_and_counts_every_network_pass() -> None:
    """The default CPU preset trains what conf/base trains, and the students' no-grad pass on the
    unmixed images (cps_targets: unmixed) is one of the passes the ratio divides by."""
    assert bench.parse_args([]).preset is None  # resolved in main: texture on a CPU
    trainer = bench.make_trainer(bench.PRESETS["texture"], "cpu", "fp32")
    method = trainer.cfg.method
    assert trainer.cfg.model.architecture == "dilated_fcn" and method.cps_targets == "unmixed"
    assert method.consistency_scale == 4.0 and method.confidence_threshold == 0.95
    r = bench.bench_step(bench.PRESETS["texture"], "cpu", "fp32", reps=1, warmup=0)
    assert r["unmixed_s"] > 0
    networks = r["students_s"] + r["teachers_s"] + r["unmixed_s"]
    assert r["overhead_ratio"] == pytest.approx(r["step_s"] / networks)


@pytest.mark.parametrize("name", ["texture", "cpu"])
def test_mkd_switches_reach_the_trainer_over_the_presets(name: str) -> None:
    """``--mkd key=value`` (YAML values) sets MKD switches over the preset's (conf/base's for
    texture), keeping the others and leaving ``PRESETS`` as it was; a pair without ``=`` is
    refused by name."""
    before = copy.deepcopy(bench.PRESETS)
    plain = bench.make_trainer(bench.preset_named(name, []), "cpu", "fp32").cfg.method
    preset = bench.preset_named(name, ["consistency_scale=1.0", "confidence_threshold=null"])
    method = bench.make_trainer(preset, "cpu", "fp32").cfg.method
    assert plain.consistency_scale != 1.0  # the switch changes something
    assert method.consistency_scale == 1.0 and method.confidence_threshold is None
    assert method.cps_targets == plain.cps_targets and method.lambda_end == plain.lambda_end
    assert bench.PRESETS == before
    assert bench.parse_args(["--mkd", "a=1", "b=x"]).mkd == ["a=1", "b=x"]
    with pytest.raises(ValueError, match="--mkd 'consistency_scale': write KEY=VALUE"):
        bench.parse_switches(["consistency_scale"])
    with pytest.raises(ValueError, match="--consistency 'confidence_threshold': write"):
        bench.parse_switches(["confidence_threshold"], "--consistency")  # step_fingerprint's


def test_the_profile_splits_the_step_into_networks_and_the_rest() -> None:
    """Forward ops under the pairs' calls, their backward (linked by autograd's sequence number)
    and the parameters' gradients count as networks; another backward node is the loss side's,
    by name; everything else (augmentation, targets, SGD) is the rest."""
    from types import SimpleNamespace

    def event(name: str, parent: object = None, seq: int = -1) -> SimpleNamespace:
        return SimpleNamespace(name=name, cpu_parent=parent, sequence_nr=seq)

    call = event(bench.NETWORK_REGION)
    conv = event("aten::conv2d", call, seq=7)
    add = event("aten::add", call, seq=8)  # a residual add: not a convolution, still the network's
    upsample = event("aten::upsample_bilinear2d", seq=9)  # the loss side's resize
    network_ops = bench.network_sequence([call, conv, add, upsample])
    assert network_ops == {7, 8}
    assert bench.region_of(event("aten::mkldnn_convolution", conv), network_ops)[0] == "networks"
    for seq, name in ((7, "ConvolutionBackward0"), (8, "AddBackward0")):
        node = event(bench.AUTOGRAD_NODE + name, seq=seq)
        nested = event("aten::copy_", event("aten::to", node))
        assert bench.region_of(nested, network_ops)[0] == "networks"
    grads = event(bench.AUTOGRAD_NODE + "torch::autograd::AccumulateGrad")
    assert bench.region_of(event("aten::detach", grads), network_ops)[0] == "networks"
    loss_node = event(bench.AUTOGRAD_NODE + "UpsampleBilinear2DBackward0", seq=9)
    assert bench.region_of(event("aten::upsample_bilinear2d_backward", loss_node), network_ops) == (
        "loss backward",
        "UpsampleBilinear2DBackward0",
    )
    assert bench.region_of(event("aten::where"), network_ops) == ("rest", "aten::where")
    text = bench.profile_step(TINY, "cpu", "fp32", top=3)
    lines = dict(re.findall(r"^  (networks|loss backward|rest): (.*)$", text, re.M))
    assert set(lines) == {"networks", "loss backward", "rest"}
    assert 50 < int(re.search(r"\((\d+) %\)", lines["networks"]).group(1)) < 100
    assert "convolution" in lines["networks"] and "convolution" not in lines["rest"]
