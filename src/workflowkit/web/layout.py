"""The page shell and the small pieces every page uses: badges, times, payloads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._tracebacks import user_frames
from ..inspection import duration, iso, relative, shown
from .html import Markup, attrs, esc, h, join, pretty


def page(base: str, title: str, csrf: str, body: Markup) -> str:
    return h(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{} · workflowkit</title><link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="{}/static/dashboard.css">'
        '<meta name="workflowkit-csrf" content="{}">'
        '<script src="{}/static/dashboard.js" defer></script></head>'
        '<body data-base="{}"><header class="top"><a class="brand" href="{}/">workflowkit</a>'
        '<a href="{}/">Runs</a><a href="{}/queues">Queues</a><a href="{}/schedules">Schedules</a>'
        "</header>"
        '<p id="flash" role="status" hidden></p><main>{}</main></body></html>\n',
        title,
        base,
        csrf,
        base,
        base,
        base,
        base,
        base,
        base,
        body,
    )


def badge(state: str) -> Markup:
    return h('<span class="badge s-{}">{}</span>', state, state)


def moment(value: datetime | None, now: datetime) -> Markup:
    """A time shown relative to now (kept current by the page's script), ISO on hover."""
    if value is None:
        return Markup('<span class="none">-</span>')
    stamp = iso(value)
    return h('<time datetime="{}" title="{}">{}</time>', stamp, stamp, relative(value, now))


def took(start: datetime | None, end: datetime | None) -> Markup:
    return esc(duration(start, end))


def payload(label: str, data: bytes | None) -> Markup:
    """A stored payload decoded for display: an error with its traceback (workflowkit's own
    frames left out, as in the run's header), or JSON text."""
    value = shown(data)
    if isinstance(value, Mapping) and "$encrypted" in value:  # no key here (docs/encryption.md)
        why = value.get("$undecryptable")
        return h(
            '<div class="payload"><h4>{}</h4><p class="encrypted">encrypted (key {}){}</p></div>',
            label,
            value["$encrypted"],
            f": {why}" if why else "",
        )
    if isinstance(value, Mapping) and "$error" in value:
        return h('<div class="payload"><h4>{}</h4>{}</div>', label, error(value))
    return h(
        '<div class="payload"><h4>{}</h4><pre class="json">{}</pre></div>', label, pretty(value)
    )


def error(value: Mapping[str, Any]) -> Markup:
    kind = str(value.get("$type", "Error"))
    parts = [h('<p class="error-title"><strong>{}</strong>: {}</p>', kind, value.get("$error"))]
    trace = value.get("traceback")
    if isinstance(trace, str) and trace:
        parts.append(h('<pre class="traceback">{}</pre>', user_frames(trace)))
    cause = value.get("cause")
    if isinstance(cause, Mapping) and "$error" in cause:
        parts.append(h('<div class="cause"><p>caused by</p>{}</div>', error(cause)))
    return join(parts)


def button(
    text: str, action: str, url: str, confirm: str | None = None, *, prompt: str | None = None
) -> Markup:
    """An action button; ``confirm`` asks first, ``prompt`` asks for an optional text (the
    action's ``reason``), which is a confirmation too: dismissing it does nothing."""
    return h(
        "<button{}>{}</button>",
        attrs(
            type="button",
            data_action=action,
            data_url=url,
            data_confirm=confirm,
            data_prompt=prompt,
        ),
        text,
    )


def error_page(base: str, csrf: str, status: int, message: str) -> str:
    body = h(
        '<section class="error-page"><h1>{}</h1><p>{}</p><p><a href="{}/">All runs</a>'
        "</p></section>",
        status,
        message,
        base,
    )
    return page(base, f"Error {status}", csrf, body)
