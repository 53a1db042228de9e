"""The Slack Web API adapter (slack-sdk's ``WebClient``; ``base_url`` from
GRANTLEDGER_SLACK_API_URL). Implements ``tasks.notify.slack.SlackPort``; every failure is a
``SlackError`` (HTTP 429 keeps Slack's Retry-After). The token never leaves the client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from models.errors import SlackError
from workers.settings import Settings

T = TypeVar("T")
PEOPLE_TTL_SECONDS = 600.0  # a changed Slack email is picked up within ten minutes
API_TIMEOUT_SECONDS = 10


class SlackWeb:
    """The calls grantledger makes to Slack, with a small cache of who is who."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._people: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> SlackWeb:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
        return cls(WebClient(token=token, base_url=settings.slack_api_url,
                             timeout=API_TIMEOUT_SECONDS))

    def direct_channel(self, *, email: str) -> str | None:
        user_id = self._cached(f"email:{email.lower()}", lambda: self._user_by_email(email))
        if user_id is None:
            return None
        answer = call(lambda: self.client.conversations_open(users=[user_id]))
        return str(answer["channel"]["id"])

    def post(self, *, channel: str, message: Mapping[str, Any]) -> str:
        answer = call(lambda: self.client.chat_postMessage(
            channel=channel, text=message["text"], blocks=message.get("blocks")))
        return str(answer["ts"])

    def update(self, *, channel: str, ts: str, message: Mapping[str, Any]) -> None:
        call(lambda: self.client.chat_update(channel=channel, ts=ts, text=message["text"],
                                             blocks=message.get("blocks")))

    def ephemeral(self, *, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees in ``channel`` (refusals, confirmations)."""
        call(lambda: self.client.chat_postEphemeral(channel=channel, user=user, text=text))

    def open_view(self, *, trigger_id: str, view: Mapping[str, Any]) -> None:
        """Open a modal for the click or command that gave ``trigger_id`` (valid 3 s)."""
        call(lambda: self.client.views_open(trigger_id=trigger_id, view=dict(view)))

    def email_of(self, slack_user: str) -> str | None:
        """The email on a Slack user's profile (cached), None when it has none."""
        return self._cached(f"user:{slack_user}", lambda: self._profile_email(slack_user))

    def auth_test(self) -> dict[str, Any]:
        """Who the bot token is (``auth.test``)."""
        return dict(call(self.client.auth_test).data)  # type: ignore[arg-type]  # slack-sdk types .data dict | bytes; a JSON API answers a dict

    def _user_by_email(self, email: str) -> str | None:
        try:
            return str(call(lambda: self.client.users_lookupByEmail(email=email))["user"]["id"])
        except SlackError as err:
            if "users_not_found" in err.message:
                return None
            raise

    def _profile_email(self, slack_user: str) -> str | None:
        profile = call(lambda: self.client.users_info(user=slack_user))["user"].get("profile", {})
        return profile.get("email") or None

    def _cached(self, key: str, load: Callable[[], str | None]) -> str | None:
        with self._lock:
            hit = self._people.get(key)
        if hit is not None and time.monotonic() - hit[0] < PEOPLE_TTL_SECONDS:
            return hit[1]
        value = load()
        with self._lock:
            self._people[key] = (time.monotonic(), value)
        return value


def call(request: Callable[[], T]) -> T:
    """Make one Web API call; Slack's failures as ``SlackError`` (never with the token)."""
    try:
        return request()
    except SlackApiError as err:
        response = err.response
        if response.status_code == 429:
            wait = response.headers.get("Retry-After") or response.headers.get("retry-after")
            raise SlackError("Slack is rate limiting this app (HTTP 429)",
                             retry_after=float(wait) if str(wait).isdigit() else 1.0) from None
        raise SlackError(f"Slack refused the call: {response.get('error', response.status_code)}"
                         ) from None
    except (SlackClientError, OSError) as err:
        raise SlackError(f"Slack could not be reached: {type(err).__name__}") from None
