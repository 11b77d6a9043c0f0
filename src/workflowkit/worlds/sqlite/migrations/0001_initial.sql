-- The SQLite World's tables as of schema 4, the last schema before migration files.
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    updated_at REAL NOT NULL,
    output_seq INTEGER,
    error_seq INTEGER,
    owner TEXT,
    lease_until REAL,
    wake_at REAL
) WITHOUT ROWID;
CREATE INDEX runs_due ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_updated ON runs (updated_at);
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_workflow ON runs (workflow_name, run_id);
CREATE TABLE events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    correlation_id TEXT,
    payload BLOB,
    attrs TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_name TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    input_seq INTEGER,
    output_seq INTEGER,
    error_seq INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    retry_at REAL,
    executor TEXT,
    lease_until REAL,
    queued_at REAL,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
CREATE INDEX steps_queued ON steps (queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX steps_executor ON steps (executor) WHERE executor IS NOT NULL;
CREATE TABLE waits (
    run_id TEXT NOT NULL,
    wait_id TEXT NOT NULL,
    resume_at REAL NOT NULL,
    created_at REAL NOT NULL,
    completed_at REAL,
    PRIMARY KEY (run_id, wait_id)
) WITHOUT ROWID;
CREATE TABLE hooks (
    hook_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    created_seq INTEGER NOT NULL,
    created_at REAL NOT NULL,
    attrs TEXT
);
CREATE INDEX hooks_run ON hooks (run_id);
CREATE TABLE webhook_responses (
    reply_to TEXT PRIMARY KEY,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);

CREATE TABLE streams (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    length INTEGER NOT NULL,
    closed_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE INDEX streams_updated ON streams (updated_at);
CREATE TABLE stream_chunks (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    step_id TEXT,
    attempt INTEGER,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, name, idx)
);
