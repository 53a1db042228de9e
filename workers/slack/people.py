"""Who a Slack user is in grantledger: the one mapping every Slack action goes through.

A Slack user is the grantledger user whose email is their Slack profile's email (looked up
with ``users.info`` and cached by ``SlackWeb``). Nobody else is anybody: an unmapped user is
refused with how to get enrolled. The result is what the API's ``PersonDep`` gives routes (a
user name today), so a change of the person type happens here and there together.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from models.errors import PolicyDenied
from tasks.services.queries import user_named_by_email
from workers.slack.web import SlackWeb

ENROL_HINT = ("ask a grantledger admin to enrol you: your Slack profile's email must be the "
              "email of your grantledger user (spec.traits.email, applied with "
              "`grantledger apply -f users.yaml`)")


def person_for(slack_user: str, *, slack: SlackWeb, sessions: sessionmaker[Session]) -> str:
    """The grantledger user acting for ``slack_user``; ``PolicyDenied`` when there is none."""
    email = slack.email_of(slack_user)
    if not email:
        raise PolicyDenied("your Slack profile shows no email, so grantledger cannot tell who "
                           "you are", hint=ENROL_HINT)
    name = user_named_by_email(sessions=sessions, email=email)
    if name is None:
        raise PolicyDenied(f"no grantledger user has the email {email}", hint=ENROL_HINT)
    return name
