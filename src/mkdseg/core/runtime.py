"""Where and how a run executes: device, autocast precision, seeding, memory figures."""

from __future__ import annotations

import contextlib
import random
import resource
import sys
from collections.abc import Iterator

import numpy as np
import torch

BYTES_PER_MB = 1024 * 1024
# ru_maxrss is in kilobytes on Linux, bytes on macOS.
MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return device


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32.

    auto: bf16 on CUDA where supported (no loss scaling needed), fp16 on older
    CUDA devices, fp32 on the CPU (CPU autocast is slower than fp32 for convs).
    """
    if name == "fp32" or (name == "auto" and device.type != "cuda"):
        return None
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cuda" and name == "fp16":
        raise ValueError("training.precision 'fp16' needs a CUDA device; use fp32 or bf16 on the CPU")
    return torch.bfloat16 if name == "bf16" else torch.float16


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


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (None keeps the current setting)."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
