-- Searching runs by the start of their id (the dashboard's search box) as a range of ids
-- compared by code point, whatever the database's collation: without it, a search read
-- every run.
CREATE INDEX runs_id_prefix ON runs ((run_id COLLATE "C"));
