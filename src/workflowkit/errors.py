"""Every public exception of workflowkit.

Each class carries a ``slug``: the anchor of its section on the errors page, so a message
can point the user at the cause and the fix (``exc.docs_url``, ``docs_url_for(cls)``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from ._error_docs import DOCS_BASE as DOCS_BASE
from ._error_docs import Documented
from ._error_docs import docs_url_for as docs_url_for
from ._error_docs import with_docs_link as with_docs_link


class WorkflowKitError(Documented, Exception):
    """Base class of the errors workflowkit raises itself: ``except WorkflowKitError``."""

    slug: ClassVar[str] = "workflowkit-error"


# The reference's name for the errors its runtime raises (``HookConflictError`` among them).
WorkflowRuntimeError = WorkflowKitError


# -- errors raised by user code to steer retries ------------------------------------------
class FatalError(Documented, Exception):
    """Raise from a step to fail it at once, without retrying.

    The workflow sees the ``FatalError`` at the ``await`` of the step; uncaught, it fails
    the run.
    """

    slug: ClassVar[str] = "fatal-error"


class RetryableError(Documented, Exception):
    """Raise from a step to retry it after ``retry_after``.

    ``retry_after`` is seconds (int/float), a duration string (``"1m"``, ``"30 seconds"``),
    a ``timedelta`` or an aware ``datetime``; the default is one second.
    """

    slug: ClassVar[str] = "retryable-error"

    def __init__(
        self,
        message: str = "",
        retry_after: float | str | timedelta | datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.retry_after))


class StepExitError(WorkflowKitError):
    """A step raised ``SystemExit``, ``KeyboardInterrupt`` or another ``BaseException``.

    Such an exception would end the worker's process; instead the attempt is recorded as
    failed (and retried like any other), and workflow code sees this error in its place.
    """

    slug = "step-exit"

    def __init__(self, type_name: str, message: str) -> None:
        detail = f"{type_name}({message})" if message else type_name
        super().__init__(
            f"the step raised {detail}, which would end the worker's process; it was "
            "recorded as a failed attempt instead (raise an Exception to fail a step)"
        )
        self.type_name = type_name
        self.message = message


class StepAttemptLostError(WorkflowKitError):
    """A step has no attempts left: its last attempt never ended, because the worker running
    it stopped first (crashed, killed, lease lost). A lost attempt counts as a failed one, so
    a step that kills its worker every time fails once its retry policy's attempts are used up.
    """

    slug = "step-attempt-lost"

    def __init__(self, step_name: str, lost: int, attempts: int) -> None:
        super().__init__(
            f"step {step_name}: attempt {lost} ended without an outcome (the worker running "
            f"it stopped, crashed or lost its lease), and its retry policy allows "
            f"{attempts} attempt{'s' if attempts != 1 else ''}"
        )
        self.step_name = step_name
        self.lost = lost
        self.attempts = attempts

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.step_name, self.lost, self.attempts))


class StepTimeoutError(WorkflowKitError, TimeoutError):
    """A step attempt ran past its ``@step(timeout=...)`` and was given up on.

    An async step is cancelled; a sync step's thread cannot be stopped, so it runs on and
    its late result is ignored. The attempt is recorded as failed with this error and
    retried by the step's policy like any other failure.
    """

    slug = "step-timeout"

    def __init__(self, step_name: str, timeout: float) -> None:
        super().__init__(
            f"step {step_name} ran past its timeout of {timeout:g} s; the attempt was "
            "abandoned (raise the timeout in @step(timeout=...) if the step needs longer)"
        )
        self.step_name = step_name
        self.timeout = timeout


class StepOptionsError(WorkflowKitError, ValueError):
    """``@step(...)`` or ``Retry(...)`` was given an option it cannot use; raised where the
    step is defined, naming the option and what it takes."""

    slug = "step-options"


class MissingExtraError(FatalError, ImportError):
    """A feature needs an optional dependency that is not installed.

    A ``FatalError``: a step failing with it is not retried, since installing the package
    is the fix. The message gives the ``pip install`` command.
    """

    slug = "missing-extra"

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependency {module}: pip install 'workflowkit[{extra}]'"
        )
        self.feature = feature
        self.extra = extra
        self.module = module


# -- errors the client API raises -------------------------------------------------------
class WorkflowRunNotFoundError(WorkflowKitError, LookupError):
    """No run has this id in the World the process is configured with."""

    slug = "workflow-run-not-found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no workflow run with id {run_id!r}")
        self.run_id = run_id


class WorkflowRunFailedError(WorkflowKitError):
    """The run ended in ``failed``; carries the original error's type, message and traceback."""

    slug = "workflow-run-failed"

    def __init__(
        self, run_id: str, error_type: str, error_message: str, traceback_text: str = ""
    ) -> None:
        super().__init__(f"workflow run {run_id} failed: {error_type}: {error_message}")
        self.run_id = run_id
        self.error_type = error_type
        self.error_message = error_message
        self.traceback_text = traceback_text


