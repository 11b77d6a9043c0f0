"""``WorkflowChatTransport``: a Python client for a workflow-backed chat endpoint.

The counterpart of the reference's ``WorkflowChatTransport`` (``@workflow/ai``), for Python
programs rather than a browser: a command-line chat, a test, a service calling another. It
posts messages to ``{api}`` (``/api/chat``), reads the reply as Server-Sent Events of UI
message chunks, and learns the run from the ``x-workflow-run-id`` header. A reply that stops
before its ``finish`` chunk (a dropped connection, a proxy's or a function's timeout) is
picked up with ``GET {api}/{run_id}/stream?start_index=N`` from the next chunk, so every
chunk is yielded once, in order.

Event ids are chunk indexes (``workflowkit.http_streams``), and they drive the position:
an index below the next one was yielded already and is skipped, a higher one is taken as
it is (chunks of a failed step attempt are hidden, so indexes may skip). Events without an
id are counted, for servers that do not number them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from ..errors import ChatTransportError, MissingExtraError

try:
    import httpx
except ImportError:  # httpx comes with the ``http`` extra, not with ``ai``
    raise MissingExtraError("workflowkit.ai.WorkflowChatTransport", "http", "httpx") from None

__all__ = [
    "RUN_ID_HEADER",
    "ReconnectToStreamRequest",
    "SendMessagesRequest",
    "WorkflowChatTransport",
]

log = logging.getLogger("workflowkit.ai")

Chunk = dict[str, Any]
Message = Mapping[str, Any]

RUN_ID_HEADER = "x-workflow-run-id"
EVENT_STREAM = "text/event-stream"
# The server sends a heartbeat every 15 s of silence (http_streams.HEARTBEAT): 45 s without
# a byte means the connection is dead, and the read fails so that the stream is resumed.
DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=45.0)
# Between attempts that brought nothing: short, since the usual cause (a proxy cutting long
# responses) is already over, yet growing so that a server that is down is not hammered.
RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 2.0
# Statuses worth another attempt at reading the stream; any other refusal is final.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class SendMessagesRequest:
    """What ``send_messages`` is about to POST; ``prepare_send_messages_request`` may return
    a changed copy (``dataclasses.replace``): another ``url``, ``headers`` or ``body``."""

    url: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    messages: Sequence[Message]
    chat_id: str | None
    run_id: str | None  # the run a follow-up continues; None for a new chat


@dataclass(frozen=True)
class ReconnectToStreamRequest:
    """Where a reply is read again from; ``prepare_reconnect_to_stream_request`` may return
    a changed copy (``url``, ``headers``). Each attempt adds ``?start_index=`` to ``url``."""

    url: str
    headers: Mapping[str, str]
    chat_id: str | None
    run_id: str
    start_index: int  # where the first attempt starts


_Request = TypeVar("_Request", SendMessagesRequest, ReconnectToStreamRequest)
Prepare = Callable[[_Request], _Request | Awaitable[_Request | None] | None]
OnChatSendMessage = Callable[[httpx.Response, Sequence[Message]], Awaitable[None] | None]
OnChatEnd = Callable[[str, int], Awaitable[None] | None]


@dataclass
class _Cursor:
    """Where a reply stands: the next chunk index, and whether it finished or the stream
    itself ended (it will never finish then)."""

    next_index: int
    finished: bool = False
    ended: bool = False


@dataclass(frozen=True)
class _Event:
    id: str | None
    event: str
    data: str


class _Retry(Exception):
    """An attempt at reading the stream that another attempt may fix (a 5xx, a 429)."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(f"answered {status_code}: {detail}")
        self.status_code = status_code


