"""The ingestion benchmark's contract: both passes print images/s, and the re-run after masking
a few more images reads only those (and what they move in or out of validation)."""

from __future__ import annotations

import re
from pathlib import Path

import bench_ingestion  # benchmarks/bench_ingestion.py (pytest's pythonpath)
import pytest


def test_both_passes_print_images_per_second(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["--masked", "10", "--unmasked", "6", "--unlabeled", "12", "--size", "32"]
    argv += ["--add-masks", "3", "--dir", str(tmp_path)]
    with caplog.at_level("INFO", logger="mkdseg.sources.manifest"):
        bench_ingestion.main(argv)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("first", "rerun"))]
    assert re.fullmatch(
        r"first: 28 images in [\d.]+ s = \d+ images/s cpu_per_wall=[\d.]+", lines[-2]
    )
    assert re.fullmatch(r"rerun \(\+3 masks\): 28 images in [\d.]+ s = \d+ images/s .*", lines[1])
    reads = [
        int(m.group(1))
        for r in caplog.records
        if (m := re.search(r", (\d+) read$", r.getMessage()))
    ]
    assert reads[0] == 28 and 3 <= reads[1] <= 5  # 3 new masks (+ at most 2 validation moves)
    assert len(list((tmp_path / "data" / "unlabeled").rglob("*.jpg"))) == 12
    bench_ingestion.main(argv)  # reuses the written folder and starts from its 10 masks again
    assert len(list((tmp_path / "data" / "masks").glob("*.png"))) == 13
