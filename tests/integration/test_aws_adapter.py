"""BotoIdentityCenter against plain moto (its own server): the adapter must need no changes
to run here, against the sandbox, or against AWS."""

from __future__ import annotations

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer
from prometheus_client import REGISTRY

from models.ports.identity_center import SUCCEEDED
from workers.adapters.aws import AssignmentKey, BotoIdentityCenter, make_clients
from workers.limiter import make_limiter
from workers.settings import Settings


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def settings(moto_endpoint) -> Settings:
    httpx.post(f"{moto_endpoint}/moto-api/reset").raise_for_status()
    return Settings(aws_endpoint_url=moto_endpoint, aws_region="us-east-1",
                    broker_url="memory://")


@pytest.fixture
def clients(settings):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    return make_clients(settings, session=session)


@pytest.fixture
def center(clients, settings) -> BotoIdentityCenter:
    return BotoIdentityCenter(clients, settings=settings, limiter=make_limiter(settings))


def calls_made(api: str) -> float:
    return REGISTRY.get_sample_value("grantledger_aws_calls_total", {"api": api}) or 0.0


def add_user(clients, store: str, n: int) -> str:
    return clients.identitystore.create_user(
        IdentityStoreId=store, UserName=f"user{n:03d}", DisplayName=f"User {n}",
        Name={"GivenName": "Given", "FamilyName": f"Family{n}"},
        Emails=[{"Value": f"user{n}@example.com", "Type": "work", "Primary": True}],
    )["UserId"]


def add_account(clients, name: str) -> str:
    status = clients.organizations.create_account(AccountName=name,
                                                  Email=f"{name}@example.com")
    return status["CreateAccountStatus"]["AccountId"]


def add_permission_set(clients, instance_arn: str, name: str) -> str:
    answer = clients.sso_admin.create_permission_set(InstanceArn=instance_arn, Name=name,
                                                     Description=f"{name} access")
    return answer["PermissionSet"]["PermissionSetArn"]


def test_discover_finds_the_instance_and_its_identity_store(center, clients):
    (instance,) = clients.sso_admin.list_instances()["Instances"]
    found = center.discover()
    assert (found.instance_arn, found.identity_store_id) == (
        instance["InstanceArn"], instance["IdentityStoreId"])


def test_discover_uses_configured_values_without_calling_aws(clients, settings):
    configured = settings.model_copy(update={"instance_arn": "arn:opaque:instance",
                                             "identity_store_id": "store-opaque"})
    before = calls_made("ListInstances")
    center = BotoIdentityCenter(clients, settings=configured, limiter=None)
    assert center.discover().instance_arn == "arn:opaque:instance"
    assert calls_made("ListInstances") == before


def test_list_users_reads_every_page(center, clients):
    store = center.discover().identity_store_id
    created = {add_user(clients, store, n) for n in range(130)}
    before = calls_made("ListUsers")
    users = center.list_users()
    assert {user.user_id for user in users} == created
    assert calls_made("ListUsers") - before >= 2, "more than one page was read"
    user7 = next(user for user in users if user.user_name == "user007")
    assert (user7.display_name, user7.given_name, user7.family_name, user7.email) == (
        "User 7", "Given", "Family7", "user7@example.com")


def test_groups_and_their_members(center, clients):
    store = center.discover().identity_store_id
    alice, bob = add_user(clients, store, 1), add_user(clients, store, 2)
    group_id = clients.identitystore.create_group(
        IdentityStoreId=store, DisplayName="Admins", Description="break glass")["GroupId"]
    for user_id in (alice, bob):
        clients.identitystore.create_group_membership(
            IdentityStoreId=store, GroupId=group_id, MemberId={"UserId": user_id})
    (group,) = center.list_groups()
    assert (group.group_id, group.display_name, group.description) == (
        group_id, "Admins", "break glass")
    assert sorted(center.list_group_memberships(group_id)) == sorted([alice, bob])


def test_accounts_with_their_ou_path(center, clients):
    orgs = clients.organizations
    orgs.create_organization(FeatureSet="ALL")
    production = add_account(clients, "production")
    root_id = orgs.list_roots()["Roots"][0]["Id"]
    ou_id = orgs.create_organizational_unit(ParentId=root_id,
                                            Name="Workloads")["OrganizationalUnit"]["Id"]
    orgs.move_account(AccountId=production, SourceParentId=root_id, DestinationParentId=ou_id)
    accounts = {account.id: account for account in center.list_accounts(with_ou_path=True)}
    assert accounts[production].name == "production"
    assert accounts[production].status == "ACTIVE"
    assert accounts[production].ou_path == "/Root/Workloads"
    assert len(accounts) == 2  # the management account moto creates, and ours
    assert all(account.ou_path is None for account in center.list_accounts())


def test_permission_sets_are_listed_and_described(center, clients):
    instance_arn = center.discover().instance_arn
    arns = {add_permission_set(clients, instance_arn, name): name
            for name in ("AdministratorAccess", "ReadOnlyAccess")}
    found = {ps.arn: ps for ps in center.list_permission_sets()}
    assert {arn: ps.name for arn, ps in found.items()} == arns
    assert {ps.description for ps in found.values()} == {
        "AdministratorAccess access", "ReadOnlyAccess access"}


def test_create_describe_list_and_delete_an_assignment(center, clients):
    info = center.discover()
    clients.organizations.create_organization(FeatureSet="ALL")
    account_id = add_account(clients, "sandbox")
    ps_arn = add_permission_set(clients, info.instance_arn, "PowerUser")
    user_id = add_user(clients, info.identity_store_id, 1)
    key = AssignmentKey("USER", user_id, account_id, ps_arn)

    submitted = center.create_assignment(key)
    assert submitted.request_id
    created = center.creation_status(submitted.request_id)
    assert (created.request_id, created.status, created.settled) == (
        submitted.request_id, SUCCEEDED, True)
    assert [a.key for a in center.list_assignments(account_id=account_id,
                                                   permission_set_arn=ps_arn)] == [key]
    held = center.list_assignments_for_principal(principal_type="USER", principal_id=user_id,
                                                 account_id=account_id)
    assert [a.key for a in held] == [key]

    removed = center.delete_assignment(key)
    assert center.deletion_status(removed.request_id).status == SUCCEEDED
    assert center.list_assignments(account_id=account_id, permission_set_arn=ps_arn) == []


def test_provisioned_permission_sets(center, clients):
    instance_arn = center.discover().instance_arn
    ps_arn = add_permission_set(clients, instance_arn, "Billing")
    account_id = clients.sts.get_caller_identity()["Account"]
    clients.sso_admin.provision_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=ps_arn, TargetType="AWS_ACCOUNT",
        TargetId=account_id)
    assert center.list_provisioned_permission_sets(account_id) == [ps_arn]
    assert center.list_accounts_for_permission_set(ps_arn) == [account_id]
