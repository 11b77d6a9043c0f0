"""Hearing other processes' changes: LISTEN/NOTIFY, the fallback poll, and the database clock.

Local listeners are told right after a commit (``Database.transaction``); other processes
learn through ``NOTIFY`` sent inside the committing transaction (delivered only if it
commits) on a channel named after the schema. A dedicated LISTEN connection forwards other
processes' notifications; when it is lost it reconnects with backoff and then polls the
runs and streams touched meanwhile, so a gap loses no wake-up. Its heartbeat also measures
how far the local clock is off the database's, which is the clock every worker uses.

Another writer's append (a hook payload, a wake-up) tells its events too, when they are
small: the worker holding the run delivers them without reading its log (one round trip and
two thread hops less between a payload and the step it starts).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg.conninfo import conninfo_to_dict

from ...errors import CorruptDataError
from .._listeners import Listeners
from .._rows import dump_attrs, load_attrs, run_status
from ..records import Event, EventType, RunChange, RunStatus, StreamChange
from . import _streams
from ._transactions import Conn

log = logging.getLogger("workflowkit.postgres")


class Clock:
    """The database clock, estimated locally (within half a round trip)."""

    def __init__(self) -> None:
        self.offset = 0.0  # database clock minus local clock

    def now(self) -> float:
        return time.time() + self.offset

    async def read(self, conn: Conn) -> datetime:
        """The database's time now; also notes how far the local clock is off from it."""
        before = time.time()
        cur = await conn.execute("SELECT clock_timestamp()")
        row = await cur.fetchone()
        after = time.time()
        assert row is not None
        db_now: datetime = row[0].astimezone(UTC)
        self.offset = db_now.timestamp() - (before + after) / 2
        return db_now


