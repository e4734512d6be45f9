"""Where and how a run executes: device, autocast precision, seeding, memory figures."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import platform
import random
import resource
import sys

import numpy as np
import torch

log = logging.getLogger(__name__)

BYTES_PER_MB = 1024 * 1024
# ru_maxrss is in kilobytes on Linux, bytes on macOS.
MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
# glibc malloc's tunables (mallopt parameter numbers of <malloc.h>) and the values the CPU
# trainer sets: blocks up to glibc's 64-bit maximum come from the heap instead of fresh mmap
# pages, and up to 1 GiB of freed heap is kept rather than returned to the system.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * BYTES_PER_MB
TRIM_THRESHOLD = 1024 * BYTES_PER_MB


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'"
        )
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86 AVX512-BF16 or AMX; Arm BF16).

    Elsewhere oneDNN emulates bf16 and autocast is slower than fp32, often far slower
    (measured on an AVX2-only EPYC: bf16 matmul 0.3 GFLOP/s against 108 in fp32).
    The checks are torch's own (private, hence guarded).
    """
    if platform.machine().lower() in ("x86_64", "amd64"):
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32.

    auto: bf16 where the hardware has it (CUDA with bf16, CPUs with native bf16: no loss
    scaling needed), fp16 with loss scaling on older CUDA devices, fp32 elsewhere.
    """
    if name == "fp32":
        return None
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    if device.type == "cpu" and name == "bf16" and not cpu_has_native_bf16():
        log.warning(
            "training.precision is bf16 but this CPU has no native bf16: oneDNN emulates it, "
            "which is slower than fp32 here; use auto or fp32"
        )
    if device.type != "cuda" and name == "fp16":
        raise ValueError(
            "training.precision 'fp16' needs a CUDA device; use fp32 or bf16 on the CPU"
        )
    return torch.bfloat16 if name == "bf16" else torch.float16


def resolve_memory_format(name: str, device: torch.device) -> torch.memory_format:
    """The layout of the networks' weights and input batches.

    auto: channels_last on CUDA (cuDNN's fast path), contiguous on the CPU, where it depends on
    the network: measured fp32 on an AVX2 CPU, 1.16x for the texture benchmark's dilated FCN at
    48 px, 0.98x for the ResNet-18 DeepLabv3+ at 64 px (README, Measured figures).
    """
    if name == "auto":
        return torch.channels_last if device.type == "cuda" else torch.contiguous_format
    return {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}[name]


def precision_name(dtype: torch.dtype | None) -> str:
    """The parameter value that names an autocast dtype (for logs and the bench)."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """A per-(run, iteration, rank) seed: augmentation draws need no state to resume exactly."""
    return int(np.random.SeedSequence([seed, iteration, rank]).generate_state(1)[0])


def peak_memory_mb(device: torch.device) -> float:
    """Peak accelerator memory on CUDA, peak resident set size of the process on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / BYTES_PER_MB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * MAXRSS_UNIT
    return rss / BYTES_PER_MB


def set_torch_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads for the whole process (None: leave them as they are).

    Not restored afterwards: runs training at once in one process (Kedro's ThreadRunner) share
    the setting, and one run restoring it while another trains would change that run's
    arithmetic mid-way (the thread count changes the order of sums).
    """
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def keep_freed_memory_in_heap() -> bool:
    """Let glibc reuse freed large blocks instead of unmapping them; True if it took effect.

    A CPU training step allocates and frees the same multi-megabyte buffers every step (MKD's
    consistency on the input-resolution grid: float64 per-pixel copies of 4.7-9.4 MB). glibc
    serves such blocks from fresh mmap pages and unmaps them on free, so every step pays the
    page faults again; kept in the heap, 150 MKD steps of the default setting took 15.3-16.5 s
    instead of 19.6-20.1 s (Zen 4, 2 threads; README, Measured figures). The arithmetic is
    unchanged. Process-wide and not restored, as ``set_torch_threads``; a no-op (False) where
    the C library has no ``mallopt``.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mmap and trim)
