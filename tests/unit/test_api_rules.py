"""The API's pure rules: error statuses, located problems, apply bodies, the admin-token
comparison, token digests and the metric families (no I/O)."""

from __future__ import annotations

import hashlib
import json

import pytest
from prometheus_client.core import Metric
from pydantic import SecretStr

from models import errors
from tasks.access.tokens import TOKEN_PREFIX, new_token, token_digest
from workers.api.auth import is_admin_token
from workers.api.errors import ApiError, located, status_for
from workers.api.routes_resources import sources_from
from workers.metrics import LedgerGauges, ledger_families, queue_family


@pytest.mark.parametrize(("error", "status"), [
    (errors.PolicyDenied("self-review"), 403),
    (errors.NotFound("user", "x"), 404),
    (errors.AlreadyExists("user", "x"), 409),
    (errors.CycleError(["a", "b", "a"]), 422),
    (errors.ResourceErrors([errors.ResourceError("bad", file="f", line=3, path="spec")]), 422),
    (errors.SchemaOutOfDate("old"), 503),
    (errors.ConfigError("no endpoint"), 503),
    (errors.AwsThrottled("slow down"), 503),
    (errors.AwsAccessDenied("no", action="sso:ListInstances"), 502),
    (errors.ScimAuthError("expired"), 502),
    (errors.GrantledgerError("unclassified"), 500),
])
def test_each_error_class_has_its_status(error: errors.GrantledgerError, status: int) -> None:
    assert status_for(error) == status


def test_located_problems_carry_file_line_and_path() -> None:
    batch = errors.ResourceErrors([
        errors.ResourceError("unknown field", file="users.yaml", line=7, path="spec.x"),
        errors.ResourceError("required", file="users.yaml", line=2, path="metadata.name")])
    assert located(batch) == [
        {"file": "users.yaml", "line": 7, "path": "spec.x", "message": "unknown field"},
        {"file": "users.yaml", "line": 2, "path": "metadata.name", "message": "required"}]
    assert located(errors.NotFound("user", "x")) == []


def test_apply_bodies_become_named_yaml_sources() -> None:
    documents = [{"kind": "user", "metadata": {"name": "a"}}, {"kind": "role"}]
    sources = sources_from("application/json; charset=utf-8",
                           json.dumps({"documents": documents}).encode())
    assert [name for name, _ in sources] == ["documents[0]", "documents[1]"]
    assert json.loads(sources[0][1]) == documents[0]
    assert sources_from("application/yaml", b"kind: user\n") == [("request-body",
                                                                   "kind: user\n")]


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("application/json", b"[1, 2]", 422),
    ("application/json", b'{"documents": []}', 422),
    ("application/json", b'{"documents": [{}], "user": "x"}', 422),
    ("application/yaml", b"\xff\xfe", 422),
    ("image/png", b"x", 415),
    ("", b"kind: user", 415),
])
def test_bad_apply_bodies_are_refused(content_type: str, body: bytes, status: int) -> None:
    with pytest.raises(ApiError) as refused:
        sources_from(content_type, body)
    assert refused.value.status == status


def test_admin_token_comparison() -> None:
    configured = SecretStr("s3cret-admin-token")
    assert is_admin_token("s3cret-admin-token", configured)
    assert not is_admin_token("s3cret-admin-tokeN", configured)
    assert not is_admin_token("", SecretStr(""))
    assert not is_admin_token("anything", None)


def test_tokens_are_random_prefixed_and_digested_with_sha256() -> None:
    first, second = new_token(), new_token()
    assert first != second and first.startswith(TOKEN_PREFIX) and len(first) > 40
    assert token_digest(first) == hashlib.sha256(first.encode()).hexdigest()


def _values(families: list[Metric]) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in families for s in family.samples}


def test_metric_families_list_every_state_and_skip_unknowns() -> None:
    gauges = LedgerGauges(grants_by_state={"ACTIVE": 3}, operations_by_state={},
                          expiry_lag_seconds=12.5, stuck_revocations=2,
                          last_full_sync_age_seconds=None)
    values = _values(ledger_families(gauges))
    assert values[("grantledger_grants", (("state", "ACTIVE"),))] == 3
    assert values[("grantledger_grants", (("state", "FAILED"),))] == 0
    assert values[("grantledger_operations", (("state", "SUBMITTED"),))] == 0
    assert values[("grantledger_expiry_lag_seconds", ())] == 12.5
    assert values[("grantledger_stuck_revocations", ())] == 2
    assert not any(name == "grantledger_last_full_sync_age_seconds" for name, _ in values)
    depths = _values([queue_family({"sync": 4, "poll": None})])
    assert depths == {("grantledger_queue_depth", (("queue", "sync"),)): 4}
