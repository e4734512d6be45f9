"""Generated datasets (the embedded ``synthetic`` and ``textures`` sources): what they share.

A sample depends only on ``(seed, subset, index)`` (its own random generator, ``SUBSET_CODES``
giving each subset its own stream), so the output is byte-identical for the same parameters and
growing ``n_train`` keeps existing samples. ``GeneratedSource`` writes a set in Pascal VOC's layout
into a temporary folder (so single files need no atomic writes), writes the
``mkdseg_<name>.json`` stamp last and renames the folder into place; a matching stamp means the
data is reused. The drawing is each source's own (``synthetic.py``, ``textures.py``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from mkdseg.core.image_io import palette_bytes
from mkdseg.sources.validation import TEST_SUBSET, ReaderResult, Sample
from mkdseg.sources.voc import (
    IMAGE_DIR,
    IMAGE_SUFFIX,
    LIST_DIR,
    MASK_DIR,
    MASK_SUFFIX,
    read_id_list,
    read_voc,
    voc_colour_map,
)

logger = logging.getLogger(__name__)

SUBSET_CODES = {"train": 0, "val": 1, TEST_SUBSET: 2}  # part of each sample's seed: own streams
PROGRESS_STEPS = 10  # log every ~10 %
MAX_JPEG_QUALITY = 95  # PIL's documented useful maximum
P = TypeVar("P")


def sample_id(subset: str, index: int) -> str:
    return f"{subset}_{index:05d}"


def params_from_dict(cls: type[P], data: dict | None, section: str) -> P:
    """Build a generator's params from YAML, which may give 96.0 or "96" for an int field."""
    data = dict(data or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{section} has unknown keys {unknown}; known: {sorted(known)}")
    for key, value in data.items():  # coerce to the field's type (the default's type)
        kind = type(getattr(cls, key))
        if not isinstance(value, int | float | str) or (kind is int and float(value) % 1):
            raise ValueError(f"{section}.{key} must be a {kind.__name__}, got {value!r}")
        data[key] = kind(float(value)) if kind is int else kind(value)
    params = cls(**data)
    params.check()
    return params


class GeneratorParams(Protocol):
    """What the shared writer needs of a generator's params dataclass."""

    n_train: int
    n_val: int
    n_test: int
    jpeg_quality: int

    def check(self) -> None: ...


@dataclass(frozen=True)
class GeneratedSource:
    """A generated source: what differs (name, classes, drawing); writing and reading are shared.

    ``name`` gives the stamp file ``mkdseg_<name>.json``, the ``mkdseg.<name>`` generator in it
    and the ``dataset.<name>`` parameter section.
    """

    name: str
    classes: tuple[str, ...]
    version: int  # bump whenever drawing changes, so stale data is regenerated
    params_type: type  # a frozen dataclass with from_dict, check, n_train, n_val, jpeg_quality
    render: Callable[[Any, str, int], tuple[np.ndarray, np.ndarray]]  # (params, subset, index)
    # PIL's JPEG chroma subsampling: -1 its default (4:2:0, colour at half resolution); 0 keeps
    # colour at full resolution (4:4:4), which textures told apart by colour need
    chroma_subsampling: int = -1

    @property
    def stamp_name(self) -> str:
        return f"mkdseg_{self.name}.json"

    def colours(self) -> list[list[int]]:
        return voc_colour_map(len(self.classes))

    def params(self, data: dict | GeneratorParams | None) -> GeneratorParams:
        params = data if isinstance(data, self.params_type) else self.params_type.from_dict(data)
        params.check()
        return params

    def stamp(self, params: GeneratorParams) -> dict:
        return {
            "generator": f"mkdseg.{self.name}",
            "version": self.version,
            "params": asdict(params),
        }

    def generate(self, root: Path, data: dict | GeneratorParams | None = None) -> bool:
        """Write the set under ``root`` in the VOC layout unless a matching one is there; True if
        written. Foreign folders (no stamp of this source) are refused, never overwritten."""
        params, root, label = self.params(data), Path(root), self.name
        stamp = self.stamp(params)
        if _stamp_matches(root, self.stamp_name, stamp):
            logger.info("%s data in %s is up to date; reusing it", label, root)
            return False
        if root.exists() and any(root.iterdir()) and not (root / self.stamp_name).is_file():
            raise FileExistsError(
                f"dataset.root {root} is not empty and holds no {self.stamp_name}: it was not made "
                f"by the {label} generator, so it is left alone. Point dataset.root at a new "
                "folder or empty this one."
            )
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        logger.info(
            "generating %s data (%d train, %d val, %d test) in %s",
            label,
            params.n_train,
            params.n_val,
            params.n_test,
            root,
        )
        try:
            self._write_all(tmp, params)
            text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
            (tmp / self.stamp_name).write_text(text, encoding="utf-8")  # last: marks it complete
            _swap_into_place(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True

    def read(self, root: Path, data: dict | GeneratorParams | None = None) -> ReaderResult:
        """Generate (or reuse) the set, then read it with the VOC reader; the test split (a
        list VOC's reader does not know) is added here."""
        self.generate(root, data)
        result = read_voc(root, augmented=False)
        samples = result.samples + _test_samples(Path(root))
        return replace(
            result, samples=samples, class_names=list(self.classes), colours=self.colours()
        )

    def _write_all(self, out: Path, params: GeneratorParams) -> None:
        palette = palette_bytes(self.colours())
        for folder in (IMAGE_DIR, MASK_DIR, LIST_DIR):
            (out / folder).mkdir(parents=True)
        counts = {"train": params.n_train, "val": params.n_val, TEST_SUBSET: params.n_test}
        counts = {subset: count for subset, count in counts.items() if count > 0}
        total, done, start = sum(counts.values()), 0, time.perf_counter()
        step = max(1, total // PROGRESS_STEPS)
        for subset, count in counts.items():
            ids = [sample_id(subset, i) for i in range(count)]
            for index, name in enumerate(ids):
                image, labels = self.render(params, subset, index)
                Image.fromarray(image).save(
                    out / IMAGE_DIR / f"{name}.jpg",
                    format="JPEG",
                    quality=params.jpeg_quality,
                    subsampling=self.chroma_subsampling,
                )
                mask = Image.fromarray(labels)  # mode L; putpalette: a VOC-style palette PNG
                mask.putpalette(palette)
                mask.save(out / MASK_DIR / f"{name}.png", format="PNG")
                done += 1
                if done % step == 0 or done == total:
                    rate = done / max(time.perf_counter() - start, 1e-9)
                    logger.info(
                        "%s data: %d/%d images (%.0f images/s)", self.name, done, total, rate
                    )
            (out / LIST_DIR / f"{subset}.txt").write_text(
                "".join(f"{i}\n" for i in ids), encoding="utf-8"
            )


def _test_samples(root: Path) -> list[Sample]:
    """The generated test split (``test.txt``), if the set has one."""
    listed = root / LIST_DIR / f"{TEST_SUBSET}.txt"
    if not listed.is_file():
        return []
    return [
        Sample(
            i,
            TEST_SUBSET,
            root / IMAGE_DIR / f"{i}{IMAGE_SUFFIX}",
            root / MASK_DIR / f"{i}{MASK_SUFFIX}",
        )
        for i in read_id_list(listed)
    ]


def _stamp_matches(root: Path, stamp_name: str, stamp: dict) -> bool:
    try:
        return json.loads((root / stamp_name).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Replace ``root`` by ``tmp`` with renames, so ``root`` is never a half-written dataset."""
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    if root.exists():
        os.replace(root, old)
    os.replace(tmp, root)
    shutil.rmtree(old, ignore_errors=True)
