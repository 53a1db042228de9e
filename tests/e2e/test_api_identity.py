"""Identities through a real `grantledger api` process: a deleted user's token and pending
request never come back with the name (issue 17, hole 1), and a user token reads only what
its user may see (hole 7)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.api_process import running_api

ADMIN_TOKEN = "e2e-admin-" + secrets.token_urlsafe(32)
POLICY = """\
kind: role
metadata: {name: viewer}
spec: {}
---
kind: role
metadata: {name: developer}
spec: {allow: {request: {roles: [viewer], max_duration: 4h}}}
---
kind: role
metadata: {name: approver}
spec: {allow: {review_requests: {roles: ["*"]}}}
---
kind: user
metadata: {name: rev}
spec: {email: rev@example.com, given_name: Rev, family_name: Iewer, roles: [approver]}
"""


def jsmith(email: str) -> str:
    return ("kind: user\nmetadata: {name: jsmith}\n"
            f"spec: {{email: {email}, given_name: John, family_name: Smith, "
            "roles: [developer]}\n")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    """`grantledger api` on an embedded SQLite ledger, with an admin token."""
    with running_api(tmp_path, env={"GRANTLEDGER_API_TOKEN": ADMIN_TOKEN},
                     ready="/readyz") as url, httpx.Client(base_url=url, timeout=10.0) as client:
        yield client


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def apply(api: httpx.Client, text: str) -> None:
    answer = api.post("/v1/apply", content=text,
                      headers={**admin(), "Content-Type": "application/yaml"})
    assert answer.status_code == 200, answer.text


def token(api: httpx.Client, user: str) -> str:
    answer = api.post("/v1/tokens", json={"user": user}, headers=admin())
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def test_a_deleted_users_token_and_request_never_come_back_with_the_name(
        api: httpx.Client) -> None:
    apply(api, POLICY + "---\n" + jsmith("john@example.com"))
    old, reviewer = token(api, "jsmith"), token(api, "rev")
    filed = api.post("/v1/requests", json={"roles": ["viewer"], "reason": "before the delete"},
                     headers=bearer(old))
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]

    deleted = api.delete("/v1/users/jsmith", params={"force": True}, headers=admin())
    assert deleted.status_code == 200, deleted.text
    assert api.get("/v1/requestable", headers=bearer(old)).status_code == 401
    # The delete ended the request in the same transaction.
    assert api.get(f"/v1/requests/{request_id}", headers=admin()).json()["state"] == "DENIED"

    apply(api, jsmith("jane@example.com"))  # the name again, for someone else
    assert api.get("/v1/requestable", headers=bearer(old)).status_code == 401
    again = api.post("/v1/requests", json={"roles": ["viewer"], "reason": "resurrected"},
                     headers=bearer(old))
    assert again.status_code == 401
    approve = api.post(f"/v1/requests/{request_id}/approve", json={"reason": "ok"},
                       headers=bearer(reviewer))
    assert approve.status_code == 403 and "DENIED" in approve.json()["error"]
    # The new jsmith is a new person: their own token works, the old request is not theirs.
    new = token(api, "jsmith")
    assert api.get("/v1/requestable", headers=bearer(new)).status_code == 200
    mine = api.get("/v1/requests", headers=bearer(new)).json()["items"]
    assert mine == []


def test_a_user_token_reads_only_what_its_user_may_see(api: httpx.Client) -> None:
    apply(api, POLICY + "---\n" + jsmith("john@example.com") + """\
