"""The one settings object: every knob, read once from ``GRANTLEDGER_*`` variables.

Defaults give the embedded mode (SQLite ledger, in-process broker, sandbox AWS).
``Settings.check()`` refuses what no process may run with; ``Settings.check_serving()``,
called only by the processes that serve HTTP (`api`, `run`), also refuses a weak admin token.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.errors import ConfigError

MIN_API_TOKEN_LENGTH = 32
WEAK_SECRETS = frozenset({"admin", "administrator", "password", "passw0rd", "changeme",
                          "change-me", "change_me", "secret", "placeholder", "token",
                          "letmein", "default", "test", "root", "qwerty", "123456"})
TOKEN_ADVICE = ("set GRANTLEDGER_API_TOKEN to a long random value "
                "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
MIN_SESSION_SECRET = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRANTLEDGER_", env_file=None, extra="ignore")

    # where state lives
    database_url: str = "sqlite:///grantledger.db"
    broker_url: str = "memory://localhost/"
    # With Redis Sentinel: GRANTLEDGER_BROKER_URL=sentinel://h1:26379;sentinel://h2:26379 and
    # the monitored master's name here. The broker, the limiter and beat's lock all follow
    # the master Sentinel names (workers/redis_conn.py).
    redis_master_name: str | None = None
    result_backend: str | None = None

    # AWS
    aws_mode: Literal["sandbox", "aws"] = "sandbox"
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    instance_arn: str | None = None
    identity_store_id: str | None = None
    sso_admin_rate: float = Field(20.0, gt=0, description="sso-admin requests/s, all workers")
    identitystore_rate: float = Field(20.0, gt=0)
    scim_rate: float = Field(20.0, gt=0)
    max_outstanding_creates: int = Field(15, ge=1)
    aws_max_attempts: int = Field(8, ge=1, description="our retries on throttling/conflict")
    # The AWS access portal URL people sign in at (`grantledger aws-config`); AWS shows it in
    # the Identity Center console, no API returns it, so it has no default.
    sso_start_url: str | None = None

    # SCIM
    scim_url: str | None = None
    scim_token: SecretStr | None = None
    scim_token_created_at: str | None = None  # ISO date; drives the token-age warning
    scim_circuit_threshold: int = Field(3, ge=1)

    # API
    api_token: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # /metrics answers without a token by default (scrapers inside the cluster); set this to
    # make it ask for the admin token like /v1.
    metrics_require_token: bool = False
    # Request bodies over these sizes are refused with 413 before they are read
    # (workers/api/gate.py); /v1/apply takes whole resource sets, hence its larger limit.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_apply_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    # A worker's own Prometheus endpoint (its pool processes' AWS calls, throttles, settles;
    # workers/celery/worker_metrics.py); unset or 0: none. No token: keep it on an internal network.
    worker_metrics_port: int | None = Field(None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    # web portal (workers/portal): sign-in through the company's OpenID Connect provider
    oidc_issuer: str | None = None  # discovery at <issuer>/.well-known/openid-configuration
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    portal_url: str | None = None  # public base URL; the redirect URI is <base>/auth/callback
    session_secret: SecretStr | None = None  # signs the portal's session cookie
    session_idle_timeout: float = Field(3600.0, gt=0, description="seconds without a request")
    session_max_age: float = Field(43200.0, gt=0, description="seconds since sign-in")

    # behaviour
    drift_mode: Literal["report", "quarantine", "remove"] = "report"
    sync_interval: float = Field(300.0, gt=0, description="seconds between full syncs")
    import_interval: float = Field(900.0, gt=0)
    expiry_interval: float = Field(1.0, gt=0)
    # Workers publish an expiry sweep themselves when none ran for this many intervals (beat
    # dead, or its lock not yet free): revocation waits for no single process.
    expiry_stale_intervals: float = Field(3.0, ge=1)
    poll_sweep_interval: float = Field(2.0, gt=0)
    # "list": one poll round asks ListAccountAssignment{Creation,Deletion}Status for what is
    # still IN_PROGRESS (100 a call) for every operation at once; "describe": one Describe
    # call per operation and poll (ops/decisions/aws.md: why, and when to switch)
    status_polling: Literal["list", "describe"] = "list"
    status_poll_interval: float = Field(1.0, gt=0)
    # rounds this often while most of the sso-admin budget is spare, or creates wait for a
    # create slot: a settle seen sooner is access granted (or a slot freed) sooner
    status_poll_fast_interval: float = Field(0.25, gt=0)
    # AWS settles a create or delete in about a second at the earliest: polling sooner
    # only spends a listing
    poll_first_delay: float = Field(1.0, ge=0)
    poll_max_delay: float = Field(10.0, gt=0)
    poll_give_up_after: float = Field(600.0, gt=0)
    revoke_stuck_after_attempts: int = Field(5, ge=1)
    max_nesting_depth: int = Field(10, ge=1)
    expiring_notice_lead: float = Field(900.0, ge=0)

    # notifications
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    notify_slack_url: str | None = None
    # Per-channel event filters (comma-separated event names, "*" = all); unset: the
    # channel's default (tasks/notify/routing.py). Per-grant events go to the requester.
    notify_webhook_events: str | None = None
    notify_slack_events: str | None = None
    # Maximum age of a signed webhook delivery its receiver should accept (documented, and
    # what `tasks.notify.channels.verify_webhook` enforces).
    notify_webhook_tolerance: float = Field(300.0, gt=0)

    # Slack app (workers/slack): Bolt in HTTP mode at /slack/events of the API process
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_review_channel: str | None = None  # a channel id (C...) also given review messages
    slack_api_url: str = "https://slack.com/api/"
    slack_command: str = "/access"


    # sandbox
    sandbox_settle_delay: float = Field(2.0, ge=0)
    sandbox_fixture: str | None = None

    # `grantledger run`: seconds from SIGTERM / Ctrl-C until whatever has not stopped is
    # killed and `run` exits 3 naming it (workers/run.py)
    run_stop_timeout: float = Field(20.0, gt=0)

    log_level: str = "INFO"
    # worker, beat, api, run: "text" lines or "json" (one object a line; workers/logs.py)
    log_format: Literal["text", "json"] = "text"

    @field_validator("broker_url")
    @classmethod
    def _memory_host(cls, url: str) -> str:
        """``memory://`` names no host: kombu would warn on every connection."""
        return "memory://localhost/" if url.rstrip("/") == "memory:" else url

    @property
    def embedded(self) -> bool:
        """True when running everything in one process (SQLite + in-process broker)."""
        return self.database_url.startswith("sqlite") and self.broker_url.startswith("memory")

    @property
    def uses_redis(self) -> bool:
        return self.uses_sentinel or self.broker_url.startswith(("redis://", "rediss://"))

    @property
    def uses_sentinel(self) -> bool:
        return self.broker_url.startswith("sentinel://")

    def check(self) -> Settings:
        """Refuse settings no process of a production install may run with."""
        if not self.embedded:
            self._check_portal()
        if not self.embedded and self.uses_sentinel and not self.redis_master_name:
            raise ConfigError(
                "GRANTLEDGER_BROKER_URL is a sentinel:// URL but GRANTLEDGER_REDIS_MASTER_NAME "
                "is unset", hint="set it to the master name your sentinels monitor "
                "(`sentinel monitor NAME ...` in sentinel.conf)")
        if not self.embedded and self.aws_mode == "aws" and not self.scim_url:
            raise ConfigError("GRANTLEDGER_SCIM_URL is required with GRANTLEDGER_AWS_MODE=aws")
        if self.slack_enabled:
            self.slack_signing_key()
        return self

    def check_serving(self) -> Settings:
        """``check()``, and the admin token an HTTP server may accept.

        Only `api` and `run` need the token: outside the embedded mode it must be set, and
        whenever it is set it must not be weak (ops/decisions/api.md).
        """
        self.check()
        token = self.api_token.get_secret_value() if self.api_token else ""
        if not token and not self.embedded:
            raise ConfigError("GRANTLEDGER_API_TOKEN is unset; serving the API outside the "
                              "embedded mode needs the admin token", hint=TOKEN_ADVICE)
        if token and weak_token(token):
            raise ConfigError(f"GRANTLEDGER_API_TOKEN is too weak: it must be at least "
                              f"{MIN_API_TOKEN_LENGTH} characters and not a known default",
                              hint=TOKEN_ADVICE)
        return self

    def slack_signing_key(self) -> str:
        """The Slack signing secret; refused when unset (an empty key verifies forgeries)."""
        if not _secret(self.slack_signing_secret):
            raise ConfigError(
                "GRANTLEDGER_SLACK_BOT_TOKEN is set but GRANTLEDGER_SLACK_SIGNING_SECRET is not",
                hint="copy the Signing Secret from the Slack app's Basic Information page; "
                     "without it no request from Slack can be verified")
        return _secret(self.slack_signing_secret)

    @property
    def slack_enabled(self) -> bool:
        """True when the Slack app (bot token) is configured."""
        return bool(_secret(self.slack_bot_token))

    def warnings(self) -> list[str]:
        """What works but is unsafe; logged when a process starts and shown by doctor."""
        found = []
        if self.notify_webhook_url and not _secret(self.notify_webhook_secret):
            found.append("GRANTLEDGER_NOTIFY_WEBHOOK_URL is set without "
                         "GRANTLEDGER_NOTIFY_WEBHOOK_SECRET: webhook deliveries are unsigned, "
                         "so a receiver cannot tell them from forgeries; set a long random "
                         "secret and verify X-Grantledger-Signature (README, Notifications)")
        token = _secret(self.api_token)
        if token and weak_token(token):
            found.append(f"GRANTLEDGER_API_TOKEN is weak (shorter than {MIN_API_TOKEN_LENGTH} "
                         "characters or a known default): `api` and `run` refuse to start "
                         "with it; " + TOKEN_ADVICE)
        return found

    @property
    def oidc_configured(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    def _check_portal(self) -> None:
        if not self.oidc_configured:
            return
        secret = self.session_secret.get_secret_value() if self.session_secret else ""
        if weak_token(secret, minimum=MIN_SESSION_SECRET):
            raise ConfigError(
                "GRANTLEDGER_SESSION_SECRET is unset, a placeholder or shorter than "
                f"{MIN_SESSION_SECRET} characters, and the portal signs sessions with it",
                hint="set GRANTLEDGER_SESSION_SECRET to a long random value "
                     "(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
        if not self.portal_url:
            raise ConfigError("GRANTLEDGER_PORTAL_URL is required with GRANTLEDGER_OIDC_ISSUER",
                              hint="set it to the portal's public base URL; register "
                                   "<base>/auth/callback as the redirect URI at the provider")


def weak_token(token: str, *, minimum: int = MIN_API_TOKEN_LENGTH) -> bool:
    """Short, a well-known default, one repeated, or a single repeated character."""
    lowered = token.lower()
    repeated = any(lowered == weak * (len(lowered) // len(weak)) for weak in WEAK_SECRETS)
    return len(token) < minimum or repeated or len(set(token)) == 1


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests and the CLI's --env handling)."""
    get_settings.cache_clear()
