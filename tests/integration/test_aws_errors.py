"""Errors a person sees when AWS cannot be reached."""

from __future__ import annotations

import socket

import boto3
import pytest

from models.errors import AwsUnreachable
from workers.adapters.aws import BotoIdentityCenter, make_clients
from workers.settings import Settings


def closed_port() -> int:
    """A local port nothing listens on (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_endpoint_is_one_clear_line():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = Settings(aws_endpoint_url=endpoint, broker_url="memory://")
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    center = BotoIdentityCenter(make_clients(settings, session=session), settings=settings,
                                limiter=None)
    with pytest.raises(AwsUnreachable) as caught:
        center.discover()
    message = str(caught.value)
    assert "\n" not in message
    assert endpoint in message and "sso-admin" in message
    assert caught.value.api == "ListInstances"
    assert "GRANTLEDGER_AWS_ENDPOINT_URL" in caught.value.hint
