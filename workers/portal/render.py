"""Rendering pages: one Jinja2 environment (templates shipped in this package) and the
filters every page uses (times in UTC marked up for the browser's local time, time left)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from models.durations import format_duration
from workers.portal.session import CSRF_FIELD, csrf_token

PAGE_SIZE = 50


def when(value: datetime | None) -> Markup:
    """A time as ``<time>``: UTC in the text and on hover; portal.js shows it in local time."""
    if value is None:
        return Markup("&mdash;")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        utc.isoformat(), text, text)


def time_left(value: datetime | None, now: datetime | None = None) -> str:
    """How long until ``value`` (``3h 5m``), or "no expiry"."""
    if value is None:
        return "no expiry"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    left = value - (now or datetime.now(UTC))
    if left <= timedelta(0):
        return "expired"
    return format_duration(timedelta(seconds=max(1, int(left.total_seconds()))))


def duration(value: timedelta | None) -> str:
    return format_duration(value) if value is not None else "\u2014"


environment = Environment(loader=PackageLoader("workers.portal", "templates"),
                          autoescape=select_autoescape(("html",)), trim_blocks=True,
                          lstrip_blocks=True)
environment.filters.update(when=when, time_left=time_left, duration=duration)


def csrf_field(request: Request) -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(
        CSRF_FIELD, escape(csrf_token(request)))


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the viewer, the navigation and the CSRF field."""
    viewer = getattr(request.state, "viewer", None)
    html = environment.get_template(template).render(
        request=request, viewer=viewer, path=request.url.path,
        operator=viewer is not None and viewer.auditor,
        csrf=csrf_field(request), page_size=PAGE_SIZE, **context)
    return HTMLResponse(html, status_code=status)
