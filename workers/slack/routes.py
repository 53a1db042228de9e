"""``POST /slack/events``: Slack's one URL for interactivity, slash commands and events.

The signature (HMAC-SHA256 over ``v0:timestamp:body`` with the signing secret, timestamps
older than 5 minutes refused, constant-time compare) is checked on the raw bytes before
anything is parsed; then Bolt's FastAPI adapter dispatches (and checks it again).
"""

from __future__ import annotations

import asyncio

from anyio.to_thread import run_sync
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier

from workers.runtime import Runtime
from workers.slack.bolt import slack_bolt_app
from workers.slack.manifest import EVENTS_PATH

MAX_BODY_BYTES = 1024 * 1024  # far above any Slack payload; refused before it is read


def slack_router(runtime: Runtime) -> APIRouter:
    """The route, with its Bolt app built once; no signing secret, no route (an empty key
    would make every signature forgeable, in the embedded mode too)."""
    verifier = SignatureVerifier(runtime.settings.slack_signing_key())
    handler = SlackRequestHandler(slack_bolt_app(runtime))
    router = APIRouter()

    @router.post(EVENTS_PATH, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body missing or over 1 MiB"}, status_code=413)
        body = await request.body()
        stamp = request.headers.get("x-slack-request-timestamp", "")
        if len(body) > MAX_BODY_BYTES or not (stamp.isascii() and stamp.isdigit()) or \
                not verifier.is_valid(body, stamp, request.headers.get("x-slack-signature", "")):
            return JSONResponse({"error": "invalid or stale Slack signature"}, status_code=401)
        # The sync Bolt app dispatches inline (until ack(); a modal's service call runs
        # first): off the event loop, in a worker thread with a loop of its own. The body is
        # read already (Starlette caches it), so the adapter touches nothing of this loop.
        return await run_sync(lambda: asyncio.run(handler.handle(request)))

    return router
