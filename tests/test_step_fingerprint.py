"""scripts/step_fingerprint.py: the hash follows the optimizer's values, not which kernel ran."""

from __future__ import annotations

import hashlib
from types import ModuleType

import torch

from .conftest import load_script


def _optimizer_hash(fp: ModuleType, fused: bool, grad: float = 1.0) -> str:
    param = torch.nn.Parameter(torch.ones(3))
    sgd = torch.optim.SGD([param], lr=0.1, momentum=0.9, fused=fused)
    param.grad = torch.full((3,), grad)
    sgd.step()
    h = hashlib.sha256()
    fp.digest(fp.without_kernel_switches(sgd.state_dict()), h)
    return h.hexdigest()


def test_the_optimizer_hash_ignores_the_kernel_switch_but_not_the_momentum() -> None:
    fp = load_script("step_fingerprint")
    assert _optimizer_hash(fp, fused=False) == _optimizer_hash(fp, fused=True)
    assert _optimizer_hash(fp, fused=False) != _optimizer_hash(fp, fused=False, grad=2.0)
    groups = fp.without_kernel_switches(
        torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1, fused=True).state_dict()
    )["param_groups"]
    assert "fused" not in groups[0] and groups[0]["lr"] == 0.1
