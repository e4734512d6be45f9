"""Ingestion nodes: thin wrappers; the reading and validation live in ``mkdseg.sources``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from mkdseg.catalog.paths import project_root, resolve_path
from mkdseg.core.image_io import MaskEncoding, read_image, read_mask
from mkdseg.core.visualization import image_grid, overlay_mask
from mkdseg.sources import manifest as sources_manifest
from mkdseg.sources.validation import EXTRA, MASKED, NO_MASK, TEST_SUBSET

logger = logging.getLogger(__name__)

PREFERRED_SUBSET = "val"  # the grid shows what evaluation will see
GRID_KEYS = ("rows", "cols", "tile_size", "alpha")


def build_manifest(
    dataset: dict[str, Any],
) -> tuple[pd.DataFrame, dict, pd.DataFrame, dict[str, int]]:
    """Manifest, class metadata and quarantine of the configured source, plus counts to track."""
    manifest, class_metadata, quarantine = sources_manifest.build_manifest(dataset, project_root())
    return manifest, class_metadata, quarantine, ingestion_summary(manifest, quarantine)


def ingestion_summary(manifest: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, int]:
    """Training images by origin, the test images (a generated set's split the comparison
    reports; 0 when there is none) and how many samples were quarantined. The validation count
    is the splits node's ``n_val`` (logged once on the parent run, not twice)."""
    counts = manifest["subset"].value_counts()
    origins = manifest.loc[manifest["subset"] == "train", "origin"].value_counts()
    return {
        "n_train": int(counts.get("train", 0)),
        "n_train_masked": int(origins.get(MASKED, 0)),
        "n_train_no_mask": int(origins.get(NO_MASK, 0)),
        "n_train_extra": int(origins.get(EXTRA, 0)),
        "n_test": int(counts.get(TEST_SUBSET, 0)),
        "n_quarantined": len(quarantine),
    }


def draw_sample_grid(
    manifest: pd.DataFrame, class_metadata: dict, grid: dict[str, Any]
) -> np.ndarray:
    """A rows x cols grid of validation images with their masks overlaid (training images when
    there is no validation subset)."""
    missing = [key for key in GRID_KEYS if key not in grid]
    if missing:
        raise ValueError(
            f"parameters 'sample_grid' miss {missing}: see conf/base/parameters_ingestion.yml"
        )
    rows = pick_samples(manifest, int(grid["rows"]) * int(grid["cols"]))
    root = resolve_path(class_metadata["root"])
    encoding = MaskEncoding.from_dict(class_metadata.get("mask_encoding"))
    tiles = [
        _tile(
            row,
            root,
            encoding,
            class_metadata["colours"],
            int(grid["tile_size"]),
            float(grid["alpha"]),
        )
        for row in rows.itertuples(index=False)
    ]
    return image_grid(tiles, ncols=int(grid["cols"]))


def pick_samples(manifest: pd.DataFrame, count: int) -> pd.DataFrame:
    """``count`` samples spread evenly over the (sorted) validation subset."""
    if manifest.empty:
        raise ValueError("the manifest is empty: nothing to draw (check the dataset parameters)")
    subset = manifest[manifest["subset"] == PREFERRED_SUBSET]
    if subset.empty:
        logger.warning("No validation samples: the sample grid shows masked training samples.")
        subset = manifest[manifest["mask_path"] != ""]
    subset = subset.sort_values("id")
    positions = np.unique(
        np.linspace(0, len(subset) - 1, num=min(count, len(subset))).round().astype(int)
    )
    return subset.iloc[positions]


def _tile(
    row: Any, root: Any, encoding: MaskEncoding, colours: list, size: int, alpha: float
) -> np.ndarray:
    image = read_image(resolve_path(row.image_path, root))
    mask = read_mask(resolve_path(row.mask_path, root), encoding)
    overlay = Image.fromarray(overlay_mask(image, mask, colours, alpha=alpha))
    overlay.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(overlay, dtype=np.uint8)
