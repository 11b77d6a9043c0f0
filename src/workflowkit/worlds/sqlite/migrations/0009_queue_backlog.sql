-- The order a queue offers its due runs in: aged priority, priority + (now - wake_at) / 60
-- descending, is wake_at - 60 * priority ascending, a value of the row alone. This index
-- holds each queue's active runs in that order, so a claim reads the first due runs
-- instead of sorting the queue's whole backlog. Its expression must stay the one the
-- claim orders by (Dialect.queue_rank, with limits.AGING_SECONDS = 60).
CREATE INDEX runs_queue_order ON runs (queue, (wake_at - priority * 60), wake_at, run_id)
    WHERE queue IS NOT NULL AND status IN ('pending', 'running') AND wake_at IS NOT NULL;
-- Due runs by queue, then wake_at: those in no queue (queue IS NULL) and those of each queue
-- no worker registered, which start as if in no queue. The claim of such runs read
-- runs_due and skipped the runs of registered queues one by one: every run waiting in a
-- queue, on every claim.
CREATE INDEX runs_due_queue ON runs (queue, wake_at) WHERE wake_at IS NOT NULL;
