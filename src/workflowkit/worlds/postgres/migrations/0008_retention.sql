-- Finding runs that ended long ago (retention) without scanning every run.
CREATE INDEX runs_ended ON runs (completed_at) WHERE completed_at IS NOT NULL;
