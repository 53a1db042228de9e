"""`grantledger doctor`: every check of an install, each with the fix for its failure.

Checks run in order and never raise: a failure is a row with what broke and what to do, so a
misconfigured install gets one table, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from models.errors import AwsAccessDenied, AwsError, GrantledgerError
from workers.settings import Settings

MAX_CLOCK_SKEW_S = 5.0

# (service attribute on AwsClients, API, parameters) of each read the integration relies on.
READ_APIS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("organizations", "ListAccounts", {"MaxResults": 1}),
    ("sso_admin", "ListPermissionSets", {"MaxResults": 1}),
    ("identitystore", "ListUsers", {"MaxResults": 1}),
    ("identitystore", "ListGroups", {"MaxResults": 1}),
)
# Read by the poll rounds when status_polling is "list"; without them each operation is
# polled with Describe instead (works, at more calls, and only a worker log says so).
STATUS_LISTINGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sso_admin", "ListAccountAssignmentCreationStatus", {"MaxResults": 1}),
    ("sso_admin", "ListAccountAssignmentDeletionStatus", {"MaxResults": 1}),
)
READ_FIX = "see: grantledger iam-policy"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(settings: Settings, *, runtime_factory: Callable[[Settings], Any]) -> list[Check]:
    """Every check, in dependency order; later checks are skipped when their base fails."""
    checks = [check_settings(settings)]
    if not checks[0].ok:
        return checks
    runtime = runtime_factory(settings)
    checks += [check_database(runtime), check_clock(runtime), check_broker(settings)]
    if checks[-1].ok and settings.uses_redis:
        checks.append(check_workers())
    instance = check_instance(runtime)
    checks.append(instance)
    if instance.ok:
        checks += check_read_apis(runtime)
    checks.append(check_scim(runtime))
    checks += check_notifications(settings, slack=getattr(runtime, "slack", None))
    return checks


def check_notifications(settings: Settings, *, slack: Any = None) -> list[Check]:
    """Unsafe notification settings, and the Slack app's token and signing secret."""
    checks = [Check("settings warning", False, warning, "the warning says what to set")
              for warning in settings.warnings()]
    if not settings.slack_enabled:
        return checks

    def probe_token() -> str:
        who = slack.auth_test()
        return f"bot token accepted: {who.get('user')} in {who.get('team')}"

    def probe_secret() -> str:
        settings.slack_signing_key()
        return "set (every request from Slack is verified with it)"

    checks.append(attempt("slack auth.test", probe_token,
                          fix="check GRANTLEDGER_SLACK_BOT_TOKEN (xoxb-...) and "
                              "GRANTLEDGER_SLACK_API_URL"))
    checks.append(attempt("slack signing secret", probe_secret,
                          fix="copy the Signing Secret from the app's Basic Information page"))
    return checks


def attempt(name: str, probe: Callable[[], str], *, fix: str) -> Check:
    """Run ``probe``; its text on success, the error (and its hint) on failure."""
    try:
        return Check(name, True, probe())
    except GrantledgerError as err:
        return Check(name, False, err.message, err.hint or fix)
    except Exception as err:  # noqa: BLE001 - a doctor reports whatever broke
        return Check(name, False, f"{type(err).__name__}: {err}".splitlines()[0], fix)


def check_settings(settings: Settings) -> Check:
    def probe() -> str:
        settings.check()
        mode = "embedded" if settings.embedded else "stack"
        return f"{mode} mode, AWS {settings.aws_mode} in {settings.aws_region}"

    return attempt("settings", probe, fix="see README, Configuration")


def check_database(runtime: Any) -> Check:
    from models.ledger import migrate

    def probe() -> str:
        migrate.require_head(runtime.settings.database_url)
        return f"reachable, schema at {migrate.head()}"

    return attempt("database", probe, fix="check GRANTLEDGER_DATABASE_URL, then run: "
                                           "grantledger db upgrade")


