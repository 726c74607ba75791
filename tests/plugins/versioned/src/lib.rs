//! `versioned`: a plugin whose version is chosen when it is built, for
//! reload tests. Build with `WEIR_TEST_PLUGIN_VERSION=<V>` (default `1`).
//!
//! Delivers the request unchanged but for the added header
//! `x-plugin-version: <V>`, so a test can tell which build handled an event.
//! An event whose `data.drop_if_version` equals `<V>` is dropped instead, with
//! the reason `version <V> drops`.

use std::borrow::Cow;

use serde::Deserialize;

wit_bindgen::generate!({ path: "../../../wit", world: "filter" });

const VERSION: &str = match option_env!("WEIR_TEST_PLUGIN_VERSION") {
    Some(v) => v,
    None => "1",
};

/// The one field of `data` this plugin reads.
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow, default)]
    drop_if_version: Option<Cow<'a, str>>,
}

struct Versioned;

impl Guest for Versioned {
    fn handle(event: Event, mut request: Request, _config: String) -> Result<Verdict, String> {
        let data: Option<Data> =
            if event.data.trim_start().starts_with('{') { serde_json::from_str(&event.data).ok() } else { None };
        if data.and_then(|d| d.drop_if_version).as_deref() == Some(VERSION) {
            return Ok(Verdict::Drop(format!("version {VERSION} drops")));
        }
        request.headers.push(("x-plugin-version".into(), VERSION.into()));
        Ok(Verdict::Deliver(request))
    }
}

export!(Versioned);
