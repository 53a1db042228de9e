"""SCIM token age: Identity Center's SCIM tokens last about a year, so warn before then.

``GRANTLEDGER_SCIM_TOKEN_CREATED_AT`` (ISO date or datetime, UTC when no zone is given)
says when the token in use was generated; ``status`` and ``doctor`` show the warning.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from models.errors import ConfigError
from workers.settings import Settings

TOKEN_LIFETIME_DAYS = 365
TOKEN_WARN_AFTER_DAYS = 330


def parse_created_at(value: str) -> datetime:
    """An ISO date or datetime as an aware UTC datetime; ConfigError when unreadable."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value.strip()), datetime.min.time())
        except ValueError as err:
            raise ConfigError(
                f"GRANTLEDGER_SCIM_TOKEN_CREATED_AT={value!r} is not an ISO date",
                hint="write the day the SCIM token was generated, e.g. 2025-01-31",
            ) from err
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def token_age_days(settings: Settings, *, now: datetime | None = None) -> float | None:
    """Days since the SCIM token was generated, or None when that date is not configured."""
    if not settings.scim_token_created_at:
        return None
    created = parse_created_at(settings.scim_token_created_at)
    return ((now or datetime.now(UTC)) - created).total_seconds() / 86400


def token_warning(settings: Settings, *, now: datetime | None = None) -> str | None:
    """A warning for status/doctor when the token nears its one-year expiry, else None."""
    age = token_age_days(settings, now=now)
    if age is None or age <= TOKEN_WARN_AFTER_DAYS:
        return None
    left = TOKEN_LIFETIME_DAYS - age
    when = f"expires in about {left:.0f} days" if left > 0 else "has probably expired"
    return (f"the SCIM token is {age:.0f} days old and {when}: generate a new one in "
            "Identity Center (Settings > Automatic provisioning), set GRANTLEDGER_SCIM_TOKEN "
            "and GRANTLEDGER_SCIM_TOKEN_CREATED_AT")
