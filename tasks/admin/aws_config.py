"""`grantledger aws-config`: AWS CLI v2 SSO profiles for what a user holds now.

One profile per (account, permission set) the user holds ACTIVE in the ledger, directly or
through an access list's group, named ``<account-name>-<permission-set-name>``; all share one
``[sso-session grantledger]`` with the access portal's start URL. Reading is one session;
building and merging the file are pure.

``--write`` keeps the profiles between two marker lines in ``~/.aws/config`` (or
``$AWS_CONFIG_FILE``, as the AWS CLI does) and replaces only that block on the next run.
The AWS CLI refuses a file with the same section twice, so a profile whose name is already
used outside our block is left out (and named), never written twice.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models.domain import PrincipalType
from models.errors import NotFound
from models.flatten import lists_containing
from models.ledger import tables
from models.ledger.base import database_time
from models.ledger.enums import GrantState
from tasks.sync.snapshot import load_memberships

SESSION_NAME = "grantledger"
SESSION_SECTION = f"sso-session {SESSION_NAME}"
BEGIN = "# >>> grantledger aws-config: `grantledger aws-config --write` replaces this block"
END = "# <<< grantledger aws-config"
SECTION = re.compile(r"^\s*\[([^\]]+)\]", re.MULTILINE)
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

Section = tuple[str, dict[str, str]]


@dataclass(frozen=True, order=True)
class HeldAssignment:
    account_name: str
    permission_set_name: str
    account_id: str


def held_assignments(session: Session, *, user: str) -> list[HeldAssignment]:
    """The (account, permission set) pairs ``user`` holds ACTIVE now, directly or through
    the groups of the access lists they belong to; none while suspended."""
    person = session.get(tables.User, user)
    if person is None:
        raise NotFound("user", user)
    if person.suspended:
        return []
    groups = sorted(lists_containing(load_memberships(session), user=user,
                                     at=database_time(session)))
    grant = tables.Grant
    statement = (
        select(tables.Account.name, tables.PermissionSet.name, grant.account_id)
        .join(tables.Account, tables.Account.id == grant.account_id)
        .join(tables.PermissionSet, tables.PermissionSet.arn == grant.permission_set_arn)
        .where(grant.state == GrantState.ACTIVE, or_(
            and_(grant.principal_type == PrincipalType.USER, grant.principal_name == user),
            and_(grant.principal_type == PrincipalType.GROUP, grant.principal_name.in_(groups))))
        .distinct())
    return sorted(HeldAssignment(*row) for row in session.execute(statement))


def profile_name(account_name: str, permission_set_name: str) -> str:
    """``<account-name>-<permission-set-name>``, with anything a shell would trip on as ``-``."""
    return UNSAFE.sub("-", f"{account_name}-{permission_set_name}").strip("-")


def config_sections(assignments: Iterable[HeldAssignment], *, start_url: str,
                    sso_region: str, region: str) -> list[Section]:
    """The sso-session section, then one profile per assignment (pure).

    Two accounts of the same name get their account id appended, so names stay unique.
    """
    assignments = sorted(assignments)
    names = Counter(profile_name(a.account_name, a.permission_set_name) for a in assignments)
    sections: list[Section] = [(SESSION_SECTION, {
        "sso_start_url": start_url, "sso_region": sso_region,
        "sso_registration_scopes": "sso:account:access"})]
    for a in assignments:
        name = profile_name(a.account_name, a.permission_set_name)
        if names[name] > 1:
            name = f"{name}-{a.account_id}"
        sections.append((f"profile {name}", {
            "sso_session": SESSION_NAME, "sso_account_id": a.account_id,
            "sso_role_name": a.permission_set_name, "region": region}))
    return sections


def render(sections: Sequence[Section]) -> str:
    """The sections as INI text, in order."""
    blocks = ["\n".join([f"[{name}]", *(f"{key} = {value}" for key, value in values.items())])
              for name, values in sections]
    return "\n\n".join(blocks) + "\n"


def merge(existing: str, sections: Sequence[Section]) -> tuple[str, list[str]]:
    """``existing`` with our block replaced (or appended): (new text, sections left out
    because the rest of the file already has them)."""
    outside = _without_block(existing)
    taken = {match.strip() for match in SECTION.findall(outside)}
    kept = [s for s in sections if s[0] not in taken]
    skipped = [name for name, _ in sections if name in taken]
    if SESSION_SECTION in taken:  # our profiles would point at someone else's session
        kept, skipped = [], [name for name, _ in sections]
    block = f"{BEGIN}\n{render(kept) if kept else ''}{END}\n"
    head = outside.rstrip("\n")
    return (f"{head}\n\n{block}" if head else block), skipped


def _without_block(text: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return text
    return text[:start] + text[end + len(END):].lstrip("\n")


def config_path() -> Path:
    """Where the AWS CLI reads its config: ``$AWS_CONFIG_FILE``, else ``~/.aws/config``."""
    return Path(os.environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config")


def write_config(path: Path, sections: Sequence[Section]) -> list[str]:
    """Replace our block in ``path`` (created if missing, written atomically); the sections
    left out because the file already has them elsewhere."""
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    text, skipped = merge(existing, sections)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".grantledger.tmp")
    temporary.write_text(text, encoding="utf-8")
    if path.exists():
        os.chmod(temporary, path.stat().st_mode)
    os.replace(temporary, path)
    return skipped
