"""The SCIM adapter: users, groups and memberships in Identity Center (or the sandbox).

``ScimDirectory`` is the interface; ``HttpScimDirectory.from_settings(settings)`` the
implementation; ``token_age_days`` / ``token_warning`` feed ``status`` and ``doctor``.
"""

from workers.adapters.scim.client import HttpScimDirectory, scim_base_url
from workers.adapters.scim.directory import (
    OWNERSHIP_PREFIX,
    ScimDirectory,
    ScimGroup,
    ScimUser,
    is_owned,
    mark_owned,
)
from workers.adapters.scim.token import TOKEN_WARN_AFTER_DAYS, token_age_days, token_warning

__all__ = [
    "OWNERSHIP_PREFIX", "TOKEN_WARN_AFTER_DAYS", "HttpScimDirectory", "ScimDirectory",
    "ScimGroup", "ScimUser", "is_owned", "mark_owned", "scim_base_url", "token_age_days",
    "token_warning",
]
