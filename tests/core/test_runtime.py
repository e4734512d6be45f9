"""Precision and layout by capability: what ``training.precision`` and
``training.memory_format`` resolve to on each kind of device."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``: hblkhd is the bytes held in mmap-ed blocks."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mmapped_bytes() -> int:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        pytest.skip("no C library to load")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    libc.mallinfo2.restype = MallInfo2
    return libc.mallinfo2().hblkhd


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")
def test_keep_freed_memory_in_heap_serves_multi_megabyte_tensors_from_the_heap() -> None:
    assert runtime.keep_freed_memory_in_heap()
    before = _mmapped_bytes()
    block = torch.empty(runtime.MMAP_THRESHOLD // 4, dtype=torch.uint8)  # 8 MiB
    assert _mmapped_bytes() == before  # not a fresh mmap, so no page faults when reused
    del block


def test_keep_freed_memory_in_heap_is_a_no_op_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert runtime.keep_freed_memory_in_heap() is False
