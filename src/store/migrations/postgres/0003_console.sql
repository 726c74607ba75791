-- The console: the delivery log filtered by event type and time and paged
-- newest first, each delivery's plugin log, and per-webhook attempt stats.

-- The event's type, copied onto its deliveries so the log can be filtered
-- and paged by it without visiting every event.
ALTER TABLE deliveries ADD COLUMN event_type TEXT;
UPDATE deliveries d SET event_type = e.type FROM events e WHERE e.seq = d.event_seq;

-- What the plugin chain logged the last time it ran: JSON [line, ...],
-- NULL when it logged nothing.
ALTER TABLE deliveries ADD COLUMN plugin_log TEXT;

-- The webhook of each attempt, so a webhook's recent attempts are one index
-- range. Stats look back a day at most: older attempts are left without it.
ALTER TABLE attempts ADD COLUMN webhook_id TEXT;
UPDATE attempts a SET webhook_id = d.webhook_id FROM deliveries d
    WHERE d.seq = a.delivery_seq
      AND a.at >= (SELECT coalesce(max(at), 0) - 86400000 FROM attempts);
CREATE INDEX attempts_hook_at ON attempts (webhook_id, at) INCLUDE (status, latency_ms)
    WHERE webhook_id IS NOT NULL;

-- The log, newest first: ordered by (created_at, seq), and each index it
-- pages on ends with those two columns, so a time window, a filter, or
-- webhook and status together are one index range read in order.
DROP INDEX deliveries_hook_log;
DROP INDEX deliveries_tenant_log;
CREATE INDEX deliveries_log ON deliveries (created_at, seq);
CREATE INDEX deliveries_hook_log ON deliveries (webhook_id, created_at, seq);
CREATE INDEX deliveries_hook_state_log ON deliveries (webhook_id, state, created_at, seq);
CREATE INDEX deliveries_state_log ON deliveries (state, created_at, seq);
-- It also serves retention (a delivery is updated after it is created, so
-- one last updated before the cutoff was created before it too), which
-- deliveries_state did: one index fewer to change on every update.
DROP INDEX deliveries_state;
CREATE INDEX deliveries_type_log ON deliveries (event_type, created_at, seq);
CREATE INDEX deliveries_tenant_log ON deliveries (tenant, created_at, seq) WHERE tenant IS NOT NULL;

-- Plans for the new columns and indexes from the start, not from the next
-- autovacuum.
ANALYZE deliveries;
ANALYZE attempts;
