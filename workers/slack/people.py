"""Who a Slack user is in grantledger: the one mapping every Slack action goes through.

A Slack user is the grantledger user whose email is their Slack profile's email (looked up
with ``users.info`` and cached by ``SlackWeb``). Nobody else is anybody: an unmapped user is
refused with how to get enrolled. The result is the same ``Actor`` the API's ``PersonDep``
gives routes, resolved by immutable user id, so every rule of ``tasks/services/permissions``
applies to a click as to an API call.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from models.errors import PolicyDenied
from tasks.access.permissions import Actor, person_in
from tasks.access.queries import user_named_by_email
from workers.slack.web import SlackWeb

ENROL_HINT = ("ask a grantledger admin to enrol you: your Slack profile's email must be the "
              "email of your grantledger user (spec.traits.email, applied with "
              "`grantledger apply -f users.yaml`)")


def person_for(slack_user: str, *, slack: SlackWeb, sessions: sessionmaker[Session]) -> Actor:
    """The grantledger user acting for ``slack_user``; ``PolicyDenied`` when there is none."""
    email = slack.email_of(slack_user)
    if not email:
        raise PolicyDenied("your Slack profile shows no email, so grantledger cannot tell who "
                           "you are", hint=ENROL_HINT)
    name = user_named_by_email(sessions=sessions, email=email)
    if name is None:
        raise PolicyDenied(f"no grantledger user has the email {email}", hint=ENROL_HINT)
    return person_in(sessions, name=name, via="slack")
