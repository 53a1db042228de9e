"""Tests print nothing: `pytest -q` output is pytest's own. Figures a test measures go to
``record_property`` (the JUnit XML: `pytest --junitxml=report.xml`)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_module_calls_print():
    found = [f"{path.relative_to(TESTS)}:{node.lineno}"
             for path in sorted(TESTS.rglob("*.py"))
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in {"print", "pprint"}]
    assert found == []
