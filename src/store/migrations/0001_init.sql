-- weir's embedded store. Times are Unix milliseconds.
CREATE TABLE IF NOT EXISTS events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    owner_key   TEXT NOT NULL,          -- owner_id, or '' for none: the dedup key
    owner_id    TEXT,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,          -- the producer's JSON text
    occurred_at TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_dedup ON events (owner_key, id, received_at);
CREATE INDEX IF NOT EXISTS events_id ON events (id);

CREATE TABLE IF NOT EXISTS deliveries (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    event_seq   INTEGER NOT NULL,
    webhook_id  TEXT NOT NULL,
    state       TEXT NOT NULL,
    next_at     INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,  -- since creation or last replay
    body        TEXT,                         -- NULL until the plugin chain ran
    headers     TEXT,                         -- JSON [[name, value], ...]
    reason      TEXT,                         -- why filtered/held/failing/canceled
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (webhook_id, next_at, seq)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS deliveries_fifo ON deliveries (webhook_id, seq)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_seq);
CREATE INDEX IF NOT EXISTS deliveries_hook_log ON deliveries (webhook_id, seq);
CREATE INDEX IF NOT EXISTS deliveries_state ON deliveries (state, updated_at);

CREATE TABLE IF NOT EXISTS attempts (
    delivery_seq INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    status       INTEGER,
    error        TEXT,
    latency_ms   INTEGER NOT NULL,
    response     TEXT NOT NULL,
    PRIMARY KEY (delivery_seq, n)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS webhook_state (
    webhook_id      TEXT PRIMARY KEY,
    disabled_reason TEXT,
    last_success_at INTEGER,
    last_failure_at INTEGER,
    failing_since   INTEGER
);
