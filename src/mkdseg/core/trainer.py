"""One training loop for every method (spec §1-§6; the methods in core/methods/).

A step, in order: poly learning rate; EMA of the teachers from the students (at the *start* of
the step, so at t=1 each teacher is a copy of its student); photometric / strong / CutMix
augmentation on the device (``views.py``); students on ``[x_l; x_mix]``, teachers on
``[x_l; x_w]``, each method's loss as its file in ``core/methods/`` writes it (MKD's
``L = CE_sup + ramp(t) * (w_st * L_st + w_ss * L_ss)`` in ``mkd.py``); one SGD step over the
students.
All augmentation draws come from a generator seeded by (seed, iteration, rank),
and the loaders' batches are a pure function of the same, so a resumed run is
identical to an uninterrupted one on the CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mkdseg.core.augmentation import BlurRange
from mkdseg.core.checkpoint import (
    checkpoint_name,
    load_latest_readable,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mkdseg.core.config import TrainConfig, config_to_dict, resume_identity, with_defaults
from mkdseg.core.data import LabeledDataset, UnlabeledDataset, make_train_loader
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.methods import METHODS
from mkdseg.core.networks import Networks
from mkdseg.core.optimization import GuardedSGD
from mkdseg.core.runtime import (
    autocast,
    keep_freed_memory_in_heap,
    peak_memory_mb,
    resolve_device,
    resolve_memory_format,
    resolve_precision,
    set_torch_threads,
    step_seed,
)
from mkdseg.core.views import Batch, Views, make_views

log = logging.getLogger(__name__)

CHECKPOINTS_KEPT = 2
Callback = Callable[[int, dict[str, float]], None]
Metrics = dict[str, Tensor | float]


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
    # A hash of the teachers and estimators per rank: DDP keeps them equal.
    rank_digests: list[str] = field(default_factory=list)
    resumed_from: int = 0  # the checkpoint's iteration when the run resumed, else 0
    # Every network the method trained, on the CPU, by role ("student_1", "teacher_1", ...):
    # what scoring the unlabeled images (core/acquisition.py) asks.
    networks: dict[str, dict[str, Tensor]] = field(default_factory=dict)


def check_unlabeled_pool(cfg: TrainConfig, n_unlabeled: int) -> None:
    """A semi-supervised method without unlabeled images: one error, before anything trains
    (the training node calls it first; ``fit`` again, for callers outside Kedro)."""
    if cfg.uses_unlabeled and n_unlabeled == 0:
        raise ValueError(
            f"training.method {cfg.method.name!r} learns from unlabeled images, but the split "
            "has none: every training image is labeled. Add images without masks (images/ or "
            "unlabeled/ for dataset.source folder), set splits.labeled to a fraction or a count "
            "of the masked images, or set training.method: supervised."
        )


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
        set_torch_threads(cfg.threads)
        if self.device.type == "cpu":
            keep_freed_memory_in_heap()
        self.amp_dtype = resolve_precision(cfg.precision, self.device)
        self.memory_format = resolve_memory_format(cfg.memory_format, self.device)
        self.blur = BlurRange.for_crop(cfg.augment.crop_size, cfg.augment.blur_reference_crop)
        self.nets = Networks(cfg, num_classes, self.device, self.memory_format, world_size)
        self.optimizer = GuardedSGD(
            self.nets.student_pair.parameters(), cfg, self.device, self.amp_dtype, world_size
        )
        self.iteration = 0
        self.history: list[dict[str, float]] = []  # per iteration, kept in checkpoints

    # --- one step -----------------------------------------------------------------------------
    def train_step(self, labeled: Batch, unlabeled: Batch | None) -> dict[str, float]:
        """Run iteration ``self.iteration + 1``; returns its metrics."""
        cfg, t = self.cfg, self.iteration + 1
        metrics: dict[str, float] = {"lr": self.optimizer.set_lr(t)}
        if cfg.uses_teachers:
            metrics["ema_momentum"] = self.nets.update_teachers(t)
        self.nets.student_pair.train()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(step_seed(cfg.seed, t, self.rank))
        views = make_views(
            cfg, labeled, unlabeled, generator, self.device, self.blur, self.memory_format
        )
        with autocast(self.device, self.amp_dtype):
            loss, parts = self._loss(views, t)
        metrics.update(self.optimizer.step(loss, parts, t))
        self.iteration = t
        metrics["nonfinite_skipped"] = float(self.optimizer.nonfinite_total)
        return metrics

    def _loss(self, views: Views, t: int) -> tuple[Tensor, Metrics]:
        """The method's loss for step ``t``: its equation, in its file under ``core/methods/``."""
        method = self.cfg.method
        return METHODS[method.name].loss(self.nets, views, method, t)

    # --- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "config": config_to_dict(self.cfg),
            **self.nets.state_dict(),
            **self.optimizer.state_dict(),
            "history": self.history,
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A key newer than the checkpoint had its default when the checkpoint was made.
        mine = resume_identity(config_to_dict(self.cfg))
        theirs = resume_identity(with_defaults(state["config"]))
        for key, value in mine.items():
            if theirs.get(key) != value:
                raise ValueError(
                    f"checkpoint was made with a different training.{key} "
                    f"({theirs.get(key)!r} vs {value!r}); resume needs the same configuration"
                )
        self.nets.load_state_dict(state)
        self.optimizer.load_state_dict(state)
        self.iteration = state["iteration"]
        self.history = list(state["history"])
        set_rng_state(state["rng"])

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
                    f"training.iterations={self.cfg.iterations}; raise it or set "
                    "training.resume: false"
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
            images = labeled[0].shape[0] + (unlabeled[0].shape[0] if unlabeled else 0)
            metrics.update(
                images_per_s=images * self.world_size / max(now - tick, 1e-9),
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
        networks = self.nets.cpu_state_dicts()
        return TrainResult(
            networks["student_1"],
            self.history,
            self.iteration,
            self.optimizer.nonfinite_total,
            saved,
            [self.nets.digest()],
            resumed_from,
            networks,
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
            LabeledDataset(data.labeled, data.mask_encoding, geometry, cfg.loader_cache_mb),
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            **loader_args,
        )
        if not cfg.uses_unlabeled:
            return ((batch, None) for batch in labeled)
        check_unlabeled_pool(cfg, len(data.unlabeled))
        unlabeled = make_train_loader(
            UnlabeledDataset(data.unlabeled, geometry, cfg.loader_cache_mb),
            batch_size=cfg.unlabeled_batch_size,
            seed=cfg.seed + 1,
            **loader_args,
        )
        return zip(labeled, unlabeled, strict=False)
