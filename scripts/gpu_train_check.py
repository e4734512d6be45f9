"""The core trainer on a generated VOC-layout set at the release's 512 px crops (issue: GPU checks).

    python scripts/gpu_train_check.py [ROOT] [--iterations 200] [--precision bf16]

Writes a Pascal-VOC-layout folder of random blob scenes (JPEGImages, SegmentationClass palette
PNGs, ImageSets/Segmentation lists) under ROOT, reads it through the project's VOC reader,
trains MKD with conf/voc's model (DeepLabv3+ ResNet-50, 256 channels, separate view passes, no
ImageNet weights: none can be downloaded) at 512 x 512 crops, 8 labeled + 8 unlabeled images
per step on one device, and prints images/s (median after warm-up) and peak memory. Needs only
torch, torchvision, numpy, pandas and PIL: it runs where Kedro and MLflow are not installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mkdseg import training_inputs
from mkdseg.core.config import config_from_dict
from mkdseg.core.image_io import write_palette_mask
from mkdseg.core.trainer import Trainer
from mkdseg.sources.manifest import build_manifest
from mkdseg.sources.voc import voc_colour_map

IMAGE_SHAPE = (
    500,
    600,
)  # VOC images are about 500 x 375 to 500 x 500; larger than the crop on one side
WARMUP = 20  # iterations left out of the throughput median (cuDNN autotuning, allocator growth)


def write_voc_scenes(root: Path, n_train: int, n_val: int, classes: int = 21) -> None:
    """Random discs of random classes on noise: a VOC-layout set that trains like one."""
    rng = np.random.default_rng(0)
    colours = voc_colour_map(classes)
    names = [f"gen_{i:05d}" for i in range(n_train + n_val)]
    yy, xx = np.mgrid[: IMAGE_SHAPE[0], : IMAGE_SHAPE[1]]
    for name in names:
        image = rng.integers(0, 256, (*IMAGE_SHAPE, 3), dtype=np.uint8)
        mask = np.zeros(IMAGE_SHAPE, np.uint8)
        for _ in range(rng.integers(1, 4)):
            cy, cx, r, k = (
                rng.integers(50, 450),
                rng.integers(50, 550),
                rng.integers(30, 120),
                rng.integers(1, classes),
            )
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            mask[disc], image[disc] = k, colours[k]
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=90)
        write_palette_mask(mask, colours, root / "SegmentationClass" / f"{name}.png")
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "train.txt").write_text("".join(f"{n}\n" for n in names[:n_train]))
    (lists / "val.txt").write_text("".join(f"{n}\n" for n in names[n_train:]))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("root", nargs="?", default="/tmp/mkdseg-voc-layout")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--images",
        type=int,
        default=96,
        help="training images written (16 labeled, rest unlabeled)",
    )
    p.add_argument("--workers", type=int, default=4)
    p.add_argument(
        "--crop",
        type=int,
        default=512,
        help="crop size (512: the release's; smaller for a CPU smoke run)",
    )
    args = p.parse_args()
    root = Path(args.root)
    if not (root / "ImageSets").exists():
        write_voc_scenes(root, args.images, 8)
    manifest, meta, _ = build_manifest(
        {"source": "voc", "root": str(root), "voc": {"augmented": False}}, root
    )
    ids = manifest.loc[manifest["subset"] == "train", "id"].tolist()
    data = training_inputs.train_data(manifest, meta, ids[:16], ids[16:])
    cfg = config_from_dict(
        {
            "method": "mkd",
            "iterations": args.iterations,
            "batch_size": 8,
            "unlabeled_batch_size": 8,
            "device": args.device,
            "precision": args.precision,
            "num_workers": args.workers,
            "separate_view_passes": True,
            "checkpoint_every": 10**9,
            "model": {
                "backbone": "resnet50",
                "aspp_channels": 256,
                "decoder_channels": 256,
                "low_level_channels": 48,
            },
            "optim": {"lr": 0.0025},
            "augment": {"crop_size": args.crop, "base_size": 512},
        }
    )
    start = time.perf_counter()
    result = Trainer(cfg, data.num_classes).fit(data)
    seconds = time.perf_counter() - start
    steady = [h["images_per_s"] for h in result.history[WARMUP:]] or [
        result.history[-1]["images_per_s"]
    ]
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name() if cfg.device == "cuda" else "cpu",
                "precision": args.precision,
                "iterations": result.iterations,
                "crop": args.crop,
                "batch": "8+8",
                "backbone": "resnet50",
                "images_per_s_median": round(statistics.median(steady), 1),
                "wall_s": round(seconds, 1),
                "peak_memory_mb": round(result.history[-1]["peak_memory_mb"]),
                "final_loss": round(result.history[-1]["loss"], 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
