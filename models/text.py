"""Free text people write: reasons, titles, descriptions, labels, notes, token labels.

Control characters are refused wherever such text comes in (YAML resources, API bodies, CLI
options): an ANSI escape in a reason would recolour or rewrite the terminal of whoever reads
`grantledger audit`, and PostgreSQL cannot store a NUL. Tabs and newlines stay legal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

CONTROL_CLASS = r"\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and newline, DEL, C1
CONTROL = re.compile(f"[{CONTROL_CLASS}]")
MAX_FREE_TEXT = 4096


def check_free_text(text: str) -> str:
    """``text`` unchanged, or a ``ValueError`` naming its first control character."""
    found = CONTROL.search(text)
    if found is not None:
        raise ValueError(f"control character {found.group()!r} at position {found.start() + 1}"
                         " is not allowed (ANSI escapes and other terminal controls)")
    return text


FreeText = Annotated[
    str,
    AfterValidator(check_free_text),
    # the JSON schema says it too, so API clients (and the schemathesis fuzz) know
    Field(json_schema_extra={"pattern": f"^[^{CONTROL_CLASS}]*$"}),
]
"""A string without control characters (tab and newline allowed)."""


def in_utc(moment: datetime) -> datetime:
    """``moment`` in UTC, or a ``ValueError`` when that leaves the years 1-9999."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is outside the years 1-9999 once converted "
                         "to UTC") from None
