//! Any config text: the loader answers a config or a list of problems, each
//! naming the file, never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use weir::config::Config;

fuzz_target!(|text: &str| {
    let path = Path::new("/nonexistent/weir-fuzz/config.toml");
    match Config::parse(path, text) {
        Ok(config) => {
            for hook in &config.webhooks {
                // A glob that validated must be usable on any type.
                let _ = hook.wants("record.create", Some("org_1"));
            }
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "an error names at least one problem");
            for p in &e.problems {
                assert!(p.contains("config.toml"), "problem without the file: {p}");
            }
        }
    }
});
