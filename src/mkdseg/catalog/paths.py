"""Where the project lives, for paths in config that must not depend on the cwd."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from kedro.utils import find_kedro_project

PACKAGE_NAME = "mkdseg"
SQLITE_SCHEME = "sqlite"
# Number of parent folders from this file up to the project root in the src layout:
# <root>/src/mkdseg/catalog/paths.py
_SRC_LAYOUT_DEPTH = 3


def project_root() -> Path:
    """The Kedro project root: the source checkout this package lives in, else the cwd's project.

    The package location wins so that ``KedroSession.create(project_path=...)`` from any cwd
    and ``kedro run`` from a sub-folder agree; an installed (non-editable) package falls back
    to the Kedro project containing the cwd, then to the cwd itself.
    """
    candidate = Path(__file__).resolve().parents[_SRC_LAYOUT_DEPTH]
    if _is_this_project(candidate):
        return candidate
    return find_kedro_project(Path.cwd()) or Path.cwd()


def _is_this_project(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file():
        return False
    text = pyproject.read_text(encoding="utf-8")
    return "[tool.kedro]" in text and f'package_name = "{PACKAGE_NAME}"' in text


SERVER_SCHEMES = ("http", "https")


def resolve_path(path: str | os.PathLike, root: Path | None = None) -> Path:
    """``path`` if absolute, else ``root`` (default: the project root) / ``path``."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else (root or project_root()) / candidate


def tracking_uri(value: str, root: Path | None = None) -> str:
    """Normalise a tracking store setting to an absolute MLflow URI.

    ``sqlite:///mlflow.db`` (SQLAlchemy: relative to the cwd) and a bare ``mlflow.db`` both
    become ``sqlite:////<project root>/mlflow.db``; other URIs (``sqlite:////abs``,
    ``http://...``) pass through unchanged.
    """
    value = str(value).strip()
    if not value:
        raise ValueError(
            "mlflow tracking uri is empty: set server.mlflow_tracking_uri in conf/*/mlflow.yml"
        )
    parsed = urlparse(value)
    if parsed.scheme == SQLITE_SCHEME:
        prefix = f"{SQLITE_SCHEME}:///"
        db_path = value[len(prefix) :] if value.startswith(prefix) else ""
        if not db_path:
            raise ValueError(f"cannot read a database path from tracking uri {value!r}")
        return f"{prefix}{resolve_path(db_path, root).as_posix()}"
    if parsed.scheme and len(parsed.scheme) > 1:  # a URI; one letter is a Windows drive
        return value
    return f"{SQLITE_SCHEME}:///{resolve_path(value, root).as_posix()}"


def artifact_location(tracking: str, location: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``location`` under the project root for a
    local store; None (the server's own artifact root, uploaded through it) when the runs go
    to a tracking server (``http(s)://``), so jobs on other machines reach their artifacts."""
    if urlparse(str(tracking)).scheme in SERVER_SCHEMES:
        return None
    return resolve_path(location).as_posix()
