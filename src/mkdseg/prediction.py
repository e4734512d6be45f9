"""Segment a folder of new images with a trained model: palette masks and overlays.

An unreadable image is reported and skipped; the others are still processed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from mkdseg.core.export import Segmenter
from mkdseg.core.image_io import atomic_save, read_image, write_palette_mask
from mkdseg.visualization import overlay_mask

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
READ_ERRORS = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"prediction.input_dir {folder} is not a directory; put the images to segment there")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


@torch.no_grad()
def segment(segmenter: Segmenter, image: np.ndarray, device: torch.device,
            long_side: int | None = None) -> np.ndarray:
    """Class indices (H, W) for one uint8 RGB image, predicted at ``long_side`` as in evaluation."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].to(device).float() / 255
    size = tuple(x.shape[-2:])
    if long_side is not None:
        scale = long_side / max(size)
        x = F.interpolate(x, size=(max(1, round(size[0] * scale)), max(1, round(size[1] * scale))),
                          mode="bilinear", align_corners=False, antialias=True)
    logits = F.interpolate(segmenter(x), size=size, mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def predict_folder(segmenter: Segmenter, input_dir: str | Path, output_dir: str | Path,
                   colours: list[list[int]], device: str = "cpu", long_side: int | None = None) -> list[dict[str, str]]:
    """Write ``<stem>.png`` (palette mask) and ``<stem>_overlay.jpg`` per image; return one record each."""
    device_ = torch.device(device)
    segmenter = segmenter.to(device_).eval()
    output_dir = Path(output_dir)
    records = []
    images = list_images(input_dir)
    for n, path in enumerate(images, start=1):
        try:
            image = read_image(path)
        except READ_ERRORS as exc:
            log.warning("skipping %s: %s", path, exc)
            records.append({"image": str(path), "status": "skipped", "reason": f"unreadable: {exc}",
                            "mask": "", "overlay": ""})
            continue
        mask = segment(segmenter, image, device_, long_side)
        mask_path, overlay_path = output_dir / f"{path.stem}.png", output_dir / f"{path.stem}_overlay.jpg"
        write_palette_mask(mask, colours, mask_path)
        atomic_save(Image.fromarray(overlay_mask(image, mask, colours)), overlay_path, format="JPEG", quality=90)
        records.append({"image": str(path), "status": "ok", "reason": "", "mask": str(mask_path),
                        "overlay": str(overlay_path)})
        log.info("segmented %d/%d: %s", n, len(images), path.name)
    return records
