-- Schedules: cron workflows. The row holds the next tick; a worker fires a tick in the
-- transaction that locks the row (FOR UPDATE SKIP LOCKED), moves next_tick past it and
-- creates the tick's run (whose id is made of the schedule id and the tick), so each tick
-- runs once across all workers.
CREATE TABLE schedules (
    schedule_id text PRIMARY KEY,
    workflow_name text NOT NULL,
    cron text NOT NULL,
    timezone text NOT NULL,
    input bytea NOT NULL,
    catch_up text NOT NULL,
    overlap text NOT NULL,
    start_at timestamptz,
    end_at timestamptz,
    paused boolean NOT NULL DEFAULT false,
    static boolean NOT NULL DEFAULT false,
    next_tick timestamptz,
    last_tick timestamptz,
    last_run_id text,
    buffered_tick timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE NOT paused;