class WorkflowChatTransport:
    """Sends chat messages to a workflow-backed endpoint and yields the reply's chunks.

    ``base_url`` + ``api`` is the chat endpoint (default ``/api/chat``); ``headers`` go with
    every request. ``client`` is an ``httpx.AsyncClient`` to use (the caller closes it);
    without one the transport owns a client and closes it on ``aclose()`` or at the end of
    ``async with``. See ``send_messages`` and ``reconnect_to_stream`` for the hooks and
    callbacks, and ``docs/ai.md``.
    """

    def __init__(
        self,
        base_url: str = "",
        *,
        api: str = "/api/chat",
        headers: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        prepare_send_messages_request: Prepare[SendMessagesRequest] | None = None,
        prepare_reconnect_to_stream_request: Prepare[ReconnectToStreamRequest] | None = None,
        on_chat_send_message: OnChatSendMessage | None = None,
        on_chat_end: OnChatEnd | None = None,
        max_consecutive_errors: int = 3,
    ) -> None:
        if max_consecutive_errors < 1:
            raise ValueError(
                f"max_consecutive_errors must be 1 or more, not {max_consecutive_errors}"
            )
        self.api_url = _join(base_url, api)
        if not _absolute(self.api_url) and (client is None or not str(client.base_url)):
            raise ValueError(f"api {api!r} is relative: give a base_url, or a client with one")
        self.headers: Mapping[str, str] = dict(headers or {})
        self.max_consecutive_errors = max_consecutive_errors
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self._prepare_send = prepare_send_messages_request
        self._prepare_reconnect = prepare_reconnect_to_stream_request
        self._on_send = on_chat_send_message
        self._on_end = on_chat_end
        # Per run, the index after the last chunk yielded: where a follow-up's reply starts.
        self._positions: dict[str, int] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client requests go through (for other calls to the same service)."""
        return self._client

    async def aclose(self) -> None:
        """Close the client if the transport created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> WorkflowChatTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- sending -----------------------------------------------------------------------------

    async def send_messages(
        self,
        messages: Sequence[Message],
        *,
        run_id: str | None = None,
        chat_id: str | None = None,
        body: Mapping[str, Any] | None = None,
        start_index: int | None = None,
    ) -> AsyncIterator[Chunk]:
        """POST ``messages`` and yield the reply's chunks, through its ``finish`` chunk.

        Without ``run_id`` this starts a chat: POST ``{api}`` with ``{"messages": [...],
        **body}``. With ``run_id`` it continues that run: POST ``{api}/{run_id}``, and the
        reply is read from where this transport stopped reading the run (or from
        ``start_index``). The response must name the run in ``x-workflow-run-id``; if it
        is not an event stream (a follow-up answered ``{"ok": true}``), or stops before
        ``finish``, the reply is read with ``reconnect_to_stream``.

        ``prepare_send_messages_request(request)`` may change the request first;
        ``on_chat_send_message(response, messages)`` runs once the response's headers are
        in; ``on_chat_end(chat_id or run_id, chunk_index)`` once ``finish`` was yielded.
        Raises ``ChatTransportError`` if the endpoint refuses or the reply cannot be read.
        """
        if start_index is not None:
            _check_index(start_index)
        elif run_id is not None and run_id not in self._positions:
            raise ValueError(
                f"where the reply starts in the stream of run {run_id} is unknown to this "
                "transport: pass start_index= (the chunk_index on_chat_end was given)"
            )
        initial = self._send_request(messages, run_id, chat_id, body)
        request = await _prepared(self._prepare_send, initial)
        cursor = _Cursor(0)
        started = ""
        try:
            async with self._client.stream(
                "POST", request.url, headers=dict(request.headers), json=dict(request.body)
            ) as response:
                started = await self._accept(response, request)
                cursor.next_index = self._reply_start(started, run_id, start_index)
                if _is_event_stream(response):
                    async for chunk in self._read_once(response, started, cursor):
                        yield chunk
        except httpx.TransportError as exc:
            # Reading the body does not get here (an interruption is resumed below): the
            # request itself failed, and whether the message arrived is unknown.
            raise ChatTransportError(
                f"POST {request.url} failed: {_describe(exc)}", run_id=started or run_id
            ) from exc
        async for chunk in self._finish(started, chat_id, cursor):
            yield chunk

    def _send_request(
        self,
        messages: Sequence[Message],
        run_id: str | None,
        chat_id: str | None,
        body: Mapping[str, Any] | None,
    ) -> SendMessagesRequest:
        url = self.api_url if run_id is None else f"{self.api_url}/{quote(run_id, safe='')}"
        payload = {"messages": list(messages), **(body or {})}
        return SendMessagesRequest(url, self._headers(), payload, messages, chat_id, run_id)

    async def _accept(self, response: httpx.Response, request: SendMessagesRequest) -> str:
        """The run the response names, once it is known to be a success."""
        if response.is_error:
            detail = (await response.aread()).decode("utf-8", "replace")[:500]
            raise ChatTransportError(
                f"POST {request.url} answered {response.status_code}: {detail}",
                run_id=request.run_id,
                status_code=response.status_code,
            )
        started = response.headers.get(RUN_ID_HEADER) or request.run_id
        if not started:
            raise ChatTransportError(
                f"POST {request.url} did not name its run in the {RUN_ID_HEADER!r} header"
            )
        await _call(self._on_send, response, request.messages)
        return started

    def _reply_start(self, started: str, run_id: str | None, start_index: int | None) -> int:
        if start_index is not None:
            return start_index
        if started == run_id:  # a follow-up: its reply comes after what was read
            return self._positions[run_id]
        return 0  # a new run

    # -- reading -----------------------------------------------------------------------------

    async def reconnect_to_stream(
        self, run_id: str, *, start_index: int = 0, chat_id: str | None = None
    ) -> AsyncIterator[Chunk]:
        """Yield the chunks of run ``run_id``'s stream from ``start_index`` through the next
        ``finish`` chunk: GET ``{api}/{run_id}/stream?start_index=N``.

        A response that stops before ``finish`` is followed by another from the next chunk;
        after ``max_consecutive_errors`` attempts in a row that brought no chunk, or at
        once for a refusal other than a 5xx, 408 or 429, it raises ``ChatTransportError``
        (its ``next_index`` says where to try again). ``prepare_reconnect_to_stream_request``
        may change the URL and headers first; ``on_chat_end`` runs as for ``send_messages``.
        """
        _check_index(start_index)
        async for chunk in self._finish(run_id, chat_id, _Cursor(start_index)):
            yield chunk

    async def _finish(
        self, run_id: str, chat_id: str | None, cursor: _Cursor
    ) -> AsyncIterator[Chunk]:
        """Read the rest of the reply if it did not finish yet, then report its end."""
        if not cursor.finished:
            async for chunk in self._resume(run_id, chat_id, cursor):
                yield chunk
        await _call(self._on_end, chat_id or run_id, cursor.next_index)

    async def _resume(
        self, run_id: str, chat_id: str | None, cursor: _Cursor
    ) -> AsyncIterator[Chunk]:
        url = f"{self.api_url}/{quote(run_id, safe='')}/stream"
        initial = ReconnectToStreamRequest(url, self._headers(), chat_id, run_id, cursor.next_index)
        request = await _prepared(self._prepare_reconnect, initial)
        failures = 0
        while True:
            before = cursor.next_index
            error: Exception | None = None
            try:
                async for chunk in self._attempt(request, cursor):
                    yield chunk
            except (httpx.TransportError, _Retry) as exc:
                error = exc
            if cursor.finished:
                return
            if cursor.ended:
                raise self._error(
                    f"the stream of run {run_id} ended without a finish chunk", run_id, cursor
                )
            failures = 0 if cursor.next_index > before else failures + 1
            if failures >= self.max_consecutive_errors:
                reason = _describe(error) if error is not None else "the response ended early"
                raise self._error(
                    f"could not read the stream of run {run_id} after {failures} attempts "
                    f"in a row: {reason}",
                    run_id,
                    cursor,
                    getattr(error, "status_code", None),
                ) from error
            log.info(
                "chat stream of run %s interrupted at chunk %s; resuming", run_id, cursor.next_index
            )
            await asyncio.sleep(
                min(RETRY_DELAY * 2 ** (failures - 1), MAX_RETRY_DELAY) if failures else 0
            )

    async def _attempt(
        self, request: ReconnectToStreamRequest, cursor: _Cursor
    ) -> AsyncIterator[Chunk]:
        params = {"start_index": cursor.next_index}
        async with self._client.stream(
            "GET", request.url, headers=dict(request.headers), params=params
        ) as response:
            if response.status_code in RETRYABLE_STATUSES:
                raise _Retry(
                    response.status_code, (await response.aread()).decode("utf-8", "replace")[:500]
                )
            if response.is_error:
                detail = (await response.aread()).decode("utf-8", "replace")[:500]
                raise self._error(
                    f"GET {request.url} answered {response.status_code}: {detail}",
                    request.run_id,
                    cursor,
                    response.status_code,
                )
            async for chunk in self._read(response, request.run_id, cursor):
                yield chunk

    async def _read_once(
        self, response: httpx.Response, run_id: str, cursor: _Cursor
    ) -> AsyncIterator[Chunk]:
        """``_read``, where an interruption only means the rest is read another way."""
        try:
            async for chunk in self._read(response, run_id, cursor):
                yield chunk
        except httpx.TransportError as exc:
            log.info("chat reply of run %s interrupted: %s", run_id, _describe(exc))

    async def _read(
        self, response: httpx.Response, run_id: str, cursor: _Cursor
    ) -> AsyncIterator[Chunk]:
        """The chunks of one response, from the cursor on, up to ``finish``."""
        async for event in _events(response.aiter_lines()):
            if event.event == "end":  # the stream itself is over (http_streams)
                cursor.ended = True
                return
            if event.event != "message" or event.data == "[DONE]":  # the AI SDK's terminator
                continue
            index = _index(event, cursor, run_id)
            if index < cursor.next_index:
                continue  # yielded already, by an earlier response
            chunk = _decode(event, index, run_id)
            cursor.next_index = index + 1
            cursor.finished = chunk.get("type") == "finish"
            self._positions[run_id] = cursor.next_index
            yield chunk
            if cursor.finished:
                return  # a chat session's stream goes on with the next turn: stop here

    # -- helpers -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = httpx.Headers(self.headers)
        headers.setdefault("accept", EVENT_STREAM)
        return dict(headers.items())

    @staticmethod
    def _error(
        message: str, run_id: str, cursor: _Cursor, status_code: int | None = None
    ) -> ChatTransportError:
        return ChatTransportError(
            message, run_id=run_id, status_code=status_code, next_index=cursor.next_index
        )


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[_Event]:
    """Server-Sent Events from a body's lines; an event cut off before its blank line (a
    dropped connection) is never dispatched."""
    event_id: str | None = None
    kind = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield _Event(event_id, kind or "message", "\n".join(data))
            event_id, kind, data = None, "", []
        elif not line.startswith(":"):  # ":" starts a comment: the server's heartbeat
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id":
                event_id = value


