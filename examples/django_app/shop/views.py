"""Views: start an order run, approve it (resuming its hook), show a run's status.

Django views are synchronous, so they use ``workflowkit.sync``.
"""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from workflowkit import HookNotFoundError, WorkflowRunNotFoundError, sync

from .workflows import approval_token, order


@require_POST
def place_order(request: HttpRequest, order_id: str) -> JsonResponse:
    run = sync.start(order, order_id)
    return JsonResponse({"run_id": run.run_id}, status=201)


@require_POST
def approve_order(request: HttpRequest, order_id: str) -> JsonResponse:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict) or not isinstance(body.get("approver"), str):
        return JsonResponse({"error": 'send {"approver": "name", "approved": true}'}, status=400)
    decision = {"approver": body["approver"], "approved": body.get("approved", True) is True}
    try:
        hook = sync.resume_hook(approval_token(order_id), decision)
    except HookNotFoundError:
        return JsonResponse({"error": f"order {order_id} is not waiting for approval"}, status=404)
    return JsonResponse({"run_id": hook.run_id})


@require_GET
def run_status(request: HttpRequest, run_id: str) -> JsonResponse:
    run = sync.get_run(run_id)
    try:
        status = run.status()
    except WorkflowRunNotFoundError:
        return JsonResponse({"error": f"no run {run_id}"}, status=404)
    result = run.return_value() if status == "completed" else None
    return JsonResponse({"run_id": run_id, "status": status, "result": result})
