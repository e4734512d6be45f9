"""Reading images and label masks, and writing palette masks.

One place decides how a mask file becomes class indices, so that the readers,
the training data loader and evaluation agree. ``MaskEncoding`` is plain data
(picklable, JSON-able through ``to_dict``) so data-loader workers can carry it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from mkdseg.core.atomic import atomic_path

if TYPE_CHECKING:  # the readers stay importable without loading torch
    from torch import Tensor

IGNORE_INDEX = 255
LUT_SIZE = 256
UINT8_MAX = 255
IGNORE_COLOUR = (224, 224, 192)  # VOC's boundary colour: ignore in palettes and RGB masks


@dataclass(frozen=True)
class MaskEncoding:
    """How pixel values in a mask file map to class indices.

    kind:
      - ``index``: single-channel (palette or grayscale) PNG whose values are class
        ids, 255 = ignore (Pascal VOC, SegmentationClassAug, the synthetic set).
      - ``lut``: single-channel values mapped through ``lut`` (Cityscapes labelIds).
      - ``rgb``: RGB colours mapped to classes through ``colours``; others -> 255.
    """

    kind: str = "index"
    lut: tuple[int, ...] = ()
    colours: tuple[tuple[int, int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in {"index", "lut", "rgb"}:
            raise ValueError(f"mask encoding kind must be index, lut or rgb, got {self.kind!r}")
        if self.kind == "lut" and len(self.lut) != LUT_SIZE:
            raise ValueError(f"a 'lut' mask encoding needs {LUT_SIZE} entries, got {len(self.lut)}")
        if self.kind == "rgb" and not self.colours:
            raise ValueError("an 'rgb' mask encoding needs the class colours")

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "lut": list(self.lut),
            "colours": [list(c) for c in self.colours],
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> MaskEncoding:
        if not data:
            return cls()
        return cls(
            kind=data.get("kind", "index"),
            lut=tuple(int(v) for v in data.get("lut", ())),
            colours=tuple(tuple(int(x) for x in c) for c in data.get("colours", ())),
        )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 RGB (H, W, 3)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 image tensor -> float32 in [0, 1]: what augmentation and the network take.

    One spelling of the division, so training, evaluation and prediction scale alike.
    """
    return x.float() / UINT8_MAX


def read_raw_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask file's stored values: palette indices / gray levels (H, W) or RGB (H, W, 3).

    ``Image.convert`` is avoided for palette PNGs because it would map indices to colours.
    """
    with Image.open(path) as img:
        if img.mode in {"P", "L", "I", "I;16"}:
            return np.asarray(img).astype(np.int64)
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_mask(raw: np.ndarray, encoding: MaskEncoding) -> np.ndarray:
    """Turn stored mask values into class indices (uint8, 255 = ignore)."""
    if encoding.kind == "rgb":
        if raw.ndim != 3:
            raise ValueError("an 'rgb' mask encoding needs a colour mask, got a single-channel one")
        out = np.full(raw.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        for cls, colour in enumerate(encoding.colours):
            out[np.all(raw == np.asarray(colour, dtype=raw.dtype), axis=-1)] = cls
        return out
    if raw.ndim != 2:
        raise ValueError(
            f"a {encoding.kind!r} mask encoding needs a single-channel mask, got shape {raw.shape}"
        )
    if encoding.kind == "lut":
        lut = np.asarray(encoding.lut, dtype=np.uint8)
        return lut[np.clip(raw, 0, LUT_SIZE - 1)]
    if raw.max(initial=0) >= LUT_SIZE or raw.min(initial=0) < 0:
        raise ValueError(f"mask values must be in 0..255, got {raw.min()}..{raw.max()}")
    return raw.astype(np.uint8)


def read_mask(path: str | os.PathLike, encoding: MaskEncoding | None = None) -> np.ndarray:
    """Read a mask file as class indices (uint8 (H, W), 255 = ignore)."""
    return decode_mask(read_raw_mask(path), encoding or MaskEncoding())


def palette_bytes(colours: list[list[int]] | np.ndarray) -> list[int]:
    """A 256-entry PNG palette: the class colours, then black, with 255 in VOC's boundary
    colour."""
    palette = np.zeros((LUT_SIZE, 3), dtype=np.uint8)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)[: LUT_SIZE - 1]
    palette[: len(colours)] = colours
    palette[IGNORE_INDEX] = IGNORE_COLOUR
    return palette.reshape(-1).tolist()


def atomic_save(image: Image.Image, path: str | os.PathLike, **save_kwargs: object) -> None:
    """Save through a temporary file in the same folder, then rename: never a half-written file."""
    # The temporary name ends in .tmp: the format comes from the target's extension unless given.
    save_kwargs.setdefault("format", Image.registered_extensions().get(Path(path).suffix.lower()))
    with atomic_path(path) as tmp:
        image.save(tmp, **save_kwargs)


def write_palette_mask(
    mask: np.ndarray, colours: list[list[int]] | np.ndarray, path: str | os.PathLike
) -> None:
    """Write class indices as a palette PNG (the VOC convention), atomically."""
    img = Image.fromarray(np.asarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(palette_bytes(colours))
    atomic_save(img, path, format="PNG")


def encode_mask(mask: np.ndarray, encoding: MaskEncoding) -> np.ndarray:
    """Class indices (H, W) -> the values a mask file of ``encoding`` stores: the inverse of
    ``decode_mask``. Ignore (255) stays 255 for ``index``, becomes ``IGNORE_COLOUR`` for ``rgb``
    (any colour no class has reads back as ignore) and the first value the LUT ignores."""
    mask = np.asarray(mask, dtype=np.uint8)
    if encoding.kind == "index":
        return mask
    if encoding.kind == "rgb":
        colours = np.zeros((LUT_SIZE, 3), dtype=np.uint8)
        colours[: len(encoding.colours)] = np.asarray(encoding.colours, dtype=np.uint8)
        colours[IGNORE_INDEX] = IGNORE_COLOUR
        return colours[mask]
    stored = np.zeros(LUT_SIZE, dtype=np.uint8)  # class -> the first stored value mapping to it
    for value in reversed(range(LUT_SIZE)):
        stored[encoding.lut[value]] = value
    missing = sorted(set(np.unique(mask).tolist()) - set(encoding.lut))
    if missing:
        raise ValueError(f"classes {missing} have no stored value in the mask encoding's lut")
    return stored[mask]


def write_mask(
    mask: np.ndarray,
    encoding: MaskEncoding,
    colours: list[list[int]] | np.ndarray,
    path: str | os.PathLike,
) -> None:
    """Write class indices as a mask file of ``encoding``, atomically: ``index`` as a palette PNG
    (class ids, shown in the class colours), ``lut`` as a grayscale PNG of stored ids, ``rgb``
    as colours."""
    if encoding.kind == "index":
        write_palette_mask(mask, colours, path)
        return
    mode = "RGB" if encoding.kind == "rgb" else "L"
    atomic_save(Image.fromarray(encode_mask(mask, encoding), mode=mode), path, format="PNG")
