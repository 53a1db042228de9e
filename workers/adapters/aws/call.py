"""The one wrapper every boto3 call goes through: global limiter, our retries, error
classes from ``models.errors``, Prometheus metrics.

    call(client, "CreateAccountAssignment", limiter=lim, InstanceArn=..., ...)
    paginate(client, "ListUsers", result_key="Users", key=lambda u: u["UserId"], ...)

API names are AWS's operation names (PascalCase), the same names IAM actions use, so an
AccessDenied can say which action is missing (``workers.adapters.aws.iam_policy``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from botocore import xform_name
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from prometheus_client import Counter, Histogram

from models.errors import (
    AwsAccessDenied,
    AwsConflict,
    AwsError,
    AwsNotFound,
    AwsThrottled,
    AwsUnreachable,
)
from models.ports.identity_center import AWS_CALLS_METRIC
from models.ports.priority import has_priority
from workers.adapters.aws.iam_policy import iam_action
from workers.settings import Settings, get_settings

LOG = logging.getLogger(__name__)

# A revocation's call (``revocation_priority``) that AWS throttles is tried again sooner and
# longer: at most a second apart, twice the attempts (ops/decisions/aws.md).
PRIORITY_PAUSE_CAP = 1.0
PRIORITY_ATTEMPTS = 2

CALLS = Counter(AWS_CALLS_METRIC, "AWS API requests sent", ["api"])
THROTTLES = Counter("grantledger_aws_throttles_total", "AWS throttling answers", ["api"])
ERRORS = Counter("grantledger_aws_errors_total", "AWS requests that failed", ["api", "kind"])
LATENCY = Histogram("grantledger_aws_call_seconds", "AWS request latency", ["api"])

# Each service spells the same situation its own way (Organizations: TooManyRequests,
# IAM: Throttling / NoSuchEntity), so the codes are grouped by meaning.
THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling",
                            "RequestLimitExceeded"})
CONFLICT_CODES = frozenset({"ConflictException", "ConcurrentModificationException"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "NoSuchEntity",
                             "AccountNotFoundException", "ParentNotFoundException"})
CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)


class RateGate(Protocol):
    """What the wrapper needs of ``workers.limiter.Limiter``."""

    def acquire(self, family: str, *, timeout: float) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """Our retry budget for throttling and conflicts: full-jitter exponential backoff."""

    max_attempts: int = 8
    base: float = 0.25
    cap: float = 10.0
    limiter_timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Backoff:
        return cls(max_attempts=settings.aws_max_attempts)

    def delay(self, attempt: int, *, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return rng() * min(self.cap, self.base * 2 ** (attempt - 1))


def call(client: Any, api: str, *, limiter: RateGate | None = None,
         backoff: Backoff | None = None, **params: Any) -> dict[str, Any]:
    """Call ``api`` on a boto3 client; retry throttling and conflicts; raise AwsError."""
    backoff = backoff or Backoff.from_settings(get_settings())
    service = service_name(client)
    attempt = 1
    while True:
        if limiter is not None:
            limiter.acquire(service, timeout=backoff.limiter_timeout)
        try:
            return _send(client, service=service, api=api, params=params)
        except (AwsThrottled, AwsConflict) as err:
            urgent = has_priority()
            if attempt >= backoff.max_attempts * (PRIORITY_ATTEMPTS if urgent else 1):
                raise _gave_up(err, attempts=attempt) from err
            pause = min(backoff.delay(attempt), PRIORITY_PAUSE_CAP if urgent else backoff.cap)
            LOG.info("%s %s (attempt %d), retrying in %.2fs", api, err.code, attempt, pause)
            time.sleep(pause)
            attempt += 1


def paginate(client: Any, api: str, *, result_key: str, limiter: RateGate | None = None,
             key: Callable[[Any], Hashable] | None = None, backoff: Backoff | None = None,
             **params: Any) -> list[Any]:
    """Every row of every page of ``api``, deduplicated by ``key`` (default: the row)."""
    key = key or row_identity
    rows: dict[Hashable, Any] = {}
    for page in pages(client, api, limiter=limiter, backoff=backoff, **params):
        for row in page.get(result_key, []):
            rows.setdefault(key(row), row)
    return list(rows.values())


def pages(client: Any, api: str, *, limiter: RateGate | None = None,
          backoff: Backoff | None = None, **params: Any) -> Iterator[dict[str, Any]]:
    """Each page of ``api`` in turn (a caller may stop early: no further call is made).

    Follows NextToken to the last page and stops early on a token already seen, because
    some implementations of these APIs repeat a page or a token.
    """
    seen: set[str] = set()
    token: str | None = None
    while True:
        paging = {"NextToken": token} if token else {}
        page = call(client, api, limiter=limiter, backoff=backoff, **params, **paging)
        yield page
        token = page.get("NextToken")
        if not token:
            return
        if token in seen:
            LOG.warning("%s repeated NextToken %r; stopping", api, token)
            return
        seen.add(token)


def row_identity(row: Any) -> Hashable:
    """A row as a hashable value: itself (ARN strings) or its sorted items (dicts)."""
    if isinstance(row, dict):
        return tuple(sorted((k, repr(v)) for k, v in row.items()))
    return row


def service_name(client: Any) -> str:
    """boto's service name of a client: sso-admin, identitystore, organizations, ..."""
    return client.meta.service_model.service_name


