"""Fuzz the HTTP API from its own OpenAPI document (schemathesis): whatever a client sends,
with the admin token or a user's, the answer is never a 5xx and always what the document
says (status code, content type, headers, body schema).

The app runs on a real uvicorn server on 127.0.0.1, over a PostgreSQL ledger of its own
holding the access-request world, and an in-process Sandbox (so /v1/plan can read AWS).
Bounded: a few examples per operation, the whole module well under 90 s. The long run
(README, "Fuzzing the API"): GRANTLEDGER_TEST_FUZZ_EXAMPLES=200.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from models.ledger.db import transaction
from tasks.access.permissions import operator
from tasks.access.tokens import create_token
from tests.conftest import throwaway_database
from tests.integration.api_support import ADMIN, api_settings, bearer
from tests.integration.requests_support import ROLES, World, add_catalog
from tests.waiting import eventually
from workers.api import create_app
from workers.runtime import Runtime, with_inprocess_sandbox

EXAMPLES_PER_OPERATION = int(os.environ.get("GRANTLEDGER_TEST_FUZZ_EXAMPLES", "4"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
START_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def fuzz_db_url(pg_url: str) -> Iterator[str]:
    with throwaway_database("gl_fuzz", migrated=True) as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_runtime(fuzz_db_url: str) -> Iterator[Runtime]:
    """The world's ledger, and a Sandbox for the routes that read AWS."""
    pointed, sandbox = with_inprocess_sandbox(api_settings(fuzz_db_url), settle_delay=0.0)
    runtime = Runtime(pointed, sandbox=sandbox)
    with transaction(runtime.sessions) as session:
        add_catalog(session)
    world = World(runtime.sessions)
    for name, spec in ROLES.items():
        world.add_role(name, spec)
    for user, roles in (("alice", ["developer"]), ("bob", ["security-reviewer"])):
        world.add_user(user, roles)
    world.add_list("sre", owners=["bob"], roles=[], members=["alice"])
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def api_url(fuzz_runtime: Runtime) -> Iterator[str]:
    """The API served by uvicorn in a thread, on a free port of 127.0.0.1."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(fuzz_runtime), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    eventually(lambda: server.started, what="uvicorn started", timeout=START_TIMEOUT,
               every=0.02)
    yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=START_TIMEOUT)


@pytest.fixture(scope="module")
def api_schema(api_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_url}/openapi.json")


@pytest.fixture(scope="module")
def alice(fuzz_runtime: Runtime) -> dict[str, str]:
    _, plaintext = create_token(sessions=fuzz_runtime.sessions, user="alice",
                                actor=operator("fuzz"))
    return bearer(plaintext)


# Plain hypothesis over each operation's strategy: schemathesis' pytest integration
# (from_fixture) breaks on pytest 9 (it reads the removed ``Function._nodeid``).
bounded = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                   suppress_health_check=list(HealthCheck))
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


def server_errors(schema: schemathesis.BaseSchema,
                  headers: dict[str, str]) -> tuple[list[str], int]:
    """Fuzz every operation (valid and invalid inputs); one line per operation that answered
    a 5xx or something its schema does not describe; and how many cases were sent."""
    failures = []
    sent = [0]
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:

            @given(case=operation.as_strategy(generation_mode=mode))
            @bounded
            def never_5xx(case: schemathesis.Case) -> None:
                response = case.call(headers=headers, timeout=30)
                sent[0] += 1
                case.validate_response(response, checks=CHECKS, headers=headers)

            try:
                never_5xx()
            except Unsatisfiable:  # no invalid input exists (an operation without parameters)
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            except (AssertionError, FailureGroup) as err:
                failures.append(f"{operation.label} ({mode.value}): {str(err)[:600]}")
    return failures, sent[0]


def test_admin_token_never_gets_a_server_error(api_schema: schemathesis.BaseSchema,
                                               record_property) -> None:
    failures, sent = server_errors(api_schema, ADMIN)
    record_property("cases", sent)  # in --junitxml: the long run's figure
    assert failures == []


def test_user_token_never_gets_a_server_error(api_schema: schemathesis.BaseSchema,
                                              alice: dict[str, str], record_property) -> None:
    failures, sent = server_errors(api_schema, alice)
    record_property("cases", sent)
    assert failures == []
