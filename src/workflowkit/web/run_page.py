"""The run page: the run's header and actions, then its panels (see ``panels.RUN_PANELS``)."""

from __future__ import annotations

from ..inspection import schedule_of
from .data import RunView
from .html import Markup, attrs, h, join
from .layout import badge, button, moment, took
from .panels import RUN_PANELS


def run_body(base: str, view: RunView) -> Markup:
    crumbs = h('<nav class="crumbs"><a href="{}/">Runs</a> / {}</nav>', base, view.run.run_id)
    return h("{}{}", crumbs, run_live(base, view))


def run_live(base: str, view: RunView) -> Markup:
    """The part of the run page that live updates replace."""
    run = view.run
    api = f"{base}/api/runs/{run.run_id}"
    actions = []
    if not run.status.terminal:
        actions.append(button("Cancel run", "cancel", f"{api}/cancel", "Cancel this run?"))
        if view.pending_waits:
            actions.append(button("Wake up sleeps", "wake-up", f"{api}/wake-up"))
    actions.append(
        button("Re-run with the same input", "rerun", f"{api}/rerun", "Start a new run?")
    )
    end = run.completed_at or (None if run.status.terminal else view.now)
    head = h(
        '<section class="run-head"><h1>{} {}</h1>{}<dl><dt>run</dt><dd class="id">{}</dd>'
        "<dt>created</dt><dd>{}</dd><dt>started</dt><dd>{}</dd><dt>completed</dt><dd>{}</dd>"
        '<dt>duration</dt><dd>{}</dd>{}</dl><div class="actions">{}</div></section>',
        run.workflow_name,
        badge(str(run.status)),
        _holdup(view),
        run.run_id,
        moment(run.created_at, view.now),
        moment(run.started_at, view.now),
        moment(run.completed_at, view.now),
        took(run.started_at, end),
        _family(base, view),
        join(actions),
    )
    panels = join(
        h(
            '<section class="panel" id="{}"><h2>{}</h2>{}</section>',
            p.key,
            p.title,
            p.render(base, view),
        )
        for p in RUN_PANELS
    )
    live = attrs(
        data_live="run",
        data_poll=f"{api}/state",
        data_version=view.version,
        data_active=not run.status.terminal,
    )
    return h('<div id="live"{}>{}{}</div>', live, head, panels)


def _holdup(view: RunView) -> Markup:
    if view.waiting_for is None:
        return Markup("")
    return h('<p class="waiting" role="status">Waiting for {}</p>', view.waiting_for)


def _family(base: str, view: RunView) -> Markup:
    """Links to the run's schedule (with the tick it ran for), parent and children, if any."""
    rows = []
    schedule = schedule_of(view.events[0]) if view.events else None
    if schedule is not None:
        schedule_id, tick = schedule
        rows.append(
            h(
                '<dt>schedule</dt><dd class="id"><a href="{}/schedules#schedule-{}">{}</a>'
                " tick {}</dd>",
                base,
                schedule_id,
                schedule_id,
                tick,
            )
        )
    parent = view.run.options.parent_run_id
    if parent is not None:
        rows.append(
            h(
                '<dt>parent</dt><dd class="id"><a href="{}/runs/{}">{}</a></dd>',
                base,
                parent,
                parent,
            )
        )
    if view.children:
        links = join(
            h('<a href="{}/runs/{}">{}</a> {}', base, c.run_id, c.run_id, badge(str(c.status)))
            for c in view.children
        )
        rows.append(h('<dt>children</dt><dd class="id children">{}</dd>', links))
    return join(rows)
