-- Start options (delayed start, deadline, queue placement), child runs, and what each
-- worker can execute.
ALTER TABLE runs ADD COLUMN deadline REAL;
ALTER TABLE runs ADD COLUMN queue TEXT;
ALTER TABLE runs ADD COLUMN queue_key TEXT;
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN detached INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL;
ALTER TABLE workers ADD COLUMN workflows TEXT NOT NULL DEFAULT '[]';
ALTER TABLE workers ADD COLUMN lease_seconds REAL NOT NULL DEFAULT 30;
-- Runs listed newest first by creation time: run ids may be chosen by users now.
CREATE INDEX runs_created ON runs (created_at, run_id);
CREATE INDEX runs_workflow_created ON runs (workflow_name, created_at, run_id);
CREATE INDEX runs_status_created ON runs (status, created_at, run_id);
CREATE INDEX runs_parent ON runs (parent_run_id, created_at) WHERE parent_run_id IS NOT NULL;
