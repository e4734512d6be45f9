"""The benchmark's contract: which precisions it times, and the lines it ends with."""

from __future__ import annotations

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


def test_the_profile_splits_the_step_into_networks_and_the_rest() -> None:
    """Forward ops under the pairs' calls and the backward of their layers count as networks; a
    loss's backward node is named; everything else (augmentation, targets, SGD) is the rest."""
    from types import SimpleNamespace as Event

    call = Event(name=bench.NETWORK_REGION, cpu_parent=None)
    conv_bwd = Event(
        name="autograd::engine::evaluate_function: ConvolutionBackward0", cpu_parent=None
    )
    ce_bwd = Event(name="autograd::engine::evaluate_function: NllLoss2DBackward0", cpu_parent=None)
    assert bench.region_of(Event(name="aten::mkldnn_convolution", cpu_parent=call)) == (
        "networks",
        "aten::mkldnn_convolution",
    )
    nested = Event(name="aten::copy_", cpu_parent=Event(name="aten::to", cpu_parent=conv_bwd))
    assert bench.region_of(nested)[0] == "networks"
    assert bench.region_of(Event(name="aten::sum", cpu_parent=ce_bwd)) == (
        "loss backward",
        "NllLoss2DBackward0",
    )
    assert bench.region_of(Event(name="aten::where", cpu_parent=None)) == ("rest", "aten::where")
    text = bench.profile_step(TINY, "cpu", "fp32", top=3)
    groups = dict(
        re.findall(r"^  (networks|loss backward|rest): [\d.]+ ms \((\d+) %\)", text, re.M)
    )
    assert set(groups) == {"networks", "loss backward", "rest"}
    assert 0 < int(groups["networks"]) < 100
