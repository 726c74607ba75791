-- The node that made each attempt (several nodes share a PostgreSQL store;
-- on SQLite it is the one node).
ALTER TABLE attempts ADD COLUMN node TEXT;
