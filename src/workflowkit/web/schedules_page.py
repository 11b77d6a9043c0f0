"""The schedules page: each schedule's cron, state, next tick, latest runs (linked) and its
pause/resume/trigger/delete buttons, then a form for a new schedule; its live part (the
table) re-renders alone, so polling never clears a form being filled in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from .._schedule_spec import DEFAULT_CATCH_UP, DEFAULT_OVERLAP
from ..worlds.records import CatchUp, Overlap, ScheduleRecord
from .data import ScheduleRow, SchedulesView
from .html import Markup, attrs, h, join
from .layout import badge, button, moment


def state_of(record: ScheduleRecord) -> str:
    if record.paused:
        return "paused"
    return "ended" if record.next_tick is None else "active"


def schedules_body(
    base: str, view: SchedulesView, now: datetime, workflows: Sequence[str]
) -> Markup:
    return h(
        "<h1>Schedules</h1>{}{}", schedules_live(base, view, now), new_schedule(base, workflows)
    )


def new_schedule(base: str, workflows: Sequence[str]) -> Markup:
    """The form for ``POST /api/schedules``; ``workflows`` are suggested for its workflow."""
    names = join(h('<option value="{}">', name) for name in workflows)
    when = "2030-01-01T09:00+01:00"
    return h(
        '<details class="new-schedule"><summary>New schedule</summary>'
        '<form class="new-schedule"{}>'
        '<label>Schedule id<input name="schedule_id" required placeholder="nightly-report">'
        '</label><label>Workflow<input name="workflow" required list="workflow-names"></label>'
        '<datalist id="workflow-names">{}</datalist>'
        '<label>Cron<input name="cron" required placeholder="0 9 * * MON-FRI"></label>'
        '<label>Time zone<input name="timezone" value="UTC"></label>'
        "<label>Arguments after the tick's time (JSON list)"
        '<textarea name="args_json" rows="2" spellcheck="false">[]</textarea></label>'
        "<label>Keyword arguments (JSON object)"
        '<textarea name="kwargs_json" rows="2" spellcheck="false">{{}}</textarea></label>'
        '<label>Catch up<select name="catch_up">{}</select></label>'
        '<label>Overlap<select name="overlap">{}</select></label>'
        "<label>Start at (ISO 8601; UTC without an offset)"
        '<input name="start_at" placeholder="{}"></label>'
        "<label>End at (ISO 8601; UTC without an offset)"
        '<input name="end_at" placeholder="{}"></label>'
        '<button type="submit">Create schedule</button></form></details>',
        attrs(data_url=f"{base}/api/schedules"),
        names,
        _options([str(c) for c in CatchUp], DEFAULT_CATCH_UP),
        _options([str(o) for o in Overlap], DEFAULT_OVERLAP),
        when,
        when,
    )


def _options(values: Sequence[str], default: str) -> Markup:
    return join(
        h("<option{}>{}</option>", attrs(selected=value == default), value) for value in values
    )


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
    delete = Markup("")
    if not record.static:  # only its code deletes a schedule declared there
        question = f"Delete schedule {record.schedule_id}? Its runs stay."
        delete = button("Delete", "delete", f"{api}/delete", question)
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
        '<td><ul class="recent">{}</ul></td><td class="actions">{}{}{}</td></tr>',
        record.schedule_id,
        record.schedule_id,
        record.schedule_id,
        record.workflow_name,
        record.cron,
        f"{record.timezone} · catch up {record.catch_up} · overlap {record.overlap}"
        + (" · declared in code" if record.static else ""),
        badge(state),
        moment(None if record.paused else record.next_tick, now),
        runs or Markup('<span class="none">-</span>'),
        toggle,
        trigger,
        delete,
    )


def _tick(run_id: str) -> str:
    """A run's tick, from its id (``<schedule>@<tick>``), to keep the column narrow."""
    return run_id.rsplit("@", 1)[-1]
