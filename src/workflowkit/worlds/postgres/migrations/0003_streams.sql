CREATE TABLE streams (
    run_id text NOT NULL,
    name text NOT NULL,
    length integer NOT NULL,
    closed_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX streams_updated ON streams (updated_at);
CREATE TABLE stream_chunks (
    run_id text NOT NULL,
    name text NOT NULL,
    idx integer NOT NULL,
    kind text NOT NULL,
    data bytea NOT NULL,
    step_id text,
    attempt integer,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, name, idx)
);
