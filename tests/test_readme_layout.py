"""The Code layout (docs/usage.md) names every module of src/mkdseg, and only modules that exist."""

from __future__ import annotations

import re

from .conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "src" / "mkdseg"
LAYOUT_DOCUMENT = PROJECT_ROOT / "docs" / "usage.md"  # its "## Code layout" section
PIPELINE_MODULES = {"nodes.py", "pipeline.py"}  # every pipeline has both


def _layout_block() -> str:
    document = LAYOUT_DOCUMENT.read_text(encoding="utf-8")
    section = document.split("## Code layout", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def _modules() -> list[str]:
    """Module paths relative to the package, without __init__.py."""
    return sorted(
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
    )


def test_every_module_is_named_in_the_code_layout() -> None:
    block = _layout_block()
    words = set(re.findall(r"[\w.]+", block))
    missing = []
    for module in _modules():
        parts = module.split("/")
        if parts[0] == "pipelines" and len(parts) == 3:  # pipelines/<name>/<module>.py
            named = parts[1] in words and (parts[2] in PIPELINE_MODULES or parts[2] in words)
        else:
            named = parts[-1] in words
        if not named:
            missing.append(module)
    assert not missing, f"docs/usage.md Code layout does not name: {missing}"


def test_the_code_layout_names_no_module_that_does_not_exist() -> None:
    existing = {module.rsplit("/", 1)[-1] for module in _modules()}
    named = set(re.findall(r"\b\w+\.py\b", _layout_block()))
    assert named <= existing, f"docs/usage.md Code layout names missing modules: {named - existing}"


def test_every_package_folder_is_named() -> None:
    block = _layout_block()
    folders = [p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert all(f"{name}/" in block for name in folders), folders
