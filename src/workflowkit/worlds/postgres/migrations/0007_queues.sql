-- Queues: the limits workers register, and when each run first started from its queue
-- (what a rate limit counts).
CREATE TABLE queues (
    name text PRIMARY KEY,
    concurrency integer,
    per_key integer,
    per_worker integer,
    rate_count integer,
    rate_period double precision,
    hold_while_waiting boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL
);
ALTER TABLE runs ADD COLUMN dequeued_at timestamptz;
CREATE INDEX runs_queue_active ON runs (queue, queue_key)
    WHERE queue IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_queue_started ON runs (queue, dequeued_at) WHERE dequeued_at IS NOT NULL;
