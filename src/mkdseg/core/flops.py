"""What a step computes and what the device can compute: the two halves of utilisation (MFU).

FLOPs are counted by torch's ``FlopCounterMode`` (convolutions and matmuls, forward and
backward; elementwise work is not counted, as in the usual MFU convention). The peak is
measured, not looked up: a square matmul in the precision being benchmarked, on the same
device and threads, so ``mfu`` says how far a step is from what this machine really does.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from mkdseg.core.runtime import cpu_has_native_bf16

# Matmul sizes for the peak: large enough to be compute-bound, small enough to take ~1 s.
PEAK_SIZE = {"cpu": 2048, "cuda": 8192}
PEAK_REPS = {"cpu": 4, "cuda": 20}
EMULATED_PEAK_SIZE = 256


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs (multiply-add = 2) of the convolutions and matmuls that ``fn`` runs."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def matmul_peak(
    device: torch.device,
    dtype: torch.dtype | None,
    size: int | None = None,
    reps: int | None = None,
) -> float:
    """Measured FLOP/s of a square matmul in ``dtype`` (None: fp32), median of ``reps``."""
    if (
        size is None
        and device.type == "cpu"
        and dtype == torch.bfloat16
        and not cpu_has_native_bf16()
    ):
        # emulated bf16 runs at well under 1 GFLOP/s: a 2048 matmul takes a minute
        size = EMULATED_PEAK_SIZE
    size = size or PEAK_SIZE.get(device.type, PEAK_SIZE["cpu"])
    reps = reps or PEAK_REPS.get(device.type, PEAK_REPS["cpu"])
    g = torch.Generator(device=device).manual_seed(0)
    a, b = (
        torch.randn(size, size, device=device, generator=g, dtype=dtype or torch.float32)
        for _ in range(2)
    )
    # fp32 convolutions run on TF32 tensor cores where cuDNN allows it (torch's default), so the
    # fp32 peak a step is measured against is the TF32 one: matmuls follow the same switch here.
    tf32 = device.type == "cuda" and dtype is None and torch.backends.cudnn.allow_tf32
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or previous
    try:
        a @ b  # warm-up: kernel selection, caches
        times = []
        for _ in range(reps):
            _sync(device)
            start = time.perf_counter()
            a @ b
            _sync(device)
            times.append(time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    times.sort()
    return 2 * size**3 / times[len(times) // 2]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
