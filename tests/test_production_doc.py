"""docs/production.md: every test its tables and text name exists, so the table of stateful resources stays true."""

from __future__ import annotations

import ast
import re

from offline.plan import PROJECT_DIR

DOC = PROJECT_DIR / "docs" / "production.md"
REFERENCE = re.compile(r"`?(tests/[\w/]+\.py)::(test_\w+)`?")


def _tests_in(path: str) -> set[str]:
    tree = ast.parse((PROJECT_DIR / path).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_every_referenced_test_exists() -> None:
    references = REFERENCE.findall(DOC.read_text())
    assert references
    for path, name in references:
        assert name in _tests_in(path), f"docs/production.md names {path}::{name}, which doesn't exist"


def test_every_stateful_resource_row_names_a_test() -> None:
    text = DOC.read_text()
    table = text.split("## Stateful resources", 1)[1].split("\n## ", 1)[0]
    rows = [
        line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Resource")
    ]
    assert len(rows) >= 6
    for row in rows:
        assert REFERENCE.search(row.split("|")[-2]), f"row without a test: {row[:60]}"


def test_readme_links_the_document() -> None:
    assert "docs/production.md" in (PROJECT_DIR / "README.md").read_text()
