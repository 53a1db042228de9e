"""SCIM users and groups stored in moto's identity store: one truth for SCIM and boto3.

The sandbox's SCIM server (``workers.sandbox.scim``) keeps nothing of its own but what the
identity store API has no field for (``externalId``, ``active``, ``meta``): every user,
group and membership lives in moto's ``IdentityStoreBackend``, so a user created over SCIM
is what ``identitystore.ListUsers`` returns, and its SCIM ``id`` IS its ``UserId``.

moto has no UpdateUser/UpdateGroup, so updates replace the stored NamedTuple in place.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from moto.identitystore.models import Group as StoreGroup
from moto.identitystore.models import IdentityStoreBackend, IdentityStoreData
from moto.identitystore.models import Name as StoreName
from moto.identitystore.models import User as StoreUser
from scim2_models import (
    Group,
    GroupMember,
    InvalidFilterException,
    InvalidValueException,
    Meta,
    NotFoundException,
    NotImplementedException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    SearchRequest,
    UniquenessException,
    User,
)
from scim2_models.path import CompareOperator, Comparison, LogicalExpr, LogicalOperator
from scim2_server.storage import ScimStorage, SearchPage

from workers.sandbox.scim.mapping import group_resource, user_fields, user_resource

# AWS's ListUsers / ListGroups filters: eq only, joined by "and", on these attributes.
FILTERABLE = {
    "User": {"username", "externalid", "id"},
    "Group": {"displayname", "externalid", "id", "members", "members.value"},
}
CASE_INSENSITIVE = {"username", "displayname"}

BackendSource = IdentityStoreBackend | Callable[[], IdentityStoreBackend]


@dataclass
class Extras:
    """What SCIM knows about an object and the identity store API does not."""

    external_id: str | None = None
    active: bool = True
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1

    def touch(self) -> None:
        self.last_modified = datetime.now(UTC)
        self.version += 1

    def meta(self, resource_type: str) -> Meta:
        return Meta(resource_type=resource_type, created=self.created,
                    last_modified=self.last_modified, version=f'W/"{self.version}"')


def filter_terms(scim_filter: Any, resource_type: str) -> dict[str, str]:
    """The ``attribute -> value`` pairs of an AWS-dialect filter, or InvalidFilterException.

    AWS accepts ``attr eq "value"`` on a few attributes, joined by ``and``; nothing else.
    """
    if scim_filter is None:
        return {}
    node = scim_filter.ast
    comparisons = node.terms if isinstance(node, LogicalExpr) else (node,)
    if isinstance(node, LogicalExpr) and node.op != LogicalOperator.and_:
        raise InvalidFilterException(detail="only 'and' joins filters here (AWS dialect)")
    terms: dict[str, str] = {}
    for term in comparisons:
        if not isinstance(term, Comparison) or term.op != CompareOperator.eq:
            raise InvalidFilterException(detail=f"unsupported filter {str(term)!r}: "
                                                "only 'eq' is supported (AWS dialect)")
        attribute = str(term.attr_path).rsplit(":", 1)[-1].lower()
        if attribute not in FILTERABLE[resource_type]:
            raise InvalidFilterException(detail=f"filtering {resource_type}s on "
                                                f"{attribute!r} is not supported")
        terms["members" if attribute == "members.value" else attribute] = str(term.value)
    return terms


def _same(attribute: str, left: str | None, right: str) -> bool:
    if left is None:
        return False
    return left.lower() == right.lower() if attribute in CASE_INSENSITIVE else left == right


class IdentityStoreStorage(ScimStorage):
    """A scim2-server storage over one identity store of a moto IdentityStoreBackend."""

    supports_cursors = True

    def __init__(self, backend: BackendSource, identity_store_id: str) -> None:
        self._backend = backend
        self.identity_store_id = identity_store_id
        self.extras: dict[str, Extras] = {}
        self.lock = threading.RLock()

    # -- the identity store -------------------------------------------------

    @property
    def backend(self) -> IdentityStoreBackend:
        # A callable source survives moto resets, which replace the backend object.
        source = self._backend
        return source if isinstance(source, IdentityStoreBackend) else source()

    def forget(self) -> None:
        """Drop the SCIM-only attributes, after the identity store itself was reset."""
        with self.lock:
            self.extras.clear()

    @property
    def store(self) -> IdentityStoreData:
        # Looked up on every use: a moto reset replaces the backend's dicts.
        stores = self.backend.identity_stores
        return stores.setdefault(self.identity_store_id, IdentityStoreData())

    def _extras(self, object_id: str) -> Extras:
        # Objects created through boto3, not SCIM, get their extras on first sight.
        return self.extras.setdefault(object_id, Extras())

    def _members_of(self) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {}
        for membership in list(self.store.group_memberships.values()):
            user_id = membership["MemberId"]["UserId"]
            members.setdefault(membership["GroupId"], []).append(user_id)
        return members

    def _members_for(self, kind: str) -> dict[str, list[str]]:
        # Users carry no members: skip the scan of every membership for them.
        return self._members_of() if kind == "Group" else {}

    def _resource(self, kind: str, object_id: str, members: dict[str, list[str]]
                  ) -> Resource[Any]:
        extras = self._extras(object_id)
        if kind == "User":
            return user_resource(self.store.users[object_id], extras.external_id,
                                 extras.active, extras.meta("User"))
        return group_resource(self.store.groups[object_id], extras.external_id,
                              members.get(object_id, []), extras.meta("Group"))

    def _ids(self, kind: str) -> list[str]:
        objects = self.store.users if kind == "User" else self.store.groups
        return sorted(list(objects))

    def _require(self, kind: str, object_id: str) -> None:
        objects = self.store.users if kind == "User" else self.store.groups
        if object_id not in objects:
            raise NotFoundException(detail=f"{kind} {object_id} not found")

    def _check_version(self, object_id: str, expected_version: str | None) -> None:
        version = f'W/"{self._extras(object_id).version}"'
        if expected_version is not None and expected_version != version:
            raise PreconditionFailedException(detail="the resource changed meanwhile")

    # -- ScimStorage --------------------------------------------------------

    @contextmanager
    def operation(self) -> Iterator[None]:
        """Hold the lock for a whole request, so a PATCH's read-modify-write is atomic."""
        with self.lock:
            yield

    def get(self, resource_type: ResourceType, resource_id: str, *,
            response_parameters: ResponseParameters[Any] | None = None) -> Resource[Any]:
        """One user or group, members included (the service hides them, as AWS does)."""
        with self.lock:
            self._require(_kind(resource_type), resource_id)
            return self._resource(_kind(resource_type), resource_id, self._members_for(
                _kind(resource_type)))

    def search(self, resource_types: list[ResourceType], search_request: SearchRequest[Any],
               *, position: Any = None) -> SearchPage:
        """One page of the users or groups an AWS-dialect filter selects, ordered by id."""
        if len(resource_types) != 1:
            raise NotImplementedException(detail="search at the root is not supported")
        kind = _kind(resource_types[0])
        terms = filter_terms(search_request.filter, kind)
        with self.lock:
            members = self._members_for(kind)
            # Match on the raw records and build resources for one page only: the sandbox
            # holds thousands of users in benchmarks.
            found = [object_id for object_id in self._ids(kind)
                     if not terms or self._matches(kind, object_id, terms, members)]
            page, next_position = _page(search_request, position, found)
            resources = [self._resource(kind, object_id, members) for object_id in page]
        return SearchPage(total=len(found), resources=resources, next=next_position)

    def _matches(self, kind: str, object_id: str, terms: dict[str, str],
                 members: dict[str, list[str]]) -> bool:
        record = self.store.users[object_id] if kind == "User" else self.store.groups[object_id]
        extras = self.extras.get(object_id)
        values = {
            "id": object_id, "externalid": extras.external_id if extras else None,
            "username": getattr(record, "UserName", None),
            "displayname": getattr(record, "DisplayName", None),
        }
        for attribute, value in terms.items():
            if attribute == "members":
                if value not in members.get(object_id, []):
                    return False
            elif not _same(attribute, values[attribute], value):
                return False
        return True

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        """Create the object in the identity store; 409 on a taken userName/displayName."""
        with self.lock:
            if isinstance(resource, User):
                object_id = self._create_user(resource)
            else:
                object_id = self._create_group(cast(Group, resource))
            self.extras[object_id] = Extras(external_id=resource.external_id,
                                            active=getattr(resource, "active", None) is not False)
            return self._resource(_kind(resource_type), object_id,
                                  self._members_for(_kind(resource_type)))

    def _create_user(self, user: User) -> str:
        self._check_unique_user_name(user.user_name or "", exclude=None)
        fields = user_fields(user)
        user_id, _ = self.backend.create_user(
            identity_store_id=self.identity_store_id, user_name=fields["UserName"],
            name=fields["Name"], display_name=fields["DisplayName"],
            nick_name=fields["NickName"], profile_url=fields["ProfileUrl"],
            emails=fields["Emails"], addresses=fields["Addresses"],
            phone_numbers=fields["PhoneNumbers"], user_type=fields["UserType"],
            title=fields["Title"], preferred_language=fields["PreferredLanguage"],
            locale=fields["Locale"], timezone=fields["Timezone"],
        )
        return user_id

    def _create_group(self, group: Group) -> str:
        self._check_unique_display_name(group.display_name or "", exclude=None)
        group_id, _ = self.backend.create_group(
            identity_store_id=self.identity_store_id,
            display_name=group.display_name or "", description="",
        )
        self._apply_members(group_id, [], _member_ids(group))
        return group_id

    def update(self, resource_type: ResourceType, resource: Resource[Any], *,
               expected_version: str | None = None) -> Resource[Any]:
        """Write the new state of a user or group (PUT and PATCH land here)."""
        with self.lock:
            object_id = resource.id or ""
            self._require(_kind(resource_type), object_id)
            self._check_version(object_id, expected_version)
            if isinstance(resource, User):
                self._update_user(object_id, resource)
            else:
                self._update_group(object_id, cast(Group, resource))
            extras = self._extras(object_id)
            extras.external_id = resource.external_id
            extras.active = getattr(resource, "active", None) is not False
            extras.touch()
            return self._resource(_kind(resource_type), object_id,
                                  self._members_for(_kind(resource_type)))

    def _update_user(self, user_id: str, user: User) -> None:
        self._check_unique_user_name(user.user_name or "", exclude=user_id)
        fields = user_fields(user)
        name = StoreName.from_dict(fields.pop("Name"))
        stored: StoreUser = self.store.users[user_id]
        self.store.users[user_id] = stored._replace(Name=name, **fields)

    def _update_group(self, group_id: str, group: Group) -> None:
        self._check_unique_display_name(group.display_name or "", exclude=group_id)
        stored: StoreGroup = self.store.groups[group_id]
        self.store.groups[group_id] = stored._replace(DisplayName=group.display_name or "")
        current = self._members_of().get(group_id, [])
        self._apply_members(group_id, current, _member_ids(group))

    def _apply_members(self, group_id: str, current: list[str], wanted: list[str]) -> None:
        """Turn a member list into membership creates/deletes (moto does not deduplicate)."""
        unknown = [user_id for user_id in wanted if user_id not in self.store.users]
        if unknown:
            raise InvalidValueException(detail=f"members are not users: {', '.join(unknown)}")
        for user_id in sorted(set(wanted) - set(current)):
            self.backend.create_group_membership(self.identity_store_id, group_id,
                                                 {"UserId": user_id})
        gone = set(current) - set(wanted)
        for membership_id, membership in list(self.store.group_memberships.items()):
            if membership["GroupId"] == group_id and membership["MemberId"]["UserId"] in gone:
                self.backend.delete_group_membership(self.identity_store_id, membership_id)

    def delete(self, resource_type: ResourceType, resource_id: str, *,
               expected_version: str | None = None) -> None:
        """Delete the object and every membership it takes part in."""
        with self.lock:
            self._require(_kind(resource_type), resource_id)
            self._check_version(resource_id, expected_version)
            key = "MemberId" if _kind(resource_type) == "User" else "GroupId"
            for membership_id, membership in list(self.store.group_memberships.items()):
                if _membership_side(membership, key) == resource_id:
                    self.backend.delete_group_membership(self.identity_store_id, membership_id)
            if _kind(resource_type) == "User":
                self.backend.delete_user(self.identity_store_id, resource_id)
            else:
                self.backend.delete_group(self.identity_store_id, resource_id)
            self.extras.pop(resource_id, None)

    # -- uniqueness ---------------------------------------------------------

    def _check_unique_user_name(self, user_name: str, *, exclude: str | None) -> None:
        for user in list(self.store.users.values()):
            if user.UserId != exclude and _same("username", user.UserName, user_name):
                raise UniquenessException(detail=f"userName {user_name!r} already exists")

    def _check_unique_display_name(self, display_name: str, *, exclude: str | None) -> None:
        for group in list(self.store.groups.values()):
            if group.GroupId != exclude and _same("displayname", group.DisplayName,
                                                  display_name):
                raise UniquenessException(detail=f"group {display_name!r} already exists")


def _member_ids(group: Group) -> list[str]:
    members: list[GroupMember] = group.members or []
    return [member.value for member in members if member.value]


def _membership_side(membership: dict[str, Any], key: str) -> str:
    side = membership[key]
    return side["UserId"] if isinstance(side, dict) else side


def _page(search_request: SearchRequest[Any], position: Any,
          found: list[str]) -> tuple[list[str], str | None]:
    """The ids of one page, and the cursor position of the next page (None on the last).

    By cursor, a position is the id of the last object sent (``found`` is sorted); by index,
    ``startIndex`` is 1-based.
    """
    count = search_request.count if search_request.count is not None else len(found)
    if search_request.cursor is None:
        start = (search_request.start_index or 1) - 1
        return found[start:start + count], None
    start = 0 if position is None else bisect.bisect_right(found, str(position))
    page = found[start:start + count]
    more = start + count < len(found) and count > 0
    return page, page[-1] if more and page else None


def _kind(resource_type: ResourceType) -> str:
    """The resource type's name ("User" or "Group"; scim2-models types it optional)."""
    return resource_type.name or ""
