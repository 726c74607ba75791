-- Inbound: sources declared through the API, and every request a source
-- caught, kept from before the sender got its 2xx until retention drops it.

CREATE TABLE sources (
    id          TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,          -- the SourceSpec as JSON, secrets included
    owner_id    TEXT,                   -- the tenant that may see it
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE inbound (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,   -- req_<ulid>
    source_id   TEXT NOT NULL,
    tenant      TEXT,                   -- the source's owner_id when caught
    received_at INTEGER NOT NULL,
    method      TEXT NOT NULL,
    target      TEXT NOT NULL,          -- path and query as requested
    headers     TEXT NOT NULL,          -- JSON [[name, value]]
    body        BLOB NOT NULL,
    dedup_key   TEXT,                   -- the sender's delivery id, if it sends one
    state       TEXT NOT NULL,          -- pending | routed | held
    reason      TEXT,
    events      TEXT,                   -- JSON [event id] once routed
    node        TEXT,                   -- the node that caught it
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX inbound_dedup ON inbound (source_id, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX inbound_pending ON inbound (state, seq) WHERE state = 'pending';
CREATE INDEX inbound_by_source ON inbound (source_id, seq);
CREATE INDEX inbound_updated ON inbound (updated_at) WHERE state <> 'pending';
