"""Local-file Kedro datasets that write atomically and give kedro-viz previews.

Why not the stock ``kedro_datasets`` classes: they write in place (an interrupted
run leaves a truncated manifest behind) and have no preview for PNG images. These
classes are deliberately local-only and unversioned: the project's outputs live
under ``data/`` and MLflow keeps the history.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import ImagePreview, JSONPreview, TablePreview
from PIL import Image

from mkdseg.core.atomic import atomic_path, atomic_write_text
from mkdseg.core.image_io import atomic_save

DEFAULT_TABLE_PREVIEW_ROWS = 5
DEFAULT_ID_PREVIEW_ROWS = 10
JSON_INDENT = 2
ID_COLUMN = "id"


class LocalFileDataset(AbstractDataset):
    """Shared plumbing: a ``filepath`` (the hook logs it as an MLflow artifact) and metadata."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = PurePosixPath(Path(filepath).as_posix())
        self.metadata = metadata

    @property
    def filepath(self) -> Path:
        return Path(self._filepath)

    def _exists(self) -> bool:
        return self.filepath.is_file()

    def _require_file(self) -> Path:
        if not self.filepath.is_file():
            raise DatasetError(
                f"{self.filepath} does not exist: run the pipeline that produces it first "
                f"(`kedro run --to-outputs=<dataset>`)."
            )
        return self.filepath

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class TableDataset(LocalFileDataset):
    """A pandas DataFrame stored as CSV, written atomically; kedro-viz shows a table preview."""

    def __init__(
        self,
        filepath: str,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(filepath, metadata)
        self._load_args = dict(load_args or {})
        self._save_args = {"index": False, **(save_args or {})}

    def load(self) -> pd.DataFrame:
        return pd.read_csv(self._require_file(), **self._load_args)

    def save(self, data: pd.DataFrame) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DatasetError(
                f"{self.filepath}: expected a pandas DataFrame, got {type(data).__name__}"
            )
        with atomic_path(self.filepath) as tmp:
            data.to_csv(tmp, **self._save_args)

    def preview(self, nrows: int = DEFAULT_TABLE_PREVIEW_ROWS) -> TablePreview:
        """The first ``nrows`` rows in pandas' ``split`` layout (what kedro-viz renders)."""
        frame = pd.read_csv(self._require_file(), nrows=nrows, **self._load_args)
        return TablePreview(json.loads(frame.to_json(orient="split")))


class JSONDataset(LocalFileDataset):
    """A JSON document (dict/list of plain values), written atomically."""

    def load(self) -> Any:
        with self._require_file().open(encoding="utf-8") as handle:
            return json.load(handle)

    def save(self, data: Any) -> None:
        try:
            text = json.dumps(data, indent=JSON_INDENT, default=_json_default)
        except TypeError as exc:
            raise DatasetError(f"{self.filepath}: data is not JSON-serialisable ({exc})") from exc
        atomic_write_text(self.filepath, text + "\n")

    def preview(self) -> JSONPreview:
        return JSONPreview(self._require_file().read_text(encoding="utf-8"))


class OptionalJSONDataset(JSONDataset):
    """A JSON document that loads as ``None`` while its file does not exist: the result of a job
    that has not finished yet (the comparison's summary names such runs instead of failing)."""

    def load(self) -> Any:
        return super().load() if self.filepath.is_file() else None


class TextDataset(LocalFileDataset):
    """A UTF-8 text file (e.g. a Markdown table), written atomically; kedro-viz shows it as text."""

    def load(self) -> str:
        return self._require_file().read_text(encoding="utf-8")

    def save(self, data: str) -> None:
        if not isinstance(data, str):
            raise DatasetError(f"{self.filepath}: expected text, got {type(data).__name__}")
        atomic_write_text(self.filepath, data)

    def preview(self) -> JSONPreview:
        return JSONPreview(json.dumps(self.load()))


def _json_default(value: Any) -> Any:
    """Let numpy scalars/arrays and paths through ``json.dumps``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return value.as_posix()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


class IdListDataset(LocalFileDataset):
    """A list of sample ids, one per line: the plain split-file format users can reuse.

    Blank lines and lines starting with ``#`` are skipped on load.
    """

    def load(self) -> list[str]:
        lines = self._require_file().read_text(encoding="utf-8").splitlines()
        return [
            line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")
        ]

    def save(self, data: Iterable[str]) -> None:
        if isinstance(data, str):
            raise DatasetError(f"{self.filepath}: expected a list of ids, got a single string")
        with atomic_path(self.filepath) as tmp, tmp.open("w", encoding="utf-8") as handle:
            for sample_id in data:
                text = str(sample_id)
                if not text.strip() or "\n" in text or "\r" in text:
                    raise DatasetError(f"{self.filepath}: invalid sample id {text!r}")
                handle.write(text + "\n")

    def preview(self, nrows: int = DEFAULT_ID_PREVIEW_ROWS) -> TablePreview:
        ids = self.load()[:nrows]
        return TablePreview(
            {"columns": [ID_COLUMN], "index": list(range(len(ids))), "data": [[i] for i in ids]}
        )


class ImageDataset(LocalFileDataset):
    """An RGB image (uint8 HxWx3 array or PIL image) saved atomically; kedro-viz shows it."""

    def load(self) -> np.ndarray:
        with Image.open(self._require_file()) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)

    def save(self, data: np.ndarray | Image.Image) -> None:
        atomic_save(_to_pil(data, self.filepath), self.filepath)

    def preview(self) -> ImagePreview:
        """The file as base64 (the payload kedro-viz's image preview expects)."""
        payload = self._require_file().read_bytes()
        return ImagePreview(base64.b64encode(payload).decode("ascii"))


def _to_pil(data: np.ndarray | Image.Image, path: Path) -> Image.Image:
    if isinstance(data, Image.Image):
        return data
    array = np.asarray(data)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] != 3)
    ):
        raise DatasetError(
            f"{path}: expected a uint8 HxW or HxWx3 image, "
            f"got dtype {array.dtype} shape {array.shape}"
        )
    return Image.fromarray(array)
