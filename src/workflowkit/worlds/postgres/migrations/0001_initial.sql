CREATE TABLE runs (
    run_id text PRIMARY KEY,
    workflow_name text NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    updated_at timestamptz NOT NULL,
    output_seq integer,
    error_seq integer,
    owner text,
    lease_until timestamptz,
    wake_at timestamptz
);
CREATE INDEX runs_due ON runs (wake_at)
    WHERE wake_at IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_updated ON runs (updated_at);
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_workflow ON runs (workflow_name, run_id);
CREATE INDEX runs_status ON runs (status, run_id);
CREATE TABLE events (
    run_id text NOT NULL,
    seq integer NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    correlation_id text,
    payload bytea,
    attrs text,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE steps (
    run_id text NOT NULL,
    step_id text NOT NULL,
    step_name text NOT NULL,
    status text NOT NULL,
    attempt integer NOT NULL,
    input_seq integer,
    output_seq integer,
    error_seq integer,
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    completed_at timestamptz,
    retry_at timestamptz,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE waits (
    run_id text NOT NULL,
    wait_id text NOT NULL,
    resume_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    completed_at timestamptz,
    PRIMARY KEY (run_id, wait_id)
);
CREATE TABLE hooks (
    hook_id text PRIMARY KEY,
    run_id text NOT NULL,
    token text NOT NULL UNIQUE,
    created_seq integer NOT NULL,
    created_at timestamptz NOT NULL,
    attrs text
);
CREATE INDEX hooks_run ON hooks (run_id);
CREATE TABLE workers (
    worker_id text PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);
