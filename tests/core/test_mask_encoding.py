"""Proposed masks are written in the dataset's own encoding and read back as the same classes."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mkdseg.core.image_io import (
    IGNORE_INDEX,
    MaskEncoding,
    encode_mask,
    read_mask,
    write_mask,
)

COLOURS = [[0, 0, 0], [128, 0, 0], [0, 128, 0], [10, 20, 30]]
# Cityscapes-like: stored ids 7..10 are classes 0..3, everything else ignore.
LUT = tuple([IGNORE_INDEX] * 7 + [0, 1, 2, 3] + [IGNORE_INDEX] * 245)
ENCODINGS = {
    "index": MaskEncoding(),
    "rgb": MaskEncoding("rgb", colours=tuple(tuple(c) for c in COLOURS)),
    "lut": MaskEncoding("lut", lut=LUT),
}


def _mask() -> np.ndarray:
    mask = np.random.default_rng(0).integers(0, len(COLOURS), (9, 13)).astype(np.uint8)
    mask[0, :3] = IGNORE_INDEX
    return mask


@pytest.mark.parametrize("kind", list(ENCODINGS))
def test_a_written_mask_reads_back_as_the_same_classes(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    write_mask(_mask(), ENCODINGS[kind], COLOURS, path)
    assert np.array_equal(read_mask(path, ENCODINGS[kind]), _mask())
    assert [p.name for p in tmp_path.iterdir()] == ["mask.png"]  # nothing half-written


def test_each_encoding_stores_what_its_readers_expect(tmp_path: Path) -> None:
    mask = _mask()
    assert np.array_equal(encode_mask(mask, ENCODINGS["index"]), mask)
    assert encode_mask(mask, ENCODINGS["rgb"])[1, 0].tolist() == COLOURS[mask[1, 0]]
    assert encode_mask(mask, ENCODINGS["lut"])[1, 0] == 7 + mask[1, 0]
    write_mask(mask, ENCODINGS["index"], COLOURS, tmp_path / "index.png")
    with Image.open(tmp_path / "index.png") as image:
        assert image.mode == "P"  # class ids as palette indices, shown in the class colours
        assert image.getpalette()[3:6] == COLOURS[1]


def test_a_class_the_lut_cannot_store_is_an_error() -> None:
    lut = MaskEncoding("lut", lut=tuple([0] * 10 + [IGNORE_INDEX] * 246))
    with pytest.raises(ValueError, match=r"classes \[1\] have no stored value"):
        encode_mask(np.array([[0, 1]], dtype=np.uint8), lut)
