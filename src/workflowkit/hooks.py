"""Hooks and webhooks: workflow code waits for payloads that the outside world sends in.

``create_hook()`` in a workflow makes a hook with a token; ``workflowkit.api.resume_hook``
(anywhere else) delivers a payload to it. ``create_webhook()`` makes a hook whose payloads
are ``Request`` objects, reachable at
``{WORKFLOWKIT_BASE_URL}/.well-known/workflow/v1/webhook/{token}`` once
``workflowkit.asgi.app`` (or ``workflowkit.wsgi.app``) is served; its caller gets
``202 Accepted``, the static ``Response`` it was created with, or a step's response. Every
payload is recorded in the event log before the run is woken, so a hook survives restarts
like everything else.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, cast

from .api import HookInfo, resume_hook
from .context import current_executor
from .errors import (
    HookDisposedError,
    HookTokenError,
    NotInWorkflowError,
    WebhookInvalidRespondWithError,
)
from .runtime.executor import Op, RunExecutor
from .urls import webhook_url
from .webhooks import Request, Response

T = TypeVar("T")


class Hook(Generic[T]):
    """A hook in workflow code: ``await hook`` for the next payload, ``async for`` for each.

    Payloads that arrive before anyone awaits are kept, in order. ``dispose()`` (or leaving a
    ``with hook:`` block) releases the token; the run ending releases it too.
    """

    def __init__(self, executor: RunExecutor, op: Op) -> None:
        self._executor = executor
        self._op = op

    @property
    def token(self) -> str:
        assert self._op.hook is not None
        return self._op.hook.token

    @property
    def hook_id(self) -> str:
        return self._op.correlation_id

    def __repr__(self) -> str:
        return f"<Hook {self.token!r}>"

    def __await__(self) -> Generator[Any, None, T]:
        result = yield from self._executor.next_payload(self._op).__await__()
        return cast(T, result)

    def __aiter__(self) -> Hook[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self
        except HookDisposedError:
            raise StopAsyncIteration from None

    def dispose(self) -> None:
        """Stop receiving payloads and release the token for other runs."""
        self._executor.dispose_hook(self._op)

    def __enter__(self) -> Hook[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()

    async def __aenter__(self) -> Hook[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.dispose()


def create_hook(token: str | None = None, metadata: Any = None) -> Hook[Any]:
    """Create a hook in workflow code.

    ``token`` defaults to an unguessable random one (recorded, so replays see the same).
    A token is reserved while its hook is active: a second active hook with the same token
    gets ``HookConflictError`` when awaited. ``metadata`` is any serializable value, shown
    by ``get_hook_by_token``. An empty or non-str token raises ``HookTokenError``.
    """
    executor = current_executor()
    if not isinstance(executor, RunExecutor):
        raise NotInWorkflowError(
            "create_hook() works only in workflow code; resume hooks from elsewhere with "
            "workflowkit.api.resume_hook"
        )
    _check_token("create_hook", token)
    return Hook(executor, executor.create_hook(token, metadata))


def _check_token(call: str, token: object) -> None:
    if token is not None and (not isinstance(token, str) or not token.strip()):
        # An empty token would silently get a random one, which nobody could resume by.
        raise HookTokenError(
            f"{call}(token={token!r}): a token must be a non-empty str; leave token "
            "out for a random one (hook.token tells it)"
        )


class Webhook(Hook[Request]):
    """A hook resumed over HTTP; ``await webhook`` yields the next ``Request``."""

    @property
    def url(self) -> str:
        return webhook_url(self.token)


def create_webhook(
    respond_with: Response | Literal["manual"] | None = None, *, token: str | None = None
) -> Webhook:
    """Create a webhook in workflow code.

    Every request gets ``202 Accepted`` with an empty body, or the ``Response`` given as
    ``respond_with``. With ``respond_with="manual"`` the caller waits until a step calls
    ``await request.respond_with(Response(...))``.

    ``token`` defaults to an unguessable random one, the webhook URL's only secret. A chosen
    token (``f"github:{repo}"``, for a sender configured once for every run) is as easy to
    guess as the name: check each request's signature in a step. It is reserved while the
    webhook is active, as a hook's is (``HookConflictError``).
    """
    executor = current_executor()
    if not isinstance(executor, RunExecutor):
        raise NotInWorkflowError("create_webhook() works only in workflow code")
    _check_token("create_webhook", token)
    if (
        respond_with is not None
        and respond_with != "manual"
        and not isinstance(respond_with, Response)
    ):
        raise WebhookInvalidRespondWithError(
            "respond_with must be a workflowkit.Response, 'manual', or None (202 Accepted), "
            f"not {respond_with!r}"
        )
    op = executor.create_hook(token, respond_with, webhook=True)
    return Webhook(executor, op)


class HookDefinition(Generic[T]):
    """A hook whose payloads are validated (and converted) by a pydantic-compatible schema;
    with no schema, a typed name for a hook whose payloads pass as they are."""

    def __init__(self, schema: type[T] | Any = None) -> None:
        self.schema = schema
        self._adapter: Any = None
        if schema is None:
            return
        try:
            from pydantic import TypeAdapter
        except ImportError as exc:  # pragma: no cover - pydantic is an optional dependency
            raise ImportError(
                "define_hook(schema=...) needs pydantic: pip install 'workflowkit[pydantic]'"
            ) from exc
        self._adapter = TypeAdapter(schema)

    def create(self, token: str | None = None, metadata: Any = None) -> Hook[T]:
        return cast(Hook[T], create_hook(token, metadata))

    def validate(self, payload: Any) -> T:
        """The payload as the schema makes it; pydantic's ``ValidationError`` if it does not fit."""
        if self._adapter is None:
            return cast(T, payload)
        return cast(T, self._adapter.validate_python(payload))

    async def resume(self, token: str, payload: Any) -> HookInfo:
        """Validate, then deliver: nothing is written for a payload that does not fit.

        As ``workflowkit.api.resume_hook``: ``WebhookTokenError`` for a webhook's token.
        """
        return await resume_hook(token, self.validate(payload))


def define_hook(schema: type[T] | Any = None) -> HookDefinition[T]:
    """A typed hook: ``approval = define_hook(schema=Approval)``; ``approval.create(token=...)``
    in the workflow and ``await approval.resume(token, payload)`` outside. Without a schema
    payloads are not checked (``define_hook()``: a shared name for both sides)."""
    return HookDefinition(schema)
