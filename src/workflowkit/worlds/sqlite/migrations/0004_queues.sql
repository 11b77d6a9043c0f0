-- Queues: the limits workers register, and when each run first started from its queue
-- (what a rate limit counts).
CREATE TABLE queues (
    name TEXT PRIMARY KEY,
    concurrency INTEGER,
    per_key INTEGER,
    per_worker INTEGER,
    rate_count INTEGER,
    rate_period REAL,
    hold_while_waiting INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
ALTER TABLE runs ADD COLUMN dequeued_at REAL;
CREATE INDEX runs_queue_active ON runs (queue, queue_key)
    WHERE queue IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_queue_started ON runs (queue, dequeued_at) WHERE dequeued_at IS NOT NULL;
