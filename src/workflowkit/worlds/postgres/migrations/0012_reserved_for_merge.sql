-- A placeholder so that this branch's 0013 applies: the lead replaces it on merge with the
-- other branch's 0012 (migration numbers run 1, 2, 3, ... with no gap). It changes nothing.
SELECT 1;
