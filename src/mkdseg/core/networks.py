"""The networks of a run (spec §1): the students, their EMA teachers and every network's
feature estimator (spec §5), built, placed on the device and, under DDP, wrapped."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from mkdseg.core.architectures import build_model
from mkdseg.core.config import TrainConfig
from mkdseg.core.ema import check_same_architecture, ema_momentum, ema_update_params_
from mkdseg.core.feature_augmentation import ClassFeatureStatistics
from mkdseg.core.model import SegOutput
from mkdseg.core.runtime import seed_everything

HEAD_SEED_STRIDE = 1000  # student k's head seed = seed * stride + k: different heads, same backbone


class NetworkPair(nn.Module):
    """The students (or the teachers) of a run: one call runs every member on the same input(s)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(
        self, *views: Tensor, perturb: float = 0.0, generator: torch.Generator | None = None
    ) -> list[SegOutput]:
        """Every member on each view in its own pass (BatchNorm statistics per view), outputs
        concatenated along the batch; ``perturb`` > 0 adds each pass's feature-perturbed stream
        (``[clean; perturbed]`` per pass, ``core/feature_perturbation.py``)."""
        outputs = [[net(x, perturb, generator) for x in views] for net in self.nets]
        return [_concat_outputs(passes) for passes in outputs]


def _concat_outputs(outputs: list[SegOutput]) -> SegOutput:
    if len(outputs) == 1:
        return outputs[0]
    return SegOutput(*(torch.cat(part) for part in zip(*outputs, strict=True)))


