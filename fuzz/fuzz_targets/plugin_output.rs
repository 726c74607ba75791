//! Anything a plugin can return: the host either rejects it as a plugin
//! failure or turns it into request headers without panicking, and the
//! Standard Webhooks headers always stay weir's own.
#![no_main]

use std::path::Path;
use std::sync::{Arc, LazyLock};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use weir::config::{Config, Webhook};
use weir::deliver::http::build_headers;
use weir::plugin::check_output;

#[derive(Debug, Arbitrary)]
struct Output {
    body: String,
    headers: Vec<(String, String)>,
    event_id: String,
}

static HOOK: LazyLock<Arc<Webhook>> = LazyLock::new(|| {
    let text = r#"
[server]
plugins_dir = "."
[[webhooks]]
id = "fuzz"
url = "https://example.com/hook"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
headers = { "x-static" = "1" }
"#;
    let config = Config::parse(Path::new("/nonexistent/config.toml"), text).expect("valid");
    config.webhooks[0].clone()
});

fuzz_target!(|out: Output| {
    let Ok(rendered) = check_output(out.body, out.headers) else {
        return;
    };
    let headers = build_headers(&HOOK, &out.event_id, &rendered, 1_763_900_000, 0);
    assert_eq!(headers.get_all("webhook-signature").iter().count(), 1);
    assert_eq!(headers.get_all("webhook-timestamp").iter().count(), 1);
    assert_eq!(headers.get_all("webhook-id").iter().count(), 1);
    assert!(headers.get("content-length").is_none());
});