class WorkflowRunCancelledError(WorkflowKitError):
    """``Run.return_value()`` of a run that was cancelled."""

    slug = "workflow-run-cancelled"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"workflow run {run_id} was cancelled")
        self.run_id = run_id


class RunFailedByOperatorError(WorkflowKitError):
    """The error of a run failed from outside (``workflowkit fail``, ``run.fail()``): the
    ``__cause__`` of its ``WorkflowRunFailedError``. ``reason``: the one given, or None."""

    slug = "run-failed-by-operator"

    def __init__(self, run_id: str, reason: str | None = None) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"run {run_id} was failed by an operator{why}")
        self.run_id = run_id
        self.reason = reason


class WorkflowNotRegisteredError(WorkflowKitError, LookupError):
    """A run names a workflow that no imported module registered."""

    slug = "workflow-not-registered"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"workflow {name!r} is not registered in this process: import the module that "
            "defines it (or pass it to `workflowkit worker MODULE`) before running it"
        )
        self.name = name


class StartOptionsError(WorkflowKitError, ValueError):
    """A start option (``workflow.options(...)``) has a value it cannot take."""

    slug = "start-options"


class WorkflowRunAlreadyExistsError(WorkflowKitError):
    """``start()`` with a ``run_id`` a run already has, and ``on_conflict="error"`` or
    another workflow than that run's."""

    slug = "workflow-run-already-exists"

    def __init__(self, run_id: str, status: str, workflow_name: str) -> None:
        super().__init__(
            f"a run with id {run_id!r} exists already ({workflow_name}, {status}): start "
            "with another run_id, or (for a run of the same workflow) leave on_conflict at "
            "'return' to get that run"
        )
        self.run_id = run_id
        self.status = status
        self.workflow_name = workflow_name


class WorkflowTimeoutError(WorkflowKitError):
    """The run passed the deadline it was started with (``options(timeout=...)``)."""

    slug = "workflow-timeout"

    def __init__(self, run_id: str, deadline: datetime) -> None:
        super().__init__(f"run {run_id} passed its deadline ({deadline.isoformat()})")
        self.run_id = run_id
        self.deadline = deadline


class ScheduleError(WorkflowKitError):
    """Base class of the errors about schedules (``@workflow(schedule=...)``,
    ``create_schedule`` and the other schedule calls)."""

    slug = "schedule-error"


class InvalidScheduleError(ScheduleError, ValueError):
    """A schedule that cannot be defined: a cron expression cron would refuse, an unknown
    time zone, an unknown ``catch_up`` or ``overlap`` policy, a bad schedule id or window.

    Raised where the schedule is defined (the decorator, ``create_schedule``,
    ``update_schedule``), before anything is written.
    """

    slug = "invalid-schedule"


class ScheduleNotFoundError(ScheduleError, LookupError):
    """No schedule has this id in the World."""

    slug = "schedule-not-found"

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"no schedule with id {schedule_id!r}")
        self.schedule_id = schedule_id


class ScheduleAlreadyExistsError(ScheduleError):
    """``create_schedule`` with an id a schedule has already."""

    slug = "schedule-already-exists"

    def __init__(self, schedule_id: str) -> None:
        super().__init__(
            f"a schedule with id {schedule_id!r} exists already: change it with "
            "update_schedule(), or delete it first"
        )
        self.schedule_id = schedule_id


class StaticScheduleError(ScheduleError):
    """An update or delete of a schedule declared in code (``@workflow(schedule=...)``):
    workers write it again from the code when they start."""

    slug = "static-schedule"

    def __init__(self, schedule_id: str, action: str) -> None:
        super().__init__(
            f"schedule {schedule_id!r} is declared in code (@workflow(schedule=...)); "
            f"{action} it there, or pause it (pausing lasts across deploys)"
        )
        self.schedule_id = schedule_id


