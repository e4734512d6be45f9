"""Segment a folder of new images with a trained model: palette masks and overlays.

An unreadable image is reported and skipped; the others are still processed. The model is a
``Segmenter`` (bundle file, or an MLflow ``pickle`` model) or the exported graph an MLflow
``pt2`` model loads as: both take RGB floats in [0, 1] and return logits at the input size.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from mkdseg.core.class_map import class_map
from mkdseg.core.image_io import atomic_save, read_image, to_unit_float, write_palette_mask
from mkdseg.core.prediction.segmenter import Segmenter
from mkdseg.core.visualization import overlay_mask

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"prediction.input_dir {folder} is not a directory; put the images to segment there"
        )
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def place(model: nn.Module, device: torch.device) -> tuple[nn.Module, torch.device]:
    """The model ready for inference, and the device it runs on.

    A ``Segmenter`` moves to ``device``; an exported graph (MLflow ``pt2``) is already in
    inference mode and cannot move across devices, so it runs where its weights are.
    """
    if isinstance(model, Segmenter):
        return model.to(device).eval(), device
    own = next(model.parameters()).device
    if own != device:
        log.warning(
            "the MLflow model runs on %s, where it was exported (prediction.device asked for %s)",
            own,
            device,
        )
    return model, own


@torch.no_grad()
def segment(
    segmenter: nn.Module, image: np.ndarray, device: torch.device, long_side: int | None = None
) -> np.ndarray:
    """Class indices (H, W) for one uint8 RGB image, predicted at ``long_side`` as in evaluation."""
    # torch.tensor copies: images decoded by PIL are read-only arrays, which from_numpy would share.
    x = to_unit_float(torch.tensor(image).permute(2, 0, 1)[None].to(device))
    size = tuple(x.shape[-2:])
    if long_side is not None:
        scale = long_side / max(size)
        x = F.interpolate(
            x,
            size=(max(1, round(size[0] * scale)), max(1, round(size[1] * scale))),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )
    logits = F.interpolate(segmenter(x), size=size, mode="bilinear", align_corners=False)
    return class_map(logits)[0].to(torch.uint8).cpu().numpy()


def predict_folder(
    segmenter: nn.Module,
    input_dir: str | Path,
    output_dir: str | Path,
    colours: list[list[int]],
    device: str = "cpu",
    long_side: int | None = None,
) -> list[dict[str, str]]:
    """Write ``<stem>.png`` (palette mask) and ``<stem>_overlay.jpg`` per image; return one
    record each."""
    segmenter, device_ = place(segmenter, torch.device(device))
    output_dir = Path(output_dir)
    records = []
    images = list_images(input_dir)
    for n, path in enumerate(images, start=1):
        try:
            image = read_image(path)
        except READ_ERRORS as exc:
            log.warning("skipping %s: %s", path, exc)
            records.append(
                {
                    "image": str(path),
                    "status": "skipped",
                    "reason": f"unreadable: {exc}",
                    "mask": "",
                    "overlay": "",
                }
            )
            continue
        mask = segment(segmenter, image, device_, long_side)
        if int(mask.max()) >= len(colours):
            raise ValueError(
                f"the model predicted class {int(mask.max())} for {path}, but class_metadata has "
                f"{len(colours)} classes: prediction_model_uri names a model trained on other data"
            )
        mask_path, overlay_path = (
            output_dir / f"{path.stem}.png",
            output_dir / f"{path.stem}_overlay.jpg",
        )
        write_palette_mask(mask, colours, mask_path)
        atomic_save(
            Image.fromarray(overlay_mask(image, mask, colours)),
            overlay_path,
            format="JPEG",
            quality=90,
        )
        records.append(
            {
                "image": str(path),
                "status": "ok",
                "reason": "",
                "mask": str(mask_path),
                "overlay": str(overlay_path),
            }
        )
        log.info("segmented %d/%d: %s", n, len(images), path.name)
    return records
