"""A Slack-style slash-command bot: one webhook, answered request by request.

Each POST to the webhook (form fields ``command`` and ``text``, as Slack sends them) gets
its reply from a step, through ``request.respond_with``; ``/stop`` ends the bot.

    uvicorn workflowkit.asgi:app            # serves the webhook
    python examples/slack_commands.py       # starts the bot and prints its URL
"""

from __future__ import annotations

import asyncio

from workflowkit import Request, Response, create_webhook, step, workflow
from workflowkit.api import start


@step
def announce(url: str) -> None:
    print(f"point your slash command at {url}")


@step
async def reply(request: Request, text: str) -> None:
    await request.respond_with(Response.json_body({"response_type": "in_channel", "text": text}))


@step
def deploy(service: str) -> str:
    return f"deployed {service}"


@workflow
async def command_bot() -> list[str]:
    handled = []
    async for request in create_webhook(respond_with="manual"):
        form = request.form()
        command, text = form.get("command", ""), form.get("text", "")
        handled.append(command)
        if command == "/stop":
            await reply(request, "bye")
            break
        if command == "/deploy":
            await reply(request, await deploy(text))
        else:
            await reply(request, f"unknown command {command}")
    return handled


async def main() -> None:
    run = await start(command_bot)
    print(f"started {run.run_id}; waiting for commands")
    print(await run.return_value())


if __name__ == "__main__":
    asyncio.run(main())
