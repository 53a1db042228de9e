"""The one place boto3 clients are built: same retry config, endpoint and region for all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from models.ports.priority import has_priority
from workers.adapters.aws.call import THROTTLE_CODES
from workers.settings import Settings

# boto3's own retries stay short (3 attempts, standard mode); the call wrapper adds ours on
# top with the global limiter in the loop (docs/DESIGN.md section 4).
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


def revocations_retry_in_wrapper(response: Any = None, **_: Any) -> bool | None:
    """botocore's ``needs-retry`` hook: a revocation's throttled call (``revocation_priority``)
    comes back to the call wrapper at once, which retries it with pauses of 1 s at most and a
    limiter permit each, instead of boto's own pauses of up to 1 + 2 s. None: boto decides."""
    if response is None or not has_priority():
        return None
    code = (response[1] or {}).get("Error", {}).get("Code")
    return False if code in THROTTLE_CODES else None


@dataclass(frozen=True)
class AwsClients:
    """The boto3 clients grantledger uses, built with one configuration."""

    sso_admin: Any
    identitystore: Any
    organizations: Any
    iam: Any
    sts: Any


def make_clients(settings: Settings, *, session: boto3.Session | None = None) -> AwsClients:
    """Clients for ``settings.aws_region`` / ``aws_endpoint_url``, credentials from the
    standard chain (environment, profile, instance role) unless a session is passed."""
    session = session or boto3.Session()

    def client(service: str) -> Any:
        made = session.client(
            service, region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url, config=BOTO_CONFIG,
        )
        service_id = made.meta.service_model.service_id.hyphenize()
        made.meta.events.register_first(f"needs-retry.{service_id}", revocations_retry_in_wrapper)
        return made

    return AwsClients(
        sso_admin=client("sso-admin"),
        identitystore=client("identitystore"),
        organizations=client("organizations"),
        iam=client("iam"),
        sts=client("sts"),
    )
