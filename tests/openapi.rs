//! The OpenAPI document against the live server, checked by a real OpenAPI
//! fuzzer (schemathesis, from PyPI; `.ci/run` installs it): every operation
//! it describes is called with generated valid and invalid input, and every
//! answer must be a non-5xx that matches the document. Bounded in time.

mod common;

use std::process::Command;

use common::{Receiver, Weir, both_stores, hook, preamble};

both_stores! {
    const ADMIN: &str = "admin-secret";

    fn schemathesis() -> Option<String> {
        ["schemathesis", "st"].into_iter().find_map(|bin| {
            Command::new(bin)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|_| bin.to_owned())
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_live_api_matches_its_openapi_document_under_fuzzing() {
        let Some(bin) = schemathesis() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "schemathesis is not installed; .ci/run installs it"
            );
            eprintln!("SKIPPED: schemathesis is not installed (pip install schemathesis)");
            return;
        };
        let sub = Receiver::start().await;
        let config = preamble().replace(
            "[server]\n",
            &format!("[server]\nadmin_token = \"{ADMIN}\"\n"),
        ) + &hook("cfg", &sub.url("/"), "owners = [\"org_a\"]");
        let weir = Weir::start_with(&config, &[]).await;
        let (status, doc) = weir.get("/v1/openapi.json").await;
        assert_eq!(status, 200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
        let url = format!("{}/v1/openapi.json", weir.url);
        let seconds = std::env::var("WEIR_FUZZ_SECONDS").unwrap_or_else(|_| "60".into());
        let out = tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args(["run", &url, "--checks", "all", "--workers", "1"])
                // Valid by the schema is not always valid: a URL must reach a global
                // address, a plugin must exist. Everything else is checked.
                .args(["--exclude-checks", "positive_data_acceptance"])
                .args(["--max-time", &seconds, "--request-timeout", "10"])
                .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
                .args(["--suppress-health-check", "all", "--no-color"])
                .env("SCHEMATHESIS_HOOKS", "")
                .output()
                .expect("schemathesis runs")
        })
        .await
        .unwrap();
        let report = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{report}");
        assert!(
            out.status.success(),
            "schemathesis found problems:\n{report}"
        );
        weir.stop().await;
    }
}
