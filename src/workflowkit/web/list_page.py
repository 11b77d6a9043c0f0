"""The runs list: filters, status badges, paging, bulk cancel; its live part re-renders alone."""

from __future__ import annotations

from datetime import datetime

from ..worlds.records import RunRecord, RunStatus
from .data import RunsPage
from .html import Markup, attrs, h, join
from .layout import badge, moment, took


def runs_body(base: str, view: RunsPage, now: datetime) -> Markup:
    f = view.filter
    options = join(
        h("<option{}>{}</option>", attrs(value=str(s), selected=f.status is s), str(s))
        for s in RunStatus
    )
    names = join(h("<option{}></option>", attrs(value=n)) for n in view.workflows)
    filters = h(
        '<form class="filters" method="get" action="{}/">'
        '<input type="search" name="q" placeholder="run id" aria-label="run id"{}>'
        '<input name="workflow" list="workflow-names" placeholder="workflow"'
        ' aria-label="workflow"{}><datalist id="workflow-names">{}</datalist>'
        '<select name="status" aria-label="status"><option value="">any status</option>{}'
        '</select><input name="queue" placeholder="queue" aria-label="queue"{}>'
        '<input name="key" placeholder="key" aria-label="queue key"{}>'
        '<label class="check"><input type="checkbox" name="diverged" value="1"{}> diverged'
        '</label><button type="submit">Filter</button>{}</form>',
        base,
        attrs(value=f.search),
        attrs(value=f.workflow),
        names,
        options,
        attrs(value=f.queue),
        attrs(value=f.key),
        attrs(checked=f.diverged),
        h('<a class="reset" href="{}/">reset</a>', base) if f.active else "",
    )
    return h("<h1>Runs</h1>{}{}", filters, runs_live(base, view, now))


def runs_live(base: str, view: RunsPage, now: datetime) -> Markup:
    """The part of the list page that live updates replace."""
    f = view.filter
    waiting = view.waiting or (None,) * len(view.runs)
    rows = join(_row(base, r, w, now) for r, w in zip(view.runs, waiting, strict=True))
    if not view.runs:
        what = "no runs match these filters" if f.active else "no runs yet"
        rows = h('<tr class="empty"><td colspan="7">{}</td></tr>', what)
    pager = []
    if f.cursor is not None:
        pager.append(h('<a class="newest" href="{}/?{}">newest</a>', base, f.query(cursor=None)))
    if view.next_cursor is not None:
        older = f.query(cursor=view.next_cursor)
        pager.append(h('<a class="older" href="{}/?{}">older →</a>', base, older))
    poll = f"{base}/api/runs?{f.query(only='version')}"
    return h(
        '<div id="live"{}><div class="bulk"><button type="button" data-action="bulk-cancel"'
        ' data-url="{}/api/runs/cancel" disabled>Cancel selected</button></div>'
        '<table class="runs"><thead><tr><th><input type="checkbox" data-select-all'
        ' aria-label="select all"></th><th>Run</th><th>Workflow</th><th>Status</th>'
        "<th>Queue</th><th>Created</th><th>Duration</th></tr></thead><tbody>{}</tbody></table>"
        '<nav class="pager">{}</nav></div>',
        attrs(data_live="runs", data_poll=poll, data_version=view.version),
        base,
        rows,
        join(pager),
    )


def _queue(r: RunRecord) -> str:
    queue, key = r.options.queue, r.options.key
    if queue is None:
        return ""
    return queue if key is None else f"{queue} · {key}"


def _row(base: str, r: RunRecord, waiting: str | None, now: datetime) -> Markup:
    end = r.completed_at or (None if r.status.terminal else now)
    box = attrs(
        type="checkbox",
        name="run_id",
        value=r.run_id,
        disabled=r.status.terminal,
        aria_label=f"select {r.run_id}",
    )
    return h(
        '<tr data-run-id="{}" data-status="{}"><td><input{}></td>'
        '<td class="id"><a href="{}/runs/{}">{}</a></td><td>{}</td><td>{}{}</td>'
        '<td class="queue">{}</td><td>{}</td><td>{}</td></tr>',
        r.run_id,
        str(r.status),
        box,
        base,
        r.run_id,
        r.run_id,
        r.workflow_name,
        join([badge(str(r.status)), badge("diverged") if r.parked else Markup("")]),
        h('<div class="waiting">{}</div>', waiting) if waiting else Markup(""),
        _queue(r),
        moment(r.created_at, now),
        took(r.started_at, end),
    )
