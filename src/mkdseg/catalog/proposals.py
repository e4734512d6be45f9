"""The folder of images to label next: ``images/`` (copies) and ``masks/`` (proposed masks in the
dataset's own mask encoding), open in a labelling tool, correct, copy into the dataset.

The folder is replaced as a whole (written beside it, then renamed into place): proposals of
an earlier run never mix with this run's, and an interrupted save leaves the old folder.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from kedro.io import DatasetError
from kedro_datasets._typing import ImagePreview

from mkdseg.catalog.datasets import JSONDataset, LocalFileDataset
from mkdseg.core.image_io import MaskEncoding, read_image, read_mask, write_mask
from mkdseg.labelling import Proposals
from mkdseg.reporting.prediction_grid import array_to_png_bytes
from mkdseg.visualization import overlay_mask

IMAGES, MASKS, INDEX = "images", "masks", "proposals.json"


class ProposalsDataset(LocalFileDataset):
    """``Proposals`` as a folder: ``images/<stem><suffix>``, ``masks/<stem>.png`` and
    ``proposals.json`` (the order, the mask encoding and the class colours, for ``load``)."""

    def save(self, data: Proposals) -> None:
        target = self.filepath
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            (staging / IMAGES).mkdir()
            (staging / MASKS).mkdir()
            images = {}
            for stem, mask in data.masks.items():
                source = Path(data.images[stem])
                images[stem] = f"{IMAGES}/{stem}{source.suffix.lower()}"
                shutil.copyfile(source, staging / images[stem])
                write_mask(mask, data.encoding, data.colours, staging / MASKS / f"{stem}.png")
            index = {"order": list(data.masks), "images": images, "sources": data.images}
            index |= {"encoding": data.encoding.to_dict(), "colours": data.colours}
            JSONDataset(str(staging / INDEX)).save(index)
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if target.exists():
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
        return Proposals(masks, dict(index["sources"]), encoding, index["colours"])

    def preview(self) -> ImagePreview:
        """The best-scored image with its proposed mask laid over it."""
        try:
            proposals = self.load()
        except DatasetError:
            return ImagePreview("")
        if not proposals.masks:
            return ImagePreview("")
        stem, mask = next(iter(proposals.masks.items()))
        image = read_image(next((self.filepath / IMAGES).glob(f"{stem}.*")))
        tile = np.asarray(overlay_mask(image, mask, [tuple(c) for c in proposals.colours]))
        return ImagePreview(base64.b64encode(array_to_png_bytes(tile)).decode())

    def _exists(self) -> bool:
        return (self.filepath / INDEX).is_file()
