"""The sandbox behaves like IAM Identity Center, seen through unmodified boto3 over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from models.errors import ConfigError
from workers.sandbox import Sandbox, Seeded

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "ops/examples/sandbox-small.yaml"
PS_ARN = "arn:aws:sso:::permissionSet/ssoins-7223a1b2c3d4e5f6/ps-0000000000000000"
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture()
def start() -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox with the options given; stopped after the test."""
    started: list[Sandbox] = []

    def start_sandbox(**options: Any) -> Sandbox:
        started.append(Sandbox(**options).start())
        return started[-1]

    yield start_sandbox
    for sandbox in started:
        sandbox.stop()


@pytest.fixture()
def small(start) -> tuple[Sandbox, Seeded]:
    sandbox = start(settle_delay=0.05)
    return sandbox, sandbox.seed(SMALL)


def wait_settled(sso: Any, instance_arn: str, request_id: str, *, deletion: bool = False,
                 within: float = 5.0) -> dict[str, Any]:
    """Poll an operation until it leaves IN_PROGRESS (or fail after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while True:
        if deletion:
            status = sso.describe_account_assignment_deletion_status(
                InstanceArn=instance_arn, AccountAssignmentDeletionRequestId=request_id,
            )["AccountAssignmentDeletionStatus"]
        else:
            status = sso.describe_account_assignment_creation_status(
                InstanceArn=instance_arn, AccountAssignmentCreationRequestId=request_id,
            )["AccountAssignmentCreationStatus"]
        if status["Status"] != "IN_PROGRESS":
            return status
        assert time.monotonic() < deadline, f"{request_id} still IN_PROGRESS"
        time.sleep(0.01)


def assignment(sandbox: Sandbox, principal_type: str, principal_id: str, account: str,
               permission_set_arn: str) -> dict[str, str]:
    return {"InstanceArn": sandbox.instance_arn, "TargetId": account,
            "TargetType": "AWS_ACCOUNT", "PermissionSetArn": permission_set_arn,
            "PrincipalType": principal_type, "PrincipalId": principal_id}


def control(sandbox: Sandbox, name: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{sandbox.endpoint_url}/_sandbox/{name}", method="POST" if body is not None else "GET",
        data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# -- asynchronous operations -------------------------------------------------------------------

def test_create_is_in_progress_then_succeeds_after_the_settle_delay(start) -> None:
    sandbox = start(settle_delay=0.3)
    seeded = sandbox.seed(SMALL)
    sso = sandbox.client("sso-admin")
    request = assignment(sandbox, "USER", seeded.users["carol"], "333333333333",
                         seeded.permission_sets["BillingAccess"])
    submitted_at = time.monotonic()
    answer = sso.create_account_assignment(**request)["AccountAssignmentCreationStatus"]
    assert answer["Status"] == "IN_PROGRESS" and len(answer["RequestId"]) == 36
    assert answer["TargetType"] == "AWS_ACCOUNT" and "CreatedDate" in answer
    settled = wait_settled(sso, sandbox.instance_arn, answer["RequestId"])
    assert settled["Status"] == "SUCCEEDED"
    assert time.monotonic() - submitted_at >= 0.3
    rows = sso.list_account_assignments(InstanceArn=sandbox.instance_arn,
                                        AccountId="333333333333",
                                        PermissionSetArn=request["PermissionSetArn"])
    assert [r["PrincipalId"] for r in rows["AccountAssignments"]] == [seeded.users["carol"]]
    provisioned = sso.list_permission_sets_provisioned_to_account(
        InstanceArn=sandbox.instance_arn, AccountId="333333333333")["PermissionSets"]
    assert request["PermissionSetArn"] in provisioned


@pytest.mark.parametrize(("change", "reason"), [
    ({"PrincipalId": "ffffffff-0000-0000-0000-000000000000"},
     "Received a 404 status error: the USER assignee ffffffff-0000-0000-0000-000000000000 "
     "was not found in directory d-9067a1b2c3"),
    ({"TargetId": "999999999999"},
     "Received a 404 status error: the target account 999999999999 was not found in the "
     "organization"),
    ({"PermissionSetArn": PS_ARN},
     f"Received a 404 status error: PermissionSet {PS_ARN} was not found in instance "
     "arn:aws:sso:::instance/ssoins-7223a1b2c3d4e5f6"),
])
def test_unknown_things_fail_asynchronously(small, change, reason) -> None:
    sandbox, seeded = small
    sso = sandbox.client("sso-admin")
    request = {**assignment(sandbox, "USER", seeded.users["alice"], "111111111111",
                            seeded.permission_sets["ReadOnlyAccess"]), **change}
    answer = sso.create_account_assignment(**request)["AccountAssignmentCreationStatus"]
    assert answer["Status"] == "IN_PROGRESS"
    settled = wait_settled(sso, sandbox.instance_arn, answer["RequestId"])
    assert (settled["Status"], settled["FailureReason"]) == ("FAILED", reason)


def test_deleting_a_missing_assignment_fails_like_aws(small) -> None:
    sandbox, seeded = small
    sso = sandbox.client("sso-admin")
    request = assignment(sandbox, "USER", seeded.users["bob"], "222222222222",
                         seeded.permission_sets["BillingAccess"])
    answer = sso.delete_account_assignment(**request)["AccountAssignmentDeletionStatus"]
    settled = wait_settled(sso, sandbox.instance_arn, answer["RequestId"], deletion=True)
    assert settled["Status"] == "FAILED"
    assert settled["FailureReason"].startswith(
        "Received a 404 status error: EntitlementItem doesn't exist")


# -- set semantics, pagination, conflicts ------------------------------------------------------

def test_assignments_are_a_set_and_pages_have_no_duplicates(small) -> None:
    sandbox, seeded = small
    sso = sandbox.client("sso-admin")
    arn = seeded.permission_sets["PowerUserAccess"]
    users = [seeded.users[name] for name in ("alice", "bob", "carol", "dave")]
    request_ids = [sso.create_account_assignment(**assignment(
        sandbox, "USER", user, "111111111111", arn))["AccountAssignmentCreationStatus"]
        ["RequestId"] for user in users + users[:1]]  # alice twice
    assert {wait_settled(sso, sandbox.instance_arn, r)["Status"] for r in request_ids} == {
        "SUCCEEDED"}
    pages = sso.get_paginator("list_account_assignments").paginate(
        InstanceArn=sandbox.instance_arn, AccountId="111111111111", PermissionSetArn=arn,
        PaginationConfig={"PageSize": 1})
    rows = [row["PrincipalId"] for page in pages for row in page["AccountAssignments"]]
    assert sorted(rows) == sorted(users)
    with pytest.raises(ClientError) as raised:
        sso.list_account_assignments(InstanceArn=sandbox.instance_arn, MaxResults=101,
                                     AccountId="111111111111", PermissionSetArn=arn)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_overlapping_create_and_delete_conflict(start) -> None:
    sandbox = start(settle_delay=30)
    seeded = sandbox.seed(SMALL)
    sso = sandbox.client("sso-admin", config=NO_RETRIES)
    request = assignment(sandbox, "USER", seeded.users["erin"], "111111111111",
                         seeded.permission_sets["PowerUserAccess"])
    sso.create_account_assignment(**request)
    with pytest.raises(ClientError) as raised:
        sso.delete_account_assignment(**request)
    error = raised.value.response
    assert error["Error"]["Code"] == "ConflictException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- throttling --------------------------------------------------------------------------------

def test_throttles_at_the_configured_rate(start) -> None:
    sandbox = start(rate=20)
    sso = sandbox.client("sso-admin", config=NO_RETRIES)

    def accepted() -> bool:
        try:
            sso.list_permission_sets(InstanceArn=sandbox.instance_arn)
            return True
        except ClientError as err:
            assert err.response["Error"] == {"Code": "ThrottlingException",
                                             "Message": "Rate exceeded"}
            return False

    while accepted():  # spend the burst first: steady state is what we measure
        pass
    calls, ok, began = 0, 0, time.monotonic()
    while calls < 300 or time.monotonic() - began < 2.0:
        ok += accepted()
        calls += 1
    per_second = ok / (time.monotonic() - began)
    assert 18.0 <= per_second <= 22.0, per_second
    assert sandbox.throttled()["sso-admin:ListPermissionSets"] >= calls - ok


def test_identitystore_is_throttled_too(start) -> None:
    sandbox = start(rate=5)
    identitystore = sandbox.client("identitystore", config=NO_RETRIES)
    codes = []
    for _ in range(12):
        try:
            identitystore.list_users(IdentityStoreId=sandbox.identity_store_id)
            codes.append("ok")
        except ClientError as err:
            codes.append(err.response["Error"]["Code"])
    assert codes[:5] == ["ok"] * 5 and "ThrottlingException" in codes[5:]


def test_a_sixteenth_outstanding_create_is_refused(start) -> None:
    sandbox = start(settle_delay=0.05)
    seeded = sandbox.seed(SMALL)
    sso = sandbox.client("sso-admin", config=NO_RETRIES)
    sandbox.faults.stalled = True
    arns = list(seeded.permission_sets.values())
    requests = [assignment(sandbox, "USER", user, account, arn)
                for user in seeded.users.values() for account in ("111111111111", "222222222222")
                for arn in arns][:16]
    for request in requests[:15]:
        sso.create_account_assignment(**request)
    with pytest.raises(ClientError) as raised:
        sso.create_account_assignment(**requests[15])
    assert raised.value.response["Error"] == {
        "Code": "ThrottlingException",
        "Message": "There are too many requests processing. Please try again later."}
    sandbox.faults.stalled = False
    answer = sso.list_account_assignment_creation_status(
        InstanceArn=sandbox.instance_arn, Filter={"Status": "IN_PROGRESS"})
    assert len(answer["AccountAssignmentsCreationStatus"]) == 15
    deadline = time.monotonic() + 5
    while sandbox.center.operations("CREATE", status="IN_PROGRESS"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    sso.create_account_assignment(**requests[15])


# -- faults ------------------------------------------------------------------------------------

def test_fail_next_and_stall_on_demand(small) -> None:
    sandbox, seeded = small
    sso = sandbox.client("sso-admin")
    arn = seeded.permission_sets["ReadOnlyAccess"]
    control(sandbox, "faults", {"fail_next": 1, "failure_reason": "Disk on fire"})
    failed = sso.create_account_assignment(**assignment(
        sandbox, "USER", seeded.users["dave"], "333333333333", arn))
    request_id = failed["AccountAssignmentCreationStatus"]["RequestId"]
    assert wait_settled(sso, sandbox.instance_arn, request_id)["FailureReason"] == "Disk on fire"

    control(sandbox, "faults", {"stall": True})
    stalled = sso.create_account_assignment(**assignment(
        sandbox, "USER", seeded.users["dave"], "333333333333", arn))
    request_id = stalled["AccountAssignmentCreationStatus"]["RequestId"]
    window = time.monotonic() + 0.3  # six settle delays: it must not settle in them
    while time.monotonic() < window:
        assert sso.describe_account_assignment_creation_status(
            InstanceArn=sandbox.instance_arn, AccountAssignmentCreationRequestId=request_id,
        )["AccountAssignmentCreationStatus"]["Status"] == "IN_PROGRESS"
        time.sleep(0.02)
    assert control(sandbox, "faults", {"stall": False})["stall"] is False
    assert wait_settled(sso, sandbox.instance_arn, request_id)["Status"] == "SUCCEEDED"


def test_throttle_ratio_on_demand(start) -> None:
    sandbox = start()
    sso = sandbox.client("sso-admin", config=NO_RETRIES)
    sandbox.faults.throttle_ratio = 1.0
    with pytest.raises(ClientError) as raised:
        sso.list_instances()
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    sandbox.faults.throttle_ratio = 0.5
    outcomes = []
    for _ in range(200):
        try:
            sso.list_instances()
            outcomes.append(True)
        except ClientError:
            outcomes.append(False)
    assert 50 <= outcomes.count(False) <= 150


def test_denied_actions_on_demand(start) -> None:
    from models.errors import AwsAccessDenied
    from workers.adapters.aws.call import call

    sandbox = start()
    sso = sandbox.client("sso-admin", config=NO_RETRIES)
    listing = {"InstanceArn": sandbox.instance_arn, "MaxResults": 1}
    state = control(sandbox, "faults", {"denied": ["ListAccountAssignmentCreationStatus"]})
    assert state["denied"] == ["ListAccountAssignmentCreationStatus"]
    with pytest.raises(AwsAccessDenied) as raised:  # what the call wrapper makes of it
        call(sso, "ListAccountAssignmentCreationStatus", **listing)
    assert raised.value.action == "sso:ListAccountAssignmentCreationStatus"
    sso.list_account_assignment_deletion_status(**listing)  # only what was named
    sandbox.faults.clear()
    assert sso.list_account_assignment_creation_status(**listing)[
        "AccountAssignmentsCreationStatus"] == []


# -- counting, control, seeding ----------------------------------------------------------------

def test_every_call_is_counted(start) -> None:
    sandbox = start()
    sso, org = sandbox.client("sso-admin"), sandbox.client("organizations")
    for _ in range(3):
        sso.list_instances()
    org.list_accounts()
    sandbox.client("sts").get_caller_identity()
    sandbox.client("iam").list_roles()
    expected = {"sso-admin:ListInstances": 3, "organizations:ListAccounts": 1,
                "sts:GetCallerIdentity": 1, "iam:ListRoles": 1}
    assert sandbox.calls() == expected
    assert control(sandbox, "calls") == expected


def test_control_api_info_reset_and_seed(start) -> None:
    sandbox = start()
    info = control(sandbox, "info")
    assert info["scim_url"] == sandbox.endpoint_url + "/scim/v2/"
    assert (info["instance_arn"], info["identity_store_id"]) == (
        sandbox.instance_arn, sandbox.identity_store_id)
    assert control(sandbox, "seed", yaml.safe_load(SMALL.read_text())) == {"seeded": True}
    assert len(control(sandbox, "assignments")) == 8
    control(sandbox, "reset", {})
    assert control(sandbox, "assignments") == []
    ids = [a["Id"] for a in sandbox.client("organizations").list_accounts()["Accounts"]]
    assert ids == ["123456789012"]


def test_seeding_the_small_fixture_shows_everything(small) -> None:
    sandbox, seeded = small
    accounts = {a["Id"]: a["Name"] for a in
                sandbox.client("organizations").list_accounts()["Accounts"]}
    assert accounts == {"123456789012": "Management", "111111111111": "Production",
                        "222222222222": "Staging", "333333333333": "Sandbox"}
    identitystore = sandbox.client("identitystore")
    users = identitystore.list_users(IdentityStoreId=sandbox.identity_store_id)["Users"]
    assert sorted(u["UserName"] for u in users) == ["alice", "bob", "carol", "dave", "erin",
                                                    "frank"]
    groups = {g["DisplayName"]: g["GroupId"] for g in identitystore.list_groups(
        IdentityStoreId=sandbox.identity_store_id)["Groups"]}
    members = identitystore.list_group_memberships(
        IdentityStoreId=sandbox.identity_store_id, GroupId=groups["Developers"])
    assert {m["MemberId"]["UserId"] for m in members["GroupMemberships"]} == {
        seeded.users[name] for name in ("carol", "dave", "erin")}
    sso = sandbox.client("sso-admin")
    arns = sso.list_permission_sets(InstanceArn=sandbox.instance_arn)["PermissionSets"]
    names = {sso.describe_permission_set(InstanceArn=sandbox.instance_arn, PermissionSetArn=a)
             ["PermissionSet"]["Name"] for a in arns}
    assert names == {"AdministratorAccess", "ReadOnlyAccess", "PowerUserAccess", "BillingAccess"}
    admins = sso.list_account_assignments(
        InstanceArn=sandbox.instance_arn, AccountId="111111111111",
        PermissionSetArn=seeded.permission_sets["AdministratorAccess"])["AccountAssignments"]
    assert [(a["PrincipalType"], a["PrincipalId"]) for a in admins] == [
        ("GROUP", groups["Platform Admins"])]
    frank = sso.list_account_assignments_for_principal(
        InstanceArn=sandbox.instance_arn, PrincipalType="USER",
        PrincipalId=seeded.users["frank"])["AccountAssignments"]
    assert [(a["AccountId"], a["PermissionSetArn"]) for a in frank] == [
        ("222222222222", seeded.permission_sets["ReadOnlyAccess"])]
    assert len(sandbox.assignments()) == 8


def test_scim_is_mounted_on_the_same_endpoint(small) -> None:
    sandbox, _ = small
    request = urllib.request.Request(sandbox.scim_url + "Users",
                                     headers={"Authorization": f"Bearer {sandbox.scim_token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["totalResults"] == 6


def printed_settings(stream: Any) -> dict[str, str]:
    """The `export NAME=value` lines serve_forever prints, up to the last one (the SCIM
    token); every line is an export or a comment, so the output can be sourced as it is."""
    settings = {}
    for line in iter(stream.readline, ""):
        assert line.startswith(("export GRANTLEDGER_", "#")), line
        name, equals, value = line.strip().removeprefix("export ").partition("=")
        if equals:
            settings[name] = value
        if name == "GRANTLEDGER_SCIM_TOKEN":
            break
    return settings


@pytest.mark.timeout(60)
def test_serve_forever_prints_where_it_listens() -> None:
    command = ("from workers.sandbox import serve_forever; serve_forever(host='127.0.0.1', "
               f"port=0, fixture={str(SMALL)!r}, settle_delay=0.0, rate=None)")
    server = subprocess.Popen([sys.executable, "-c", command], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        printed = printed_settings(server.stdout)
        endpoint = printed["GRANTLEDGER_AWS_ENDPOINT_URL"]
        assert printed["GRANTLEDGER_SCIM_URL"] == endpoint + "/scim/v2/"
        assert printed["GRANTLEDGER_SCIM_TOKEN"] == "sandbox-scim-token"
        with urllib.request.urlopen(endpoint + "/_sandbox/assignments", timeout=10) as answer:
            assert len(json.loads(answer.read())) == 8
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.timeout(60)
def test_sandbox_serve_writes_an_env_file_and_logs_no_request_below_debug(tmp_path) -> None:
    env_file = tmp_path / "sandbox.env"
    server = subprocess.Popen(
        [sys.executable, "-m", "workers.cli.main", "sandbox", "serve", "--port", "0",
         "--fixture", str(SMALL), "--env-file", str(env_file)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("GRANTLEDGER_")})
    try:
        printed = printed_settings(server.stdout)
        sourced = subprocess.run(["bash", "-c", f"source {env_file} && env"],
                                 capture_output=True, text=True, check=True).stdout
        assert {f"{name}={value}" for name, value in printed.items()} <= set(
            sourced.splitlines())
        with urllib.request.urlopen(printed["GRANTLEDGER_AWS_ENDPOINT_URL"]
                                    + "/_sandbox/assignments", timeout=10) as answer:
            assert answer.status == 200
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=10)
    assert "GET /_sandbox/assignments" not in errors  # per-request lines: DEBUG only


def test_only_one_sandbox_runs_per_process(start) -> None:
    start()
    with pytest.raises(RuntimeError, match="already running"):
        Sandbox().start()


def test_a_failed_start_lets_another_sandbox_run(start) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConfigError, match="address in use"):
            Sandbox().start(port=taken.getsockname()[1])
    assert start().client("sso-admin").list_instances()["Instances"]


# -- done when ---------------------------------------------------------------------------------

def retrying(call: Callable[[], Any], *, within: float = 60.0) -> tuple[Any, int]:
    """Call until AWS stops throttling; the answer and how many times it was throttled."""
    throttled, deadline = 0, time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            return call(), throttled
        except ClientError as err:
            assert err.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
            time.sleep(0.02)
    raise AssertionError(f"still throttled after {within} s")


def create_all(sandbox: Sandbox, sso: Any, keys: list[tuple[str, str, str, str]]
               ) -> tuple[list[dict[str, Any]], int]:
    """Submit every create, retrying throttled calls; the answers and the throttle count."""
    answers, throttled = [], 0
    for key in keys:
        answer, refused = retrying(
            lambda key=key: sso.create_account_assignment(**assignment(sandbox, *key)))
        answers.append(answer["AccountAssignmentCreationStatus"])
        throttled += refused
    return answers, throttled


def listed(sandbox: Sandbox, sso: Any, account: str, arn: str
           ) -> list[tuple[str, str, str, str]]:
    """Every row of ListAccountAssignments, page by page (MaxResults=10)."""
    # Retry each page, not the whole listing: a listing retried whole never finishes under
    # a steady 20/s once it needs more calls than the bucket refills between two tries.
    rows, params = [], {"InstanceArn": sandbox.instance_arn, "AccountId": account,
                        "PermissionSetArn": arn, "MaxResults": 10}
    while True:
        page, _ = retrying(lambda: sso.list_account_assignments(**params))
        rows += [(r["PrincipalType"], r["PrincipalId"], r["AccountId"], r["PermissionSetArn"])
                 for r in page["AccountAssignments"]]
        if "NextToken" not in page:
            return rows
        params["NextToken"] = page["NextToken"]


def succeeded_creates(sandbox: Sandbox, sso: Any) -> set[str]:
    pages = sso.get_paginator("list_account_assignment_creation_status").paginate(
        InstanceArn=sandbox.instance_arn, Filter={"Status": "SUCCEEDED"})
    return {s["RequestId"] for page in pages for s in page["AccountAssignmentsCreationStatus"]}


def test_a_hundred_assignments_settle_without_duplicates_at_the_rate(start) -> None:
    sandbox = start(settle_delay=0.05, rate=20)
    seeded = sandbox.seed(SMALL)
    sso = sandbox.client("sso-admin", config=NO_RETRIES)
    principals = [("USER", user) for user in seeded.users.values()] + [
        ("GROUP", group) for group in seeded.groups.values()]
    keys = [(kind, principal, account, arn) for kind, principal in principals
            for account in seeded.accounts.values() for arn in seeded.permission_sets.values()
            if (kind, principal, account, arn) not in seeded.assignments]
    assert len(keys) == 100
    began = time.monotonic()
    submitted, throttled = create_all(sandbox, sso, keys)
    assert {s["Status"] for s in submitted} == {"IN_PROGRESS"}
    assert len({s["RequestId"] for s in submitted}) == 100
    # a burst of 20, then 20/s: the other 80 creates cannot take less than 4 s
    assert throttled > 0 and time.monotonic() - began >= 4.0 * 0.9
    deadline = time.monotonic() + 30
    while retrying(lambda: succeeded_creates(sandbox, sso))[0] != {
            s["RequestId"] for s in submitted}:
        assert time.monotonic() < deadline, "creates did not all succeed"
        time.sleep(0.25)  # each check is a paginated listing that spends rate tokens
    rows = [row for account in seeded.accounts.values()
            for arn in seeded.permission_sets.values()
            for row in listed(sandbox, sso, account, arn)]
    assert len(rows) == len(set(rows)) == 108  # 100 created + 8 seeded, none twice
    assert set(rows) == set(keys) | seeded.assignments == sandbox.assignments()


def test_status_listings_through_the_adapter_page_and_stop_at_their_budget(start) -> None:
    import boto3

    from workers.adapters.aws import BotoIdentityCenter, make_clients
    from workers.limiter import make_limiter
    from workers.settings import Settings

    sandbox = start(settle_delay=0.05)
    seeded = sandbox.seed(SMALL)
    settings = Settings(aws_endpoint_url=sandbox.endpoint_url, broker_url="memory://",
                        instance_arn=sandbox.instance_arn,
                        identity_store_id=sandbox.identity_store_id)
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    center = BotoIdentityCenter(make_clients(settings, session=session), settings=settings,
                                limiter=make_limiter(settings))
    sso = sandbox.client("sso-admin")
    sandbox.faults.stalled = True
    [account] = list(seeded.accounts.values())[:1]
    arns = list(seeded.permission_sets.values())
    ids = {sso.delete_account_assignment(  # none of these exists: each ends FAILED (404)
        InstanceArn=sandbox.instance_arn, TargetId=account, TargetType="AWS_ACCOUNT",
        PermissionSetArn=arns[n % len(arns)], PrincipalType="USER",
        PrincipalId=f"9067{n:06d}-0000-0000-0000-000000000000",
    )["AccountAssignmentDeletionStatus"]["RequestId"] for n in range(150)}
    running = center.operation_statuses("delete", "IN_PROGRESS")
    assert running.complete and running.request_ids == ids  # two pages of 100 at most
    first_page = center.operation_statuses("delete", "IN_PROGRESS", max_pages=1)
    assert not first_page.complete and len(first_page.request_ids) == 100
    assert first_page.request_ids < ids
    sandbox.faults.stalled = False
    deadline = time.monotonic() + 10
    while center.operation_statuses("delete", "IN_PROGRESS").request_ids:
        assert time.monotonic() < deadline, "deletes did not settle"
        time.sleep(0.05)
    assert center.operation_statuses("delete", "FAILED").request_ids == ids
    assert center.operation_statuses("create", "FAILED").request_ids == frozenset()
