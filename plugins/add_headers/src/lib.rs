//! `add_headers`: adds fixed headers to the request and delivers it; a small
//! example of the `host.log` import.
//!
//! Config:
//! - `headers` (required): an object of header name to string value, for
//!   example `{"x-team": "geo"}`. A header the request already has (names
//!   compare case-insensitively) is replaced; the others are appended.
//!
//! Each call logs, at `info`, which headers it set on which event
//! (`adding x-team to evt_1`). A config that is not JSON, lacks `headers`,
//! or holds a value that is not a string, or a name or value that HTTP does
//! not allow, is an `err`.

use std::collections::BTreeMap;

use serde::Deserialize;

wit_bindgen::generate!({ path: "../../wit", world: "filter" });

use weir::plugin::host::{Level, log};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Sorted by name, so the log line and the header order are stable.
    headers: BTreeMap<String, String>,
}

struct AddHeaders;

impl Guest for AddHeaders {
    fn handle(event: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        let config: Config = serde_json::from_str(&config).map_err(|e| format!("add_headers config: {e}"))?;
        for (name, value) in &config.headers {
            check(name, value)?;
        }
        let mut names = Vec::with_capacity(config.headers.len());
        for (name, value) in config.headers {
            request.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            names.push(name.clone());
            request.headers.push((name, value));
        }
        if names.is_empty() {
            log(Level::Info, &format!("no headers configured; {} unchanged", event.id));
        } else {
            log(Level::Info, &format!("adding {} to {}", names.join(", "), event.id));
        }
        Ok(Verdict::Deliver(request))
    }
}

/// Rejects what the HTTP client would refuse later, naming the culprit now.
fn check(name: &str, value: &str) -> Result<(), String> {
    // RFC 9110 token characters.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("add_headers config: {name:?} is not a valid header name"));
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(format!("add_headers config: the value of {name} contains a line break or NUL"));
    }
    Ok(())
}

export!(AddHeaders);

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn header_names_and_values_are_checked() {
        assert!(check("x-team", "geo").is_ok());
        assert!(check("X-Api-Key", "a b; c=d").is_ok());
        assert!(check("", "v").is_err());
        assert!(check("x team", "v").is_err());
        assert!(check("x-team:", "v").is_err());
        assert!(check("x-team", "a\r\nb: c").is_err());
    }
}
