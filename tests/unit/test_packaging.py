"""pyproject.toml asks only for extras its dependencies provide (pip warns "does not provide
the extra" and installs without it otherwise), read against the installed distributions."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [Requirement(line) for line in [*project["dependencies"],
                                           *(line for group in extras for line in group)]]


def test_every_extra_asked_for_is_one_the_installed_package_provides():
    missing = []
    for requirement in requirements():
        if not requirement.extras:
            continue
        provided = {canonicalize_name(extra) for extra in
                    metadata.metadata(requirement.name).get_all("Provides-Extra") or []}
        missing += [f"{requirement.name}[{extra}]" for extra in sorted(requirement.extras)
                    if canonicalize_name(extra) not in provided]
    assert missing == []