class ClientCallInWorkflowError(WorkflowKitError, RuntimeError):
    """A client call (``get_run``, ``resume_hook``, ...) made in workflow code.

    Its result would not be in the run's log, so a replay would not see the same: make the
    call from a step. (``start()`` in workflow code starts a child run, durably.)
    """

    slug = "client-call-in-workflow"

    def __init__(self, call: str) -> None:
        super().__init__(
            f"{call} cannot be called in workflow code (its result would not be recorded, "
            "and a replay would see another): call it from a @step"
        )
        self.call = call


class ForkError(WorkflowKitError, ValueError):
    """``fork_run`` cannot fork the run as asked (a step number it does not have, a child
    run started in the part to copy)."""

    slug = "fork"


class InvalidWorkflowFunctionError(WorkflowKitError, TypeError):
    """``start()`` got something that is not a ``@workflow``, or ``@workflow`` a plain ``def``."""

    slug = "start-invalid-workflow-function"


class HookNotFoundError(WorkflowKitError, LookupError):
    """No active hook holds this token (never created, disposed, or its run ended)."""

    slug = "hook-not-found"

    def __init__(self, token: str) -> None:
        super().__init__(f"no active hook with token {token!r}")
        self.token = token


class HookConflictError(WorkflowKitError):
    """Another active hook already holds the token; raised where the workflow awaits."""

    slug = "hook-conflict"

    def __init__(self, token: str, holder_run_id: str | None = None) -> None:
        holder = f" (held by run {holder_run_id})" if holder_run_id else ""
        super().__init__(f"hook token {token!r} is already in use by an active hook{holder}")
        self.token = token
        self.holder_run_id = holder_run_id


class HookDisposedError(WorkflowKitError, LookupError):
    """Workflow code awaited a hook after it was disposed (or its run ended)."""

    slug = "hook-disposed"

    def __init__(self) -> None:
        super().__init__("this hook is disposed: it receives no more payloads")


class WebhookTokenError(WorkflowKitError, ValueError):
    """A hook payload was sent to a webhook's token (webhooks take HTTP requests)."""

    slug = "webhook-token"

    def __init__(self, token: str) -> None:
        super().__init__(
            f"token {token!r} belongs to a webhook: send an HTTP request to it instead"
        )
        self.token = token


class HookTokenError(WorkflowKitError, ValueError):
    """``create_hook(token=...)`` was given a token it cannot use (an empty one); leave
    ``token`` out for a random one."""

    slug = "hook-token"


class WebhookInvalidRespondWithError(WorkflowKitError, ValueError):
    """``create_webhook(respond_with=...)`` or ``request.respond_with(...)`` misused."""

    slug = "webhook-invalid-respond-with-value"


class WebhookResponseNotSentError(WorkflowKitError):
    """A manual webhook's run sent no response in time (or ended without one)."""

    slug = "webhook-response-not-sent"


# -- errors about the data crossing a boundary ------------------------------------------
class SerializationError(WorkflowKitError, TypeError):
    """A value cannot be encoded, or stored bytes cannot be decoded."""

    slug = "serialization-failed"


