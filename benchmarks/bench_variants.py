"""Candidate speed-ups of the training step for ``bench.py --compare``, each applied to a
built trainer; kept in the training code only where they pay."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mkdseg.core.trainer import Trainer


def _channels_last(trainer: Trainer) -> None:
    trainer.memory_format = torch.channels_last
    for pair in (trainer.nets.student_pair, trainer.nets.teacher_pair):
        pair.to(memory_format=torch.channels_last)


def _loop_sgd(trainer: Trainer) -> None:
    """SGD as the step ran it before its fused kernel: torch's per-parameter loop."""
    group = trainer.optimizer.sgd.param_groups[0]
    trainer.optimizer.sgd = torch.optim.SGD(
        trainer.nets.student_pair.parameters(),
        lr=group["lr"],
        momentum=group["momentum"],
        weight_decay=group["weight_decay"],
        foreach=False,
    )


def _compile(trainer: Trainer) -> None:
    for pair in (trainer.nets.student_pair, trainer.nets.teacher_pair):
        for i, net in enumerate(pair.nets):
            pair.nets[i] = torch.compile(net)


VARIANTS: dict[str, Callable[[Trainer], None]] = {
    "channels_last": _channels_last,
    "loop_sgd": _loop_sgd,
    "compile": _compile,
}
