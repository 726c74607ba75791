-- Webhooks as data: API webhooks, API tokens, and the owner each delivery
-- belongs to (so a tenant's log stays scoped after its webhook is deleted).
ALTER TABLE deliveries ADD COLUMN tenant TEXT;
CREATE INDEX deliveries_tenant_log ON deliveries (tenant, seq) WHERE tenant IS NOT NULL;

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,          -- the WebhookSpec as JSON, secrets left out
    secrets     TEXT NOT NULL,          -- JSON [{"secret", "expires_at"}]
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL
);

CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,   -- SHA-256 of the token; never the token
    owner       TEXT,
    scopes      TEXT NOT NULL,          -- space separated
    description TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
