"""The run page: the run's header and actions, then its panels (see ``panels.RUN_PANELS``)."""

from __future__ import annotations

from urllib.parse import urlencode

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
        question = "Fail this run? Why (optional, recorded in its error):"
        actions.append(button("Fail run", "fail", f"{api}/fail", prompt=question))
        if view.pending_waits:
            actions.append(button("Wake up sleeps", "wake-up", f"{api}/wake-up"))
        elif _delayed(view):
            actions.append(button("Start now", "wake-up", f"{api}/wake-up"))
    actions.append(
        button("Re-run with the same input", "rerun", f"{api}/rerun", "Start a new run?")
    )
    end = run.completed_at or (None if run.status.terminal else view.now)
    head = h(
        '<section class="run-head"><h1>{} {}</h1>{}{}<dl><dt>run</dt><dd class="id">{}</dd>'
        "<dt>created</dt><dd>{}</dd><dt>started</dt><dd>{}</dd><dt>completed</dt><dd>{}</dd>"
        '<dt>duration</dt><dd>{}</dd>{}</dl><div class="actions">{}</div></section>',
        run.workflow_name,
        join([badge(str(run.status)), badge("diverged") if run.parked else Markup("")]),
        _holdup(view),
        _failure(view),
        run.run_id,
        moment(run.created_at, view.now),
        moment(run.started_at, view.now),
        moment(run.completed_at, view.now),
        took(run.started_at, end),
        join([_options(base, view), _family(base, view)]),
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


def _failure(view: RunView) -> Markup:
    """A failed run's error and traceback, first thing on the page (not below the fold)."""
    failure = view.failure
    if failure is None:
        return Markup("")
    parts = [h('<pre class="error-title">{}</pre>', failure.error)]
    if failure.traceback:
        parts.append(h('<pre class="traceback">{}</pre>', failure.traceback))
    step = failure.step
    if step is not None:
        parts.append(
            h(
                '<div class="attempt"><p>last failed step attempt: <code>{}</code> #{}</p>'
                '<pre class="error-title">{}</pre>{}</div>',
                step.step_name,
                step.attempt,
                step.error,
                h('<pre class="traceback">{}</pre>', step.traceback) if step.traceback else "",
            )
        )
    return h('<div class="failure" role="alert">{}</div>', join(parts))


def _delayed(view: RunView) -> bool:
    """A run waiting for its start time (``delay``, ``start_at``)."""
    run = view.run
    return run.started_at is None and run.wake_at is not None and run.wake_at > view.now


def _options(base: str, view: RunView) -> Markup:
    """How the run was started: its deadline, and its queue, key and priority."""
    options = view.run.options
    rows = []
    if options.deadline is not None:
        rows.append(h("<dt>deadline</dt><dd>{}</dd>", moment(options.deadline, view.now)))
    if options.queue is not None:
        runs = f"{base}/?{urlencode({'queue': options.queue})}"
        rows.append(h('<dt>queue</dt><dd><a href="{}">{}</a></dd>', runs, options.queue))
    if options.key is not None:
        rows.append(h("<dt>key</dt><dd>{}</dd>", options.key))
    if options.priority:
        rows.append(h("<dt>priority</dt><dd>{}</dd>", options.priority))
    if view.run.code_version is not None:
        rows.append(h('<dt>code version</dt><dd class="id">{}</dd>', view.run.code_version))
    return join(rows)


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
    for label, runs in (("children", view.children), ("forks", view.forks)):
        if runs:
            links = join(
                h('<a href="{}/runs/{}">{}</a> {}', base, r.run_id, r.run_id, badge(str(r.status)))
                for r in runs
            )
            rows.append(h('<dt>{}</dt><dd class="id {}">{}</dd>', label, label, links))
    source = view.run.options.forked_from
    if source is not None:
        rows.append(
            h(
                '<dt>forked from</dt><dd class="id"><a href="{}/runs/{}">{}</a></dd>',
                base,
                source,
                source,
            )
        )
    return join(rows)
