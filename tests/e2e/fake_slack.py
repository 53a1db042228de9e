"""A local stand-in for Slack's Web API: records every call and answers as Slack does
(auth.test, chat.postMessage / update / postEphemeral, users.info / lookupByEmail,
conversations.open, views.open), and can answer HTTP 429 with Retry-After once. Also signs
payloads the way Slack signs what it sends to an app."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit


@dataclass(frozen=True)
class Call:
    method: str
    args: dict[str, Any]
    status: int
    at: float  # time.monotonic() when answered

    def text(self) -> str:
        return json.dumps(self.args)


class FakeSlack:
    """The fake's state: people (Slack id -> email), calls, scripted 429s."""

    def __init__(self, people: dict[str, str]) -> None:
        self.people = people
        self.calls: list[Call] = []
        self._limits: dict[str, deque[list[int]]] = {}  # method -> [[calls to let pass, wait]]
        self._lock = threading.Lock()
        self._ts = 1_000
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api/"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self._limits.clear()

    def rate_limit_next(self, method: str, *, retry_after: int, after: int = 0) -> None:
        """The next call of ``method`` (after ``after`` more that succeed) answers 429 with
        this Retry-After."""
        with self._lock:
            self._limits.setdefault(method, deque()).append([after, retry_after])

    def called(self, method: str, **matching: Any) -> list[Call]:
        """Calls of ``method`` answered 200 whose arguments include ``matching``."""
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if c.method == method and c.status == 200
                and all(c.args.get(k) == v for k, v in matching.items())]

    def answer(self, method: str,
               args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            limits = self._limits.get(method)
            if limits and limits[0][0] > 0:
                limits[0][0] -= 1
            elif limits:
                wait = limits.popleft()[1]
                self.calls.append(Call(method, args, 429, time.monotonic()))
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(wait)}
            self._ts += 1
            status, body = 200, self._result(method, args, f"{self._ts}.000100")
            self.calls.append(Call(method, args, status, time.monotonic()))
        return status, body, {}

    def _result(self, method: str, args: dict[str, Any], ts: str) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "user": "grantledger", "user_id": "UBOT", "team": "Test",
                    "team_id": "T1", "bot_id": "B1", "url": "https://test.slack.com/"}
        if method == "users.info":
            email = self.people.get(str(args.get("user")))
            return {"ok": True, "user": {"id": args.get("user"), "profile": (
                {"email": email} if email else {})}}
        if method == "users.lookupByEmail":
            found = [uid for uid, email in self.people.items() if email == args.get("email")]
            return {"ok": True, "user": {"id": found[0]}} if found else {
                "ok": False, "error": "users_not_found"}
        if method == "conversations.open":
            users = args.get("users")
            user = users[0] if isinstance(users, list) else str(users).split(",")[0]
            return {"ok": True, "channel": {"id": f"D{user}"}}
        if method in ("chat.postMessage", "chat.update"):
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts") or ts}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": ts}
        if method == "views.open":
            return {"ok": True, "view": {"id": "V1"}}
        return {"ok": False, "error": "unknown_method"}


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(b"")

        def do_POST(self) -> None:  # noqa: N802
            self._serve(self.rfile.read(int(self.headers.get("Content-Length", 0))))

        def _serve(self, body: bytes) -> None:
            url = urlsplit(self.path)
            args: dict[str, Any] = dict(parse_qsl(url.query))
            if body and "json" in self.headers.get("Content-Type", ""):
                args |= json.loads(body)
            elif body:
                args |= dict(parse_qsl(body.decode()))
            status, answer, headers = fake.answer(url.path.rsplit("/", 1)[-1], args)
            data = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return Handler


def signed(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body`` (``v0=`` HMAC-SHA256 of ``v0:ts:body``)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest.hexdigest()}",
            "Content-Type": "application/x-www-form-urlencoded"}


def interaction(payload: dict[str, Any]) -> bytes:
    """An interactivity body: ``payload=<json>``, form-encoded."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def button(*, user: str, action: str, request_id: str, channel: str) -> bytes:
    return interaction({
        "type": "block_actions", "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1",
        "team": {"id": "T1", "domain": "test"}, "token": "legacy", "trigger_id": "1.2.3",
        "container": {"type": "message", "message_ts": "1.0", "channel_id": channel},
        "channel": {"id": channel, "name": "directmessage"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"type": "button", "action_id": action, "block_id": f"review:{request_id}",
                     "value": request_id, "action_ts": "1.1"}]})


def slash_command(*, user: str, text: str = "", command: str = "/access") -> bytes:
    return urlencode({"token": "legacy", "team_id": "T1", "team_domain": "test",
                      "channel_id": "C1", "channel_name": "general", "user_id": user,
                      "user_name": user.lower(), "command": command, "text": text,
                      "api_app_id": "A1", "response_url": "http://127.0.0.1:9/unused",
                      "trigger_id": "13345224609.738474920.8088930838d88f008e0"}).encode()


def view_submission(*, user: str, values: dict[str, Any]) -> bytes:
    return interaction({
        "type": "view_submission", "team": {"id": "T1", "domain": "test"},
        "user": {"id": user, "team_id": "T1"}, "api_app_id": "A1", "token": "legacy",
        "trigger_id": "1.2.4", "view": {
            "id": "V1", "team_id": "T1", "type": "modal", "callback_id": "grantledger_request",
            "private_metadata": "", "hash": "h", "state": {"values": values}}})
