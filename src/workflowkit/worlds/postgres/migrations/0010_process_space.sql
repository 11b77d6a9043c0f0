-- Where a worker's pid means something (boot and PID namespace): only workers there may
-- judge it dead by its pid.
ALTER TABLE workers ADD COLUMN process_space text NOT NULL DEFAULT '';
