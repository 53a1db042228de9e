"""What grantledger asks of a SCIM directory: the interface, its records, ownership.

``ScimDirectory`` is the interface the scim push tasks use; ``HttpScimDirectory``
(``workers.adapters.scim.client``) implements it against AWS Identity Center or the sandbox.

Ownership: every user and group grantledger creates carries an ``externalId`` starting
with ``grantledger:``. An object without that marker (created by someone else, or adopted
after a 409) is never deleted by grantledger.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

OWNERSHIP_PREFIX = "grantledger:"
MAX_MEMBER_CHANGES = 100  # AWS: at most 100 membership changes per group PATCH
PAGE_SIZE = 100  # AWS: at most 100 results per list page

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass(frozen=True)
class ScimUser:
    """A user as the directory holds it; ``id`` is the Identity Center UserId."""

    id: str
    user_name: str
    display_name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    external_id: str | None = None
    active: bool = True
    adopted: bool = False  # True when create_user met a 409 and returned the existing user

    @property
    def owned(self) -> bool:
        return is_owned(self.external_id)


@dataclass(frozen=True)
class ScimGroup:
    """A group as the directory holds it; ``id`` is the Identity Center GroupId."""

    id: str
    display_name: str
    external_id: str | None = None
    adopted: bool = False  # True when create_group met a 409 and returned the existing group

    @property
    def owned(self) -> bool:
        return is_owned(self.external_id)


class ScimDirectory(ABC):
    """Users, groups and memberships in Identity Center, as grantledger changes them."""

    @abstractmethod
    def find_user(self, *, user_name: str) -> ScimUser | None:
        """The user with this userName, or None."""

    @abstractmethod
    def get_user(self, *, user_id: str) -> ScimUser | None:
        """The user with this id, or None."""

    @abstractmethod
    def create_user(self, *, user_name: str, display_name: str, given_name: str,
                    family_name: str, email: str | None, external_id: str) -> ScimUser:
        """Create a user we own; on 409 return the existing one with ``adopted=True``."""

    @abstractmethod
    def update_user(self, *, user_id: str, user_name: str | None = None,
                    display_name: str | None = None, given_name: str | None = None,
                    family_name: str | None = None, email: str | None = None) -> None:
        """Replace the attributes given (None leaves one unchanged)."""

    @abstractmethod
    def set_user_active(self, *, user_id: str, active: bool) -> None:
        """Enable or disable sign-in for a user."""

    @abstractmethod
    def delete_user(self, *, user_id: str) -> None:
        """Delete a user we own (ScimNotOwned otherwise); a user already gone is fine."""

    @abstractmethod
    def find_group(self, *, display_name: str) -> ScimGroup | None:
        """The group with this displayName, or None."""

    @abstractmethod
    def create_group(self, *, display_name: str, external_id: str) -> ScimGroup:
        """Create a group we own; on 409 return the existing one with ``adopted=True``."""

    @abstractmethod
    def delete_group(self, *, group_id: str) -> None:
        """Delete a group we own (ScimNotOwned otherwise); a group already gone is fine."""

    @abstractmethod
    def add_members(self, *, group_id: str, user_ids: list[str]) -> None:
        """Add users to a group, at most 100 per request."""

    @abstractmethod
    def remove_members(self, *, group_id: str, user_ids: list[str]) -> None:
        """Remove users from a group, at most 100 per request."""

    @abstractmethod
    def is_member(self, *, group_id: str, user_id: str) -> bool:
        """Whether the user is in the group (AWS's GET never lists members)."""

    @abstractmethod
    def list_users(self) -> list[ScimUser]:
        """Every user, all pages."""

    @abstractmethod
    def list_groups(self) -> list[ScimGroup]:
        """Every group, all pages (members are never listed)."""


# -- ownership ---------------------------------------------------------------------------


def mark_owned(external_id: str) -> str:
    """The externalId with our ownership marker (added once)."""
    return external_id if is_owned(external_id) else OWNERSHIP_PREFIX + external_id


def is_owned(external_id: str | None) -> bool:
    """Whether grantledger created the object carrying this externalId."""
    return bool(external_id) and str(external_id).startswith(OWNERSHIP_PREFIX)
