"""Names the import gives to what it finds: access lists from group display names, ledger
users from Identity Center user names. Pure; every name is valid for ``models.domain.Name``.

Names are typed on command lines, so an access list gets a slug of its group's display name
(``Platform Admins`` -> ``platform-admins``); the display name itself is kept as the title.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from pydantic import TypeAdapter, ValidationError

from models.domain import Name

MAX_NAME = 128
_SUFFIX_ROOM = 8  # "-" and a counter still fit after a truncated base
_NAME = TypeAdapter(Name)
_NOT_SLUG = re.compile(r"[^\w.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def list_name_for(display_name: str) -> str:
    """A command-line friendly name for a group: lower case, words joined by ``-``."""
    slug = _NOT_SLUG.sub("-", display_name.strip().lower()).strip("-.")
    return slug[:MAX_NAME - _SUFFIX_ROOM].rstrip("-.") or "group"


def user_name_for(user_name: str, *, user_id: str) -> str:
    """The Identity Center user name itself when it is a valid name (people know it), else a
    cleaned copy, else the opaque user id."""
    for candidate in (user_name, _CONTROL.sub("", user_name).strip()[:MAX_NAME], user_id):
        if is_valid_name(candidate):
            return candidate
    return "user-" + re.sub(r"\W+", "-", user_id)[:MAX_NAME - 5]


def unique_name(base: str, taken: Collection[str]) -> str:
    """``base``, or ``base-2``, ``base-3``... the first one not in ``taken``."""
    if base not in taken:
        return base
    stem = base[:MAX_NAME - _SUFFIX_ROOM]
    counter = 2
    while f"{stem}-{counter}" in taken:
        counter += 1
    return f"{stem}-{counter}"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a valid user / role / access-list name."""
    try:
        _NAME.validate_python(name)
    except ValidationError:
        return False
    return True
