"""The product's docs stand alone: a clone elsewhere has only the repository, so no doc
cites the specification outside it, nor the issues the work arrived as; and every file a
doc links to is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_doc_cites_nothing_outside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert re.findall(r"\.\./shared|SPEC\.md|\bSPEC section", text) == []
    assert re.findall(r"\b[Ii]ssues? #?\d+", text) == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_doc_links_to_exists(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to {target}"
