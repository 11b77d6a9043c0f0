-- Schedules: cron workflows. The row holds the next tick; a worker fires a tick in the
-- transaction that moves next_tick past it and creates the tick's run (whose id is made
-- of the schedule id and the tick), so each tick runs once across all processes.
CREATE TABLE schedules (
    schedule_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    input BLOB NOT NULL,
    catch_up TEXT NOT NULL,
    overlap TEXT NOT NULL,
    start_at REAL,
    end_at REAL,
    paused INTEGER NOT NULL DEFAULT 0,
    static INTEGER NOT NULL DEFAULT 0,
    next_tick REAL,
    last_tick REAL,
    last_run_id TEXT,
    buffered_tick REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_tick) WHERE NOT paused;
