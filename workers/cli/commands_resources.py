"""Resource commands: validate (and, as the ledger lands, apply / get / delete)."""

from __future__ import annotations

from pathlib import Path

import typer

from workers.cli.app import app
from workers.cli.output import OutputOption, emit

FilesOption = typer.Option(
    ..., "--file", "-f", exists=False,
    help="YAML file(s) with user / role / access_list documents; repeat -f for several.",
)


@app.command("validate")
def validate_command(files: list[Path] = FilesOption, output: str = OutputOption) -> None:
    """Check resource files without applying them: syntax, fields, references, cycles.

    Exit 0 when every document is valid; exit 2 with `file:line field: problem` for each
    mistake otherwise.

    Example: grantledger validate -f ops/examples/resources/
    """
    from models.resources import validate_files

    summary = validate_files([str(p) for p in expand(files)])
    emit(summary.as_dict() if hasattr(summary, "as_dict") else summary, fmt=output,
         title="valid")


def expand(paths: list[Path]) -> list[Path]:
    """Directories stand for the *.yaml / *.yml files directly inside them, sorted."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"}))
        else:
            found.append(path)
    return found
