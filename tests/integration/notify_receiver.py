"""A tiny threaded HTTP receiver for notification tests: records what it is sent, verifies
the webhook signature, and answers with status codes the test scripts (200 by default)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tasks.notify.channels import verify_webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered
    signature_ok: bool | None  # None: no secret to check against

    @property
    def document(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Listens on 127.0.0.1; ``stop()`` then ``start()`` again reuses the same port."""

    def __init__(self, *, secret: str | None = None) -> None:
        self.secret = secret
        self.port = 0
        self.received: list[Received] = []
        self._answers: deque[int] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer_next(self, *statuses: int) -> None:
        """Answer the next requests with these codes, then 200 again."""
        with self._lock:
            self._answers.extend(statuses)

    def accepted_ids(self) -> Counter[str]:
        """How many times each notice id was answered with 2xx."""
        with self._lock:
            return Counter(r.headers.get("idempotency-key", "") for r in self.received
                           if 200 <= r.status < 300)

    def wait_for(self, count: int, *, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}")

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            status = self._answers.popleft() if self._answers else 200
            self.received.append(Received(path, headers, body, status, self._verify(headers,
                                                                                    body)))
        return status

    def _verify(self, headers: dict[str, str], body: bytes) -> bool | None:
        if self.secret is None:
            return None
        # the README's recipe: t=<unix>,v1=<hex HMAC-SHA256 of "<t>." + body>, at most 5 min old
        return verify_webhook(body, headers.get("x-grantledger-signature", ""), self.secret)


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {key.lower(): value for key, value in self.headers.items()}
            status = receiver.handle(self.path, headers, body)
            answer = b'{"ok": true}' if status < 300 else b'{"error": "scripted failure"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            return

    return Handler
