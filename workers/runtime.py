"""The composition root: settings in, wired adapters out.

Every entry point (CLI command, Celery task, API request) asks `get_runtime()` for the ledger
sessions, the Identity Center adapter, the SCIM directory and the global limiter, so nothing
builds its own and tests inject their own `Runtime` with `set_runtime()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.errors import ConfigError
from models.ledger import migrate
from models.ledger.db import make_engine, session_factory
from tasks import events
from tasks.events import Next, celery_dispatcher
from workers.settings import Settings, get_settings

if TYPE_CHECKING:
    from models.ports.identity_center import IdentityCenter
    from models.ports.scim import ScimDirectory
    from workers.limiter import Limiter
    from workers.slack.web import SlackWeb

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_FIXTURE = REPO_ROOT / "ops" / "examples" / "sandbox-small.yaml"


@dataclass
class Runtime:
    """Everything a unit of work needs, built lazily from one Settings."""

    settings: Settings
    sandbox: Any = None  # an in-process workers.sandbox.Sandbox, when one was started
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Ledger sessions; SQLite is migrated on first use, Postgres must be at head."""
        url = self.settings.database_url
        if url.startswith("sqlite"):
            migrate.upgrade(url)
        else:
            migrate.require_head(url)
        return session_factory(self.engine)

    @cached_property
    def limiter(self) -> Limiter:
        from workers.limiter import make_limiter

        return make_limiter(self.settings)

    @cached_property
    def identity_center(self) -> IdentityCenter:
        from workers.adapters.aws.boto_adapter import BotoIdentityCenter
        from workers.adapters.aws.clients import make_clients

        self._require_endpoint()
        return BotoIdentityCenter(make_clients(self.settings, session=self.boto_session()),
                                  settings=self.settings, limiter=self.limiter)

    def boto_session(self) -> Any:
        """The standard credential chain; the sandbox accepts any key, so give it one."""
        import boto3

        if self.settings.aws_mode == "sandbox":
            return boto3.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox",
                                 region_name=self.settings.aws_region)
        return boto3.Session(region_name=self.settings.aws_region)

    @cached_property
    def directory(self) -> ScimDirectory:
        from workers.adapters.scim.client import HttpScimDirectory

        self._require_endpoint()
        return HttpScimDirectory.from_settings(self.settings, limiter=self.limiter)

    @cached_property
    def slack(self) -> SlackWeb | None:
        """The Slack Web API client of the Slack app; None when no bot token is set."""
        from workers.slack.web import SlackWeb

        return SlackWeb.from_settings(self.settings) if self.settings.slack_enabled else None

    def _require_endpoint(self) -> None:
        """Sandbox mode talks to a sandbox server; without one there is nothing to call."""
        if self.settings.aws_mode == "sandbox" and not self.settings.aws_endpoint_url:
            raise ConfigError(
                "GRANTLEDGER_AWS_MODE=sandbox but GRANTLEDGER_AWS_ENDPOINT_URL is not set",
                hint="start one with `grantledger sandbox serve --fixture "
                     "ops/examples/sandbox-small.yaml` and export the settings it prints, "
                     "or run `grantledger demo`, which brings its own",
            )

    def close(self) -> None:
        """Release connections (and stop an in-process sandbox this runtime started)."""
        if "engine" in self.__dict__:
            self.engine.dispose()
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None


def with_inprocess_sandbox(settings: Settings, *, fixture: str | Path | None = None,
                           settle_delay: float | None = None) -> tuple[Settings, Any]:
    """Start a sandbox in this process and return settings pointed at it (embedded mode)."""
    from workers.sandbox import Sandbox

    sandbox = Sandbox(settle_delay=settings.sandbox_settle_delay if settle_delay is None
                      else settle_delay, rate=settings.sso_admin_rate).start()
    sandbox.seed(str(fixture or settings.sandbox_fixture or SMALL_FIXTURE))
    pointed = settings.model_copy(update={
        "aws_endpoint_url": sandbox.endpoint_url,
        "scim_url": sandbox.scim_url,
        "scim_token": SecretStr(sandbox.scim_token),
        "instance_arn": sandbox.instance_arn,
        "identity_store_id": sandbox.identity_store_id,
    })
    return pointed, sandbox


def _send_with_celery(item: Next) -> None:
    """The project's dispatcher: the Celery app is imported on first send, not at start-up."""
    from workers.celery.app import celery_app

    celery_dispatcher(celery_app)(item)


events.use_dispatcher(_send_with_celery)

_current: Runtime | None = None
_current_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime, built from `get_settings()` on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime(get_settings().check())
        return _current


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Install `runtime` for this process (tests, demo); returns the previous one."""
    global _current
    with _current_lock:
        previous, _current = _current, runtime
        return previous
