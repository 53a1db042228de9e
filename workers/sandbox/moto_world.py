"""The part of the sandbox that moto keeps: the organization and the identity store.

moto holds its state in process-wide dictionaries (one backend per account and region), so
:func:`reset_moto` wipes every moto backend in this process. That is why only one
:class:`~workers.sandbox.Sandbox` may run per process at a time.

Seeding writes straight into the backends (not through moto's create calls) where moto
would pick ids itself or check uniqueness by scanning every user: the fixture's account
ids must hold, and 10,000 users must seed in seconds, not minutes.
"""

from __future__ import annotations

import uuid
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.base_backend import BackendDict
from moto.identitystore.models import (
    IdentityStoreBackend,
    IdentityStoreData,
    Name,
    User,
    identitystore_backends,
)
from moto.organizations.models import OrganizationsBackend, organizations_backends

#: The account every sandbox caller is (moto maps unknown access keys to it): it owns the
#: organization and the Identity Center instance, like a real management account.
MANAGEMENT_ACCOUNT_ID = DEFAULT_ACCOUNT_ID


def reset_moto() -> None:
    """Forget everything every moto backend in this process holds."""
    BackendDict.reset()
    # Not part of BackendDict.reset(): maps member accounts to their organization.
    organizations_backends.master_accounts.clear()


class MotoWorld:
    """The organization and identity store of one sandbox, living in moto's backends."""

    def __init__(self, *, region: str, identity_store_id: str) -> None:
        self.region = region
        self.identity_store_id = identity_store_id

    @property
    def organizations(self) -> OrganizationsBackend:
        return organizations_backends[MANAGEMENT_ACCOUNT_ID]["aws"]

    @property
    def identitystore(self) -> IdentityStoreBackend:
        return identitystore_backends[MANAGEMENT_ACCOUNT_ID][self.region]

    def create_organization(self) -> None:
        """An organization whose management account is the caller's account."""
        self.organizations.create_organization(region=self.region, FeatureSet="ALL")
        self.organizations.get_account_by_id(MANAGEMENT_ACCOUNT_ID).name = "Management"

    # -- what exists (read by Identity Center when an operation settles) -------------------

    def account_exists(self, account_id: str) -> bool:
        return any(a.id == account_id for a in self.organizations.accounts)

    def principal_exists(self, principal_type: str, principal_id: str) -> bool:
        store = self._store()
        found = store.users if principal_type == "USER" else store.groups
        return principal_id in found

    def _store(self) -> IdentityStoreData:
        # moto creates an identity store's data on first use of its id; so do we.
        stores = self.identitystore.identity_stores
        return stores.setdefault(self.identity_store_id, IdentityStoreData())

    # -- seeding --------------------------------------------------------------------------

    def add_account(self, *, account_id: str, name: str, email: str, ou_path: str) -> None:
        """An ACTIVE member account with exactly ``account_id``, under the OU path."""
        backend = self.organizations
        backend.create_account(AccountName=name, Email=email)
        account = backend.accounts[-1]
        organizations_backends.master_accounts.pop(account.id, None)
        account.id = account_id
        organizations_backends.master_accounts[account_id] = (MANAGEMENT_ACCOUNT_ID, "aws")
        account.parent_id = self._ou_id(ou_path)

    def _ou_id(self, ou_path: str) -> str:
        """The id of the OU at ``/A/B`` (created on the way), or the root for ``/``."""
        backend = self.organizations
        parent = backend.org.root_id  # type: ignore[union-attr]
        for name in [part for part in ou_path.split("/") if part]:
            existing = next((ou for ou in backend.ou
                             if ou.name == name and ou.parent_id == parent), None)
            if existing is None:
                parent = backend.create_organizational_unit(
                    Name=name, ParentId=parent)["OrganizationalUnit"]["Id"]
            else:
                parent = existing.id
        return parent

    def add_user(self, *, user_name: str, given_name: str, family_name: str,
                 email: str, display_name: str) -> str:
        """A user in the identity store; returns its UserId."""
        user_id = str(uuid.uuid4())
        emails: list[Any] = [{"Value": email, "Type": "work", "Primary": True}]
        absent: Any = None  # moto's own CreateUser stores absent fields as None
        self._store().users[user_id] = User(
            user_id, self.identity_store_id, user_name,
            Name(f"{given_name} {family_name}", family_name, given_name, None, None, None),
            display_name, absent, absent, emails, absent, absent, absent, absent, absent,
            absent, absent,
        )
        return user_id

    def add_group(self, *, display_name: str, description: str) -> str:
        """A group in the identity store; returns its GroupId."""
        group_id, _ = self.identitystore.create_group(
            identity_store_id=self.identity_store_id, display_name=display_name,
            description=description)
        return group_id

    def add_membership(self, *, group_id: str, user_id: str) -> None:
        membership_id = str(uuid.uuid4())
        self._store().group_memberships[membership_id] = {
            "IdentityStoreId": self.identity_store_id,
            "MembershipId": membership_id,
            "GroupId": group_id,
            "MemberId": {"UserId": user_id},
        }
