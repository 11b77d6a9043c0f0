"""workflowkit: durable workflows for Python.

Mark an ``async def`` with ``@workflow`` and the functions doing the work with ``@step``;
start runs with ``workflowkit.api.start`` (or ``workflowkit.sync.start``). Every step result,
sleep and transition is recorded in an event log, so runs survive crashes and restarts.
"""

from .context import StepMetadata, WorkflowMetadata, get_step_metadata, get_workflow_metadata
from .errors import (
    AmbiguousCommitError,
    ConfigurationError,
    CorruptDataError,
    DurableAgentError,
    FatalError,
    HookConflictError,
    HookDisposedError,
    HookNotFoundError,
    InvalidWorkflowFunctionError,
    LeaseLostError,
    NotInWorkflowError,
    RemoteError,
    ReplayDivergenceError,
    RetryableError,
    SerializationError,
    StepExitError,
    StreamClosedError,
    StreamError,
    WebhookInvalidRespondWithError,
    WebhookResponseNotSentError,
    WebhookTokenError,
    WorkflowIOError,
    WorkflowKitError,
    WorkflowNotRegisteredError,
    WorkflowRunCancelledError,
    WorkflowRunFailedError,
    WorkflowRunNotFoundError,
    WorldClosedError,
    WorldError,
    WorldOpenError,
    WorldUnavailableError,
)
from .hooks import Hook, HookDefinition, Webhook, create_hook, create_webhook, define_hook
from .http_fetch import fetch
from .primitives import sleep
from .registry import Step, Workflow, step, workflow
from .runtime.runtime import configure, shutdown
from .streams import Readable, Writable, get_writable
from .webhooks import Request, Response

__version__ = "0.1.0"

__all__ = [
    "AmbiguousCommitError",
    "ConfigurationError",
    "CorruptDataError",
    "DurableAgentError",
    "FatalError",
    "Hook",
    "HookConflictError",
    "HookDefinition",
    "HookDisposedError",
    "HookNotFoundError",
    "InvalidWorkflowFunctionError",
    "LeaseLostError",
    "NotInWorkflowError",
    "Readable",
    "RemoteError",
    "ReplayDivergenceError",
    "Request",
    "Response",
    "RetryableError",
    "SerializationError",
    "Step",
    "StepExitError",
    "StepMetadata",
    "StreamClosedError",
    "StreamError",
    "Webhook",
    "WebhookInvalidRespondWithError",
    "WebhookResponseNotSentError",
    "WebhookTokenError",
    "Workflow",
    "WorkflowIOError",
    "WorkflowKitError",
    "WorkflowMetadata",
    "WorkflowNotRegisteredError",
    "WorkflowRunCancelledError",
    "WorkflowRunFailedError",
    "WorkflowRunNotFoundError",
    "WorldClosedError",
    "WorldError",
    "WorldOpenError",
    "WorldUnavailableError",
    "Writable",
    "configure",
    "create_hook",
    "create_webhook",
    "define_hook",
    "fetch",
    "get_step_metadata",
    "get_workflow_metadata",
    "get_writable",
    "shutdown",
    "sleep",
    "step",
    "workflow",
]