---
kind: user
metadata: {name: mallory}
spec: {email: m@example.com, given_name: Mal, family_name: Lory, roles: [developer]}
---
kind: role
metadata: {name: audit-reader}
spec: {options: {auditor: true}}
---
kind: user
metadata: {name: ada}
spec: {email: ada@example.com, given_name: Ada, family_name: Udit, roles: [audit-reader]}
""")
    john, mallory, rev, ada = (token(api, name) for name in ("jsmith", "mallory", "rev", "ada"))
    filed = api.post("/v1/requests", json={"roles": ["viewer"], "reason": "mine"},
                     headers=bearer(john)).json()["id"]
    spying = bearer(mallory)
    assert api.get("/v1/requests", headers=spying).json()["items"] == []
    assert api.get(f"/v1/requests/{filed}", headers=spying).status_code == 404
    assert api.get("/v1/requests", params={"user": "jsmith"}, headers=spying).json()[
        "items"] == []
    assert api.get("/v1/requestable", params={"user": "jsmith"},
                   headers=spying).status_code == 404
    assert api.get("/v1/users/jsmith", headers=spying).status_code == 404
    assert [u["name"] for u in api.get("/v1/users", headers=spying).json()["items"]] == [
        "mallory"]
    assert api.get("/v1/grants", params={"user": "jsmith"}, headers=spying).status_code == 404
    assert api.get("/v1/status", headers=spying).status_code == 403
    assert api.get("/v1/audit", headers=spying).status_code == 403
    assert api.get("/v1/operations", headers=spying).status_code == 403
    holders = api.get("/v1/roles/developer", headers=spying).json()["holders"]
    assert holders == ["mallory"]
    # The requester and a reviewer see the request; an auditor sees everything but status.
    assert api.get(f"/v1/requests/{filed}", headers=bearer(john)).status_code == 200
    assert api.get(f"/v1/requests/{filed}", headers=bearer(rev)).status_code == 200
    auditor = bearer(ada)
    assert api.get("/v1/audit", headers=auditor).status_code == 200
    assert api.get("/v1/grants", params={"user": "jsmith"}, headers=auditor).status_code == 200
    assert api.get("/v1/users/jsmith", headers=auditor).status_code == 200
    assert api.get("/v1/status", headers=auditor).status_code == 403
    assert api.get("/v1/status", headers=admin()).status_code == 200


def test_rights_are_rechecked_and_owners_do_not_grant_themselves(api: httpx.Client) -> None:
    apply(api, POLICY + "---\n" + jsmith("john@example.com") + """\
---
kind: user
metadata: {name: bob}
spec: {email: bob@example.com, given_name: Bob, family_name: Owner}
---
kind: access_list
metadata: {name: viewers}
spec: {title: Viewers, owners: [{name: bob}, {name: rev}], grants: {roles: [viewer]}}
---
kind: access_list
metadata: {name: viewers-and-approvers}
spec: {title: Broad, owners: [{name: rev}], grants: {roles: [viewer, approver]}}
""")
    john, bob, rev = token(api, "jsmith"), token(api, "bob"), token(api, "rev")
    # Hole 6: an owner adding themself needs another owner.
    selfish = api.post("/v1/access-lists/viewers/members", json={"member": "bob"},
                       headers=bearer(bob))
    assert selfish.status_code == 403 and "themself" in selfish.json()["error"]
    other = api.post("/v1/access-lists/viewers/members", json={"member": "bob"},
                     headers=bearer(rev))
    assert other.status_code == 200, other.text
    # Promotion into a list granting more than asked needs explicit confirmation.
    filed = api.post("/v1/requests", json={"roles": ["viewer"], "reason": "read"},
                     headers=bearer(john)).json()["id"]
    offered = api.get(f"/v1/requests/{filed}/promotion-lists", headers=bearer(rev)).json()
    assert [(c["access_list"], c["exact"]) for c in offered] == [
        ("viewers", True), ("viewers-and-approvers", False)]
    broad = api.post(f"/v1/requests/{filed}/promote",
                     json={"access_list": "viewers-and-approvers"}, headers=bearer(rev))
    assert broad.status_code == 403 and "grants more" in broad.json()["error"]
    # Hole 2: the right to ask is re-checked at approval.
    apply(api, jsmith("john@example.com").replace("roles: [developer]", "roles: []"))
    approved = api.post(f"/v1/requests/{filed}/approve", json={"reason": "ok"},
                        headers=bearer(rev))
    assert approved.status_code == 200 and approved.json()["state"] == "DENIED"
