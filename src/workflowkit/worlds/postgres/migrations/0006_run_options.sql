-- Start options (delayed start, deadline, queue placement), child runs, and what each
-- worker can execute.
ALTER TABLE runs ADD COLUMN deadline timestamptz;
ALTER TABLE runs ADD COLUMN queue text;
ALTER TABLE runs ADD COLUMN queue_key text;
ALTER TABLE runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN parent_run_id text;
ALTER TABLE runs ADD COLUMN detached boolean NOT NULL DEFAULT false;
CREATE INDEX runs_deadline ON runs (deadline)
    WHERE deadline IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
ALTER TABLE workers ADD COLUMN workflows text NOT NULL DEFAULT '[]';
ALTER TABLE workers ADD COLUMN lease_seconds double precision NOT NULL DEFAULT 30;