def classify(err: Exception, *, service: str, api: str, endpoint: str | None) -> AwsError:
    """Turn a botocore exception into the matching class of ``models.errors``."""
    if isinstance(err, ClientError):
        return classify_client_error(err, service=service, api=api)
    if isinstance(err, BotoConnectionError | HTTPClientError):
        where = getattr(err, "kwargs", {}).get("endpoint_url") or endpoint or "(default)"
        detail = _one_line(err)
        detail = type(err).__name__ if where in detail else detail  # say the URL once
        return AwsUnreachable(f"cannot reach AWS {service} at {where} ({detail}) calling {api}",
                              api=api, code=type(err).__name__)
    if isinstance(err, CREDENTIAL_ERRORS):
        return AwsError(f"{api}: no usable AWS credentials ({_one_line(err)})", api=api,
                        code=type(err).__name__,
                        hint="set AWS credentials (environment, profile or instance role)")
    return AwsError(f"{api} failed: {_one_line(err)}", api=api, code=type(err).__name__)


def classify_client_error(err: ClientError, *, service: str, api: str) -> AwsError:
    """Classify an error answer from AWS by its code; keep AWS's message and request id."""
    code = err.response.get("Error", {}).get("Code", "")
    message = _one_line(err.response.get("Error", {}).get("Message", "") or code)
    request_id = err.response.get("ResponseMetadata", {}).get("RequestId", "")
    fields = {"api": api, "code": code, "request_id": request_id}
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # A 403 whose body botocore could not read (its code is then the status) still means a
    # missing permission: moto answers JSON-protocol services with an XML AccessDenied.
    if code in DENIED_CODES or (status == 403 and code in ("", "403")):
        action = iam_action(service, api)
        return AwsAccessDenied(f"{api} denied: the integration lacks {action} ({message})",
                               action=action, **fields)
    kind = (AwsThrottled if code in THROTTLE_CODES else AwsConflict if code in CONFLICT_CODES
            else AwsNotFound if code in NOT_FOUND_CODES else AwsError)
    return kind(f"{api} failed: {code}: {message}", **fields)


def _send(client: Any, *, service: str, api: str, params: dict[str, Any]) -> dict[str, Any]:
    CALLS.labels(api).inc()
    started = time.perf_counter()
    try:
        return getattr(client, xform_name(api))(**params)
    except (ClientError, BotoCoreError) as err:
        error = classify(err, service=service, api=api, endpoint=client.meta.endpoint_url)
        if isinstance(error, AwsThrottled):
            THROTTLES.labels(api).inc()
        ERRORS.labels(api, type(error).__name__).inc()
        raise error from err
    finally:
        LATENCY.labels(api).observe(time.perf_counter() - started)


def _gave_up(err: AwsError, *, attempts: int) -> AwsError:
    """The same error class, saying how long we tried."""
    return type(err)(f"{err.message} (gave up after {attempts} attempts)", api=err.api,
                     code=err.code, request_id=err.request_id)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())
