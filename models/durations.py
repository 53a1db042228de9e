"""Durations as people write them in YAML and on the command line: ``90s``, ``8h``, ``1h30m``.

``Duration`` is a pydantic type: it validates from that short form (or from a ``timedelta``)
and serialises back to it, so a document read and dumped again keeps ``max_duration: 8h``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
# ASCII digits only: \d alone also matches ١ and １, which int() would then read
_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_EXAMPLES = "use a whole number and a unit d/h/m/s, e.g. 90s, 15m, 8h, 1d, 1h30m"


MAX_DAYS = 36_600  # a century: beyond any access grant, far below timedelta's limit
MAX_SECONDS = MAX_DAYS * 86_400


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(minutes=90)``; a clear ``ValueError`` for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"invalid duration {text!r}: {_EXAMPLES}")
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"invalid duration {text!r}: {_EXAMPLES}")
    seconds = sum(int(n) * size for n, (_, size) in zip(match.groups(), _UNITS, strict=True) if n)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    if seconds > MAX_SECONDS:
        raise ValueError(f"invalid duration {text!r}: longer than {MAX_DAYS} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """``timedelta(minutes=90)`` -> ``"1h30m"`` (whole seconds; the inverse of parse)."""
    remaining = int(value.total_seconds())
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _coerce(value: object) -> timedelta:
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError("invalid duration: must be longer than zero")
        return value
    return parse_duration(value)  # type: ignore[arg-type]


Duration = Annotated[
    timedelta,
    BeforeValidator(_coerce),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
                    "examples": ["8h", "90d", "1h30m"]}),
]
"""A positive ``timedelta`` read from and written as ``90s`` / ``15m`` / ``8h`` / ``1d``."""
