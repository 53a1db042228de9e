"""What grantledger knows about: accounts, permission sets, and the YAML resources people edit.

Every resource model forbids unknown fields, so a typo (``permision_set:``) is an error with
a location, never a silently ignored line. Resources are frozen: change one with
``model_copy(update=...)``.

A *pattern* (in role rules) is an exact value, ``*``, a glob (``Prod*``) or a regular
expression anchored on both ends (``^dev-[0-9]+$``); see ``compile_pattern``.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from models.durations import Duration, format_duration, parse_duration
from models.text import FreeText, in_utc

__all__ = [
    "AccessListResource", "AccessListSpec", "AccessRequest", "AccessRequestSpec", "Account",
    "AccountAssignment", "AssignmentKey", "AssignmentRule", "Duration", "Grants", "ListMember",
    "ListOwner", "MemberKind", "Metadata", "PermissionSet", "PrincipalType", "RESOURCE_KINDS",
    "RequestRule", "RequestState", "Resource", "ReviewRule", "RoleConditions", "RoleResource",
    "RoleSpec", "UserResource", "UserSpec", "compile_pattern", "format_duration",
    "is_exact_pattern", "parse_duration", "system_role_name",
]

ACCOUNT_ID = r"^\d{12}$"
SYSTEM_LABEL = "grantledger.io/system"
SYSTEM_ROLE_SHAPE = re.compile(r"^.+-on-.+-\d{12}$")  # <ps-name>-on-<account-name>-<id>


class PrincipalType(StrEnum):
    USER = "USER"
    GROUP = "GROUP"


class AssignmentKey(NamedTuple):
    """The identity of one Identity Center account assignment (AWS's own key)."""

    principal_type: PrincipalType | str
    principal_id: str
    account_id: str
    permission_set_arn: str


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- catalog: what exists in AWS ---------------------------------------------------------


class Account(_Frozen):
    id: str = Field(pattern=ACCOUNT_ID)
    name: str
    ou_path: str = ""


class PermissionSet(_Frozen):
    arn: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""


def system_role_name(ps_name: str, account_name: str, account_id: str) -> str:
    """The generated role for one assignment: ``AdministratorAccess-on-Production-1111...``."""
    return f"{ps_name}-on-{account_name}-{account_id}"


def looks_like_system_role(name: str) -> bool:
    """Whether ``name`` has the shape ``system_role_name`` gives (only import makes them)."""
    return SYSTEM_ROLE_SHAPE.match(name) is not None


class AccountAssignment(_Frozen):
    """One requestable resource: a permission set on an account (no principal yet)."""

    account: Account
    permission_set: PermissionSet

    @property
    def id(self) -> str:
        return f"{self.account.id}/{self.permission_set.name}"

    @property
    def system_role_name(self) -> str:
        return system_role_name(self.permission_set.name, self.account.name, self.account.id)


# --- patterns ------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """One compiled full-match regex for a pattern: exact, ``*``, glob or ``^regex$``."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return re.compile(pattern)
    if is_exact_pattern(pattern):
        return re.compile(re.escape(pattern))
    return re.compile(fnmatch.translate(pattern))


def is_exact_pattern(pattern: str) -> bool:
    """True when the pattern matches only itself (no ``*``/``?``/``[`` and not ``^...$``)."""
    regex = pattern.startswith("^") and pattern.endswith("$")
    return not regex and not any(ch in pattern for ch in "*?[")


def _check_pattern(pattern: str) -> str:
    try:
        compile_pattern(pattern)
    except re.error as err:
        raise ValueError(f"invalid regular expression {pattern!r}: {err}") from None
    return pattern


Pattern = Annotated[str, Field(min_length=1), AfterValidator(_check_pattern)]


def _account_from_yaml(value: Any) -> Any:
    # YAML reads an unquoted 111111111111 as a number, and 011111111111 as an octal one:
    # accept the first (it cannot have lost digits), refuse anything that may have.
    if isinstance(value, int) and not isinstance(value, bool):
        if len(str(value)) == 12:
            return str(value)
        raise ValueError(f"YAML read this as the number {value}; quote account ids, "
                         "e.g. '012345678901'")
    return value


AccountPattern = Annotated[Pattern, BeforeValidator(_account_from_yaml)]


# --- resources people write --------------------------------------------------------------

# Names are typed on command lines: no surrounding blanks, no control characters. Inner
# blanks and "/" stay legal because system role names embed AWS account names, which allow them.
Name = Annotated[str, Field(min_length=1, max_length=128,
                            pattern=r"^[^\x00-\x20](?:[^\x00-\x1f]*[^\x00-\x20])?$")]


class Metadata(_Frozen):
    name: Name
    labels: dict[FreeText, FreeText] = {}
    description: FreeText = ""


class UserSpec(_Frozen):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    given_name: FreeText = Field(min_length=1)
    family_name: FreeText = Field(min_length=1)
    roles: list[Name] = []
    traits: dict[FreeText, list[FreeText]] = {}


class UserResource(_Frozen):
    kind: Literal["user"]
    version: Literal["v2"] = "v2"
    metadata: Metadata
    spec: UserSpec

    @property
    def name(self) -> str:
        return self.metadata.name


class AssignmentRule(_Frozen):
    """Which account assignments a rule covers; each side is a pattern."""

    account: AccountPattern
    permission_set: Pattern


class RequestRule(_Frozen):
    """What the holder may request; ``max_duration`` caps every request it permits."""

    roles: list[Pattern] = []
    account_assignments: list[AssignmentRule] = []
    max_duration: Duration = timedelta(hours=8)
    approvals: int = Field(1, ge=1, validation_alias=AliasChoices("approvals", "thresholds"))
    break_glass: bool = False
    break_glass_max_duration: Duration = timedelta(hours=1)


class ReviewRule(_Frozen):
    """The holder may review requests for these roles (patterns) and what they allow."""

    roles: list[Pattern] = []


class RoleConditions(_Frozen):
    account_assignments: list[AssignmentRule] = []
    request: RequestRule | None = None
    review_requests: ReviewRule | None = None


class RoleOptions(_Frozen):
    """What holding the role lets a person read: ``auditor`` reads the audit trail and
    everyone's grants, requests, users and lists (tasks.access.permissions)."""

    auditor: bool = False


class RoleSpec(_Frozen):
    allow: RoleConditions = RoleConditions()
    deny: RoleConditions = RoleConditions()
    options: RoleOptions = RoleOptions()


class RoleResource(_Frozen):
    kind: Literal["role"]
    version: Literal["v7"] = "v7"
    metadata: Metadata
    spec: RoleSpec = RoleSpec()

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def is_system(self) -> bool:
        """Generated for one assignment by import/sync; read-only for people."""
        return self.metadata.labels.get(SYSTEM_LABEL) == "true"


class MemberKind(StrEnum):
    USER = "user"
    ACCESS_LIST = "access_list"


def _utc(value: Any) -> Any:
    # YAML gives a date for "2027-01-31" and a naive datetime without an offset: read both as
    # UTC so that every expiry compares with an aware "now".
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(_utc), AfterValidator(_utc),
                        AfterValidator(in_utc)]


