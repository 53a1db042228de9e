"""Request bodies and the few response shapes the services do not already define.

Bodies forbid unknown fields, so a typo is a 422 naming the field, and none of them has a
"user" or "actor" field: who acts is always the token's owner. Responses reuse the services'
frozen view dataclasses (``UserView``, ``RequestView``...) wherever they exist.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    WithJsonSchema,
)

from models.durations import format_duration, parse_duration
from models.text import MAX_FREE_TEXT, FreeText, in_utc

MAX_DURATION = timedelta(days=3650)  # far beyond any policy cap; keeps datetime math finite

# Names hold no control character at all; free text no control character but tab and
# newline (models/text.py: an ANSI escape in a reason would reach the audit reader's terminal).
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Text = Annotated[FreeText, Field(max_length=MAX_FREE_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=NO_CONTROL)]
# A moment that converts to UTC within the years 1-9999 (else 422 naming the field)
ApiDatetime = Annotated[AwareDatetime, AfterValidator(in_utc)]
PathName = Annotated[str, Path(min_length=1, max_length=2048, pattern=NO_CONTROL)]


def _duration(value: object) -> timedelta:
    """A duration as people write it (``8h``), refused politely when absurdly long."""
    try:
        parsed = parse_duration(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(f"duration {value!r} is too long") from None
    if parsed > MAX_DURATION:
        raise ValueError(f"duration {value!r} is longer than {MAX_DURATION.days} days")
    return parsed


ApiDuration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$",
                    "maxLength": 32, "examples": ["1h", "8h", "1h30m"]}),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApplyDocuments(Body):
    """Resources as JSON: the same documents a YAML file holds (kind, version, metadata...)."""

    documents: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)


class MemberChange(Body):
    member: Name
    kind: Literal["user", "access_list"] = "user"
    expires: ApiDatetime | None = None
    reason: Text | None = None


class AccessReviewBody(Body):
    remove: list[Name] = Field(default_factory=list, max_length=10_000)
    notes: Text | None = None


class NewRequest(Body):
    """A request made by the caller (the token's user), for roles and/or resources."""

    roles: list[Name] = Field(default_factory=list, max_length=100)
    resources: list[Name] = Field(default_factory=list, max_length=100,
                                  description="<account id or name>/<permission-set name>")
    reason: Text
    duration: ApiDuration | None = None
    break_glass: StrictBool = False  # a JSON boolean: "yes" is not true


class Decision(Body):
    reason: Text | None = None


class Extension(Body):
    duration: ApiDuration


class Promotion(Body):
    access_list: Name
    confirm_broader: bool = Field(False, description="promote even though the list grants "
                                                     "more than the request asked for")


class NewToken(Body):
    user: Name
    label: Annotated[FreeText, Field(max_length=200)] = ""


class CreatedToken(BaseModel):
    """The token is in this answer and nowhere else: it is not stored, only its digest."""

    id: int
    user: str
    label: str
    token: str


class Enqueued(BaseModel):
    task_id: str
    task: str
