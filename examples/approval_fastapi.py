"""Human approval with a hook, behind a FastAPI app.

    uvicorn examples.approval_fastapi:app

POST /documents/{doc_id}/review   starts a review run; it waits for a decision
POST /documents/{doc_id}/decision {"approved": true, "reviewer": "alice"} resumes it
GET  /runs/{run_id}               the run's status and, once done, its result
"""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import FastAPI, HTTPException

import workflowkit.asgi
from workflowkit import HookNotFoundError, define_hook, step, workflow
from workflowkit.api import get_run, start


class Decision(pydantic.BaseModel):
    approved: bool
    reviewer: str


decision_hook = define_hook(schema=Decision)


@step
def notify_reviewers(doc_id: str) -> None:
    print(f"review requested for {doc_id}")


@step
def publish(doc_id: str, reviewer: str) -> str:
    return f"{doc_id} published, approved by {reviewer}"


@workflow
async def review_document(doc_id: str) -> str:
    await notify_reviewers(doc_id)
    decision = await decision_hook.create(token=f"approval:{doc_id}")
    if not decision.approved:
        return f"{doc_id} rejected by {decision.reviewer}"
    return await publish(doc_id, decision.reviewer)


app = FastAPI()
app.mount("/.well-known/workflow/v1", workflowkit.asgi.app)


@app.post("/documents/{doc_id}/review")
async def request_review(doc_id: str) -> dict[str, str]:
    run = await start(review_document, doc_id)
    return {"run_id": run.run_id}


@app.post("/documents/{doc_id}/decision")
async def decide(doc_id: str, decision: dict[str, Any]) -> dict[str, str]:
    try:
        hook = await decision_hook.resume(f"approval:{doc_id}", decision)
    except HookNotFoundError:
        raise HTTPException(404, f"no review waiting for {doc_id}") from None
    except pydantic.ValidationError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"run_id": hook.run_id}


@app.get("/runs/{run_id}")
async def run_status(run_id: str) -> dict[str, Any]:
    run = get_run(run_id)
    status = await run.status()
    result = await run.return_value() if status == "completed" else None
    return {"status": status, "result": result}
