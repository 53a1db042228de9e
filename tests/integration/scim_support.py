"""A real local HTTP server running the sandbox's SCIM app over a fresh moto identity store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from moto.identitystore.models import IdentityStoreBackend
from werkzeug.serving import make_server

from workers.adapters.scim import HttpScimDirectory
from workers.sandbox.scim import AwsScimApplication, make_scim_app

STORE_ID = "d-9067testing"
TOKEN = "scim-test-token"


@dataclass
class ScimServer:
    url: str
    app: AwsScimApplication
    backend: IdentityStoreBackend

    def client(self, token: str = TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                            timeout=10.0)

    def directory(self, token: str = TOKEN, **options: Any) -> HttpScimDirectory:
        return HttpScimDirectory(self.client(token), **options)

    def calls(self, name: str) -> int:
        return self.app.calls.snapshot().get(f"scim:{name}", 0)

    def seed_users(self, count: int, prefix: str = "seeded") -> list[str]:
        """Users written straight into the identity store (no externalId: not ours)."""
        return [self.backend.create_user(
            identity_store_id=STORE_ID, user_name=f"{prefix}{i}", display_name=f"{prefix} {i}",
            name={"GivenName": "Seeded", "FamilyName": str(i)}, nick_name=None,
            profile_url=None, emails=[], addresses=[], phone_numbers=[], user_type=None,
            title=None, preferred_language=None, locale=None, timezone=None,
        )[0] for i in range(count)]

    def member_ids(self, group_id: str) -> set[str]:
        """Every member of a group, as identitystore ListGroupMemberships pages them."""
        found, token = set(), None
        while True:
            page, token = self.backend.list_group_memberships(
                identity_store_id=STORE_ID, group_id=group_id, next_token=token)
            found |= {m["MemberId"]["UserId"] for m in page}
            if not token:
                return found


@contextmanager
def running_scim_server(*, rate_per_s: float | None = None,
                        backend: Callable[[], IdentityStoreBackend] | None = None
                        ) -> Iterator[ScimServer]:
    """Serve the SCIM app on 127.0.0.1 (random port) in a thread, until the block ends."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    source = backend or IdentityStoreBackend("us-east-1", "123456789012")
    app = make_scim_app(source, token=TOKEN, identity_store_id=STORE_ID,
                        rate_per_s=rate_per_s)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # A short poll interval keeps shutdown() (once per test) fast.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield ScimServer(url=f"http://127.0.0.1:{server.server_port}/scim/v2/", app=app,
                         backend=app.identity_store.backend)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def user_body(user_name: str, **overrides: Any) -> dict[str, Any]:
    body = {"schemas": [USER_SCHEMA], "userName": user_name, "displayName": user_name.title(),
            "name": {"givenName": "Given", "familyName": "Family"},
            "externalId": f"grantledger:{user_name}"}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}
