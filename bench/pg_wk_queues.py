"""The queues of the PostgreSQL benchmark's queue case (workflowkit side).

The worker processes of that case import this module next to ``pg_wk_cases``, so they
register these queues in the World when they start; the client only names them in
``chain.options(queue=...)``. The other cases' workers do not import it, so their World
has no queue registered at all.
"""

from __future__ import annotations

from pg_common import QUEUE_LIMIT

from workflowkit import Queue

LIMITED = Queue("pgbench.limited", concurrency=QUEUE_LIMIT)
OPEN = Queue("pgbench.open")  # a queue with no limit: the queued claim path, nothing held back

QUEUE_NAMES = {"none": None, "limit": LIMITED.name, "open": OPEN.name}
