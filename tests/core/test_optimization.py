"""GuardedSGD's kernel: torch's fused SGD on the CPU, kept when a checkpoint is restored."""

from __future__ import annotations

import torch
from torch import nn

from mkdseg.core.optimization import GuardedSGD

from .conftest import tiny_config


def _sgd(fused: bool | None) -> tuple[nn.Linear, torch.optim.SGD]:
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    sgd = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, fused=fused)
    layer(torch.ones(4, 3)).sum().backward()
    sgd.step()
    return layer, sgd


def test_sgd_is_fused_on_the_cpu_and_stays_fused_after_an_unfused_checkpoint() -> None:
    layer, old = _sgd(fused=None)  # as checkpoints were written before the fused kernel
    guarded = GuardedSGD(layer.parameters(), tiny_config(), torch.device("cpu"), None)
    assert guarded.sgd.param_groups[0]["fused"] is True
    state = {**guarded.state_dict(), "optimizer": old.state_dict()}
    guarded.load_state_dict(state)
    group = guarded.sgd.param_groups[0]
    assert group["fused"] is True and group["lr"] == 0.1
    momentum = guarded.sgd.state[group["params"][0]]["momentum_buffer"]
    assert torch.equal(momentum, old.state[next(iter(layer.parameters()))]["momentum_buffer"])
