"""The one settings object: every knob, read once from ``GRANTLEDGER_*`` variables.

Defaults give the embedded mode (SQLite ledger, in-process broker, sandbox AWS). Outside it,
secrets have no usable default: ``Settings.check()`` refuses placeholders.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.errors import ConfigError

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "placeholder"}


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
    # A worker's own Prometheus endpoint (its pool processes' AWS calls, throttles, settles;
    # workers/worker_metrics.py); unset or 0: none. No token: keep it on an internal network.
    worker_metrics_port: int | None = Field(None, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"

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
    poll_first_delay: float = Field(1.5, ge=0)
    poll_max_delay: float = Field(10.0, gt=0)
    poll_give_up_after: float = Field(600.0, gt=0)
    revoke_stuck_after_attempts: int = Field(5, ge=1)
    max_nesting_depth: int = Field(10, ge=1)
    expiring_notice_lead: float = Field(900.0, ge=0)

    # notifications
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    notify_slack_url: str | None = None

    # sandbox
    sandbox_settle_delay: float = Field(2.0, ge=0)
    sandbox_fixture: str | None = None

    log_level: str = "INFO"
    # worker, beat, api, run: "text" lines or "json" (one object a line; workers/logs.py)
    log_format: Literal["text", "json"] = "text"

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
        """Refuse settings a production install must not run with."""
        if self.embedded:
            return self
        token = self.api_token.get_secret_value() if self.api_token else ""
        if token.lower() in PLACEHOLDER_SECRETS:
            raise ConfigError(
                "GRANTLEDGER_API_TOKEN is unset or a placeholder outside the embedded mode",
                hint="set GRANTLEDGER_API_TOKEN to a long random value "
                     "(python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            )
        if self.uses_sentinel and not self.redis_master_name:
            raise ConfigError(
                "GRANTLEDGER_BROKER_URL is a sentinel:// URL but GRANTLEDGER_REDIS_MASTER_NAME "
                "is unset", hint="set it to the master name your sentinels monitor "
                "(`sentinel monitor NAME ...` in sentinel.conf)")
        if self.aws_mode == "aws" and not self.scim_url:
            raise ConfigError("GRANTLEDGER_SCIM_URL is required with GRANTLEDGER_AWS_MODE=aws")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def reset_settings_cache() -> None:
    """Forget the cached settings (tests and the CLI's --env handling)."""
    get_settings.cache_clear()
