//! `add_headers`: add fixed headers to the delivery, and say so in the log.
//!
//! Config: `{"headers": {"x-team": "geo", ...}}`. Shows the two things a
//! plugin can do besides the body: add request headers and call `host.log`.

use std::collections::BTreeMap;

use serde::Deserialize;

wit_bindgen::generate!({ path: "../../wit", world: "filter" });

use weir::plugin::host::{Level, log};

struct AddHeaders;

#[derive(Deserialize)]
struct Config {
    headers: BTreeMap<String, String>,
}

impl Guest for AddHeaders {
    fn handle(event: Event, mut request: Request, config: String) -> Result<Verdict, String> {
        let config: Config = serde_json::from_str(&config)
            .map_err(|e| format!("config must be {{\"headers\": {{name: value}}}}: {e}"))?;
        let names: Vec<&str> = config.headers.keys().map(String::as_str).collect();
        log(Level::Info, &format!("adding {} to {}", names.join(", "), event.id));
        request.headers.extend(config.headers.clone());
        Ok(Verdict::Deliver(request))
    }
}

export!(AddHeaders);
