-- Deploying new code under live runs: the code version a run started under, a run parked
-- because its code no longer replays its log (and under which version), forks' sources.
ALTER TABLE runs ADD COLUMN code_version TEXT;
ALTER TABLE runs ADD COLUMN diverged TEXT;
ALTER TABLE runs ADD COLUMN diverged_version TEXT;
ALTER TABLE runs ADD COLUMN forked_from TEXT;
CREATE INDEX runs_diverged ON runs (workflow_name) WHERE diverged IS NOT NULL;
CREATE INDEX runs_forked ON runs (forked_from, created_at) WHERE forked_from IS NOT NULL;
