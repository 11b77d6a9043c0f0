"""The run page's panels. Each is a title and a function of the run's ``RunView``.

A new panel is one function here and one entry in ``RUN_PANELS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..inspection import attrs_json, iso, one_line, shown, span_text
from ..worlds.records import EventType
from .data import RunView
from .html import Markup, attrs, esc, h, join, pretty
from .layout import badge, button, moment, payload
from .timeline import Bar, Timeline, origin_of


@dataclass(frozen=True, slots=True)
class Panel:
    key: str  # the section's id on the page
    title: str
    render: Callable[[str, RunView], Markup]  # (base, view) -> the section's content


def timeline_panel(base: str, view: RunView) -> Markup:
    t = view.timeline
    ticks = join(
        h('<span class="tick" style="left:{}%">{}</span>', f"{p:.3f}", label)
        for p, label in t.ticks()
    )
    rows = join(_track(t, bar, view) for bar in t.bars)
    hint = "" if view.selected else "Click a bar to see its input, output or error."
    details = join(_details(base, bar, view) for bar in t.bars)
    first, last = t.shown
    return h(
        '<div class="timeline"{}><p class="zoom">{}</p><div class="axis"'
        ' title="drag to zoom in">{}<div class="selection" hidden></div></div>'
        '<ol class="tracks">{}</ol></div>'
        '<div id="details" class="details"><p class="hint">{}</p>{}</div>',
        attrs(data_first=f"{first:.6f}", data_last=f"{last:.6f}"),
        _zoom_note(t),
        ticks,
        rows,
        hint,
        details,
    )


def _zoom_note(t: Timeline) -> Markup:
    if t.window is None:
        return Markup("Drag along the axis to zoom in.")
    first, last = t.window
    return h(
        'Showing {} to {} of {}. <a class="zoom-out" href="?">Show the whole run</a>',
        _offset(first),
        _offset(last),
        span_text(t.length),
    )


def _track(t: Timeline, bar: Bar, view: RunView) -> Markup:
    end = bar.end or view.now
    if t.outside(bar.start, end):
        return Markup("")  # zoomed away from it
    left = t.offset(bar.start)
    width = max(0.4, t.offset(end) - left)
    label = bar.label if bar.attempt is None else f"{bar.label} #{bar.attempt}"
    link = attrs(href=f"?item={bar.item_id}#details", data_item=bar.item_id)
    selected = " selected" if bar.item_id == view.selected else ""
    return h(
        '<li class="track k-{}{}" data-kind="{}" data-state="{}"><a class="label"{}>{}</a>'
        '<div class="lane"><a class="bar s-{}"{} style="left:{}%;width:{}%" title="{}"></a>'
        '</div><span class="took">{}</span></li>',
        bar.kind,
        selected,
        bar.kind,
        bar.state,
        link,
        label,
        bar.state,
        link,
        f"{left:.3f}",
        f"{width:.3f}",
        f"{label}: {bar.state}",
        span_text((end - bar.start).total_seconds()) + ("" if bar.end else "…"),
    )


def _offset(seconds: float) -> str:
    return "0" if seconds <= 0 else "+" + span_text(seconds)


def _details(base: str, bar: Bar, view: RunView) -> Markup:
    facts: list[tuple[str, Markup]] = [
        ("kind", esc(bar.kind)),
        ("state", badge(bar.state)),
        ("started", moment(bar.start, view.now)),
        ("ended", moment(bar.end, view.now)),
    ]
    if bar.correlation_id:
        facts.insert(0, ("id", esc(bar.correlation_id)))
    if bar.attempt is not None:
        facts.append(("attempt", esc(bar.attempt)))
    facts.extend((name, esc(value)) for name, value in bar.facts)
    rows = join(h("<dt>{}</dt><dd>{}</dd>", name, value) for name, value in facts)
    payloads = join(payload(p.label, p.data) for p in bar.payloads)
    if not bar.payloads:
        payloads = Markup('<p class="none">nothing recorded yet</p>')
    return h(
        '<section class="item"{}><h3>{}</h3><dl>{}</dl>{}{}</section>',
        attrs(data_item_detail=bar.item_id, hidden=bar.item_id != view.selected),
        bar.label,
        rows,
        payloads,
        _fork_button(base, bar, view),
    )


def _fork_button(base: str, bar: Bar, view: RunView) -> Markup:
    """A step's "re-run from here": a fork reusing the steps the code called before it."""
    if bar.kind != "step" or bar.correlation_id is None:
        return Markup("")
    order = [e.correlation_id for e in view.events if e.type is EventType.STEP_CREATED]
    if bar.correlation_id not in order:
        return Markup("")
    before = order.index(bar.correlation_id)
    url = f"{base}/api/runs/{view.run.run_id}/fork?from_step={before}"
    question = f"Start a new run reusing the {before} step(s) before this one?"
    return h('<div class="actions">{}</div>', button("Re-run from here", "rerun", url, question))


