"""Every test a document cites exists: a page that says "shown by tests/x.py::test_y" stays true
when a test is renamed or removed (the security page's re-run table leans on this)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.ci import REPO

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
# tests/dir/test_file.py, optionally followed by ::name (and further `::name`s given alone).
CITATION = re.compile(r"(tests/[\w/]+\.py)((?:::\w+)?)")
FOLLOWING = re.compile(r"`::(\w+)`")


def citations(text: str) -> list[tuple[str, str | None]]:
    """(file, test or None) for each citation; a bare `::name` after a citation belongs to
    the file cited last before it."""
    found: list[tuple[str, str | None]] = []
    last_file: str | None = None
    for match in re.finditer(rf"{CITATION.pattern}|{FOLLOWING.pattern}", text):
        if match.group(1):
            last_file = match.group(1)
            found.append((last_file, match.group(2)[2:] or None))
        elif last_file is not None:
            found.append((last_file, match.group(3)))
    return found


def test_citations_are_read_as_written() -> None:
    text = "see `tests/a/test_b.py::test_c`, `::test_d` and tests/e/test_f.py"
    assert citations(text) == [("tests/a/test_b.py", "test_c"), ("tests/a/test_b.py", "test_d"),
                               ("tests/e/test_f.py", None)]


def defined_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_cited_test_exists(doc: Path) -> None:
    missing = []
    for file, name in citations(doc.read_text()):
        path = REPO / file
        if not path.is_file():
            missing.append(file)
        elif name is not None and name not in defined_names(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"{doc.relative_to(REPO)} cites tests that do not exist: {missing}"
