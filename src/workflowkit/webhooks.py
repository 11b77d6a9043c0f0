"""The HTTP messages of webhooks: the ``Request`` a webhook receives, the ``Response`` it sends.

``Response`` is also what ``fetch`` returns and what the webhook apps and the dashboard
answer with: one response type throughout (see ``workflowkit._http``). Both are recorded in
event logs under their class ids (``workflowkit.webhooks:Request``), so they stay in this
module. Webhooks themselves (``create_webhook``) are in ``workflowkit.hooks``.
"""

from __future__ import annotations

import json as jsonlib
import warnings
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import serde
from .context import current_step
from .errors import NotInWorkflowError, WebhookInvalidRespondWithError

Headers = tuple[tuple[str, str], ...]


def _header(headers: Headers, name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


@dataclass(frozen=True)
class Request:
    """An HTTP request as a webhook received it (serializable, so it can cross to steps)."""

    method: str
    url: str
    headers: Headers = ()
    body: bytes = b""
    reply_to: str | None = None  # set for webhooks created with respond_with="manual"

    def header(self, name: str) -> str | None:
        """The first value of a header, matched case-insensitively."""
        return _header(self.headers, name)

    async def respond_with(self, response: Response) -> None:
        """Send the HTTP response of a manual webhook. Call it from a step, once."""
        step = current_step()
        if step is None or step.world is None:
            raise NotInWorkflowError(
                "request.respond_with() must be called in a step: pass the request to a @step"
            )
        if self.reply_to is None:
            raise WebhookInvalidRespondWithError(
                "this request's webhook was not created with respond_with='manual'"
            )
        if not isinstance(response, Response):
            raise WebhookInvalidRespondWithError(
                f"respond_with() takes a workflowkit.Response, not {type(response).__name__}"
            )
        stored = await step.world.put_webhook_response(self.reply_to, serde.encode(response))
        if not stored:
            raise WebhookInvalidRespondWithError("a response was already sent for this request")

    @property
    def query(self) -> dict[str, str]:
        """Query parameters (the last value of a repeated one)."""
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.url).query).items()}

    @property
    def text(self) -> _Text:
        """The body decoded as UTF-8: a property, as ``Response.text`` (and httpx's)."""
        return _Text(self.body.decode("utf-8", errors="replace"))

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` if it is not JSON."""
        return jsonlib.loads(self.body)

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body (the last value of repeated fields)."""
        return {k: v[-1] for k, v in parse_qs(self.text, keep_blank_values=True).items()}


class _Text(str):
    """``Request.text``: a ``str``, still callable as the method it used to be."""

    __slots__ = ()

    def __call__(self) -> str:
        warnings.warn(
            "Request.text is a property now, like Response.text: write request.text "
            "instead of request.text()",
            DeprecationWarning,
            stacklevel=2,
        )
        return str(self)


@dataclass(frozen=True)
class Response:
    """An HTTP response: what a webhook sends its caller, and what ``fetch`` returns."""

    status: int = 200
    headers: Headers = ()
    body: bytes = b""
    url: str = ""

    @classmethod
    def json_body(cls, data: Any, status: int = 200, headers: Headers = ()) -> Response:
        body = jsonlib.dumps(data).encode()
        return cls(status, (("content-type", "application/json"), *headers), body)

    @classmethod
    def text_body(cls, text: str, status: int = 200, headers: Headers = ()) -> Response:
        return cls(status, (("content-type", "text/plain; charset=utf-8"), *headers), text.encode())

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` if it is not JSON."""
        return jsonlib.loads(self.body)

    @property
    def ok(self) -> bool:
        """A 2xx status, as the web's ``Response.ok`` (a redirect is not ``ok``)."""
        return 200 <= self.status < 300


ACCEPTED = Response(202)


# ``request.text`` is often returned or passed on as it is: it stays a str when stored.
serde.register_tag("text", _Text, encode=str, decode=_Text)
