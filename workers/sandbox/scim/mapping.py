"""Pure translation between SCIM resources (scim2-models) and moto's identity store records.

Only what the identity store API can hold crosses over: the core User attributes AWS
supports (one email, one address, one phone number) and Group's displayName. The rest
(``externalId``, ``active``, ``meta``) is passed in by the storage, which keeps it aside.
"""

from __future__ import annotations

from typing import Any

from moto.identitystore.models import Group as StoreGroup
from moto.identitystore.models import User as StoreUser
from scim2_models import Address, Email, Group, GroupMember, Meta, PhoneNumber, User

from workers.sandbox.scim.dialect import AwsName, AwsUser

NAME_FIELDS = {
    "formatted": "Formatted", "family_name": "FamilyName", "given_name": "GivenName",
    "middle_name": "MiddleName", "honorific_prefix": "HonorificPrefix",
    "honorific_suffix": "HonorificSuffix",
}
ADDRESS_FIELDS = {
    "street_address": "StreetAddress", "locality": "Locality", "region": "Region",
    "postal_code": "PostalCode", "country": "Country", "formatted": "Formatted",
    "type": "Type", "primary": "Primary",
}
CONTACT_FIELDS = {"value": "Value", "type": "Type", "primary": "Primary"}
SCALAR_FIELDS = {
    "display_name": "DisplayName", "nick_name": "NickName", "profile_url": "ProfileUrl",
    "user_type": "UserType", "title": "Title", "preferred_language": "PreferredLanguage",
    "locale": "Locale", "timezone": "Timezone",
}


def _to_store(value: Any, names: dict[str, str]) -> dict[str, Any]:
    """A scim2 sub-object as the identity store's capitalised dict, without empty keys."""
    result = {}
    for scim_name, store_name in names.items():
        item = getattr(value, scim_name, None)
        if item is not None:
            result[store_name] = str(item) if scim_name == "type" else item
    return result


def _from_store(record: dict[str, Any] | Any, names: dict[str, str]) -> dict[str, Any]:
    """The identity store's dict (or NamedTuple) as scim2 keyword arguments."""
    source = record._asdict() if hasattr(record, "_asdict") else record
    return {scim: source[store] for scim, store in names.items()
            if source.get(store) is not None}


def user_fields(user: User) -> dict[str, Any]:
    """The identity store's fields for a SCIM user (``Name`` as the dict moto expects)."""
    fields: dict[str, Any] = {store: getattr(user, scim, None)
                              for scim, store in SCALAR_FIELDS.items()}
    fields["UserName"] = user.user_name
    fields["Name"] = _to_store(user.name, NAME_FIELDS) if user.name else {}
    fields["Emails"] = [_to_store(e, CONTACT_FIELDS) for e in user.emails or []]
    fields["PhoneNumbers"] = [_to_store(p, CONTACT_FIELDS) for p in user.phone_numbers or []]
    fields["Addresses"] = [_to_store(a, ADDRESS_FIELDS) for a in user.addresses or []]
    return fields


def user_resource(record: StoreUser, external_id: str | None, active: bool,
                  meta: Meta) -> AwsUser:
    """The SCIM user for an identity store user; its ``id`` is the ``UserId``."""
    scalars = {scim: getattr(record, store) for scim, store in SCALAR_FIELDS.items()
               if getattr(record, store, None) is not None}
    return AwsUser(
        id=record.UserId, user_name=record.UserName, external_id=external_id,
        active=active, meta=meta,
        name=AwsName(**_from_store(record.Name, NAME_FIELDS)) if record.Name else None,
        emails=[Email(**_from_store(e, CONTACT_FIELDS)) for e in record.Emails or []] or None,
        phone_numbers=[PhoneNumber(**_from_store(p, CONTACT_FIELDS))
                       for p in record.PhoneNumbers or []] or None,
        addresses=[Address(**_from_store(a, ADDRESS_FIELDS))
                   for a in record.Addresses or []] or None,
        **scalars,
    )


def group_resource(record: StoreGroup, external_id: str | None, member_ids: list[str],
                   meta: Meta) -> Group:
    """The SCIM group for an identity store group, with its members' ids."""
    members = [GroupMember(value=user_id, type="User") for user_id in member_ids]
    return Group(id=record.GroupId, display_name=record.DisplayName,
                 external_id=external_id, members=members or None, meta=meta)
