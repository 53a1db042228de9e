"""Per-user API tokens over HTTP.

Creating a token is admin-only: a leaked user token must not be able to mint successors that
outlive its revocation. A user token may list and revoke its own user's tokens (revoking is
how a user contains a leak); the admin sees and revokes all.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from tasks.access import tokens
from tasks.access.tokens import TokenView
from workers.api.auth import AdminDep, CallerDep, RuntimeDep
from workers.api.pagination import Page, PageDep, page_of
from workers.api.schemas import CreatedToken, Name, NewToken

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokenId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("", response_model=CreatedToken, status_code=201)
def create_token(runtime: RuntimeDep, caller: AdminDep, body: NewToken) -> CreatedToken:
    """Create a token acting as ``user`` (admin). The token is in this answer only."""
    token_id, plaintext = tokens.create_token(sessions=runtime.sessions, user=body.user,
                                              label=body.label, actor=caller)
    return CreatedToken(id=token_id, user=body.user, label=body.label.strip(), token=plaintext)


@router.get("", response_model=Page[TokenView])
def list_tokens(runtime: RuntimeDep, caller: CallerDep, page: PageDep,
                user: Annotated[Name | None, Query()] = None) -> dict[str, Any]:
    """Tokens (never their secrets): a user sees their own, the admin all or one user's."""
    return page_of(tokens.list_tokens(sessions=runtime.sessions, viewer=caller, user=user),
                   page)


@router.delete("/{token_id}", response_model=TokenView)
def revoke_token(runtime: RuntimeDep, caller: CallerDep, token_id: TokenId) -> TokenView:
    """Revoke a token at once (idempotent); a user token revokes only its user's tokens."""
    return tokens.revoke_token(sessions=runtime.sessions, token_id=token_id, actor=caller)
