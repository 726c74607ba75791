//! `[store]`: which backend keeps events, deliveries and the catalog.
//!
//! SQLite in `server.data_dir` is the default; PostgreSQL lets several weir
//! nodes share one database. A database URL may carry a password, so it is
//! only ever shown with the password masked.

use std::fmt;

use super::raw::RawStore;

#[derive(Debug, Clone, PartialEq)]
pub enum StoreConfig {
    /// The embedded file `server.data_dir/weir.db`.
    Sqlite,
    Postgres {
        url: DatabaseUrl,
        pool_size: usize,
        /// How long a claimed delivery stays a node's without renewal: how
        /// soon a dead node's work is picked up by the others.
        lease: std::time::Duration,
    },
}

/// A `postgres://` URL. `Display` and `Debug` mask its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    let _ = u.set_password(Some("***"));
                }
                // libpq also takes `?password=...`.
                if u.query().is_some() {
                    let pairs: Vec<(String, String)> = u
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k.eq_ignore_ascii_case("password") {
                                "***".to_owned()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    u.query_pairs_mut().clear().extend_pairs(pairs);
                }
                f.write_str(u.as_str())
            }
            // Not a URL (a key=value string, say): show nothing of it.
            Err(_) => f.write_str("<database url>"),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Resolves `[store]`; `env_url` is `WEIR_DATABASE_URL`, used when the file
/// names no URL. Problems come back as `(key, message)`.
pub fn resolve(
    raw: RawStore,
    env_url: Option<String>,
) -> Result<StoreConfig, (&'static str, String)> {
    match raw.backend.as_str() {
        "sqlite" => Ok(StoreConfig::Sqlite),
        "postgres" => {
            let url = Some(raw.url)
                .filter(|u| !u.is_empty())
                .or(env_url.filter(|u| !u.is_empty()))
                .ok_or((
                    "store.url",
                    "backend \"postgres\" needs a url (or WEIR_DATABASE_URL)".to_owned(),
                ))?;
            let shown = DatabaseUrl(url.clone()).to_string();
            match url::Url::parse(&url) {
                Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") => {}
                _ => {
                    return Err((
                        "store.url",
                        format!("{shown} is not a postgres://user:password@host:port/database URL"),
                    ));
                }
            }
            if raw.pool_size == 0 {
                return Err(("store.pool_size", "must be at least 1".into()));
            }
            if !(2..=3600).contains(&raw.lease_secs) {
                return Err(("store.lease_secs", "must be between 2 and 3600".into()));
            }
            Ok(StoreConfig::Postgres {
                url: DatabaseUrl(url),
                pool_size: raw.pool_size,
                lease: std::time::Duration::from_secs(raw.lease_secs),
            })
        }
        other => Err((
            "store.backend",
            format!("{other:?} is not a backend: use \"sqlite\" or \"postgres\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(backend: &str, url: &str) -> RawStore {
        RawStore {
            backend: backend.into(),
            url: url.into(),
            pool_size: 4,
            lease_secs: 30,
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let url = DatabaseUrl("postgres://weir:hunter2@db:5432/weir".into());
        assert_eq!(url.to_string(), "postgres://weir:***@db:5432/weir");
        assert!(!format!("{url:?}").contains("hunter2"));
        let url = DatabaseUrl("postgres://weir@db/weir?sslmode=disable&password=hunter2".into());
        assert!(!url.to_string().contains("hunter2"), "{url}");
        assert!(url.to_string().contains("sslmode=disable"), "{url}");
        let e = resolve(raw("postgres", "mysql://weir:hunter2@db/weir"), None).unwrap_err();
        assert!(!e.1.contains("hunter2"), "{}", e.1);
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let c = resolve(
            raw("postgres", "postgres://a@h/x"),
            Some("postgres://b@h/y".into()),
        );
        assert!(
            matches!(c, Ok(StoreConfig::Postgres { url, .. }) if url.expose() == "postgres://a@h/x")
        );
        let c = resolve(raw("postgres", ""), Some("postgres://b@h/y".into()));
        assert!(
            matches!(c, Ok(StoreConfig::Postgres { url, .. }) if url.expose() == "postgres://b@h/y")
        );
        assert_eq!(
            resolve(raw("postgres", ""), None).unwrap_err().0,
            "store.url"
        );
        assert_eq!(
            resolve(raw("mongo", ""), None).unwrap_err().0,
            "store.backend"
        );
        assert_eq!(
            resolve(raw("sqlite", ""), Some("postgres://b@h/y".into())),
            Ok(StoreConfig::Sqlite)
        );
    }
}
