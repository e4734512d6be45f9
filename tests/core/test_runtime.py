"""Precision and layout by capability: what ``training.precision`` and
``training.memory_format`` resolve to on each kind of device."""

from __future__ import annotations

import pytest
import torch

from mkdseg.core import runtime
from mkdseg.core.runtime import precision_name, resolve_memory_format, resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, None)])
def test_auto_picks_bf16_only_on_a_cpu_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool, expected: torch.dtype | None
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", CPU) is expected


@pytest.mark.parametrize("native", [True, False])
def test_explicit_precisions_are_respected_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", CPU)


def test_bf16_on_a_cpu_without_it_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    resolve_precision("bf16", CPU)
    assert "no native bf16" in caplog.text


def test_auto_on_cuda_picks_bf16_where_supported(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", cuda) is torch.float16


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"_is_avx512_bf16_supported": True, "_is_amx_tile_supported": False}, True),
        ({"_is_avx512_bf16_supported": False, "_is_amx_tile_supported": True}, True),
        ({"_is_avx512_bf16_supported": False, "_is_amx_tile_supported": False}, False),
    ],
)
def test_native_bf16_is_read_from_the_x86_isa(
    monkeypatch: pytest.MonkeyPatch, flags: dict, expected: bool
) -> None:
    monkeypatch.setattr(runtime.platform, "machine", lambda: "x86_64")
    for name, value in flags.items():
        monkeypatch.setattr(torch.cpu, name, lambda value=value: value, raising=False)
    assert runtime.cpu_has_native_bf16() is expected


def test_precision_names_round_trip() -> None:
    for name in ("fp32", "bf16"):
        assert precision_name(resolve_precision(name, CPU)) == name


@pytest.mark.parametrize(
    ("name", "device", "expected"),
    [
        ("auto", "cpu", torch.contiguous_format),
        ("auto", "cuda", torch.channels_last),
        ("channels_last", "cpu", torch.channels_last),
        ("contiguous", "cuda", torch.contiguous_format),
    ],
)
def test_memory_format_auto_follows_the_device_and_explicit_names_win(
    name: str, device: str, expected: torch.memory_format
) -> None:
    assert resolve_memory_format(name, torch.device(device)) is expected


def test_set_torch_threads_sets_the_process_wide_count_and_none_leaves_it(
    keep_torch_threads,
) -> None:
    runtime.set_torch_threads(1)
    assert torch.get_num_threads() == 1
    runtime.set_torch_threads(None)
    assert torch.get_num_threads() == 1