class Feed:
    def __init__(
        self,
        conninfo: str,
        connect_kwargs: dict[str, Any],
        channel: str,
        listeners: Listeners,
        clock: Clock,
        heartbeat: float,
    ) -> None:
        self.channel = channel
        self._conninfo = conninfo
        self._connect_kwargs = connect_kwargs
        if "application_name" not in conninfo_to_dict(conninfo):
            # Shows whose LISTEN connection it is in pg_stat_activity.
            self._connect_kwargs = {"application_name": channel, **connect_kwargs}
        self._listeners = listeners
        self._clock = clock
        self._heartbeat = heartbeat
        self._instance = uuid.uuid4().hex  # to skip our own notifications
        self._task: asyncio.Task[None] | None = None
        self._seen: datetime | None = None
        self._closed = False
        self._heard: list[RunChange] = []  # not yet told (``_tell``)

    # -- telling ------------------------------------------------------------------------------

    def payload(self, change: RunChange) -> str:
        flags = "q" if change.steps_queued else _told_events(change.events)
        fields = (self._instance, change.run_id, str(change.last_seq), change.status)
        return "|".join((*fields, change.writer or "", flags))

    def stream_payload(self, change: StreamChange) -> str:
        # The name goes last: it may contain the separator.
        closed = "1" if change.closed else "0"
        fields = (self._instance, "stream", change.run_id, str(change.length), closed, change.name)
        return "|".join(fields)

    async def send(self, conn: Conn, changes: Sequence[RunChange]) -> None:
        """NOTIFY other processes of ``changes``, inside the transaction that makes them."""
        if changes:
            await conn.execute(
                "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload",
                (self.channel, [self.payload(c) for c in changes]),
            )

    async def send_stream(self, conn: Conn, change: StreamChange) -> None:
        await conn.execute("SELECT pg_notify(%s, %s)", (self.channel, self.stream_payload(change)))

    # -- hearing ------------------------------------------------------------------------------

    def start(self) -> None:
        """Listen from now on (on the World's loop); idempotent."""
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    def _on_notify(self, payload: str) -> None:
        if payload.startswith(self._instance):
            return  # ours: local listeners heard it straight after the commit
        parts = payload.split("|", 5)
        try:
            if len(parts) == 6 and parts[1] == "stream":
                stream = StreamChange(parts[2], parts[5], int(parts[3]), parts[4] == "1")
                self._listeners.streams.notify([stream])
                return
            parts = payload.split("|")
            if len(parts) != 6:
                return
            writer, queued = parts[4] or None, parts[5] == "q"
            change = RunChange(parts[1], int(parts[2]), RunStatus(parts[3]), writer, queued)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload)
            return
        try:
            if parts[5].startswith("e"):
                events = _events_told(change.run_id, change.last_seq, parts[5])
                change = dataclasses.replace(change, events=events)
        except (ValueError, TypeError, CorruptDataError):
            # The change still counts: whoever holds the run reads its log instead.
            log.warning("ignoring the events of notification %r", payload[:200])
        self._heard.append(change)
        if len(self._heard) == 1:
            asyncio.get_running_loop().call_soon(self._tell)

    def _tell(self) -> None:
        """Tell listeners every run change heard since the last time, in one call: a burst
        of notifications read at once (every worker hears each run another one creates or
        ends) costs each listener one call, and a worker one wake-up of its loop, not one
        per notification."""
        changes, self._heard = self._heard, []
        self._listeners.runs.notify(changes)

    async def _listen_forever(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                conn = await AsyncConnection.connect(self._conninfo, **self._connect_kwargs)
            except Exception as exc:
                log.warning("PostgreSQL World: cannot LISTEN (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                since = self._seen
                self._seen = await self._clock.read(conn)
                if since is not None:
                    await self._catch_up(conn, since)
                delay = 0.1
                while not self._closed:
                    async for note in conn.notifies(timeout=self._heartbeat):
                        self._on_notify(note.payload)
                    # A heartbeat: proves the connection alive, dates what we have seen.
                    self._seen = await self._clock.read(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._closed:
                    log.warning("PostgreSQL World: LISTEN connection lost (%s)", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _catch_up(self, conn: Conn, since: datetime) -> None:
        """The fallback poll: runs and streams touched while no LISTEN connection was open."""
        since -= timedelta(seconds=5)  # slack for commits dated by other clocks
        cur = await conn.execute(
            "SELECT r.run_id, (SELECT max(seq) FROM events e WHERE e.run_id = r.run_id), "
            "r.status FROM runs r WHERE r.updated_at >= %s",
            (since,),
        )
        rows = await cur.fetchall()
        self._listeners.runs.notify(
            [RunChange(r[0], int(r[1] or 0), run_status(r[2])) for r in rows]
        )
        self._listeners.streams.notify(await _streams.changed_since(conn, since))


# -- events told in a notification ------------------------------------------------------------

# A change's events travel in its notification's last field (after ``e``, urlsafe base64 of
# JSON: no ``|``, and a process that only knows the flag ``q`` reads it as "no steps
# queued", which it is) when they fit in this many characters; larger ones are read from
# the log. NOTIFY payloads stop at 8000 bytes, and every listening process receives each.
TOLD_LIMIT = 2000


def _told_events(events: Sequence[Event]) -> str:
    if not events or sum(len(e.payload or b"") for e in events) > TOLD_LIMIT:
        return ""  # nothing to tell, or surely too large: not worth encoding
    rows = [
        [
            e.seq,
            e.event_id,
            str(e.type),
            e.correlation_id,
            None if e.payload is None else base64.b64encode(e.payload).decode(),
            dump_attrs(e.attrs),
            e.created_at.isoformat(),
        ]
        for e in events
    ]
    text = json.dumps(rows, separators=(",", ":"))
    encoded = "e" + base64.urlsafe_b64encode(text.encode()).decode()
    return encoded if len(encoded) <= TOLD_LIMIT else ""


def _events_told(run_id: str, last_seq: int, field: str) -> tuple[Event, ...]:
    """The events a notification carries (its last field, ``e…``); none unless they run on
    up to ``last_seq``."""
    rows = json.loads(base64.urlsafe_b64decode(field[1:]))
    events = tuple(
        Event(
            run_id,
            int(seq),
            event_id,
            EventType(kind),
            correlation,
            None if payload is None else base64.b64decode(payload),
            load_attrs(attrs),
            datetime.fromisoformat(created).astimezone(UTC),
        )
        for seq, event_id, kind, correlation, payload, attrs, created in rows
    )
    seqs = [event.seq for event in events]
    if seqs != list(range(last_seq - len(events) + 1, last_seq + 1)):
        return ()
    return events
