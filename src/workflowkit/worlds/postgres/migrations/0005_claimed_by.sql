-- A step taken from the step queue is "claimed"; the worker running it, its claimer.
ALTER TABLE steps RENAME COLUMN executor TO claimed_by;
DROP INDEX steps_executor;
CREATE INDEX steps_claimed ON steps (claimed_by) WHERE claimed_by IS NOT NULL;