class ListOwner(_Frozen):
    name: Name


class ListMember(_Frozen):
    name: Name
    kind: MemberKind = MemberKind.USER
    expires: UtcDatetime | None = None

    def active_at(self, at: datetime) -> bool:
        """A membership counts until (not at) its expiry."""
        return self.expires is None or at < self.expires


class Grants(_Frozen):
    roles: list[Name] = []


class AccessListSpec(_Frozen):
    title: FreeText = Field(min_length=1)
    description: FreeText = ""
    owners: list[ListOwner] = []
    members: list[ListMember] = []
    grants: Grants = Grants()
    recurrence: Duration | None = None

    @model_validator(mode="after")
    def _no_duplicate_members(self) -> AccessListSpec:
        seen: set[tuple[str, str]] = set()
        for member in self.members:
            key = (member.kind.value, member.name)
            if key in seen:
                raise ValueError(f"{member.kind.value} {member.name!r} is listed twice in members")
            seen.add(key)
        return self


class AccessListResource(_Frozen):
    kind: Literal["access_list"]
    version: Literal["v1"] = "v1"
    metadata: Metadata
    spec: AccessListSpec

    @property
    def name(self) -> str:
        return self.metadata.name


Resource = Annotated[UserResource | RoleResource | AccessListResource,
                     Field(discriminator="kind")]
RESOURCE_KINDS: dict[str, type[UserResource | RoleResource | AccessListResource]] = {
    "user": UserResource, "role": RoleResource, "access_list": AccessListResource,
}


# --- access requests ------------------------------------------------------------------------


class RequestState(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"
    PROMOTED = "PROMOTED"


class AccessRequestSpec(BaseModel):
    """What a user asks for: roles and/or assignment ids ``<account-id>/<ps-name>``."""

    model_config = ConfigDict(extra="forbid")

    user: Name
    roles: list[Name] = []
    resources: list[Annotated[str, Field(pattern=r"^\d{12}/[^/]+$")]] = []
    reason: str = Field(min_length=1)
    duration: Duration = timedelta(hours=1)

    @model_validator(mode="after")
    def _asks_for_something(self) -> AccessRequestSpec:
        if not self.roles and not self.resources:
            raise ValueError("a request needs at least one role or resource")
        return self


class AccessRequest(AccessRequestSpec):
    """A request as the ledger stores it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str
    state: RequestState = RequestState.PENDING
    created_at: UtcDatetime
