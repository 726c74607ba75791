-- Inbound: sources declared through the API, and every request a source
-- caught, kept from before the sender got its 2xx until retention drops it.

CREATE TABLE sources (
    id          TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,          -- the SourceSpec as JSON, secrets included
    owner_id    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE inbound (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    source_id   TEXT NOT NULL,
    tenant      TEXT,
    received_at BIGINT NOT NULL,
    method      TEXT NOT NULL,
    target      TEXT NOT NULL,
    headers     TEXT NOT NULL,
    body        BYTEA NOT NULL,
    dedup_key   TEXT,
    state       TEXT NOT NULL,
    reason      TEXT,
    events      TEXT,
    node        TEXT,
    lease_node  TEXT,                   -- the node routing it now
    lease_until BIGINT,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX inbound_dedup ON inbound (source_id, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX inbound_pending ON inbound (seq) WHERE state = 'pending';
CREATE INDEX inbound_by_source ON inbound (source_id, seq);
CREATE INDEX inbound_updated ON inbound (updated_at) WHERE state <> 'pending';
