//! `huge_body`: delivers a body of exactly `bytes` bytes (config, default
//! 8 MiB) that is valid JSON: one string of `x`s. Lets tests probe weir's
//! limit on plugin output.
//!
//! Config: `{"bytes": N}`, optional; below 2 it is taken as 2 (`""`).

use serde::Deserialize;

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

const DEFAULT_BYTES: usize = 8 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    bytes: Option<usize>,
}

struct HugeBody;

impl Guest for HugeBody {
    fn handle(_event: Event, request: Request, config: String) -> Result<Verdict, String> {
        let config: Config = serde_json::from_str(&config).map_err(|e| format!("huge_body config: {e}"))?;
        let len = config.bytes.unwrap_or(DEFAULT_BYTES).max(2);
        let mut body = String::with_capacity(len);
        body.push('"');
        body.extend(std::iter::repeat_n('x', len - 2));
        body.push('"');
        Ok(Verdict::Deliver(Request { body, headers: request.headers }))
    }
}

export!(HugeBody);
