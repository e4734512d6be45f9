"""One training loop for supervised, mean teacher, CPS and MKD (spec §1-§6).

A step, in order: poly learning rate; EMA of the teachers from the students
(at the *start* of the step, so at t=1 each teacher is a copy of its student);
batched photometric / strong / CutMix augmentation on the device; students on
``[x_l; x_mix]``, teachers on ``[x_l; x_w]``; supervised CE plus the
consistency terms of ``consistency.py``; one SGD step over both students.
All augmentation draws come from a generator seeded by (seed, iteration, rank),
and the loaders' batches are a pure function of the same, so a resumed run is
identical to an uninterrupted one on the CPU.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mkdseg.core import consistency as cons
from mkdseg.core.augmentation import BlurRange, normalize, photometric_distortion, strong_augment
from mkdseg.core.checkpoint import (
    checkpoint_name,
    load_latest_readable,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mkdseg.core.config import TrainConfig, config_to_dict, resume_identity
from mkdseg.core.cutmix import box_mask, mix
from mkdseg.core.data import LabeledDataset, UnlabeledDataset, make_train_loader
from mkdseg.core.ema import ema_momentum, ema_update_
from mkdseg.core.feature_augmentation import ClassFeatureStatistics
from mkdseg.core.image_io import IGNORE_INDEX, MaskEncoding
from mkdseg.core.losses import supervised_ce
from mkdseg.core.model import SegOutput, build_model
from mkdseg.core.runtime import (
    autocast,
    peak_memory_mb,
    resolve_device,
    resolve_precision,
    seed_everything,
    step_seed,
)
from mkdseg.core.schedules import consistency_rampup, feature_aug_lambda, poly_lr

log = logging.getLogger(__name__)

HEAD_SEED_STRIDE = 1000  # student k's head seed = seed * stride + k: different heads, same backbone
CHECKPOINTS_KEPT = 2
Callback = Callable[[int, dict[str, float]], None]


class TrainingDivergedError(RuntimeError):
    """Too many non-finite losses in a row."""


@dataclass
class TrainData:
    """What a run trains on: plain paths, so it pickles to data-loader and DDP workers."""

    labeled: list[tuple[str, str]]
    unlabeled: list[str]
    mask_encoding: MaskEncoding
    num_classes: int


@dataclass
class TrainResult:
    student: dict[str, Tensor]  # student 1, on the CPU: the model that is evaluated and exported
    history: list[dict[str, float]]
    iterations: int
    nonfinite_skipped: int
    checkpoint: Path | None
    rank_digests: list[str] = field(
        default_factory=list
    )  # teachers+estimators per rank (DDP check)
    resumed_from: int = 0  # the checkpoint's iteration when the run resumed, else 0


class NetworkPair(nn.Module):
    """The students (or the teachers) of a run: one call runs every member on the same input(s)."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, *views: Tensor) -> list[Any]:
        """Every member on each view in its own pass (BatchNorm statistics per view), outputs
        concatenated along the batch."""
        return [_concat_outputs([net(x) for x in views]) for net in self.nets]


def _concat_outputs(outputs: list[SegOutput]) -> SegOutput:
    if len(outputs) == 1:
        return outputs[0]
    return SegOutput(*(torch.cat(part) for part in zip(*outputs, strict=True)))