def check_clock(runtime: Any) -> Check:
    from models.ledger.base import database_time

    def probe() -> str:
        from sqlalchemy.orm import Session

        with Session(runtime.engine) as session:  # not runtime.sessions: that may migrate
            skew = abs((database_time(session) - datetime.now(UTC)).total_seconds())
        if skew > MAX_CLOCK_SKEW_S:
            raise GrantledgerError(f"this host's clock is {skew:.1f}s away from the database's")
        return f"skew {skew:.2f}s (expiry uses the database clock)"

    return attempt("clock", probe, fix="run NTP (chrony/systemd-timesyncd) on this host")


def check_broker(settings: Settings) -> Check:
    def probe() -> str:
        if not settings.uses_redis:
            return f"in-process broker ({settings.broker_url})"
        from workers.redis_conn import redis_client

        redis_client(settings, socket_connect_timeout=3).ping()
        return "Redis answers PING" + (" (master found by Sentinel)"
                                       if settings.uses_sentinel else "")

    return attempt("broker", probe, fix="check GRANTLEDGER_BROKER_URL and that Redis runs")


def check_workers() -> Check:
    def probe() -> str:
        from workers.celery.app import celery_app

        replies = celery_app.control.inspect(timeout=2.0).ping() or {}
        if not replies:
            raise GrantledgerError("no Celery worker answered a ping within 2 s")
        return f"{len(replies)} worker(s) alive: {', '.join(sorted(replies))}"

    return attempt("workers", probe, fix="start workers: grantledger worker (or the compose "
                                          "`worker` service)")


def check_instance(runtime: Any) -> Check:
    def probe() -> str:
        instance = runtime.identity_center.discover()
        return f"{instance.instance_arn}, identity store {instance.identity_store_id}"

    return attempt("aws instance", probe, fix="check AWS credentials, GRANTLEDGER_AWS_REGION "
                                               "and GRANTLEDGER_INSTANCE_ARN")


def check_read_apis(runtime: Any) -> list[Check]:
    """One small call per read API; AccessDenied names the IAM action to grant. The status
    listings are probed only when status polling uses them."""
    from tasks.provisioning.status_listing import LISTING_FIX
    from workers.adapters.aws.clients import make_clients

    clients = make_clients(runtime.settings, session=runtime.boto_session())
    instance = runtime.identity_center.discover()
    scoped = {"sso_admin": {"InstanceArn": instance.instance_arn},
              "identitystore": {"IdentityStoreId": instance.identity_store_id}}
    # (..., denied_hint): None keeps AccessDenied's own hint (it names the action); a
    # listing's also says that describe polling does without it.
    probes: list[tuple[str, str, dict[str, Any], str | None]] = [
        (*read, None) for read in READ_APIS]
    if runtime.settings.status_polling == "list":
        probes += [(*listing, LISTING_FIX) for listing in STATUS_LISTINGS]
    results = []
    for attribute, api, params, denied_hint in probes:
        probe = partial(probe_read, getattr(clients, attribute), api,
                        {**scoped.get(attribute, {}), **params}, denied_hint=denied_hint)
        results.append(attempt(f"aws {api}", probe, fix=READ_FIX))
    return results


def probe_read(client: Any, api: str, arguments: dict[str, Any], *,
               denied_hint: str | None = None) -> str:
    """Call ``api`` once; how long it took. ``denied_hint`` replaces AccessDenied's hint."""
    from workers.adapters.aws.call import call

    started = time.monotonic()
    try:
        call(client, api, **arguments)
    except AwsAccessDenied as err:
        if denied_hint is None:
            raise
        raise AwsError(err.message, api=api, code=err.code, hint=denied_hint) from err
    return f"answers ({(time.monotonic() - started) * 1000:.0f} ms)"


def check_scim(runtime: Any) -> Check:
    from workers.adapters.scim.token import token_age_days, token_warning

    def probe() -> str:
        runtime.directory.find_user(user_name="grantledger-doctor-probe")
        age = token_age_days(runtime.settings)
        warning = token_warning(runtime.settings)
        if warning:
            raise GrantledgerError(warning)
        return "token accepted" + (f", {age:.0f} days old" if age is not None else "")

    return attempt("scim", probe, fix="check GRANTLEDGER_SCIM_URL and GRANTLEDGER_SCIM_TOKEN")

