"""Export the embedded texture set as "your own data": a folder where only a few images have masks.

Writes ``images/{train,val}/<id>.jpg`` and ``masks/{train,val}/<id>.png`` under ``--out``
(default ``data/01_raw/folder``, where ``conf/folder`` looks): every validation image keeps its
mask, and of the training images only the labeled ones of conf/base's default split (1/16,
uniform draw, seed 0) do; the other 1,875 are plain images, as a user's unlabeled ones are.
Then

    .venv/bin/kedro run --env folder

trains on it exactly what ``kedro run`` (the textures source, the same labeled images) trains:
the same ids in the same order, the same image bytes, so the same val mIoU (README "Your own
data"). Files are hard links where the file system allows (no copy), else copies.

    .venv/bin/python scripts/export_textures_folder.py [--out DIR] [--labeled 0.0625] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from kedro.config import OmegaConfigLoader

from mkdseg import splitting
from mkdseg.sources.manifest import build_manifest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = PROJECT_ROOT / "data" / "01_raw" / "folder"


def base_parameters() -> dict:
    """conf/base's parameters, as ``kedro run`` resolves them (data_root at its default)."""
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), base_env="base", default_run_env="base")
    return loader["parameters"]


def link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def export(out: Path, labeled: float | int | str, seed: int) -> tuple[int, int, int]:
    """Write the folder; return (masked training, unmasked training, validation) counts."""
    params = base_parameters()
    manifest, meta, _ = build_manifest(params["dataset"], PROJECT_ROOT)
    labeled_ids, _, _, _ = splitting.make_split(
        manifest, meta["names"], labeled, seed, PROJECT_ROOT, params["splits"]["draw"]
    )
    keep = set(labeled_ids)
    partial, previous = out.with_name(out.name + ".partial"), out.with_name(out.name + ".previous")
    shutil.rmtree(partial, ignore_errors=True)
    for row in manifest.itertuples(index=False):
        if row.subset not in ("train", "val"):  # the benchmark's test split: not a folder subset
            continue
        image = Path(row.image_path)
        link_or_copy(image, partial / "images" / row.subset / f"{row.id}{image.suffix}")
        if row.subset == "val" or row.id in keep:
            link_or_copy(Path(row.mask_path), partial / "masks" / row.subset / f"{row.id}.png")
    shutil.rmtree(previous, ignore_errors=True)
    if out.exists():
        out.rename(previous)  # an export that fails above leaves the old one where it was
    partial.rename(out)  # a half-written export never sits where conf/folder looks
    shutil.rmtree(previous, ignore_errors=True)
    n_train = int((manifest["subset"] == "train").sum())
    return len(keep), n_train - len(keep), int((manifest["subset"] == "val").sum())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--labeled", default=None, help="default: conf/base's splits.labeled")
    parser.add_argument("--seed", type=int, default=None, help="default: conf/base's splits.seed")
    args = parser.parse_args(argv)
    splits = base_parameters()["splits"]
    labeled = splits["labeled"] if args.labeled is None else args.labeled
    seed = splits["seed"] if args.seed is None else args.seed
    masked, unmasked, val = export(args.out.resolve(), labeled, seed)
    print(
        f"wrote {args.out}: {masked} training images with masks, {unmasked} without, "
        f"{val} validation images with masks (split {labeled}, seed {seed})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
