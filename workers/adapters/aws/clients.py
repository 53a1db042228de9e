"""The one place boto3 clients are built: same retry config, endpoint and region for all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from workers.settings import Settings

# boto3's own retries stay short (3 attempts, standard mode); the call wrapper adds ours on
# top with the global limiter in the loop (DESIGN.md section 4).
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3})


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
        return session.client(
            service, region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url, config=BOTO_CONFIG,
        )

    return AwsClients(
        sso_admin=client("sso-admin"),
        identitystore=client("identitystore"),
        organizations=client("organizations"),
        iam=client("iam"),
        sts=client("sts"),
    )
