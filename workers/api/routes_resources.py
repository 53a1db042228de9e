"""Resources: apply YAML or JSON documents, read users / roles / access lists, delete them.

Apply and delete are admin-only; reads are open to every token. A bad document is a 422
whose ``errors`` give file, line and field path, exactly like ``grantledger apply -f``; for
JSON bodies the "file" is ``documents[i]`` and lines count in that document pretty-printed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError

from models.resources import load_sources
from tasks.access import queries, resources
from tasks.access.queries import AccessListView, RoleView, UserView
from tasks.access.resources import ApplyResult
from workers.api.auth import AdminDep, CallerDep, RuntimeDep
from workers.api.errors import ApiError
from workers.api.pagination import Page, PageDep, page_of
from workers.api.schemas import ApplyDocuments, PathName

router = APIRouter(tags=["resources"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")
YAML_FILE = "request-body"
APPLY_BODY = {"requestBody": {"required": True, "content": {
    "application/yaml": {"schema": {"type": "string"},
                         "example": "kind: user\nversion: v1\nmetadata:\n  name: alice\n"},
    "application/json": {"schema": ApplyDocuments.model_json_schema()},
}}}


def sources_from(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The ``(file name, YAML text)`` pairs an apply body holds (JSON is YAML, too)."""
    media = content_type.split(";")[0].strip().lower()
    if media == "application/json":
        try:
            documents = ApplyDocuments.model_validate_json(body).documents
        except ValidationError as err:
            raise ApiError(422, f"the JSON body is not {{\"documents\": [...]}}: "
                                f"{err.errors()[0]['msg']}",
                           hint="send {\"documents\": [{\"kind\": ..., ...}]}") from None
        return [(f"documents[{index}]", json.dumps(document, indent=2))
                for index, document in enumerate(documents)]
    if media in YAML_TYPES:
        try:
            return [(YAML_FILE, body.decode("utf-8"))]
        except UnicodeDecodeError:
            raise ApiError(422, "the YAML body is not UTF-8 text") from None
    raise ApiError(415, f"cannot apply a {media or 'body without a content type'}",
                   hint="send application/yaml (YAML documents) or application/json")


async def apply_sources(request: Request) -> list[tuple[str, str]]:
    """Read the apply body (bounded by the gate) and split it into named YAML sources."""
    body = await request.body()
    return sources_from(request.headers.get("content-type", ""), body)


@router.post("/apply", response_model=ApplyResult, openapi_extra=APPLY_BODY,
             responses={415: {"description": "neither YAML nor JSON"}})
def apply(
    runtime: RuntimeDep, caller: AdminDep,
    sources: Annotated[list[tuple[str, str]], Depends(apply_sources)],
    dry_run: Annotated[bool, Query(description="show the changes, write nothing")] = False,
) -> ApplyResult:
    """Create or update users, roles and access lists; all of them or none (admin)."""
    loaded = load_sources(sources)
    return resources.apply_resources(sessions=runtime.sessions, loaded=loaded,
                                     actor=caller.label, dry_run=dry_run,
                                     max_nesting_depth=runtime.settings.max_nesting_depth)


@router.get("/users", response_model=Page[UserView])
def list_users(runtime: RuntimeDep, caller: CallerDep, page: PageDep) -> dict[str, Any]:
    """Users, by name: a user token sees its own user; the admin and auditors all."""
    return page_of(queries.list_users(sessions=runtime.sessions, viewer=caller), page)


@router.get("/users/{name}", response_model=UserView)
def get_user(runtime: RuntimeDep, caller: CallerDep, name: PathName) -> UserView:
    """One user's profile: a user token reads only its own (404 otherwise)."""
    return queries.get_user(sessions=runtime.sessions, viewer=caller, name=name)


@router.get("/roles", response_model=Page[RoleView])
def list_roles(runtime: RuntimeDep, caller: CallerDep, page: PageDep) -> dict[str, Any]:
    """Every role (system roles included), with the lists granting it; holders are shown to
    the admin and auditors (a user token sees only itself among them)."""
    return page_of(queries.list_roles(sessions=runtime.sessions, viewer=caller), page)


@router.get("/roles/{name}", response_model=RoleView)
def get_role(runtime: RuntimeDep, caller: CallerDep, name: PathName) -> RoleView:
    """One role (holders as in the listing)."""
    return queries.get_role(sessions=runtime.sessions, viewer=caller, name=name)


@router.get("/access-lists", response_model=Page[AccessListView])
def list_access_lists(runtime: RuntimeDep, caller: CallerDep, page: PageDep) -> dict[str, Any]:
    """Access lists with members, granted roles and review status: a user token sees those
    it owns or belongs to; the admin and auditors all."""
    return page_of(queries.list_access_lists(sessions=runtime.sessions, viewer=caller), page)


@router.get("/access-lists/{name}", response_model=AccessListView)
def get_access_list(runtime: RuntimeDep, caller: CallerDep, name: PathName) -> AccessListView:
    """One access list the caller may see (404 otherwise)."""
    return queries.get_access_list(sessions=runtime.sessions, viewer=caller, name=name)


ForceQuery = Annotated[bool, Query(description="also remove what still refers to it")]


@router.delete("/users/{name}", response_model=ApplyResult)
def delete_user(runtime: RuntimeDep, caller: AdminDep, name: PathName,
                force: ForceQuery = False) -> ApplyResult:
    """Delete a user, all or nothing (admin)."""
    return resources.delete_resource(sessions=runtime.sessions, kind="user", name=name,
                                     actor=caller.label, force=force)


@router.delete("/roles/{name}", response_model=ApplyResult)
def delete_role(runtime: RuntimeDep, caller: AdminDep, name: PathName,
                force: ForceQuery = False) -> ApplyResult:
    """Delete a role, all or nothing (admin)."""
    return resources.delete_resource(sessions=runtime.sessions, kind="role", name=name,
                                     actor=caller.label, force=force)


@router.delete("/access-lists/{name}", response_model=ApplyResult)
def delete_access_list(runtime: RuntimeDep, caller: AdminDep, name: PathName,
                       force: ForceQuery = False) -> ApplyResult:
    """Delete an access list, all or nothing (admin)."""
    return resources.delete_resource(sessions=runtime.sessions, kind="access_list", name=name,
                                     actor=caller.label, force=force)
