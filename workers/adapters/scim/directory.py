"""The pure parts of talking SCIM: request bodies and reading responses; no I/O.

The interface and its records live in ``models.ports.scim``; they are re-exported here for
the adapter.
"""

from __future__ import annotations

import json
from typing import Any

from models.ports.scim import (
    GROUP_SCHEMA,
    MAX_MEMBER_CHANGES,
    OWNERSHIP_PREFIX,
    PAGE_SIZE,
    PATCH_SCHEMA,
    USER_SCHEMA,
    ScimDirectory,
    ScimGroup,
    ScimUser,
    is_owned,
    mark_owned,
)

__all__ = [
    "GROUP_SCHEMA", "MAX_MEMBER_CHANGES", "OWNERSHIP_PREFIX", "PAGE_SIZE", "PATCH_SCHEMA",
    "USER_SCHEMA", "ScimDirectory", "ScimGroup", "ScimUser", "eq_filter", "error_detail",
    "group_from_scim", "is_owned", "mark_owned", "member_patches", "patch_body",
    "user_changes", "user_from_scim", "user_payload",
]


# -- requests ----------------------------------------------------------------------------


def eq_filter(attribute: str, value: str) -> str:
    """``attribute eq "value"``, the value quoted as a JSON string (SCIM's literal syntax)."""
    return f"{attribute} eq {json.dumps(value)}"


def user_payload(*, user_name: str, display_name: str, given_name: str, family_name: str,
                 email: str | None, external_id: str) -> dict[str, Any]:
    """A CreateUser body with the attributes AWS requires and one primary email."""
    payload: dict[str, Any] = {
        "schemas": [USER_SCHEMA], "userName": user_name, "displayName": display_name,
        "name": {"givenName": given_name, "familyName": family_name},
        "externalId": external_id, "active": True,
    }
    if email:
        payload["emails"] = [{"value": email, "type": "work", "primary": True}]
    return payload


def user_changes(*, user_name: str | None, display_name: str | None, given_name: str | None,
                 family_name: str | None, email: str | None) -> list[dict[str, Any]]:
    """PATCH operations replacing the attributes that were given."""
    paths = {"userName": user_name, "displayName": display_name,
             "name.givenName": given_name, "name.familyName": family_name}
    operations: list[dict[str, Any]] = [{"op": "replace", "path": path, "value": value}
                  for path, value in paths.items() if value is not None]
    if email is not None:
        operations.append({"op": "replace", "path": "emails",
                           "value": [{"value": email, "type": "work", "primary": True}]})
    return operations


def patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": operations}


def member_patches(op: str, user_ids: list[str]) -> list[dict[str, Any]]:
    """PATCH bodies adding or removing members, at most 100 member changes each.

    Removal uses one RFC 7644 filter path per member (``members[value eq "id"]``), which
    AWS and any RFC server accept; AWS refuses a remove-all or a replace of members.
    """
    unique = list(dict.fromkeys(user_ids))
    chunks = [unique[i:i + MAX_MEMBER_CHANGES] for i in range(0, len(unique),
                                                                 MAX_MEMBER_CHANGES)]
    if op == "add":
        return [patch_body([{"op": "add", "path": "members",
                             "value": [{"value": user_id} for user_id in chunk]}])
                for chunk in chunks]
    return [patch_body([{"op": "remove", "path": f"members[{eq_filter('value', user_id)}]"}
                        for user_id in chunk]) for chunk in chunks]


# -- responses ---------------------------------------------------------------------------


def user_from_scim(document: dict[str, Any], *, adopted: bool = False) -> ScimUser:
    """A ScimUser from a SCIM User document (its primary email, or the first one)."""
    name = document.get("name") or {}
    emails = document.get("emails") or []
    email = next((e for e in emails if e.get("primary")), emails[0] if emails else {})
    return ScimUser(
        id=document["id"], user_name=document.get("userName", ""),
        display_name=document.get("displayName"), given_name=name.get("givenName"),
        family_name=name.get("familyName"), email=email.get("value"),
        external_id=document.get("externalId"), active=document.get("active", True) is not False,
        adopted=adopted,
    )


def group_from_scim(document: dict[str, Any], *, adopted: bool = False) -> ScimGroup:
    """A ScimGroup from a SCIM Group document."""
    return ScimGroup(id=document["id"], display_name=document.get("displayName", ""),
                     external_id=document.get("externalId"), adopted=adopted)


def error_detail(body: Any) -> str:
    """The ``detail`` of a SCIM error body, or the text we got."""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("message") or body)
    return str(body)[:300]
