"""The queues page: each registered queue's limits, and the runs holding or waiting for a
place in it (linked to the runs list, filtered by queue)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlencode

from ..inspection import limits_text
from ..worlds.records import QueueInfo
from .html import Markup, h, join
from .layout import moment


def queues_body(base: str, queues: Sequence[QueueInfo], now: datetime) -> Markup:
    rows = join(_row(base, info, now) for info in queues)
    if not queues:
        rows = h(
            '<tr class="empty"><td colspan="5">{}</td></tr>',
            "no queues: workers register the queues they import when they start",
        )
    return h(
        '<h1>Queues</h1><table class="queues"><thead><tr><th>Queue</th><th>Limits</th>'
        "<th>Running</th><th>Waiting</th><th>Oldest waiting</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )


def _row(base: str, info: QueueInfo, now: datetime) -> Markup:
    name = info.limits.name
    runs = f"{base}/?{urlencode({'queue': name})}"
    return h(
        '<tr data-queue="{}"><td><a href="{}">{}</a></td><td>{}</td><td class="running">{}</td>'
        '<td class="waiting">{}</td><td>{}</td></tr>',
        name,
        runs,
        name,
        limits_text(info.limits),
        info.running,
        info.waiting,
        moment(info.oldest_waiting, now),
    )
