"""From the catalog's data (trained networks, manifest, unlabeled split) to the ranked table of
images to label next and their proposed masks.

Kept out of the node so it stays a few lines, and out of the core, which knows nothing of
manifests or Kedro parameters. The scoring itself is ``core.acquisition``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from mkdseg.core.acquisition import Scored, ScoreSettings, same_size_batches, score_pool
from mkdseg.core.data import ImagePoolDataset
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.prediction.segmenter import networks_from_bundle
from mkdseg.core.runtime import resolve_device
from mkdseg.progress import CountProgress
from mkdseg.training_inputs import images_for

log = logging.getLogger(__name__)
TABLE_COLUMNS = ("rank", "id", "image_path", "score", "scored_by", "proposed_mask")
SHARE_PREFIX = "share."  # one column per class: the share of the image predicted as that class
PIPELINE_KEYS = ("device", "num_workers")  # `labelling` keys the node reads, not the scorer


@dataclass
class Proposals:
    """Proposed masks of the best-scored images, ready to correct and copy into ``masks/``."""

    masks: dict[str, np.ndarray]  # file stem -> class indices (H, W), best first
    images: dict[str, str]  # file stem -> the image's path
    encoding: MaskEncoding = field(default_factory=MaskEncoding)
    colours: list[list[int]] = field(default_factory=list)


def file_stem(image_id: str) -> str:
    """A proposal's file name (without suffix): the id, folders joined by ``__`` (ids of the
    ``unlabeled/`` pool are relative paths)."""
    return image_id.replace("/", "__")


def score_settings(labelling: dict[str, Any]) -> ScoreSettings:
    """The scorer's settings from the ``labelling`` parameter block; an unknown key is named."""
    known = {f.name for f in fields(ScoreSettings)} | set(PIPELINE_KEYS)
    if unknown := sorted(set(labelling) - known):
        raise ValueError(f"unknown labelling parameter(s) {unknown}; known: {sorted(known)}")
    return ScoreSettings(**{k: v for k, v in labelling.items() if k not in PIPELINE_KEYS})


def applicable(settings: ScoreSettings, networks: int) -> ScoreSettings:
    """``disagreement`` needs two networks; a one-network method (supervised) scores by its
    entropy instead, with a warning, rather than failing after training."""
    if settings.score == "disagreement" and networks < 2:
        log.warning(
            "labelling.score 'disagreement' needs two networks or more; this method trained "
            "one, so images are ranked by its entropy"
        )
        return replace(settings, score="entropy")
    return settings


def score_unlabeled(
    networks_bundle: dict,
    image_paths: Sequence[str],
    settings: ScoreSettings,
    device: str = "auto",
    num_workers: int = 0,
) -> Scored:
    """Score every image with the bundle's networks, with a progress bar."""
    networks = list(networks_from_bundle(networks_bundle).values())
    settings = applicable(settings, len(networks))
    dataset = ImagePoolDataset(image_paths, settings.long_side)
    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers)
    batches = same_size_batches(loader, settings.batch_size, settings.batch_pixels)
    with CountProgress(len(dataset), f"scoring {len(dataset)} unlabeled images") as bar:
        return score_pool(
            networks,
            batches,
            len(dataset),
            len(networks_bundle["class_names"]),
            settings,
            resolve_device(device),
            bar.update,
        )


def ranked_table(
    ids: Sequence[str], paths: Sequence[str], scored: Scored, class_names: Sequence[str]
) -> pd.DataFrame:
    """One row per image from the highest score down: rank, id, path, score, proposed mask file
    (empty beyond the proposals), predicted class shares."""
    order = scored.ranking()
    proposed = {ids[i] for i in scored.proposals}
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "id": [ids[i] for i in order],
            "image_path": [str(paths[i]) for i in order],
            "score": scored.scores[order],
            "scored_by": scored.score,  # disagreement, or entropy where one network was trained
        }
    )
    table["proposed_mask"] = [
        f"masks/{file_stem(i)}.png" if i in proposed else "" for i in table["id"]
    ]
    shares = pd.DataFrame(
        scored.class_shares[order], columns=[f"{SHARE_PREFIX}{n}" for n in class_names]
    )
    return pd.concat([table, shares], axis=1)


def empty_table(class_names: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=[*TABLE_COLUMNS, *(f"{SHARE_PREFIX}{n}" for n in class_names)])


def rank_pool(
    networks_bundle: dict,
    manifest: pd.DataFrame,
    class_metadata: dict,
    unlabeled_ids: Sequence[str],
    labelling: dict[str, Any],
) -> tuple[pd.DataFrame, Proposals]:
    """The ranked table of the unlabeled split and the proposed masks of its top images."""
    settings, names = score_settings(labelling), class_metadata["names"]
    encoding = MaskEncoding.from_dict(class_metadata.get("mask_encoding"))
    proposals = Proposals({}, {}, encoding, class_metadata["colours"])
    if not unlabeled_ids:
        return empty_table(names), proposals
    paths = images_for(manifest, unlabeled_ids, "unlabeled")
    scored = score_unlabeled(
        networks_bundle,
        paths,
        settings,
        labelling.get("device", "auto"),
        labelling.get("num_workers", 0),
    )
    for index, mask in scored.proposals.items():
        stem = file_stem(unlabeled_ids[index])
        if stem in proposals.masks:
            raise ValueError(
                f"two proposed images share the file name {stem!r} (ids with '/' and '__'); "
                "rename one of them"
            )
        proposals.masks[stem], proposals.images[stem] = mask, str(paths[index])
    return ranked_table(unlabeled_ids, paths, scored, names), proposals


def summary_metrics(table: pd.DataFrame, proposals: Proposals) -> dict[str, float]:
    """What the tracking hook logs: pool size, proposals written, the score's spread."""
    scores = table["score"].to_numpy(dtype=float)
    metrics = {"scored_images": float(len(table)), "proposed_masks": float(len(proposals.masks))}
    if len(scores):
        metrics |= {
            "score_max": float(scores.max()),
            "score_median": float(np.median(scores)),
            "score_min": float(scores.min()),
        }
    return metrics
