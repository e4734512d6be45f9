"""README.md and docs/*.md: every relative link reaches an existing file, and a heading in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCUMENTS = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)  # code: its `#` lines are comments
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target), images included
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
EXTERNAL = ("http://", "https://", "mailto:")


def _prose(path: Path) -> str:
    return FENCED.sub("", path.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor: lowercase, punctuation but hyphens dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(heading) for heading in HEADING.findall(_prose(path))}


def links(path: Path) -> list[str]:
    targets = LINK.findall(INLINE_CODE.sub("", _prose(path)))
    return [target for target in targets if not target.startswith(EXTERNAL)]


def test_slug_follows_github() -> None:
    assert slug("Results: method comparison") == "results-method-comparison"
    assert slug("Quick start (two commands)") == "quick-start-two-commands"
    assert slug("How `consistency_scale` was chosen") == "how-consistency_scale-was-chosen"


@pytest.mark.parametrize(
    "document", DOCUMENTS, ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix()
)
def test_every_relative_link_resolves(document: Path) -> None:
    broken = []
    for target in links(document):
        path, _, anchor = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.is_file():
            broken.append(f"{target}: no file {path}")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target}: no heading for #{anchor} in {linked.name}")
    assert not broken, f"{document.name}: {broken}"


def test_the_readme_links_to_every_docs_page() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    unlinked = [doc.name for doc in DOCUMENTS[1:] if doc.resolve() not in linked]
    assert not unlinked, f"README.md does not link to {unlinked}"


README_MAX_LINES = 250  # a user's guide; the rest lives in docs/


def test_the_readme_stays_a_guide() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES
