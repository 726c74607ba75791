-- weir's shared store on PostgreSQL: the same tables as the SQLite store,
-- plus what several nodes sharing it need (leases, nodes, rate slots).
-- Times are Unix milliseconds (BIGINT), as on SQLite.

CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL,
    owner_key   TEXT NOT NULL,          -- owner_id, or '' for none: the dedup key
    owner_id    TEXT,
    type        TEXT NOT NULL,
    data        TEXT NOT NULL,          -- the producer's JSON text, byte for byte
    occurred_at TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX events_dedup ON events (owner_key, id, received_at);
CREATE INDEX events_id ON events (id);

CREATE TABLE deliveries (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    event_seq   BIGINT NOT NULL,
    webhook_id  TEXT NOT NULL,
    tenant      TEXT,
    state       TEXT NOT NULL,
    next_at     BIGINT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,  -- since creation or last replay
    body        BYTEA,                        -- NULL until the plugin chain ran; any bytes a plugin made
    headers     TEXT,                         -- JSON [[name, value], ...]
    reason      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    -- The node working on it and until when; a lapsed lease (its node died)
    -- lets any node claim the delivery again.
    lease_node  TEXT,
    lease_until BIGINT
);
CREATE INDEX deliveries_due ON deliveries (webhook_id, next_at, seq)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_fifo ON deliveries (webhook_id, seq)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_event ON deliveries (event_seq);
CREATE INDEX deliveries_hook_log ON deliveries (webhook_id, seq);
CREATE INDEX deliveries_state ON deliveries (state, updated_at);
CREATE INDEX deliveries_tenant_log ON deliveries (tenant, seq) WHERE tenant IS NOT NULL;
CREATE INDEX deliveries_leased ON deliveries (webhook_id, lease_node) WHERE lease_node IS NOT NULL;

CREATE TABLE attempts (
    delivery_seq BIGINT NOT NULL,
    n            INTEGER NOT NULL,
    at           BIGINT NOT NULL,
    status       INTEGER,
    error        TEXT,
    latency_ms   BIGINT NOT NULL,
    response     TEXT NOT NULL,
    node         TEXT,
    PRIMARY KEY (delivery_seq, n)
);

CREATE TABLE webhook_state (
    webhook_id      TEXT PRIMARY KEY,
    disabled_reason TEXT,
    last_success_at BIGINT,
    last_failure_at BIGINT,
    failing_since   BIGINT
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,          -- the WebhookSpec as JSON, secrets left out
    secrets     TEXT NOT NULL,          -- JSON [{"secret", "expires_at"}]
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    prefix      TEXT NOT NULL,
    hash        BYTEA NOT NULL UNIQUE,  -- SHA-256 of the token; never the token
    owner       TEXT,
    scopes      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

-- The nodes sharing this database: one row per node_id, kept fresh by a
-- heartbeat; `instance` tells a restarted node from a second live one.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    instance     TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- A webhook's next free send slot (microseconds), for rate_limit_per_sec
-- across nodes.
CREATE TABLE rate_slots (
    webhook_id TEXT PRIMARY KEY,
    next_us    BIGINT NOT NULL
);

-- Leases and heartbeats use the database's clock, the one clock every node
-- shares.
CREATE FUNCTION weir_now_ms() RETURNS BIGINT
    AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT $$
    LANGUAGE SQL VOLATILE;
