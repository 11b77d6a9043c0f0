ALTER TABLE steps ADD COLUMN executor text;
ALTER TABLE steps ADD COLUMN lease_until timestamptz;
ALTER TABLE steps ADD COLUMN queued_at timestamptz;
CREATE INDEX steps_queued ON steps (queued_at) WHERE queued_at IS NOT NULL;
CREATE INDEX steps_executor ON steps (executor) WHERE executor IS NOT NULL;
