//! Versioned schema migrations. Each file in `migrations/` is applied once,
//! in order, and the database records the last one applied (SQLite's
//! `user_version`). A database newer than this binary is refused rather than
//! written to by code that does not know its shape.

use rusqlite::Connection;

use super::StoreError;

/// `(version, SQL)`, in order.
const SQLITE: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_webhooks_tokens.sql")),
];

/// The schema version this binary writes.
pub fn latest() -> u32 {
    SQLITE.last().map_or(0, |(v, _)| *v)
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
}
