"""Docs that stay true: every repository file a comment, docstring or the README cites exists,
and every "docs/DESIGN.md section N" names a section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# a path inside the repository, as written in prose: folder/.../name.ext
CITED_PATH = re.compile(
    r"(?<![\w./-])((?:models|tasks|workers|ops|docs|tests)/[\w./-]*\w\.(?:py|md|yaml|yml|json|ini))")
CITED_SECTION = re.compile(r"docs/DESIGN\.md section (\d+)")
SECTION = re.compile(r"^## (\d+)\. ", re.M)
GENERATED = ("ops/bench/results/",)  # what the benchmarks write (ignored by git)


def tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return [REPO / line for line in out.splitlines()]


def citations(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    found = []
    for path in [*tracked("*.py"), REPO / "README.md", REPO / "docs" / "DESIGN.md"]:
        if path.is_file() and path != Path(__file__).resolve():  # its own bogus examples
            found += [(str(path.relative_to(REPO)), cited)
                      for cited in pattern.findall(path.read_text())]
    return found


def missing_files(cites: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(where, cited) for where, cited in cites
            if "*" not in cited and not cited.startswith(GENERATED)
            and not (REPO / cited).exists()]


def test_every_cited_file_exists() -> None:
    assert missing_files(citations(CITED_PATH)) == []


def test_every_cited_design_section_exists() -> None:
    sections = set(SECTION.findall((REPO / "docs" / "DESIGN.md").read_text()))
    cites = citations(CITED_SECTION)
    assert cites, "no code cites docs/DESIGN.md: the pattern is wrong"
    assert [(where, n) for where, n in cites if n not in sections] == []


def test_a_bogus_citation_is_caught() -> None:
    bogus = [("x.py", "tasks/no_such_module.py"), ("y.py", "tasks/sync/engine.py")]
    assert missing_files(bogus) == [("x.py", "tasks/no_such_module.py")]
    assert CITED_PATH.findall("see ops/decisions/aws.md and workers/limiter.py.") == [
        "ops/decisions/aws.md", "workers/limiter.py"]
