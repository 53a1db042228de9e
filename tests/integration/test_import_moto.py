"""The import against plain moto (its own server, seeded through boto3): the same code that
runs against the sandbox and AWS, with moto's IAM policy evaluation for AccessDenied.

moto keeps its state process-wide (as the sandbox does): each test resets it first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from models.domain import PrincipalType
from models.errors import AwsAccessDenied
from models.ledger import tables
from models.ledger.enums import GrantState, SourceKind
from tasks.importing import importer
from tests.integration.import_support import ledger_dump, rows
from workers.runtime import Runtime
from workers.settings import Settings

pytest_plugins = ["tests.integration.import_fixtures"]

DENY_LISTING_ASSIGNMENTS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"},
    {"Effect": "Deny", "Action": "sso:ListAccountAssignments", "Resource": "*"},
]}


@dataclass
class MotoWorld:
    endpoint: str
    instance_arn: str
    accounts: dict[str, str]  # name -> id
    permission_sets: dict[str, str]  # name -> ARN
    users: dict[str, str]  # user name -> UserId
    groups: dict[str, str]  # display name -> GroupId

    def client(self, service: str, **credentials: str) -> object:
        keys = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1", **keys)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def world(moto_endpoint: str) -> MotoWorld:
    """Production and Staging, two permission sets, alice and bob, two groups."""
    httpx.post(f"{moto_endpoint}/moto-api/reset").raise_for_status()
    world = MotoWorld(moto_endpoint, "", {}, {}, {}, {})
    orgs, sso, store = (world.client(s) for s in ("organizations", "sso-admin", "identitystore"))
    orgs.create_organization(FeatureSet="ALL")
    for name in ("Production", "Staging"):
        world.accounts[name] = orgs.create_account(
            AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
    instance = sso.list_instances()["Instances"][0]
    world.instance_arn, store_id = instance["InstanceArn"], instance["IdentityStoreId"]
    for name in ("AdministratorAccess", "ReadOnlyAccess"):
        arn = sso.create_permission_set(InstanceArn=world.instance_arn,
                                        Name=name)["PermissionSet"]["PermissionSetArn"]
        # moto lists a permission set as provisioned only after ProvisionPermissionSet, and
        # then to every account (it ignores the target): the import lists more pairs here.
        sso.provision_permission_set(InstanceArn=world.instance_arn, PermissionSetArn=arn,
                                     TargetType="AWS_ACCOUNT",
                                     TargetId=world.accounts["Production"])
        world.permission_sets[name] = arn
    for user in ("alice", "bob"):
        world.users[user] = store.create_user(
            IdentityStoreId=store_id, UserName=user, DisplayName=user.title(),
            Name={"GivenName": user.title(), "FamilyName": "Example"},
            Emails=[{"Value": f"{user}@example.com", "Primary": True}])["UserId"]
    for group, members in (("Platform Admins", ["alice", "bob"]), ("Auditors", ["bob"])):
        world.groups[group] = store.create_group(IdentityStoreId=store_id,
                                                 DisplayName=group)["GroupId"]
        for member in members:
            store.create_group_membership(IdentityStoreId=store_id,
                                          GroupId=world.groups[group],
                                          MemberId={"UserId": world.users[member]})
    for principal_type, principal, account, ps in (
            ("GROUP", world.groups["Platform Admins"], "Production", "AdministratorAccess"),
            ("GROUP", world.groups["Auditors"], "Production", "ReadOnlyAccess"),
            ("GROUP", world.groups["Auditors"], "Staging", "ReadOnlyAccess"),
            ("USER", world.users["alice"], "Staging", "ReadOnlyAccess")):
        sso.create_account_assignment(
            InstanceArn=world.instance_arn, TargetId=world.accounts[account],
            TargetType="AWS_ACCOUNT", PermissionSetArn=world.permission_sets[ps],
            PrincipalType=principal_type, PrincipalId=principal)
    return world


@pytest.fixture
def moto_runtime(world: MotoWorld, postgres_ledger: str) -> Iterator[Runtime]:
    # No instance ARN configured: discovered through ListInstances, as on a fresh install.
    built = Runtime(Settings(database_url=postgres_ledger, broker_url="memory://",
                             aws_endpoint_url=world.endpoint, sso_admin_rate=10_000,
                             identitystore_rate=10_000))
    yield built
    built.close()


def test_import_from_moto_gives_the_expected_lists_roles_and_grants(
        moto_runtime: Runtime, world: MotoWorld) -> None:
    summary = importer.run_import(runtime=moto_runtime, default_owners=["bob"], actor="tester")
    assert summary.found == {"accounts": 3, "permission_sets": 2, "users": 2, "groups": 2,
                             "assignments": 4}
    lists = {a.name: a for a in rows(moto_runtime.sessions, tables.AccessList)}
    prod, staging = world.accounts["Production"], world.accounts["Staging"]
    assert {name: a.granted_roles for name, a in lists.items()} == {
        "platform-admins": [f"AdministratorAccess-on-Production-{prod}"],
        "auditors": [f"ReadOnlyAccess-on-Production-{prod}",
                     f"ReadOnlyAccess-on-Staging-{staging}"]}
    assert {a.owners[0] for a in lists.values()} == {"bob"}
    grants = {(g.principal_name, g.account_id, g.permission_set_arn): g
              for g in rows(moto_runtime.sessions, tables.Grant)}
    assert len(grants) == 4 and all(g.state is GrantState.ACTIVE for g in grants.values())
    direct = grants[("alice", staging, world.permission_sets["ReadOnlyAccess"])]
    assert (direct.principal_type, direct.source_kind) == (PrincipalType.USER,
                                                            SourceKind.IMPORTED)

    before = ledger_dump(moto_runtime.sessions)
    importer.run_import(runtime=moto_runtime, default_owners=["bob"], actor="tester")
    assert ledger_dump(moto_runtime.sessions) == before


def test_a_deleted_permission_set_turns_its_grants_failed(moto_runtime: Runtime,
                                                          world: MotoWorld) -> None:
    importer.run_import(runtime=moto_runtime, default_owners=["bob"], actor="tester")
    read_only = world.permission_sets["ReadOnlyAccess"]
    world.client("sso-admin").delete_permission_set(InstanceArn=world.instance_arn,
                                                    PermissionSetArn=read_only)
    summary = importer.refresh(runtime=moto_runtime)
    assert summary.vanished["permission_sets"] == [read_only] and summary.failed_grants == 3
    failed = [g for g in rows(moto_runtime.sessions, tables.Grant)
              if g.permission_set_arn == read_only]
    assert {(g.state, g.failure_reason) for g in failed} == {
        (GrantState.FAILED, f"permission set ReadOnlyAccess ({read_only}) no longer exists")}
    other = [g for g in rows(moto_runtime.sessions, tables.Grant)
             if g.permission_set_arn != read_only]
    assert [g.state for g in other] == [GrantState.ACTIVE]


@pytest.fixture
def denied_credentials(world: MotoWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An IAM user allowed everything but sso:ListAccountAssignments, enforced by moto."""
    iam = world.client("iam")
    iam.create_user(UserName="grantledger")
    iam.put_user_policy(UserName="grantledger", PolicyName="almost-everything",
                        PolicyDocument=json.dumps(DENY_LISTING_ASSIGNMENTS))
    key = iam.create_access_key(UserName="grantledger")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    httpx.post(f"{world.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{world.endpoint}/moto-api/reset-auth", content=b"inf").raise_for_status()


def test_access_denied_midway_names_the_action_and_imports_nothing(
        world: MotoWorld, postgres_ledger: str, denied_credentials: None) -> None:
    runtime = Runtime(Settings(database_url=postgres_ledger, broker_url="memory://",
                               aws_mode="aws", aws_endpoint_url=world.endpoint))
    try:
        with pytest.raises(AwsAccessDenied) as caught:
            importer.run_import(runtime=runtime, default_owners=["bob"], actor="tester")
        assert caught.value.action == "sso:ListAccountAssignments"
        assert "sso:ListAccountAssignments" in caught.value.hint
        assert all(not table_rows for table_rows in ledger_dump(runtime.sessions).values())
    finally:
        runtime.close()
