"""The students' optimisation step (spec §6): SGD on the poly schedule, the gradient scaler of
fp16 training, and the guard that skips a step whose loss is not finite on some rank."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mkdseg.core.config import TrainConfig
from mkdseg.core.schedules import poly_lr

log = logging.getLogger(__name__)

# torch's fused SGD kernel (one pass over each parameter, its gradient and momentum): on the CPU
# 2.8x (2 threads) / 1.4x (1 thread) faster than the per-parameter loop over ResNet-18
# DeepLabv3+'s 24.5 M parameters, 8x on the texture FCN's (docs/performance.md); CUDA has the same
# kernel (not timed here); other devices keep torch's own choice (fused None).
FUSED_SGD_DEVICES = ("cpu", "cuda")
# Param-group keys that pick torch's kernel, not a value: a checkpoint's are not restored.
KERNEL_SWITCHES = ("fused", "foreach")


class TrainingDivergedError(RuntimeError):
    """Too many non-finite losses in a row."""


class GuardedSGD:
    """SGD with momentum over the students; ``sgd`` may be replaced (the benchmark's variants)."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        cfg: TrainConfig,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        world_size: int = 1,
    ) -> None:
        self.cfg, self.world_size = cfg, world_size
        o = cfg.optim
        self.sgd = torch.optim.SGD(
            params,
            lr=o.lr,
            momentum=o.momentum,
            weight_decay=o.weight_decay,
            fused=True if device.type in FUSED_SGD_DEVICES else None,
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0

    def set_lr(self, t: int) -> float:
        """The poly learning rate of step ``t`` (counted from 1), set on every parameter group."""
        o = self.cfg.optim
        lr = poly_lr(o.lr, t - 1, self.cfg.iterations, o.poly_power)
        for group in self.sgd.param_groups:
            group["lr"] = lr
        return lr

    def step(self, loss: Tensor, parts: dict[str, Any], t: int) -> dict[str, float]:
        """Back-propagate ``loss`` and step, or skip the step when it is not finite on every rank;
        returns ``parts`` with its tensors as floats."""
        finite, values = self._host_values(loss, parts)
        if finite:
            self.sgd.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.sgd)
            self.scaler.update()
            self.nonfinite_in_row = 0
        else:
            self._skip(t)
        return values

    def _host_values(self, loss: Tensor, parts: dict[str, Any]) -> tuple[bool, dict[str, float]]:
        """Whether the loss is finite on every rank, and the step's metrics as floats, in one
        device-to-host transfer: one sync per step instead of one per metric."""
        finite = torch.isfinite(loss.detach()).float()
        if self.world_size > 1:  # every rank must skip together, or DDP's all-reduce would hang
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        keys = [k for k, v in parts.items() if isinstance(v, Tensor)]
        values = torch.stack(
            [finite] + [parts[k].detach().float().reshape(()) for k in keys]
        ).tolist()
        return bool(values[0]), {**parts, **dict(zip(keys, values[1:], strict=True))}

    def _skip(self, t: int) -> None:
        self.sgd.zero_grad(set_to_none=True)
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        log.warning(
            "non-finite loss at iteration %d: step skipped (%d in a row)", t, self.nonfinite_in_row
        )
        limit = self.cfg.max_nonfinite_in_row
        if self.nonfinite_in_row >= limit:
            raise TrainingDivergedError(
                f"{self.nonfinite_in_row} non-finite losses in a row (iteration {t}); "
                "lower training.optim.lr or use training.precision: fp32 "
                f"(limit: training.max_nonfinite_in_row={limit})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.sgd.state_dict(),
            "scaler": self.scaler.state_dict(),
            "nonfinite": (self.nonfinite_in_row, self.nonfinite_total),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore momentum, schedule state and counters; the kernel stays this run's: torch
        would otherwise take ``KERNEL_SWITCHES`` from the checkpoint's groups (an older
        checkpoint's unfused loop, which also rejects the fp16 scaler's arguments)."""
        kernels = [{k: g[k] for k in KERNEL_SWITCHES if k in g} for g in self.sgd.param_groups]
        self.sgd.load_state_dict(state["optimizer"])
        for group, switches in zip(self.sgd.param_groups, kernels, strict=True):
            group.update(switches)
        self.scaler.load_state_dict(state["scaler"])
        self.nonfinite_in_row, self.nonfinite_total = state["nonfinite"]
