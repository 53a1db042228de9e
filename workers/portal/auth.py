"""Sign-in and sign-out: OpenID Connect (authorization code + PKCE, through authlib), or the
embedded mode's local sign-in.

With ``GRANTLEDGER_OIDC_ISSUER`` and ``GRANTLEDGER_OIDC_CLIENT_ID`` set, /auth/signin sends
the visitor to the provider and /auth/callback checks the ID token (authlib verifies its
signature, issuer, audience and nonce) and maps its claims to a grantledger user
(``tasks.access.sign_in.enrolled_user``). Without them, only the embedded mode signs people
in, by picking a user: there is no password there, so it is refused anywhere else.
"""

from __future__ import annotations

from typing import Annotated, Any

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from workers.portal.render import page
from workers.portal.session import (
    check_csrf,
    runtime_of,
    safe_next,
    start_session,
)
from workers.settings import Settings

router = APIRouter(prefix="/auth", include_in_schema=False)
PROVIDER = "idp"


def make_oauth(settings: Settings) -> OAuth | None:
    """The authlib client of the configured provider, or None without OIDC settings."""
    if not settings.oidc_configured:
        return None
    oauth = OAuth()
    secret = settings.oidc_client_secret
    oauth.register(
        PROVIDER, client_id=settings.oidc_client_id,
        client_secret=secret.get_secret_value() if secret else None,
        server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}"  # type: ignore[union-attr]
                            "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"})
    return oauth


def redirect_uri(settings: Settings, request: Request) -> str:
    base = settings.portal_url or str(request.base_url)
    return f"{base.rstrip('/')}/auth/callback"


@router.get("/signin")
async def sign_in(request: Request, next: str | None = None) -> Response:  # noqa: A002
    """Start signing in: to the provider, or the embedded mode's user picker."""
    runtime = runtime_of(request)
    request.session["next"] = safe_next(next)
    oauth: OAuth | None = request.app.state.portal_oauth
    if oauth is not None:
        client = oauth.create_client(PROVIDER)
        return await client.authorize_redirect(request, redirect_uri(runtime.settings, request))
    if not runtime.settings.embedded:
        return page(request, "message.html", status=503, title="Sign-in is not configured",
                    message="This grantledger has no identity provider configured.",
                    hint="Set GRANTLEDGER_OIDC_ISSUER, GRANTLEDGER_OIDC_CLIENT_ID, "
                         "GRANTLEDGER_OIDC_CLIENT_SECRET and GRANTLEDGER_PORTAL_URL.")
    from tasks.access.sign_in import local_sign_in_choices

    return page(request, "local_signin.html", title="Sign in (embedded mode)",
                users=local_sign_in_choices(sessions=runtime.sessions))


@router.get("/callback")
async def callback(request: Request) -> Response:
    """The provider sends the visitor back here with a code; exchange it and sign in."""
    from tasks.access.sign_in import enrolled_user

    oauth: OAuth | None = request.app.state.portal_oauth
    if oauth is None:
        return page(request, "message.html", status=404, title="No identity provider",
                    message="This portal signs in without an identity provider.")
    try:
        token = await oauth.create_client(PROVIDER).authorize_access_token(request)
    except OAuthError as err:
        return page(request, "message.html", status=400, title="Sign-in failed",
                    message=f"The identity provider's answer was refused: {err.error}.",
                    hint="Sign in again.")
    claims: dict[str, Any] = token.get("userinfo") or {}
    # An email the provider says it has not verified names nobody (anyone could type it).
    email = claims.get("email") if claims.get("email_verified") is not False else None
    user_id = enrolled_user(sessions=runtime_of(request).sessions, email=email,
                            username=claims.get("preferred_username"))
    if user_id is None:
        request.session.clear()
        return page(request, "message.html", status=403, title="Not enrolled",
                    message=f"{claims.get('email') or claims.get('preferred_username') or 'You'}"
                            " is not enrolled in grantledger (or is suspended).",
                    hint="Ask an operator to add you as a user with this email address.")
    back_to = safe_next(request.session.get("next"))
    start_session(request, user_id)
    return RedirectResponse(back_to, status_code=303)


@router.post("/local", dependencies=[Depends(check_csrf)])
async def local_sign_in(request: Request, user: Annotated[str, Form()]) -> Response:
    """The embedded mode's sign-in as a chosen user; refused anywhere else."""
    from tasks.access.sign_in import local_user_id

    runtime = runtime_of(request)
    if request.app.state.portal_oauth is not None or not runtime.settings.embedded:
        return page(request, "message.html", status=403, title="Local sign-in refused",
                    message="Local sign-in exists only in the embedded mode without an "
                            "identity provider.")
    user_id = local_user_id(sessions=runtime.sessions, name=user)
    if user_id is None:
        return page(request, "message.html", status=403, title="Not enrolled",
                    message=f"{user} is not an active grantledger user.")
    back_to = safe_next(request.session.get("next"))
    start_session(request, user_id)
    return RedirectResponse(back_to, status_code=303)


@router.post("/signout", dependencies=[Depends(check_csrf)])
async def sign_out(request: Request) -> Response:
    request.session.clear()
    return page(request, "message.html", title="Signed out", message="You are signed out.",
                link=("/", "Sign in again"))
