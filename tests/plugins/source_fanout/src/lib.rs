//! `source_fanout`: a source plugin that makes as many events as the body
//! asks for, so tests can check what weir hands over and takes back.
//!
//! The body is `{"n": N, "type": "x.y"}`. The answer is N events of that
//! type; event `i` (from 0) has id `"{i}"` and data
//! `{"i": i, "method": ..., "path": ..., "query": ..., "header": ..., "config": ...}`:
//! the request's method, path and query, the value of its `x-test` header
//! (lossily decoded, `null` when absent) and the config, parsed. It logs
//! `fanning out N` at `info`. A body it cannot read is an `err`.

use serde::Deserialize;
use serde_json::{Value, json};

wit_bindgen::generate!({ path: "../../../wit", world: "source" });

use weir::plugin::host::{Level, log};

#[derive(Deserialize)]
struct Ask {
    n: u32,
    #[serde(rename = "type")]
    event_type: String,
}

struct Fanout;

impl Guest for Fanout {
    fn map_request(request: Incoming, config: String) -> Result<Vec<EventDraft>, String> {
        let ask: Ask = serde_json::from_slice(&request.body).map_err(|e| format!("fanout body: {e}"))?;
        let config: Value = serde_json::from_str(&config).map_err(|e| format!("fanout config: {e}"))?;
        let header = request
            .headers
            .iter()
            .find(|(name, _)| name == "x-test")
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned());
        log(Level::Info, &format!("fanning out {}", ask.n));
        Ok((0..ask.n)
            .map(|i| EventDraft {
                id: Some(i.to_string()),
                event_type: ask.event_type.clone(),
                owner_id: None,
                data: json!({
                    "i": i,
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "header": header,
                    "config": config,
                })
                .to_string(),
                occurred_at: None,
            })
            .collect())
    }
}

export!(Fanout);
