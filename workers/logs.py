"""Process logging for the worker, beat, API and `run`: text or JSON lines, secrets scrubbed.

``GRANTLEDGER_LOG_FORMAT=json`` writes one JSON object a line (``timestamp``, ``level``,
``logger``, ``process``, ``event``, ``exception``, and inside a Celery task ``task`` and
``task_id``) for Loki, CloudWatch or Elasticsearch; ``text`` (the default) writes the same
fields as a readable line. Both go through structlog's ``ProcessorFormatter`` on the stdlib
root logger, so Celery's, uvicorn's, botocore's and our own records come out alike.

Secrets never land in logs: every rendered line passes ``Scrubbed``, which masks the
configured secrets (every ``SecretStr`` setting, the webhook URLs, a password inside a URL)
wherever they appear, and anything following ``Bearer``, whoever logged it (an exception
text that quotes a header, a library's debug line, a traceback). httpx and httpcore log
every request URL at INFO, so they are held at WARNING.

Routine lines that repeat every second or so (beat sending a sweep, a worker receiving
and finishing a task) and Celery's root warning are logged at DEBUG (``DEMOTED``): quiet
at INFO, all there at DEBUG.

Celery calls ``configure`` through its ``setup_logging`` signal (``workers/celery/app.py``),
which also stops it from installing its own handlers; the API and ``run`` call it before
uvicorn starts (``log_config=None`` keeps uvicorn from replacing it).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars

MASK = "***"
BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")
SHORTEST_SECRET = 6  # shorter values would mask ordinary words
# (logger, start of the message) logged at DEBUG instead of INFO/WARNING. The root warning:
# our messages are JSON only (no pickle), and the image runs as uid 10001 (ops/Dockerfile).
DEMOTED = (
    ("celery.beat", "Scheduler: Sending due task"),
    ("celery.worker.strategy", "Task "),  # "Task <name>[<id>] received"
    ("celery.app.trace", "Task "),  # "Task <name>[<id>] succeeded in ..."
    ("py.warnings", ""),  # only Celery's SecurityWarning below
)
ROOT_WARNING = "running the worker with superuser privileges"
# URLs that are credentials themselves (a Slack incoming webhook, a receiver's secret path)
SECRET_URL_SETTINGS = ("notify_webhook_url", "notify_slack_url")
# URLs that may carry a password (user:password@host) or a token in their query
URL_SETTINGS = ("database_url", "broker_url", "result_backend", "scim_url",
                "aws_endpoint_url")
QUIET_LIBRARIES = ("httpx", "httpcore")  # every request URL at INFO


class Scrubbed:
    """The final processor: the renderer's line, with every secret in it masked.

    Masking the rendered line (not the event's values) also covers what the renderer adds
    itself: a traceback, an exception's text, a nested value.
    """

    def __init__(self, renderer: Any, secrets: Iterable[str]) -> None:
        self.renderer = renderer
        self.secrets = sorted({s for s in secrets if len(s) >= SHORTEST_SECRET},
                              key=len, reverse=True)  # a secret inside another: longest first

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        return self.text(str(self.renderer(logger, method, event)))

    def text(self, line: str) -> str:
        for secret in self.secrets:
            line = line.replace(secret, MASK)
        return BEARER.sub(rf"\g<1>{MASK}", line)


class Demoted(logging.Filter):
    """Routine lines (``DEMOTED``) become DEBUG records: shown only when DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING or not _routine(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _routine(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    if record.name == "py.warnings":
        return ROOT_WARNING in text
    return any(record.name == name and text.startswith(start) for name, start in DEMOTED)


def configured_secrets(settings: Any) -> list[str]:
    """The secret values the settings hold: every SecretStr, the secret URLs, URL passwords."""
    values = [value.get_secret_value() for value in dict(settings).values()
              if isinstance(value, SecretStr)]
    for name in SECRET_URL_SETTINGS:
        values += url_and_path(getattr(settings, name, None))
    for name in URL_SETTINGS:
        values += url_credentials(getattr(settings, name, None))
    return [value for value in values if value]


def url_and_path(url: str | None) -> list[str]:
    """A secret URL, and its path and query alone (errors often quote just those)."""
    if not url:
        return []
    parts = urlsplit(url)
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return [url, tail] if len(tail) > 1 else [url]


def url_credentials(url: str | None) -> list[str]:
    """The password and the query string a URL carries (a token is often passed there)."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL the scrubber can split: nothing to find in it
        return []
    return [value for value in (password, parts.query) if value]


def _process(_logger: Any, _method: str,
             event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    record = event.get("_record")
    if record is not None:
        event.setdefault("process", record.processName)
    return event


def formatter(settings: Any) -> logging.Formatter:
    """The formatter every handler of the process uses."""
    json_lines = settings.log_format == "json"
    # Plain tracebacks: the console renderer's rich ones print every frame's locals, which
    # may hold anything (a SCIM payload, credentials) that no scrubbing knows about.
    renderer: Any = (structlog.processors.JSONRenderer() if json_lines else
                     structlog.dev.ConsoleRenderer(
                         colors=False, exception_formatter=structlog.dev.plain_traceback))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            _process,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # JSON wants the traceback as a string field; the console renderer prints it
            *([structlog.processors.format_exc_info] if json_lines else []),
            Scrubbed(renderer, configured_secrets(settings)),
        ],
    )


def configure(settings: Any, *, level: int | str | None = None,
              stream: TextIO | None = None) -> None:
    """Send every record of this process to ``stream`` (stderr) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings))
    handler.addFilter(Demoted())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level if level is not None else settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logging.getLogger(name).handlers = []  # theirs would print each line twice
        logging.getLogger(name).propagate = True
    logging.captureWarnings(True)  # warnings.warn (Celery's, boto's) as lines of ours too
    # alembic announces each of its plugins at INFO whenever it is imported
    for name in ("alembic.runtime.plugins", *QUIET_LIBRARIES):
        logging.getLogger(name).setLevel(logging.WARNING)
    for warning in settings.warnings() if hasattr(settings, "warnings") else ():
        logging.getLogger("grantledger.settings").warning(warning)


def bind_task(*, task: str, task_id: str) -> None:
    """Tag the lines a Celery task logs (``task_prerun``)."""
    bind_contextvars(task=task, task_id=task_id)


def unbind_task() -> None:
    """Stop tagging once the task ran (``task_postrun``)."""
    clear_contextvars()