class RemoteError(Documented, Exception):
    """Stands in for an exception whose class cannot be rebuilt where it is decoded.

    Keeps the original type name, message, args and traceback text.
    """

    slug: ClassVar[str] = "remote-error"

    def __init__(
        self,
        type_name: str,
        message: str,
        args: tuple[object, ...] = (),
        traceback_text: str = "",
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.original_args = args
        self.traceback_text = traceback_text


# -- errors about workflow code ---------------------------------------------------------
class ReplayDivergenceError(WorkflowKitError):
    """Replaying the workflow code produced operations the event log does not hold.

    ``position``: the operation's number (from 1; 0 when a delivery found no operation);
    ``expected``: what the log holds there; ``actual``: what the code did ("" for nothing).
    """

    slug = "replay-divergence"

    def __init__(
        self, message: str, position: int = 0, expected: str = "", actual: str = ""
    ) -> None:
        super().__init__(message)
        self.position = position
        self.expected = expected
        self.actual = actual


class WorkflowIOError(WorkflowKitError, RuntimeError):
    """Workflow code tried to do I/O; that belongs in a step."""

    slug = "io-in-workflow"


class NotInWorkflowError(WorkflowKitError, RuntimeError):
    """A workflow-only (or step-only) function was called outside of one."""

    slug = "not-in-workflow"


class CorruptDataError(WorkflowKitError):
    """A stored row cannot be read back."""

    slug = "corrupt-data"


class StreamError(WorkflowKitError):
    """A stream was used where it cannot be: written from workflow code, or outside a step."""

    slug = "stream-error"


class StreamClosedError(StreamError):
    """A write to a stream that was closed, or whose run has ended."""

    slug = "stream-closed"

    def __init__(self, run_id: str, name: str, reason: str = "it was closed") -> None:
        label = "the default stream" if not name else f"stream {name!r}"
        super().__init__(f"cannot write to {label} of run {run_id}: {reason}")
        self.run_id = run_id
        self.name = name


# -- errors about configuration -----------------------------------------------------------
class DurableAgentError(WorkflowKitError):
    """A ``workflowkit.ai.DurableAgent`` used in a way that cannot be durable."""

    slug = "durable-agent"


class ChatTransportError(WorkflowKitError):
    """``workflowkit.ai.WorkflowChatTransport`` could not get a chat reply to its ``finish``
    (docs/errors.md says when). ``run_id`` and ``status_code`` are None when not known;
    ``next_index`` is where ``reconnect_to_stream`` would resume."""

    slug = "chat-transport"

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        status_code: int | None = None,
        next_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status_code = status_code
        self.next_index = next_index


class ConfigurationError(WorkflowKitError, ValueError):
    """A setting (an environment variable, or a World URL) is not one workflowkit can use.

    Raised at start-up (``configure()``, the first ``start()``, a worker, the ASGI app's
    lifespan), naming the setting, what it holds (credentials redacted) and what it takes.
    """

    slug = "configuration"


# -- errors about encrypted payloads (docs/encryption.md) -----------------------------------
class EncryptionError(WorkflowKitError):
    """Base class of the errors about payload encryption at rest."""

    slug = "encryption"


class EncryptionKeyError(EncryptionError, ConfigurationError):
    """The encryption keys given (``WORKFLOWKIT_ENCRYPTION_KEYS`` or ``EncryptionKeys``) are
    not usable. The message names the entry and key id; never the key material."""

    slug = "encryption-keys"


class PayloadKeyMissingError(EncryptionError):
    """A stored payload is encrypted with a key this process was not given.

    Not a ``SerializationError``: a worker lacking a key leaves the run to be taken up again
    (by a worker that has it, or by this one once its keys are fixed) instead of failing it.
    """

    slug = "payload-key-missing"

    def __init__(self, key_id: str, what: str = "a stored payload") -> None:
        super().__init__(
            f"{what} is encrypted with key {key_id!r}, which this process does not have: add "
            "it to WORKFLOWKIT_ENCRYPTION_KEYS (or the EncryptionKeys given to configure())"
        )
        self.key_id = key_id


class PayloadDecryptionError(EncryptionError, SerializationError):
    """A stored payload failed authentication: its bytes were altered, or it was written
    for another run (or place) than the one it was read from."""

    slug = "payload-decryption"

    def __init__(self, key_id: str, reason: str) -> None:
        super().__init__(
            f"a stored payload encrypted with key {key_id!r} cannot be decrypted: {reason}; "
            "the data in the store is not what workflowkit wrote"
        )
        self.key_id = key_id
        self.reason = reason


# -- errors about the World (the store) --------------------------------------------------
class WorldError(WorkflowKitError):
    """The World (the store) could not do what was asked; the subclasses say why."""

    slug = "world-error"


class WorldClosedError(WorldError, RuntimeError):
    """A call reached a World after it was closed."""

    slug = "world-closed"


class WorldOpenError(WorldError):
    """The World's database file cannot be opened: it is not a database, damaged, or unreadable."""

    slug = "world-open"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(
            f"cannot open the SQLite World at {path}: {reason} (if the file is damaged or "
            "not a workflowkit database, move it away and restore it from a backup)"
        )
        self.path = path
        self.reason = reason


class WorldUnavailableError(WorldError, ConnectionError):
    """The database could not be reached within the World's retry budget."""

    slug = "world-unavailable"


class AmbiguousCommitError(WorldError, ConnectionError):
    """The connection was lost while a write committed, and whether it did is unknown."""

    slug = "ambiguous-commit"


class LeaseLostError(WorldError):
    """A worker wrote for a run it no longer holds (its lease expired and was taken over,
    or the run was handed back)."""

    slug = "lease-lost"

    def __init__(self, run_id: str, owner: str) -> None:
        super().__init__(f"worker {owner} does not hold the lease of run {run_id}")
        self.run_id = run_id
        self.owner = owner