def _index(event: _Event, cursor: _Cursor, run_id: str) -> int:
    if event.id is None:
        return cursor.next_index
    try:
        return int(event.id)
    except ValueError:
        raise ChatTransportError(
            f"the stream of run {run_id} sent the event id {event.id!r}, not a chunk index",
            run_id=run_id,
            next_index=cursor.next_index,
        ) from None


def _decode(event: _Event, index: int, run_id: str) -> Chunk:
    try:
        chunk = json.loads(event.data)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        raise ChatTransportError(
            f"chunk {index} of run {run_id} is not a UI message chunk (a JSON object): "
            f"{event.data[:200]!r}",
            run_id=run_id,
            next_index=index,
        )
    return chunk


async def _prepared(prepare: Prepare[_Request] | None, request: _Request) -> _Request:
    if prepare is None:
        return request
    changed = prepare(request)
    if inspect.isawaitable(changed):
        changed = await changed
    return request if changed is None else changed


async def _call(callback: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
    if callback is not None:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result


def _join(base_url: str, api: str) -> str:
    if _absolute(api) or not base_url:
        return api
    return f"{base_url.rstrip('/')}/{api.lstrip('/')}"


def _absolute(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith(EVENT_STREAM)


def _check_index(start_index: int) -> None:
    if start_index < 0:
        raise ValueError(f"start_index must be 0 or more, not {start_index}")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
