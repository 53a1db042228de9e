"""AWS Identity Center's SCIM dialect, as rules on top of scim2-server's RFC 7644 service.

Each rule below is documented AWS behaviour (IAM Identity Center SCIM implementation
developer guide; summary in docs/DESIGN.md section 5 and ops/decisions/scim.md):

- users need userName, displayName, name.givenName and name.familyName, and hold at most
  one email, one address and one phone number;
- GET and list of groups return no members;
- PATCH on a group touches only displayName, members, externalId; at most 100 member
  changes per request; no replace of members and no remove-all;
- a PATCH operation without ``path`` may change a single attribute only;
- no PUT on groups (AWS has PutUser only), no Bulk, no /Me, no POST ``.search``;
- ``startIndex``, ``attributes`` and ``excludedAttributes`` on lists are ignored
  (pagination is by RFC 9865 cursor); filters are checked by the storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from scim2_models import (
    Group,
    InvalidPathException,
    InvalidValueException,
    Name,
    NotImplementedException,
    PatchOp,
    Required,
    Resource,
    ResourceType,
    SearchRequest,
    User,
)
from scim2_server.conditions import Conditions
from scim2_server.service import ScimService

MAX_MEMBER_CHANGES = 100
GROUP_PATCH_ATTRIBUTES = {"displayname", "members", "externalid"}
IGNORED_LIST_PARAMETERS = ("startIndex", "attributes", "excludedAttributes")


class AwsName(Name):
    """User.name as AWS publishes it: givenName and familyName are required."""

    family_name: Annotated[str | None, Required.true] = None
    given_name: Annotated[str | None, Required.true] = None


class AwsUser(User):
    """User Account"""

    name: Annotated[AwsName | None, Required.true] = None  # type: ignore[assignment]
    display_name: Annotated[str | None, Required.true] = None


# /Schemas publishes a model's class name as the schema's name: AWS's is "User".
AwsUser.__name__ = "User"


def check_user(user: User) -> None:
    """Refuse a user AWS would refuse: missing names, or more than one email/address/phone."""
    name = user.name
    required = {
        "displayName": user.display_name,
        "name.givenName": name.given_name if name else None,
        "name.familyName": name.family_name if name else None,
    }
    missing = [attribute for attribute, value in required.items() if not value]
    if missing:
        raise InvalidValueException(detail=f"missing required attribute(s): "
                                           f"{', '.join(missing)}")
    for attribute in ("emails", "addresses", "phone_numbers"):
        if len(getattr(user, attribute) or []) > 1:
            raise InvalidValueException(detail=f"{attribute}: multiple values are not "
                                               "supported (AWS holds one)")


def check_group(group: Group) -> None:
    """Refuse a new group with more members than AWS accepts in one request."""
    if len(group.members or []) > MAX_MEMBER_CHANGES:
        raise InvalidValueException(detail=f"at most {MAX_MEMBER_CHANGES} members "
                                           "may be added in one request")


def path_attribute(path: str) -> str:
    """The top attribute a PATCH path names, lowercased: ``members[value eq "x"]`` -> members."""
    head = path.split("[", 1)[0]
    return head.rsplit(":", 1)[-1].split(".", 1)[0].lower()


def _operation_targets(operation: Any) -> list[tuple[str, Any, bool]]:
    """``(attribute, value, has_filter)`` for each attribute one PATCH operation changes."""
    if operation.path is not None:
        path = str(operation.path)
        return [(path_attribute(path), operation.value, "[" in path)]
    value = operation.value if isinstance(operation.value, dict) else {}
    if len(value) != 1:
        raise InvalidValueException(detail="a PATCH operation without 'path' may change "
                                           "one attribute only")
    (attribute, item), = value.items()
    return [(path_attribute(attribute), item, False)]


def member_changes(patch_op: PatchOp[Any]) -> int:
    """How many memberships a group PATCH changes; refuses what AWS refuses."""
    changes = 0
    for operation in patch_op.operations or []:
        op = str(operation.op.value).lower()
        for attribute, value, has_filter in _operation_targets(operation):
            # scim2-models already refuses read-only and unknown attributes; this is
            # AWS's own whitelist, kept so the rule holds whatever the model allows.
            if attribute not in GROUP_PATCH_ATTRIBUTES:
                raise InvalidPathException(detail=f"{attribute!r} cannot be patched on a "
                                                  "group (displayName, members, externalId)")
            if attribute != "members":
                continue
            if op == "replace":
                raise InvalidValueException(detail="replacing members is not supported: "
                                                   "send add/remove operations")
            if op == "remove" and not has_filter and not value:
                raise InvalidValueException(detail="removing all members is not supported")
            changes += 1 if has_filter else len(value or [])
    return changes


class AwsScimService(ScimService):
    """scim2-server's service with AWS Identity Center's restrictions."""

    def publish(self, base_url: str, resource: Resource[Any]) -> Resource[Any]:
        """AWS returns every group with an empty member list."""
        published = super().publish(base_url, resource)
        if isinstance(published, Group):
            published.members = None
        return published

    def read_creation(self, resource_type: ResourceType, body: bytes,
                      content_type: str | None) -> Resource[Any]:
        resource = super().read_creation(resource_type, body, content_type)
        if isinstance(resource, User):
            check_user(resource)
        elif isinstance(resource, Group):
            check_group(resource)
        return resource

    def read_replacement(self, resource_type: ResourceType, body: bytes,
                         content_type: str | None) -> Resource[Any]:
        if resource_type.name == "Group":
            raise NotImplementedException(detail="PUT on groups is not supported: use PATCH")
        resource = super().read_replacement(resource_type, body, content_type)
        check_user(resource)  # type: ignore[arg-type]
        return resource

    def read_patch(self, resource_type: ResourceType, body: bytes,
                   content_type: str | None) -> PatchOp[Any]:
        patch_op = super().read_patch(resource_type, body, content_type)
        if resource_type.name == "Group":
            changes = member_changes(patch_op)
            if changes > MAX_MEMBER_CHANGES:
                raise InvalidValueException(detail=f"{changes} member changes in one request; "
                                                   f"at most {MAX_MEMBER_CHANGES}")
        else:
            for operation in patch_op.operations or []:
                _operation_targets(operation)
        return patch_op

    def apply_patch(self, current: Resource[Any], patch_op: PatchOp[Any],
                    conditions: Conditions) -> Resource[Any] | None:
        patched = super().apply_patch(current, patch_op, conditions)
        if isinstance(patched, User):
            check_user(patched)
        return patched

    def read_search_body(self, resource_types: list[ResourceType], body: bytes,
                         content_type: str | None) -> tuple[SearchRequest[Any], Any]:
        raise NotImplementedException(detail="POST .search is not supported: use GET with "
                                             "a filter")

    def read_search_query(self, resource_types: list[ResourceType],
                          query: Mapping[str, str]) -> tuple[SearchRequest[Any], Any]:
        kept = {key: value for key, value in query.items()
                if key not in IGNORED_LIST_PARAMETERS}
        return super().read_search_query(resource_types, kept)
