"""workers.logs: the line formats and the scrubbing of secrets, on the real stdlib root logger
(restored after each test)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import httpx
import pytest
from pydantic import SecretStr

from workers import logs
from workers.settings import Settings

ADMIN = "admin-token-0123456789-abcdefghijklmn"
SCIM = "scim-token-abcdefghij"


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    logs.unbind_task()


def configured(log_format: str) -> io.StringIO:
    stream = io.StringIO()
    settings = Settings(log_format=log_format, api_token=SecretStr(ADMIN),
                        scim_token=SecretStr(SCIM))
    logs.configure(settings, level="INFO", stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_level_logger_process_time_and_the_task():
    stream = configured("json")
    logging.getLogger("tasks.sync.engine").info("synced %d", 3)
    logs.bind_task(task="grantledger.sync.full", task_id="t-1")
    logging.getLogger("workers.adapters.aws.call").warning("throttled")
    logs.unbind_task()
    logging.getLogger("tasks.sync.engine").debug("below the level")
    first, second = lines(stream)
    assert first["event"] == "synced 3" and first["level"] == "info"
    assert first["logger"] == "tasks.sync.engine" and first["process"] == "MainProcess"
    assert first["timestamp"].endswith("Z") and "task_id" not in first
    assert (second["task"], second["task_id"], second["level"]) == \
        ("grantledger.sync.full", "t-1", "warning")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_secrets_are_masked_wherever_they_appear(log_format: str):
    stream = configured(log_format)
    log = logging.getLogger("workers.adapters.scim.client")
    log.info("headers {'Authorization': 'Bearer %s'} to %s", "eyJhbGciOiJIUzI1NiJ9.x.y", SCIM)
    try:
        raise RuntimeError(f"refused token {ADMIN}")
    except RuntimeError:
        log.exception("call failed")
    written = stream.getvalue()
    for secret in (ADMIN, SCIM, "eyJhbGciOiJIUzI1NiJ9"):
        assert secret not in written
    assert "Bearer ***" in written and "refused token ***" in written
    assert "Traceback" in written and "call failed" in written


def test_text_tracebacks_show_no_local_variables():
    stream = configured("text")
    credentials = {"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG"}  # noqa: F841 - a local
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("tasks").exception("failed")
    assert "wJalrXUtnFEMI" not in stream.getvalue()
    assert "ValueError: boom" in stream.getvalue()


def test_short_values_are_not_taken_for_secrets():
    scrubbed = logs.Scrubbed(lambda *_: "", ["abc", "long-enough-secret"])
    assert scrubbed.text("abc and long-enough-secret") == "abc and ***"


def test_library_handlers_do_not_print_each_line_twice():
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(io.StringIO()))
    stream = configured("json")
    # WARNING: an in-process uvicorn of another test may have left the logger at that level
    logging.getLogger("uvicorn.error").warning("Shutting down [1]")
    assert [line["event"] for line in lines(stream)] == ["Shutting down [1]"]
    assert logging.getLogger("uvicorn.error").handlers == []


ROUTINE = [("celery.beat", logging.INFO, "Scheduler: Sending due task %s (%s)",
            ("expiry-sweep", "grantledger.expiry.sweep")),
           ("celery.worker.strategy", logging.INFO, "Task %s[%s] received",
            ("grantledger.expiry.sweep", "t-1")),
           ("celery.app.trace", logging.INFO, "Task %s[%s] succeeded in %ss: %s",
            ("grantledger.expiry.sweep", "t-1", 0.01, None)),
           ("py.warnings", logging.WARNING, "%s", ("SecurityWarning: You're running the "
                                                   "worker with superuser privileges: this is",))]


@pytest.mark.parametrize(("level", "shown"), [("INFO", 0), ("DEBUG", len(ROUTINE))])
def test_routine_lines_are_debug_lines(level: str, shown: int):
    stream = io.StringIO()
    logs.configure(Settings(log_format="json"), level=level, stream=stream)
    for name, record_level, message, args in ROUTINE:
        logging.getLogger(name).log(record_level, message, *args)
    logging.getLogger("celery.beat").info("beat: Starting...")
    logging.getLogger("celery.app.trace").error("Task %s[%s] raised unexpected: %s",
                                                "grantledger.sync.full", "t-2", "boom")
    logged = lines(stream)
    assert len(logged) == shown + 2
    assert {line["level"] for line in logged[:shown]} <= {"debug"}
    assert [line["event"] for line in logged[shown:]] == [
        "beat: Starting...", "Task grantledger.sync.full[t-2] raised unexpected: boom"]
WEBHOOK = "http://127.0.0.1:{port}/services/T0123/B0456/webhook-secret-path"


@pytest.fixture
def receiver() -> Iterator[int]:
    """A local HTTP receiver that answers every POST with 200."""

    class Ok(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_configured_webhook_url_never_reaches_the_log(log_format: str, receiver: int):
    url = WEBHOOK.format(port=receiver)
    stream = io.StringIO()
    settings = Settings(log_format=log_format, notify_slack_url=url,
                        notify_webhook_url=url.replace("webhook-secret", "other-secret"),
                        database_url="postgresql+psycopg://gl:db-password-42@db/gl")
    logs.configure(settings, level="DEBUG", stream=stream)
    httpx.post(url, json={"text": "hi"}, timeout=5).raise_for_status()
    logging.getLogger("tasks.notify").warning("delivery to %s failed, retrying", url)
    logging.getLogger("tasks.notify").warning("receiver refused %s",
                                              settings.notify_webhook_url.split(":", 2)[2])
    logging.getLogger("sqlalchemy").warning("connect to %s", settings.database_url)
    written = stream.getvalue()
    assert "failed, retrying" in written and "receiver refused" in written
    for secret in ("webhook-secret-path", "other-secret-path", "db-password-42"):
        assert secret not in written
