//! Versioned schema migrations. Each file in `migrations/` (SQLite) or
//! `migrations/postgres/` is applied once, in order, and the database records
//! the last one applied (SQLite's `user_version`; PostgreSQL's
//! `schema_migrations` table). A database newer than this binary is refused
//! rather than written to by code that does not know its shape. On
//! PostgreSQL, nodes starting together take turns under an advisory lock, so
//! each migration is applied exactly once.

use rusqlite::Connection;

use super::StoreError;

/// `(version, SQL)`, in order.
const SQLITE: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_webhooks_tokens.sql")),
    (3, include_str!("migrations/0003_attempt_node.sql")),
    (4, include_str!("migrations/0004_inbound.sql")),
    (5, include_str!("migrations/0005_console.sql")),
];

const POSTGRES: &[(u32, &str)] = &[
    (1, include_str!("migrations/postgres/0001_init.sql")),
    (2, include_str!("migrations/postgres/0002_inbound.sql")),
    (3, include_str!("migrations/postgres/0003_console.sql")),
];

/// The schema version this binary writes.
pub fn latest() -> u32 {
    SQLITE.last().map_or(0, |(v, _)| *v)
}

/// Brings a PostgreSQL database up to date; returns its schema version.
pub async fn postgres(client: &mut deadpool_postgres::Object) -> Result<u32, StoreError> {
    // One migrator at a time across every node.
    const LOCK: i64 = 0x0077_6569_726d_6967; // "weirmig"
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let result = postgres_apply(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    let version = result?;
    unlocked?;
    Ok(version)
}

async fn postgres_apply(client: &mut deadpool_postgres::Object) -> Result<u32, StoreError> {
    let known = POSTGRES.last().map_or(0, |(v, _)| *v);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version    INTEGER PRIMARY KEY,
               applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await?;
    let current: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let current = current as u32;
    if current > known {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {current}, newer than this weir knows ({known}): run a newer weir"
        )));
    }
    for (version, sql) in POSTGRES.iter().filter(|(v, _)| *v > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&(*version as i32)],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, "applied database migration");
    }
    Ok(known)
}

/// Brings `conn`'s database up to [`latest`] in one transaction.
pub fn sqlite(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = apply(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end)?;
    result
}

fn apply(conn: &Connection) -> Result<(), StoreError> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > latest() {
        return Err(StoreError::Schema(format!(
            "the database is at schema version {current}, newer than this weir knows ({}): run a newer weir",
            latest()
        )));
    }
    for (version, sql) in SQLITE.iter().filter(|(v, _)| *v > current) {
        conn.execute_batch(sql)?;
        conn.execute_batch(&format!("PRAGMA user_version = {version}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_and_refuses_a_newer_database() {
        let conn = Connection::open_in_memory().unwrap();
        sqlite(&conn).unwrap();
        sqlite(&conn).unwrap();
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, latest());
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        let e = sqlite(&conn).unwrap_err().to_string();
        assert!(e.contains("schema version 99"), "{e}");
    }

    #[test]
    fn the_console_migration_fills_in_what_older_rows_lack() {
        let conn = Connection::open_in_memory().unwrap();
        for (version, sql) in &SQLITE[..4] {
            conn.execute_batch(sql).unwrap();
            conn.execute_batch(&format!("PRAGMA user_version = {version}"))
                .unwrap();
        }
        let day = 86_400_000;
        conn.execute_batch(&format!(
            "INSERT INTO events (seq, id, owner_key, type, data, occurred_at, received_at)
               VALUES (1, 'e', '', 'a.b', '{{}}', 't', 0);
             INSERT INTO deliveries (seq, id, event_seq, webhook_id, state, next_at, created_at, updated_at)
               VALUES (1, 'd1', 1, 'w', 'delivered', 0, 0, 0), (2, 'd2', 1, 'v', 'dead', 0, 0, 0);
             INSERT INTO attempts (delivery_seq, n, at, latency_ms, response)
               VALUES (1, 1, 0, 1, ''), (2, 1, {day}, 1, ''), (2, 2, {}, 1, '');",
            3 * day
        ))
        .unwrap();
        sqlite(&conn).unwrap();
        let types: Vec<(String, String)> = conn
            .prepare("SELECT id, event_type FROM deliveries ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            types,
            [("d1".into(), "a.b".into()), ("d2".into(), "a.b".into())]
        );
        // Attempts of the last day before the newest get their webhook.
        let hooks: Vec<Option<String>> = conn
            .prepare("SELECT webhook_id FROM attempts ORDER BY delivery_seq, n")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(hooks, [None, None, Some("v".into())]);
    }
}