class Trainer:
    """Owns the networks, estimators and optimizer of one run (one rank under DDP)."""

    def __init__(
        self,
        cfg: TrainConfig,
        num_classes: int,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
    ) -> None:
        self.cfg, self.num_classes = cfg, num_classes
        self.rank, self.world_size = rank, world_size
        self.device = device or resolve_device(cfg.device)
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self.memory_format = (
            torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        )
        self.blur = BlurRange.for_crop(cfg.augment.crop_size, cfg.augment.blur_reference_crop)
        seed_everything(cfg.seed)
        self.student_pair = NetworkPair([self._build(k) for k in range(cfg.num_students)])
        self.teacher_pair = copy.deepcopy(self.student_pair) if cfg.uses_teachers else None
        if self.teacher_pair is not None:
            self.teacher_pair.requires_grad_(False)
        self._place_networks()
        channels = cfg.model.decoder_channels
        self.student_stats = self._estimators(channels, cfg.uses_unlabeled)
        self.teacher_stats = self._estimators(channels, self.teacher_pair is not None)
        self.optimizer = torch.optim.SGD(
            self.student_pair.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            weight_decay=cfg.optim.weight_decay,
        )
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.iteration = 0
        self.nonfinite_in_row = 0
        self.nonfinite_total = 0
        self.history: list[dict[str, float]] = []  # per iteration, kept in checkpoints

    # --- construction -------------------------------------------------------------------------
    def _build(self, k: int) -> nn.Module:
        m = self.cfg.model
        return build_model(
            self.num_classes,
            backbone=m.backbone,
            output_stride=m.output_stride,
            decoder_channels=m.decoder_channels,
            aspp_channels=m.aspp_channels,
            low_level_channels=m.low_level_channels,
            pretrained=m.pretrained,
            head_seed=self.cfg.seed * HEAD_SEED_STRIDE + k,
            aspp_rates=m.aspp_rates,
        )

    def _place_networks(self) -> None:
        pairs = [p for p in (self.student_pair, self.teacher_pair) if p is not None]
        for pair in pairs:
            pair.to(self.device, memory_format=self.memory_format)
        if (
            self.world_size > 1 and self.device.type == "cuda"
        ):  # SyncBN is CUDA-only; gloo keeps per-rank BN
            self.student_pair = nn.SyncBatchNorm.convert_sync_batchnorm(self.student_pair)
            if self.teacher_pair is not None:
                self.teacher_pair = nn.SyncBatchNorm.convert_sync_batchnorm(self.teacher_pair)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.student_pair = nn.parallel.DistributedDataParallel(
                self.student_pair, device_ids=ids
            )
        if self.teacher_pair is not None:
            self.teacher_pair.train(self.cfg.method.teacher_bn_mode == "train")

    def _estimators(self, channels: int, wanted: bool) -> list[ClassFeatureStatistics]:
        if not wanted:
            return []
        return [
            ClassFeatureStatistics(self.num_classes, channels).to(self.device)
            for _ in range(self.cfg.num_students)
        ]

    @property
    def students(self) -> list[nn.Module]:
        pair = self.student_pair.module if self.world_size > 1 else self.student_pair
        return list(pair.nets)

    @property
    def teachers(self) -> list[nn.Module]:
        return list(self.teacher_pair.nets) if self.teacher_pair is not None else []

    # --- one step -----------------------------------------------------------------------------
    def train_step(
        self, labeled: tuple[Tensor, Tensor], unlabeled: tuple[Tensor, Tensor] | None
    ) -> dict:
        """Run iteration ``self.iteration + 1``; returns its metrics."""
        cfg, t = self.cfg, self.iteration + 1
        lr = poly_lr(cfg.optim.lr, t - 1, cfg.iterations, cfg.optim.poly_power)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        metrics: dict[str, float] = {"lr": lr}
        if self.teacher_pair is not None:
            metrics["ema_momentum"] = self._update_teachers(t)
        self.student_pair.train()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(step_seed(cfg.seed, t, self.rank))
        batch = self._augment(labeled, unlabeled, generator)
        with autocast(self.device, self.amp_dtype):
            loss, parts = self._loss(batch, t)
        finite, parts = self._host_values(loss, parts)
        metrics.update(parts)
        if finite:
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.nonfinite_in_row = 0
        else:
            self._skip_step()
        self.iteration = t
        metrics["nonfinite_skipped"] = float(self.nonfinite_total)
        return metrics

    def _update_teachers(self, t: int) -> float:
        momentum = ema_momentum(t, self.cfg.method.ema_momentum_end)
        for teacher, student in zip(self.teachers, self.students, strict=True):
            ema_update_(teacher, student, momentum)
            if self.cfg.method.teacher_bn_mode == "eval":
                # Eval-mode teachers need running statistics; EMA covers parameters only, so take the student's.
                for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
                    tb.copy_(sb)
        return momentum

    def _augment(
        self,
        labeled: tuple[Tensor, Tensor],
        unlabeled: tuple[Tensor, Tensor] | None,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """Photometric, strong and CutMix augmentation, batched on the training device."""
        fmt = self.memory_format
        x_l, y_l = (v.to(self.device, non_blocking=True) for v in labeled)
        out = {"x_l": normalize(photometric_distortion(x_l.float() / 255, generator)), "y_l": y_l}
        if unlabeled is not None and self.cfg.uses_unlabeled:
            x_u, valid = (v.to(self.device, non_blocking=True) for v in unlabeled)
            x_u = x_u.float() / 255
            mask = box_mask(
                x_u.shape[0], x_u.shape[-2], x_u.shape[-1], generator, device=self.device
            )
            weak = photometric_distortion(x_u, generator)
            mixed = (
                weak
                if self.cfg.method.mixed_view == "weak"
                else strong_augment(x_u, generator, self.cfg.augment.strong_weights, self.blur)
            )
            out.update(
                x_w=normalize(weak),
                x_mix=normalize(mix(mixed, mask)),
                valid_w=valid.bool(),
                mask=mask,
            )
        return {
            k: v.contiguous(memory_format=fmt) if v.dim() == 4 and k.startswith("x") else v
            for k, v in out.items()
        }

    @property
    def _cps_from_unmixed(self) -> bool:
        """CPS+CutMix targets: the students' no-grad predictions on the unmixed images."""
        m = self.cfg.method
        return m.student_term and self.cfg.num_students == 2 and m.cps_targets == "unmixed"

    def _loss(self, b: dict[str, Tensor], t: int) -> tuple[Tensor, dict[str, Tensor | float]]:
        n_l = b["x_l"].shape[0]
        s_unmixed = []
        if "x_mix" in b and self._cps_from_unmixed:
            with torch.no_grad():  # TorchSemiSeg: the networks in train mode, before the mixed pass
                pair = self.student_pair.module if self.world_size > 1 else self.student_pair
                s_unmixed = pair(b["x_w"])
        s_out = self.student_pair(
            *self._passes([b["x_l"], b["x_mix"]] if "x_mix" in b else [b["x_l"]])
        )
        loss_sup = sum(supervised_ce(o.logits[:n_l], b["y_l"]) for o in s_out)
        if "x_mix" not in b:
            return loss_sup, {"loss": loss_sup, "loss_sup": loss_sup}
        t_out = []
        if self.teacher_pair is not None:
            with torch.no_grad():
                t_out = self.teacher_pair(*self._passes([b["x_l"], b["x_w"]]))
        with torch.autocast(self.device.type, enabled=False):
            result, diag = self._consistency(b, s_out, t_out, s_unmixed, t, n_l)
        m = self.cfg.method
        ramp = consistency_rampup(t - 1, m.consistency_rampup)
        loss = loss_sup + ramp * (
            m.weight_teacher * result.loss_st + m.weight_student * result.loss_ss
        )
        parts = {
            "consistency_ramp": ramp,
            "loss": loss,
            "loss_sup": loss_sup,
            "loss_st": result.loss_st,
            "loss_ss": result.loss_ss,
            **result.metrics,
            **diag,
        }
        return loss, parts

    def _passes(self, views: list[Tensor]) -> list[Tensor]:
        """The forward passes over [labeled; unlabeled]: one per view, or one joint batch."""
        return views if self.cfg.separate_view_passes or len(views) == 1 else [torch.cat(views)]

    def _consistency(
        self, b: dict[str, Tensor], s_out: list, t_out: list, s_unmixed: list, t: int, n_l: int
    ) -> tuple[cons.ConsistencyResult, dict[str, Tensor | float]]:
        m = self.cfg.method
        h, w = decoder = tuple(s_out[0].logits.shape[-2:])
        size = (max(1, round(h * m.consistency_scale)), max(1, round(w * m.consistency_scale)))
        y_small = cons.labels_to_resolution(b["y_l"], size, m.label_sampling)
        valid_w = cons.labels_to_resolution(b["valid_w"], size, m.label_sampling)
        mixer = cons.TargetMixer(b["mask"], decoder, size, m.target_mixing, m.label_sampling)
        valid_mix = mixer.valid(b["valid_w"])
        lam = feature_aug_lambda(t, self.cfg.iterations, m.lambda_end, m.lambda_schedule)
        views_s = [cons.make_view(o.logits, o.features, y_small, valid_mix) for o in s_out]
        z_s = [
            cons.feature_augment(v, stats, net.classifier.weight, lam, m.feature_aug_students)
            for v, stats, net in zip(views_s, self.student_stats, self.students, strict=True)
        ]
        z_t, conf_t, conf_raw, pred_raw = [], [], [], []
        s_targets, s_ignore = None, None
        with torch.no_grad():
            for o, stats, net in zip(t_out, self.teacher_stats, self.teachers, strict=True):
                if m.target_mixing == "grid":  # augment the unmixed view, then mix at the grid
                    view = cons.make_view(o.logits, o.features, y_small, valid_w)
                    conf = view.logits.softmax(1).max(1).values
                    z = cons.feature_augment(
                        view, stats, net.classifier.weight, lam, m.feature_aug_teachers
                    )
                    z_t.append(cons.mix_teacher(z, n_l, mixer.mix_mask))
                    conf_t.append(cons.mix_teacher(conf[:, None], n_l, mixer.mix_mask)[:, 0])
                    conf_raw.append(conf)
                    pred_raw.append(
                        view.labels
                    )  # own argmax on unlabeled rows: what agreement compares
                else:  # the release: mix logits and features at decoder resolution, then resize and augment
                    view = mixer.view(o.logits, o.features, n_l, y_small, valid_mix)
                    conf_t.append(view.logits.softmax(1).max(1).values)
                    z_t.append(
                        cons.feature_augment(
                            view, stats, net.classifier.weight, lam, m.feature_aug_teachers
                        )
                    )
                    unmixed = cons.to_resolution(o.logits, size)
                    conf_raw.append(unmixed.softmax(1).max(1).values)
                    pred_raw.append(unmixed.argmax(1))
            if s_unmixed:  # CPS+CutMix: the other student's prediction on the unmixed images, mixed
                s_targets = [
                    torch.cat([torch.zeros_like(z[:n_l]), mixer.mix(o.logits)])
                    for z, o in zip(z_s, s_unmixed, strict=True)
                ]
                s_ignore = torch.cat([torch.ones_like(y_small, dtype=torch.bool), ~valid_mix])
        conf_s = None
        if m.student_confidence_threshold is not None:
            conf_s = [
                v.detach().softmax(1).max(1).values
                for v in (s_targets or [v.logits for v in views_s])
            ]
        labeled_ignore = (
            y_small == IGNORE_INDEX
            if m.teacher_rows == "all"
            else torch.ones_like(y_small, dtype=torch.bool)
        )
        ignore = torch.cat([labeled_ignore, ~valid_mix])
        result = cons.consistency_losses(
            z_s,
            z_t,
            conf_t,
            ignore,
            m.confidence_threshold,
            m.student_term,
            conf_s,
            m.student_confidence_threshold,
            m.threshold_average,
            s_targets,
            s_ignore,
        )
        if z_t or s_targets:  # some target was CutMix-ed from the unmixed images
            result.metrics["target_alignment"] = mixer.alignment(valid_mix)
        diag = cons.teacher_diagnostics(
            conf_raw, pred_raw, valid_w, m.confidence_report_threshold, n_l
        )
        return result, {"lambda": lam, **diag}

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

    def _skip_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_in_row += 1
        self.nonfinite_total += 1
        log.warning(
            "non-finite loss at iteration %d: step skipped (%d in a row)",
            self.iteration + 1,
            self.nonfinite_in_row,
        )
        if self.nonfinite_in_row >= self.cfg.max_nonfinite_in_row:
            raise TrainingDivergedError(
                f"{self.nonfinite_in_row} non-finite losses in a row (iteration {self.iteration + 1}); "
                "lower training.optim.lr or use training.precision: fp32 "
                f"(limit: training.max_nonfinite_in_row={self.cfg.max_nonfinite_in_row})"
            )

    # --- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "config": config_to_dict(self.cfg),
            "students": [n.state_dict() for n in self.students],
            "teachers": [n.state_dict() for n in self.teachers],
            "student_stats": [s.state_dict() for s in self.student_stats],
            "teacher_stats": [s.state_dict() for s in self.teacher_stats],
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "nonfinite": (self.nonfinite_in_row, self.nonfinite_total),
            "history": self.history,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A top-level key newer than the checkpoint had its default when the checkpoint was made.
        mine = resume_identity(config_to_dict(self.cfg))
        theirs = resume_identity({**config_to_dict(TrainConfig()), **state["config"]})
        for key, value in mine.items():
            if theirs.get(key) != value:
                raise ValueError(
                    f"checkpoint was made with a different training.{key} "
                    f"({theirs.get(key)!r} vs {value!r}); resume needs the same configuration"
                )
        for nets, key in ((self.students, "students"), (self.teachers, "teachers")):
            for net, sd in zip(nets, state[key], strict=True):
                net.load_state_dict(sd)
        for stats, key in (
            (self.student_stats, "student_stats"),
            (self.teacher_stats, "teacher_stats"),
        ):
            for s, sd in zip(stats, state[key], strict=True):
                s.load_state_dict(sd)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.nonfinite_in_row, self.nonfinite_total = state["nonfinite"]
        self.iteration = state["iteration"]
        self.history = list(state["history"])
        set_rng_state(state["rng"])

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

    # --- the loop -----------------------------------------------------------------------------
    def fit(
        self,
        data: TrainData,
        callback: Callback | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> TrainResult:
        """Train until ``cfg.iterations``; checkpoints every ``cfg.checkpoint_every``."""
        checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        if (
            resume
            and checkpoint_dir
            and (latest := load_latest_readable(checkpoint_dir, self.device))
        ):
            found, state = latest
            self.load_state_dict(state)
            log.info("resumed from %s at iteration %d", found, self.iteration)
            if self.iteration > self.cfg.iterations:
                raise ValueError(
                    f"the checkpoint {found} is at iteration {self.iteration}, past "
                    f"training.iterations={self.cfg.iterations}; raise it or set training.resume: false"
                )
        resumed_from = self.iteration
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        batches = self._batches(data)
        saved = None
        tick = time.perf_counter()
        while self.iteration < self.cfg.iterations:
            labeled, unlabeled = next(batches)
            metrics = self.train_step(labeled, unlabeled)
            now = time.perf_counter()
            images = (
                labeled[0].shape[0] + (unlabeled[0].shape[0] if unlabeled else 0)
            ) * self.world_size
            metrics.update(
                images_per_s=images / max(now - tick, 1e-9),
                peak_memory_mb=peak_memory_mb(self.device),
            )
            tick = now
            self.history.append({"step": float(self.iteration), **metrics})
            if callback is not None and self.rank == 0 and self.iteration % self.cfg.log_every == 0:
                callback(self.iteration, metrics)
            if checkpoint_dir and (
                self.iteration % self.cfg.checkpoint_every == 0
                or self.iteration == self.cfg.iterations
            ):
                saved = self.save(checkpoint_dir)
        student = {k: v.detach().cpu().clone() for k, v in self.students[0].state_dict().items()}
        return TrainResult(
            student,
            self.history,
            self.iteration,
            self.nonfinite_total,
            saved,
            [self.digest()],
            resumed_from,
        )

    def save(self, checkpoint_dir: Path) -> Path:
        path = checkpoint_dir / checkpoint_name(self.iteration)
        if self.rank == 0:
            save_checkpoint(self.state_dict(), path)
            prune_checkpoints(checkpoint_dir, keep=CHECKPOINTS_KEPT)
        return path

    def _batches(
        self, data: TrainData
    ) -> Iterator[tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor] | None]]:
        """Labeled and unlabeled batches, starting at the current iteration."""
        cfg, geometry = self.cfg, self.cfg.augment.geometry
        loader_args = {
            "start_iteration": self.iteration,
            "total_iterations": cfg.iterations,
            "num_workers": cfg.num_workers,
            "rank": self.rank,
            "world_size": self.world_size,
            "pin_memory": self.device.type == "cuda",
        }
        labeled = make_train_loader(
            LabeledDataset(data.labeled, data.mask_encoding, geometry),
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            **loader_args,
        )
        if not cfg.uses_unlabeled:
            return ((batch, None) for batch in labeled)
        if not data.unlabeled:
            raise ValueError(
                f"training.method {cfg.method.name!r} needs unlabeled images, the split has none"
            )
        unlabeled = make_train_loader(
            UnlabeledDataset(data.unlabeled, geometry),
            batch_size=cfg.unlabeled_batch_size,
            seed=cfg.seed + 1,
            **loader_args,
        )
        return zip(labeled, unlabeled, strict=False)