def hooks_panel(base: str, view: RunView) -> Markup:
    if not view.hooks:
        return Markup('<p class="none">no active hooks</p>')
    items = []
    for hook in view.hooks:
        meta = shown(hook.metadata)
        head = h(
            '<dl><dt>token</dt><dd class="token">{}</dd><dt>kind</dt><dd>{}</dd>'
            "<dt>created</dt><dd>{}</dd><dt>metadata</dt><dd><code>{}</code></dd></dl>",
            hook.token,
            "webhook" if hook.is_webhook else "hook",
            moment(hook.created_at, view.now),
            one_line(meta, 120),
        )
        if hook.is_webhook:
            form = Markup('<p class="none">a webhook: send an HTTP request to its URL</p>')
        else:
            form = h(
                '<form class="resume"{}><label>Payload (JSON)<textarea name="payload"'
                ' rows="3" spellcheck="false"{}>{}</textarea></label>'
                '<button type="submit">Resume hook</button></form>',
                attrs(data_url=f"{base}/api/hooks/resume", data_token=hook.token),
                attrs(id=f"payload-{hook.hook_id}"),
                "{}",
            )
        items.append(h('<li class="hook" data-token="{}">{}{}</li>', hook.token, head, form))
    return h('<ul class="hooks">{}</ul>', join(items))


def events_panel(base: str, view: RunView) -> Markup:
    origin = origin_of(view.run, view.events)
    rows = []
    for e in view.events:
        data = shown(e.payload)
        cell = Markup("")
        if e.payload is not None:
            cell = h(
                "<details><summary>{}</summary><pre>{}</pre></details>",
                one_line(data, 60),
                pretty(data),
            )
        rows.append(
            h(
                '<tr data-type="{}"><td>{}</td><td title="{}">{}</td><td>{}</td><td>{}</td>'
                "<td><code>{}</code></td><td>{}</td></tr>",
                str(e.type),
                e.seq,
                iso(e.created_at),
                _at(origin, e.created_at),
                str(e.type),
                e.correlation_id or "",
                one_line(attrs_json(e.attrs), 60) if e.attrs else "",
                cell,
            )
        )
    return h(
        '<table class="events"><thead><tr><th>Seq</th><th>At</th><th>Type</th>'
        "<th>Correlation id</th><th>Attrs</th><th>Payload</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        join(rows),
    )


def streams_panel(base: str, view: RunView) -> Markup:
    if not view.streams:
        return Markup('<p class="none">nothing written to a stream</p>')
    items = []
    for stream in view.streams:
        info = stream.info
        shown_count = len(stream.tail)
        note = (
            f"the last {shown_count} of {info.length} chunks"
            if shown_count < info.length
            else f"{info.length} chunks"
        )
        chunks = join(
            h('<li value="{}"><code>{}</code></li>', index, _chunk_text(value))
            for index, value in stream.tail
        )
        items.append(
            h(
                '<li class="stream" data-namespace="{}"><h3>{} {}</h3><p class="note">{}</p>'
                '<ol class="chunks" start="{}">{}</ol></li>',
                info.name,
                info.name or "default",
                badge("closed" if info.closed else "open"),
                note,
                stream.tail[0][0] if stream.tail else 0,
                chunks,
            )
        )
    return h('<ul class="streams">{}</ul>', join(items))


def _chunk_text(value: object) -> str:
    return value if isinstance(value, str) else one_line(value, 200)


def _at(origin: datetime, moment_: datetime) -> str:
    return _offset((moment_ - origin).total_seconds())


RUN_PANELS: tuple[Panel, ...] = (
    Panel("timeline", "Timeline", timeline_panel),
    Panel("hooks", "Hooks", hooks_panel),
    Panel("streams", "Streams", streams_panel),
    Panel("events", "Event log", events_panel),
)