class Networks:
    """Students (``student_pair``, DDP-wrapped when ``world_size`` > 1), teachers (``teacher_pair``,
    None when the method has none) and one estimator per network that uses one."""

    def __init__(
        self,
        cfg: TrainConfig,
        num_classes: int,
        device: torch.device,
        memory_format: torch.memory_format,
        world_size: int = 1,
    ) -> None:
        self.cfg, self.world_size = cfg, world_size
        m = cfg.model
        seed_everything(cfg.seed)  # before anything draws from the global generators
        students = [
            build_model(
                num_classes,
                architecture=m.architecture,
                backbone=m.backbone,
                output_stride=m.output_stride,
                decoder_channels=m.decoder_channels,
                aspp_channels=m.aspp_channels,
                low_level_channels=m.low_level_channels,
                pretrained=m.pretrained,
                head_seed=cfg.seed * HEAD_SEED_STRIDE + k,
                aspp_rates=m.aspp_rates,
                stem_channels=m.stem_channels,
                dilations=m.dilations,
                bn_momentum=m.bn_momentum,
            )
            for k in range(cfg.num_students)
        ]
        self.student_pair: nn.Module = NetworkPair(students)
        self.teacher_pair = copy.deepcopy(self.student_pair) if cfg.uses_teachers else None
        if self.teacher_pair is not None:
            self.teacher_pair.requires_grad_(False)
        self._place(device, memory_format)
        # Each teacher's and its student's parameters, listed once: the step's EMA reads them as
        # they are (a ``.to()`` swaps a parameter's data, not the parameter). Empty: no teachers.
        pairs = zip(self.teachers, self.students, strict=True) if self.teachers else []
        self._ema_params = [(list(t.parameters()), list(s.parameters())) for t, s in pairs]
        for pair in self._ema_params:
            check_same_architecture(*pair)
        self.student_stats = self._estimators(num_classes, device, cfg.uses_estimators)
        self.teacher_stats = self._estimators(
            num_classes, device, cfg.uses_estimators and self.teacher_pair is not None
        )

    def _estimators(
        self, num_classes: int, device: torch.device, wanted: bool
    ) -> list[ClassFeatureStatistics]:
        """One feature estimator per branch, or none when its networks learn from no targets."""
        channels, count = self.cfg.model.decoder_channels, self.cfg.num_students if wanted else 0
        return [ClassFeatureStatistics(num_classes, channels).to(device) for _ in range(count)]

    def _place(self, device: torch.device, memory_format: torch.memory_format) -> None:
        for pair in (self.student_pair, self.teacher_pair):
            if pair is not None:
                pair.to(device, memory_format=memory_format)
        if self.world_size > 1 and device.type == "cuda":  # SyncBN is CUDA-only; gloo: per rank
            self.student_pair = nn.SyncBatchNorm.convert_sync_batchnorm(self.student_pair)
            if self.teacher_pair is not None:
                self.teacher_pair = nn.SyncBatchNorm.convert_sync_batchnorm(self.teacher_pair)
        if self.world_size > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.student_pair = nn.parallel.DistributedDataParallel(
                self.student_pair, device_ids=ids
            )
        if self.teacher_pair is not None:
            self.teacher_pair.train(self.cfg.method.teacher_bn_mode == "train")

    @property
    def unwrapped_students(self) -> NetworkPair:
        """The students without DDP's wrapper: a no-grad pass that must not sync gradients."""
        return self.student_pair.module if self.world_size > 1 else self.student_pair

    @property
    def students(self) -> list[nn.Module]:
        return list(self.unwrapped_students.nets)

    @property
    def teachers(self) -> list[nn.Module]:
        return list(self.teacher_pair.nets) if self.teacher_pair is not None else []

    def passes(self, labeled: Tensor, unlabeled: Tensor) -> list[Tensor]:
        """The forward passes over [labeled; unlabeled]: one per view, or one joint batch."""
        if self.cfg.separate_view_passes:
            return [labeled, unlabeled]
        return [torch.cat([labeled, unlabeled])]

    def update_teachers(self, t: int) -> float:
        """EMA of each teacher from its student at the start of step ``t``; returns the momentum."""
        momentum = ema_momentum(t, self.cfg.method.ema_momentum_end)
        for t_params, s_params in self._ema_params:
            ema_update_params_(t_params, s_params, momentum)
        if self.cfg.method.teacher_bn_mode == "eval":
            for teacher, student in zip(self.teachers, self.students, strict=True):
                # Eval-mode teachers need running statistics; EMA covers parameters only.
                for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
                    tb.copy_(sb)
        return momentum

    def state_dict(self) -> dict[str, list[dict[str, Tensor]]]:
        return {
            "students": [n.state_dict() for n in self.students],
            "teachers": [n.state_dict() for n in self.teachers],
            "student_stats": [s.state_dict() for s in self.student_stats],
            "teacher_stats": [s.state_dict() for s in self.teacher_stats],
        }

    def cpu_state_dicts(self) -> dict[str, dict[str, Tensor]]:
        """Copies of every network's weights on the CPU, by role: ``student_1``, ``teacher_1``..."""
        roles = [("student", self.students), ("teacher", self.teachers)]
        return {
            f"{role}_{k}": {name: v.detach().cpu().clone() for name, v in net.state_dict().items()}
            for role, nets in roles
            for k, net in enumerate(nets, start=1)
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        members = {
            "students": self.students,
            "teachers": self.teachers,
            "student_stats": self.student_stats,
            "teacher_stats": self.teacher_stats,
        }
        for key, modules in members.items():
            if key.endswith("_stats") and not modules:
                continue  # estimators of a method that keeps none now (they never fed its loss)
            for module, sd in zip(modules, state[key], strict=True):
                module.load_state_dict(sd)

    def digest(self) -> str:
        """A hash of teachers and estimators: equal on every rank when DDP keeps them in sync."""
        h = hashlib.sha256()
        tensors = [t for n in self.teachers for t in n.parameters()]
        tensors += [
            t for s in self.student_stats + self.teacher_stats for t in s.state_dict().values()
        ]
        for t in tensors:
            h.update(t.detach().float().cpu().numpy().tobytes())
        return h.hexdigest()
