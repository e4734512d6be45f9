"""The folder of images to label next: ``images/`` (copies) and ``masks/`` (proposed masks in the
dataset's own mask encoding), open in a labelling tool, correct, copy into the dataset.

The folder is replaced as a whole (written beside it, then renamed into place): proposals of
an earlier run never mix with this run's, and an interrupted save leaves the old folder. An
earlier folder whose masks were edited (corrections not yet copied into the dataset) is moved
aside as ``<name>.edited-<time>`` with a warning, never deleted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import shutil
import time
from pathlib import Path

import numpy as np
from kedro.io import DatasetError
from kedro_datasets._typing import ImagePreview

from mkdseg.catalog.datasets import JSONDataset, LocalFileDataset
from mkdseg.core.image_io import MaskEncoding, read_image, read_mask, write_mask
from mkdseg.core.visualization import overlay_mask
from mkdseg.labelling import Proposals
from mkdseg.reporting.prediction_grid import array_to_png_bytes

IMAGES, MASKS, INDEX = "images", "masks", "proposals.json"
FOLDER_MODE = 0o777  # as mkdir: the umask removes what the user denies
STAGING_NAME_BYTES = 6
log = logging.getLogger(__name__)


class ProposalsDataset(LocalFileDataset):
    """``Proposals`` as a folder: ``images/<stem><suffix>``, ``masks/<stem>.png`` and
    ``proposals.json`` (the order, the mask encoding, the class colours and each mask's SHA-256,
    for ``load`` and to notice corrections)."""

    def save(self, data: Proposals) -> None:
        target = self.filepath
        target.parent.mkdir(parents=True, exist_ok=True)
        # os.mkdir applies the umask (mkdtemp's 0700 would hide the folder from a labelling tool
        # run by another user); the random name cannot clash with another writer's.
        staging = target.with_name(f".{target.name}.{secrets.token_hex(STAGING_NAME_BYTES)}")
        staging.mkdir(mode=FOLDER_MODE)
        try:
            index = _write(staging, data)
            JSONDataset(str(staging / INDEX)).save(index)
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if (kept := _keep_corrections(target)) is not None:
                log.warning(
                    "%s holds masks edited since they were proposed; moved to %s (copy them into "
                    "your dataset's masks/ before the next run)",
                    target,
                    kept,
                )
            elif target.exists():
                target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def load(self) -> Proposals:
        index_path = self.filepath / INDEX
        if not index_path.is_file():
            raise DatasetError(
                f"no proposals at {self.filepath}: run `kedro run --pipelines labelling` first"
            )
        index = json.loads(index_path.read_text(encoding="utf-8"))
        encoding = MaskEncoding.from_dict(index["encoding"])
        masks = {
            stem: read_mask(self.filepath / MASKS / f"{stem}.png", encoding)
            for stem in index["order"]
        }
        # The copies, which stay where they are when the user moves the originals.
        images = {stem: str(self.filepath / index["images"][stem]) for stem in index["order"]}
        return Proposals(masks, images, encoding, index["colours"])

    def preview(self) -> ImagePreview:
        """The best-scored image with its proposed mask laid over it."""
        try:
            proposals = self.load()
        except DatasetError:
            return ImagePreview("")
        if not proposals.masks:
            return ImagePreview("")
        stem, mask = next(iter(proposals.masks.items()))
        image = read_image(proposals.images[stem])
        tile = np.asarray(overlay_mask(image, mask, [tuple(c) for c in proposals.colours]))
        return ImagePreview(base64.b64encode(array_to_png_bytes(tile)).decode())

    def _exists(self) -> bool:
        return (self.filepath / INDEX).is_file()


def _write(folder: Path, data: Proposals) -> dict:
    """Copy the images and write the masks into ``folder``; return the index."""
    (folder / IMAGES).mkdir()
    (folder / MASKS).mkdir()
    images, digests = {}, {}
    for stem, mask in data.masks.items():
        source = Path(data.images[stem])
        images[stem] = f"{IMAGES}/{stem}{source.suffix.lower()}"
        shutil.copyfile(source, folder / images[stem])
        mask_path = folder / MASKS / f"{stem}.png"
        write_mask(mask, data.encoding, data.colours, mask_path)
        digests[stem] = _sha256(mask_path)
    return {
        "order": list(data.masks),
        "images": images,
        "sources": data.images,
        "mask_sha256": digests,
        "encoding": data.encoding.to_dict(),
        "colours": data.colours,
    }


def _keep_corrections(target: Path) -> Path | None:
    """Move an earlier proposals folder aside when a mask in it was edited (a correction not yet
    copied into the dataset) instead of deleting it; return where it went, else None."""
    index_path = target / INDEX
    if not index_path.is_file():
        return None
    digests = json.loads(index_path.read_text(encoding="utf-8")).get("mask_sha256", {})
    edited = [
        stem
        for stem, digest in digests.items()
        if (mask := target / MASKS / f"{stem}.png").is_file() and _sha256(mask) != digest
    ]
    if not edited:
        return None
    kept = target.with_name(f"{target.name}.edited-{time.strftime('%Y%m%d-%H%M%S')}")
    target.rename(kept)
    return kept


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
