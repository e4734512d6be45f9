"""Ingestion benchmark: a folder with a few masked images and a large unlabeled pool.

    .venv/bin/python benchmarks/bench_ingestion.py [--unlabeled 20000] [--size 512] [--dir DIR]

Writes (once; reused while its stamp matches) ``--masked`` images with masks in ``images/`` and
``masks/``, ``--unmasked`` images without masks beside them and ``--unlabeled`` JPEGs of
``--size`` px in ``unlabeled/clip_NNN/`` (video-frame-like nesting), then times the folder
source's ``build_manifest`` twice and prints images/s:

- ``first``: no validation cache, every file decoded;
- ``rerun``: after masking ``--add-masks`` of the unmasked images, through the cache the first
  pass wrote: only the changed samples are read again.

``cpu_per_wall`` is the process's CPU seconds per wall second: above 1 means both cores decode.
The JPEGs repeat a few dozen encoded pictures (colour fields with shapes and pixel noise, about
the size of photos at 512 px), so writing the set is quick while every file is decoded for real.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mkdseg.core.atomic import atomic_write_text
from mkdseg.sources.manifest import build_manifest

CLASSES = [{"name": "background", "colour": [0, 0, 0]}, {"name": "thing", "colour": [200, 0, 0]}]
TEMPLATES = 48  # distinct encoded pictures the pool cycles through
NOISE_STD = 8.0  # pixel noise: 512 px JPEGs of ~70 KB at quality 90, as photos are (13 KB without)
FRAMES_PER_CLIP = 500  # unlabeled/clip_NNN/frame_NNNN.jpg
JPEG_QUALITY = 90
STAMP = "bench_ingestion.json"


def _picture(rng: np.random.Generator, size: int) -> tuple[Image.Image, np.ndarray]:
    """A smooth colour field with a few ellipses and pixel noise, and the ellipses' mask."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(0, 255, 3) + rng.uniform(-80, 80, 3) * x[..., None]
    base = base + rng.uniform(-80, 80, 3) * y[..., None]
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), 0)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(0, size * 0.7, 2)
        box = [
            x0,
            y0,
            x0 + rng.uniform(size * 0.05, size * 0.3),
            y0 + rng.uniform(size * 0.05, size * 0.3),
        ]
        ImageDraw.Draw(image).ellipse(box, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        ImageDraw.Draw(mask).ellipse(box, fill=1)
    noisy = np.asarray(image, np.float32) + rng.normal(0, NOISE_STD, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), np.asarray(mask)


def _jpeg(image: Image.Image) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def write_dataset(root: Path, masked: int, unmasked: int, unlabeled: int, size: int) -> None:
    """The benchmark folder, reused when its stamp says it was written with these numbers."""
    spec = {"masked": masked, "unmasked": unmasked, "unlabeled": unlabeled, "size": size}
    spec["noise_std"] = NOISE_STD
    stamp = root / STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == spec:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    pictures = [_picture(rng, size) for _ in range(TEMPLATES)]
    encoded = [_jpeg(image) for image, _ in pictures]
    for folder in ("images", "masks"):
        (root / folder).mkdir(parents=True)
    for i in range(masked + unmasked):
        (root / "images" / f"img{i:05d}.jpg").write_bytes(encoded[i % TEMPLATES])
        if i < masked:
            Image.fromarray(pictures[i % TEMPLATES][1]).save(root / "masks" / f"img{i:05d}.png")
    for i in range(unlabeled):
        clip = root / "unlabeled" / f"clip_{i // FRAMES_PER_CLIP:03d}"
        clip.mkdir(parents=True, exist_ok=True)
        (clip / f"frame_{i % FRAMES_PER_CLIP:04d}.jpg").write_bytes(encoded[i % TEMPLATES])
    atomic_write_text(stamp, json.dumps(spec))


def timed_ingestion(root: Path, cache: Path | None) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds per wall second, samples in the manifest)."""
    params = {
        "source": "folder",
        "root": str(root),
        "folder": {"classes": CLASSES, "val_fraction": 0.2},
        "validation_cache": str(cache) if cache else "",
    }
    cpu, wall = time.process_time(), time.perf_counter()
    manifest, _, _ = build_manifest(params, root)
    wall = time.perf_counter() - wall
    return wall, (time.process_time() - cpu) / wall, len(manifest)


def add_masks(root: Path, first: int, count: int) -> None:
    """Mask ``count`` of the unmasked images (as a user labelling a few more would)."""
    for i in range(first, first + count):
        with Image.open(root / "images" / f"img{i:05d}.jpg") as image:
            size = image.size
        mask = np.zeros(size[::-1], np.uint8)
        mask[: size[1] // 2] = 1
        Image.fromarray(mask).save(root / "masks" / f"img{i:05d}.png")


def cpu_model() -> str:
    """The processor's name as lscpu shows it (the figure depends on the machine)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="folder-source ingestion throughput")
    parser.add_argument("--masked", type=int, default=100)
    parser.add_argument("--unmasked", type=int, default=100)
    parser.add_argument("--unlabeled", type=int, default=20000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--add-masks", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/mkdseg_bench_ingestion"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("mkdseg.sources.manifest").setLevel(logging.INFO)  # counts, cache hits
    if args.add_masks > args.unmasked:
        parser.error("--add-masks must be at most --unmasked")
    root = args.dir / "data"
    write_dataset(root, args.masked, args.unmasked, args.unlabeled, args.size)
    for mask in sorted((root / "masks").glob("*.png"))[args.masked :]:
        mask.unlink()  # a previous run's added masks: start from the same folder every time
    cache = args.dir / "validation_cache"
    shutil.rmtree(cache, ignore_errors=True)
    print(f"cpu={cpu_model()!r} cores={os.cpu_count()}")
    wall, cpu, n = timed_ingestion(root, cache)
    print(f"first: {n} images in {wall:.1f} s = {n / wall:.0f} images/s cpu_per_wall={cpu:.2f}")
    add_masks(root, args.masked, args.add_masks)
    wall, cpu, n = timed_ingestion(root, cache)
    print(
        f"rerun (+{args.add_masks} masks): {n} images in {wall:.2f} s = {n / wall:.0f} images/s "
        f"cpu_per_wall={cpu:.2f}"
    )


if __name__ == "__main__":
    main()
