"""A Flask app that starts runs and resumes hooks through ``workflowkit.sync``.

flask --app examples.flask_app run
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request

from workflowkit import HookNotFoundError, create_hook, step, sync, workflow


@step
def send_invite(email: str) -> None:
    print(f"invitation sent to {email}")


@step
def activate(email: str) -> str:
    return f"{email} is active"


@workflow
async def onboarding(email: str) -> str:
    await send_invite(email)
    confirmation = await create_hook(token=f"confirm:{email}")
    if not confirmation.get("accepted"):
        return f"{email} declined"
    return await activate(email)


app = Flask(__name__)


@app.post("/signup")
def signup() -> Any:
    run = sync.start(onboarding, request.get_json()["email"])
    return jsonify(run_id=run.run_id)


@app.post("/confirm/<email>")
def confirm(email: str) -> Any:
    try:
        hook = sync.resume_hook(f"confirm:{email}", {"accepted": True})
    except HookNotFoundError:
        return jsonify(error=f"nothing to confirm for {email}"), 404
    return jsonify(run_id=hook.run_id)


@app.get("/runs/<run_id>")
def status(run_id: str) -> Any:
    run = sync.get_run(run_id)
    state = run.status()
    return jsonify(status=state, result=run.return_value() if state == "completed" else None)
