"""The catalog the import brought in: accounts, permission sets, account assignments.

Open to every token (it is what people choose from when they request access). A permission
set is named by name or ARN and an assignment by ``<account-id>/<permission-set-name>`` or
its system role, so those names may contain slashes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tasks.importing import catalog
from tasks.importing.catalog import AccountView, AssignmentView, PermissionSetView
from workers.api.auth import RuntimeDep
from workers.api.pagination import Page, PageDep, page_of
from workers.api.schemas import PathName

router = APIRouter(tags=["catalog"])


@router.get("/accounts", response_model=Page[AccountView])
def list_accounts(runtime: RuntimeDep, page: PageDep) -> dict[str, Any]:
    """Every account the ledger knows (vanished ones have ``present`` false)."""
    return page_of(catalog.list_accounts(sessions=runtime.sessions), page)


@router.get("/accounts/{name}", response_model=AccountView)
def get_account(runtime: RuntimeDep, name: PathName) -> AccountView:
    """One account, by id or name."""
    return catalog.get_account(sessions=runtime.sessions, name=name)


@router.get("/permission-sets", response_model=Page[PermissionSetView])
def list_permission_sets(runtime: RuntimeDep, page: PageDep) -> dict[str, Any]:
    """Every permission set the ledger knows, by name."""
    return page_of(catalog.list_permission_sets(sessions=runtime.sessions), page)


@router.get("/permission-sets/{name:path}", response_model=PermissionSetView)
def get_permission_set(runtime: RuntimeDep, name: PathName) -> PermissionSetView:
    """One permission set, by name or ARN."""
    return catalog.get_permission_set(sessions=runtime.sessions, name=name)


@router.get("/assignments", response_model=Page[AssignmentView])
def list_assignments(runtime: RuntimeDep, page: PageDep) -> dict[str, Any]:
    """Each present (account, permission set) pair: its id, system role, granting lists."""
    return page_of(catalog.list_assignments(sessions=runtime.sessions), page)


@router.get("/assignments/{name:path}", response_model=AssignmentView)
def get_assignment(runtime: RuntimeDep, name: PathName) -> AssignmentView:
    """One assignment, by ``<account-id>/<permission-set-name>`` or system role name."""
    return catalog.get_assignment(sessions=runtime.sessions, name=name)
