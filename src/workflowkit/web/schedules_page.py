"""The schedules page: each schedule's cron, state, next tick, latest runs (linked) and its
pause/resume/trigger buttons; its live part re-renders alone."""

from __future__ import annotations

from datetime import datetime

from ..worlds.records import ScheduleRecord
from .data import ScheduleRow, SchedulesView
from .html import Markup, attrs, h, join
from .layout import badge, button, moment


def state_of(record: ScheduleRecord) -> str:
    if record.paused:
        return "paused"
    return "ended" if record.next_tick is None else "active"


def schedules_body(base: str, view: SchedulesView, now: datetime) -> Markup:
    return h("<h1>Schedules</h1>{}", schedules_live(base, view, now))


def schedules_live(base: str, view: SchedulesView, now: datetime) -> Markup:
    """The part of the page that live updates replace."""
    rows = join(_row(base, row, now) for row in view.rows)
    if not view.rows:
        rows = h('<tr class="empty"><td colspan="6">{}</td></tr>', "no schedules yet")
    return h(
        '<div id="live"{}><table class="schedules"><thead><tr><th>Schedule</th>'
        "<th>Cron</th><th>State</th><th>Next tick</th><th>Latest runs</th><th></th></tr>"
        "</thead><tbody>{}</tbody></table></div>",
        attrs(data_live="schedules", data_poll=f"{base}/api/schedules", data_version=view.version),
        rows,
    )


def _row(base: str, row: ScheduleRow, now: datetime) -> Markup:
    record = row.record
    api = f"{base}/api/schedules/{record.schedule_id}"
    state = state_of(record)
    toggle = (
        button("Resume", "resume", f"{api}/resume")
        if record.paused
        else button("Pause", "pause", f"{api}/pause")
    )
    trigger = button("Run now", "trigger", f"{api}/trigger", "Start a run of this schedule now?")
    runs = join(
        h(
            '<li><a href="{}/runs/{}">{}</a> {}</li>',
            base,
            r.run_id,
            _tick(r.run_id),
            badge(str(r.status)),
        )
        for r in row.recent
    )
    return h(
        '<tr id="schedule-{}" data-schedule-id="{}"><td class="id">{}<div class="sub">{}</div>'
        '</td><td><code>{}</code><div class="sub">{}</div></td><td>{}</td><td>{}</td>'
        '<td><ul class="recent">{}</ul></td><td class="actions">{}{}</td></tr>',
        record.schedule_id,
        record.schedule_id,
        record.schedule_id,
        record.workflow_name,
        record.cron,
        f"{record.timezone} · catch up {record.catch_up} · overlap {record.overlap}",
        badge(state),
        moment(None if record.paused else record.next_tick, now),
        runs or Markup('<span class="none">-</span>'),
        toggle,
        trigger,
    )


def _tick(run_id: str) -> str:
    """A run's tick, from its id (``<schedule>@<tick>``), to keep the column narrow."""
    return run_id.rsplit("@", 1)[-1]
