"""One of several processes starting the same run ids at once (test_idempotent_starts.py).

Usage: start_race.py WORLD_URL COUNT GO_FILE. Waits until GO_FILE exists, so every process
starts together; each process's embedded worker executes whatever runs it claims.
"""

from __future__ import annotations

import os
import sys
import time

import workflowkit
from workflowkit import step, workflow
from workflowkit.sync import start


@step
def tally(n: int) -> int:
    return n + 1


@workflow(name="race.flow")
async def flow(n: int) -> int:
    return await tally(n)


def main() -> None:
    url, count, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    workflowkit.configure(url, poll_interval=0.1)
    while not os.path.exists(go):
        time.sleep(0.005)
    for n in range(count):
        run = start(flow.options(run_id=f"race-{n}"), n)
        assert run.run_id == f"race-{n}"
    for n in range(count):
        assert start(flow.options(run_id=f"race-{n}"), n).return_value(timeout=120) == n + 1
    workflowkit.shutdown()


if __name__ == "__main__":
    main()
