"""From catalog data (manifest, split id lists, parameters) to what the training core takes.

Kept out of the nodes so they stay a few lines, and out of the core, which knows
nothing of manifests or Kedro parameters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mkdseg.core.config import TrainConfig, config_from_dict, config_to_dict, resume_identity
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.trainer import TrainData

RUN_KEY_LENGTH = 12


@dataclass(frozen=True)
class RunSettings:
    """The keys of the ``training`` block that the pipeline reads and the trainer does not."""

    checkpoint_root: str  # checkpoints go to <checkpoint_root>/<method>-<run key>
    gpus: int = 1  # > 1: DDP workers started by the node
    resume: bool = False  # continue from the latest checkpoint of the same run key


PIPELINE_KEYS = frozenset(f.name for f in dataclasses.fields(RunSettings))


def trainer_config(training: dict[str, Any]) -> TrainConfig:
    """The core's ``TrainConfig`` from the ``training`` parameter block."""
    return config_from_dict({k: v for k, v in training.items() if k not in PIPELINE_KEYS})


def run_settings(training: dict[str, Any]) -> RunSettings:
    """The pipeline's own keys of the ``training`` parameter block."""
    return RunSettings(**{k: v for k, v in training.items() if k in PIPELINE_KEYS})


def _rows(manifest: pd.DataFrame, ids: Sequence[str], what: str) -> pd.DataFrame:
    """The manifest rows of ``ids``, in the order given; unknown ids are an error."""
    table = manifest.set_index("id")
    missing = [i for i in ids if i not in table.index]
    if missing:
        raise ValueError(
            f"{len(missing)} {what} id(s) are not in the manifest (e.g. {missing[:5]}); "
            "re-run the splits pipeline after changing the dataset"
        )
    return table.loc[list(ids)]


def samples_for(manifest: pd.DataFrame, ids: Sequence[str], what: str) -> list[tuple[str, str]]:
    """(image, mask) paths of ``ids``, in the order given; an id without a mask is an error."""
    rows = _rows(manifest, ids, what)
    if unmasked := [i for i, mask in zip(ids, rows["mask_path"], strict=True) if not mask]:
        raise ValueError(
            f"{len(unmasked)} {what} image(s) have no mask (e.g. {unmasked[:5]}): only masked "
            "images can be labeled; re-run the splits pipeline"
        )
    return list(zip(rows["image_path"], rows["mask_path"], strict=True))


def images_for(manifest: pd.DataFrame, ids: Sequence[str], what: str) -> list[str]:
    """Image paths of ``ids``, in the order given; masks are not even looked at."""
    return list(_rows(manifest, ids, what)["image_path"])


def train_data(
    manifest: pd.DataFrame,
    class_metadata: dict[str, Any],
    labeled_ids: Sequence[str],
    unlabeled_ids: Sequence[str],
) -> TrainData:
    if not labeled_ids:
        raise ValueError("the labeled split is empty; check splits.labeled")
    return TrainData(
        labeled=samples_for(manifest, labeled_ids, "labeled"),
        unlabeled=images_for(manifest, unlabeled_ids, "unlabeled"),
        mask_encoding=MaskEncoding.from_dict(class_metadata.get("mask_encoding")),
        num_classes=len(class_metadata["names"]),
    )


def run_key(
    cfg: TrainConfig,
    labeled_ids: Sequence[str],
    unlabeled_ids: Sequence[str],
    class_metadata: dict[str, Any],
) -> str:
    """A short hash of everything that makes two runs compute the same thing (for resume):
    the configuration's resume identity, both id lists and the dataset (source, root, classes)."""
    config = resume_identity(config_to_dict(cfg))
    dataset = {k: class_metadata.get(k) for k in ("source", "root", "names")}
    payload = json.dumps(
        {
            "config": config,
            "labeled": sorted(labeled_ids),
            "unlabeled": sorted(unlabeled_ids),
            "dataset": dataset,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:RUN_KEY_LENGTH]


def checkpoint_dir(
    checkpoint_root: str | Path,
    cfg: TrainConfig,
    labeled_ids: Sequence[str],
    unlabeled_ids: Sequence[str],
    class_metadata: dict[str, Any],
) -> Path:
    """``<checkpoint_root>/<method>-<run key>``: one folder per configuration and data."""
    key = run_key(cfg, labeled_ids, unlabeled_ids, class_metadata)
    return Path(checkpoint_root) / f"{cfg.method.name}-{key}"
