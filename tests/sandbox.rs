//! Plugins end to end: scoping and reshaping through the real server, chain
//! semantics, `on_error` policies, and hostile plugins contained while other
//! webhooks keep delivering.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};

both_stores! {
    const FORM: &str = "a1b2c3d4-0000-4000-8000-000000000001";

    fn plugin(name: &str, on_error: &str, config: &str) -> String {
        format!(
            "  [[webhooks.plugins]]\n  name = \"{name}\"\n  on_error = \"{on_error}\"\n  config = {config}\n\n"
        )
    }

    fn fixture_json(name: &str) -> Value {
        serde_json::from_str(&fixture(name)).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn app_scope_delivers_only_the_app_and_records_why_others_were_filtered() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}{}",
            hook("scoped", &sub.url("/"), ""),
            plugin(
                "app_scope",
                "hold",
                &format!("{{ form_ids = [\"{FORM}\"] }}")
            )
        );
        let weir = Weir::start(&config, &[("app_scope", example_plugin("app_scope"))]).await;
        let mut other_app = fixture_json("record.create.json");
        other_app["id"] = json!("other-app");
        other_app["data"]["form_id"] = json!("ffffffff-0000-4000-8000-000000000009");
        let mut batch = vec![fixture_json("record.create.json"), other_app];
        for f in [
            "record.update.json",
            "form.create.json",
            "choice_list.update.json",
        ] {
            batch.push(fixture_json(f));
        }
        weir.send(&Value::Array(batch)).await;
        let rows = weir
            .wait_deliveries("webhook=scoped", |r| {
                r.len() == 5 && r.iter().all(|d| d["status"] != "pending")
            })
            .await;
        let status_of = |id: &str| rows.iter().find(|d| d["event_id"] == id).unwrap().clone();
        let original = fixture_json("record.create.json");
        assert_eq!(
            status_of(original["id"].as_str().unwrap())["status"],
            "delivered"
        );
        let filtered = status_of("other-app");
        assert_eq!(filtered["status"], "filtered");
        assert_eq!(
            filtered["reason"],
            "app_scope: form ffffffff-0000-4000-8000-000000000009 not in scope"
        );
        let choice = status_of(
            fixture_json("choice_list.update.json")["id"]
                .as_str()
                .unwrap(),
        );
        assert_eq!(choice["status"], "filtered");
        let delivered: Vec<&Value> = rows.iter().filter(|d| d["status"] == "delivered").collect();
        sub.wait_for(delivered.len()).await;
        // In scope and unchanged: the body is the default envelope.
        let got = sub.received();
        let first = got
            .iter()
            .find(|r| r.header("webhook-id") == original["id"])
            .unwrap();
        assert_eq!(first.json()["data"], original["data"]);
        weir.stop().await;
    }

    /// Cheap plugins run on the async worker under a short budget; a call
    /// that outlasts it (20 ms here) but not its deadline (250 ms) must be
    /// made again on a blocking thread and deliver, and so must the next.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_longer_than_the_inline_budget_still_delivers() {
        let sub = Receiver::start().await;
        let config = format!("{}{}", hook("slow", &sub.url("/slow"), ""), plugin("busy", "hold", "{ ms = 20 }"));
        let weir = Weir::start(&config, &[("busy", test_plugin("busy"))]).await;
        for id in ["evt_b1", "evt_b2"] {
            weir.send(&json!({"id": id, "type": "record.create", "data": {"n": 1}})).await;
        }
        let got = sub.wait_for(2).await;
        let mut ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        ids.sort();
        assert_eq!(ids, ["evt_b1", "evt_b2"]);
        assert!(got.iter().all(|r| r.json()["data"] == json!({"n": 1})));
        let rows = weir
            .wait_deliveries("webhook=slow", |r| {
                r.len() == 2 && r.iter().all(|d| d["status"] == "delivered")
            })
            .await;
        assert!(rows.iter().all(|d| d["attempts"] == 1), "{rows:?}");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_chain_scopes_reshapes_and_adds_headers() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}{}{}{}",
            hook("chat", &sub.url("/chat"), "events = [\"record.create\"]"),
            plugin(
                "app_scope",
                "hold",
                &format!("{{ form_ids = [\"{FORM}\"] }}")
            ),
            plugin(
                "reshape",
                "hold",
                "{ pick = [\"id\"], fields = { text = \"New {type} in form {data.form_id} by {data.created_by}\", n = 1 }, content_type = \"application/json; charset=utf-8\" }"
            ),
            plugin(
                "add_headers",
                "hold",
                "{ headers = { \"x-team\" = \"geo\" } }"
            ),
        );
        let plugins = [
            ("app_scope", example_plugin("app_scope")),
            ("reshape", example_plugin("reshape")),
            ("add_headers", example_plugin("add_headers")),
        ];
        let weir = Weir::start(&config, &plugins).await;
        weir.send(&fixture_json("record.create.json")).await;
        let got = sub.wait_for(1).await.remove(0);
        assert_eq!(
            std::str::from_utf8(&got.body).unwrap(),
            format!(
                r#"{{"id":"7d3c8f0e-2b1a-4c59-9a57-6f1e2d3c4b5a","n":1,"text":"New record.create in form {FORM} by Dana Field"}}"#
            )
        );
        assert_eq!(
            got.header("content-type"),
            "application/json; charset=utf-8"
        );
        assert_eq!(got.header("x-team"), "geo");
        assert_eq!(
            got.header("webhook-id"),
            "7d3c8f0e-2b1a-4c59-9a57-6f1e2d3c4b5a"
        );
        weir.stop().await;
    }

    /// Each hostile plugin on its own webhook with `on_error = "hold"`, beside a
    /// healthy webhook that must keep delivering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hostile_plugins_are_contained_and_others_keep_delivering() {
        let healthy = Receiver::start().await;
        let victim = Receiver::start().await;
        let dir = tempfile::tempdir().unwrap();
        let not_wasm = dir.path().join("not_wasm.wasm");
        std::fs::write(&not_wasm, b"this is not WebAssembly").unwrap();
        let core_module = dir.path().join("core_module.wasm");
        std::fs::write(&core_module, b"\0asm\x01\0\0\0").unwrap();
        let cases: Vec<(&str, PathBuf, &str)> = vec![
            (
                "spin_forever",
                test_plugin("spin_forever"),
                "exceeded its time limit of 250 ms",
            ),
            (
                "memory_bomb",
                test_plugin("memory_bomb"),
                "exceeded its memory limit of 32 MiB",
            ),
            (
                "trap",
                test_plugin("trap"),
                "wasm trap: wasm `unreachable` instruction executed; stderr: boom on e",
            ),
            (
                "returns_err",
                test_plugin("returns_err"),
                "returned err: refusing on purpose",
            ),
            (
                "bad_json",
                test_plugin("bad_json"),
                "body is not valid JSON",
            ),
            (
                "huge_body",
                test_plugin("huge_body"),
                "over the 4194304 byte limit",
            ),
            ("not_wasm", not_wasm, "not a WebAssembly component"),
            (
                "core_module",
                core_module,
                "a core WebAssembly module, not a component",
            ),
            (
                "wrong_world",
                test_plugin("wrong_world"),
                "does not export the weir:plugin `filter` world",
            ),
        ];
        let mut config = hook("healthy", &healthy.url("/"), "");
        let mut plugins = Vec::new();
        for (name, path, _) in &cases {
            config.push_str(&hook(
                &format!("h-{}", name.replace('_', "-")),
                &victim.url("/"),
                "",
            ));
            config.push_str(&plugin(name, "hold", "{}"));
            plugins.push((*name, path.clone()));
        }
        // Within the memory limit, over the body limit.
        config = config.replace(
            "name = \"huge_body\"\n  on_error = \"hold\"\n  config = {}",
            "name = \"huge_body\"\n  on_error = \"hold\"\n  config = { bytes = 5000000 }",
        );
        let plugins_ref: Vec<(&str, PathBuf)> = plugins.iter().map(|(n, p)| (*n, p.clone())).collect();
        // A generous deadline: this test runs ten sandboxes at once on a small machine.
        let config = format!(
            "{}[plugins]\ntimeout_ms = 250\nmemory_mb = 32\n\n{config}",
            preamble()
        );
        let weir = Weir::start_with(&config, &plugins_ref).await;
        weir.send(&events(10, "record.create", "o")).await;
        // The healthy webhook gets every event while the others fail.
        healthy.wait_for(10).await;
        for (name, _, expected) in &cases {
            let id = format!("h-{}", name.replace('_', "-"));
            let rows = weir
                .wait_deliveries(&format!("webhook={id}"), |r| {
                    r.len() == 10 && r.iter().all(|d| d["status"] == "held")
                })
                .await;
            // Plugins that burn their whole budget are benched after 5 in a row;
            // the rest of their deliveries are held without running them.
            let costly = matches!(*name, "spin_forever" | "memory_bomb");
            let mut ran = 0;
            for row in &rows {
                let reason = row["reason"].as_str().unwrap();
                assert!(
                    reason.starts_with(&format!("plugin {name} failed")),
                    "{name}: {reason}"
                );
                if reason.contains(expected) {
                    ran += 1;
                } else {
                    assert!(costly && reason.contains("benched"), "{name}: {reason}");
                }
            }
            assert!(ran >= if costly { 5 } else { 10 }, "{name}: {ran} ran");
        }
        assert_eq!(
            victim.count(),
            0,
            "nothing from a failing plugin reaches a subscriber"
        );
        // Broken files show as failed plugins with their error.
        let (_, states) = weir.get("/v1/plugins").await;
        let state = |n: &str| {
            states["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == n)
                .unwrap()
                .clone()
        };
        assert_eq!(state("not_wasm")["state"], "failed");
        assert_eq!(state("trap")["state"], "ready");
        assert_eq!(state("trap")["sha256"].as_str().unwrap().len(), 64);
        // Still healthy afterwards.
        weir.send(&json!({"id": "after", "type": "a.b", "data": 1}))
            .await;
        healthy.wait_for(11).await;
        // The healthy webhook's delivery says nothing about spin_forever's:
        // its call for "after" is counted once that delivery is held.
        weir.wait_deliveries("webhook=h-spin-forever", |r| {
            r.len() == 11 && r.iter().all(|d| d["status"] == "held")
        })
        .await;
        let text = weir.metrics().await;
        let calls = |result: &str| -> u64 {
            let key =
                format!("weir_plugin_calls_total{{plugin=\"spin_forever\",result=\"{result}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&key))
                .map_or(0, |n| n.parse().unwrap())
        };
        // 11 events in all (the 10, then "after"); at least 5 ran out of time.
        assert!(calls("failure") >= 5, "{text}");
        assert_eq!(calls("failure") + calls("benched"), 11, "{text}");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_error_skip_filters_and_pass_continues_unchanged() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}{}{}{}",
            hook("skip", &sub.url("/skip"), ""),
            plugin("trap", "skip", "{}"),
            hook("pass", &sub.url("/pass"), ""),
            plugin("trap", "pass", "{}"),
        ) + &plugin("echo_config", "hold", "{ said = \"hi\" }");
        let weir = Weir::start(
            &config,
            &[
                ("trap", test_plugin("trap")),
                ("echo_config", test_plugin("echo_config")),
            ],
        )
        .await;
        weir.send(&json!({"id": "e1", "type": "a.b", "data": 1}))
            .await;
        let rows = weir
            .wait_deliveries("webhook=skip", |r| {
                r.len() == 1 && r[0]["status"] == "filtered"
            })
            .await;
        assert!(
            rows[0]["reason"]
                .as_str()
                .unwrap()
                .contains("plugin trap failed: wasm trap")
        );
        // `pass` carries on to the next plugin, which sees its config as JSON.
        let got = sub.wait_for(1).await.remove(0);
        assert_eq!(got.path, "/pass");
        assert_eq!(std::str::from_utf8(&got.body).unwrap(), r#"{"said":"hi"}"#);
        assert_eq!(got.header("x-plugin"), "echo_config");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_delivery_replays_through_the_fixed_plugin() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}{}",
            hook("fixme", &sub.url("/"), ""),
            plugin("flaky", "hold", "{}")
        );
        let weir = Weir::start(&config, &[("flaky", test_plugin("trap"))]).await;
        weir.send(&json!({"id": "held1", "type": "a.b", "data": 1}))
            .await;
        let rows = weir
            .wait_deliveries("webhook=fixme", |r| {
                r.len() == 1 && r[0]["status"] == "held"
            })
            .await;
        // The admin fixes the plugin: a new file lands in plugins/.
        let tmp = weir.path("plugins/.flaky.wasm.part");
        std::fs::copy(test_plugin("versioned_v2"), &tmp).unwrap();
        std::fs::rename(&tmp, weir.path("plugins/flaky.wasm")).unwrap();
        eventually("fixed plugin loaded", async || {
            let (_, s) = weir.get("/v1/plugins").await;
            let p = s["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "flaky")
                .cloned()?;
            (!p["sha256"].as_str()?.is_empty() && p["loaded_at"].is_string() && p["error"].is_null())
                .then_some(())?;
            Some(())
        })
        .await;
        // Wait until the new version is the one registered (its hash changes).
        let want = sha256_hex(&std::fs::read(test_plugin("versioned_v2")).unwrap());
        eventually("new hash", async || {
            let (_, s) = weir.get("/v1/plugins").await;
            s["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "flaky" && p["sha256"] == want.as_str())
                .then_some(())
        })
        .await;
        // A small plugin loads on Cranelift at once: no Winch tier for it.
        let (_, s) = weir.get("/v1/plugins").await;
        let flaky = s["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "flaky");
        assert_eq!(flaky.unwrap()["compiler"], "cranelift", "{s}");
        let (status, _) = weir
            .post(
                &format!("/v1/deliveries/{}/replay", rows[0]["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(status, 202);
        let got = sub.wait_for(1).await.remove(0);
        assert_eq!(got.header("x-plugin-version"), "2");
        weir.stop().await;
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cli_plugin_run_and_check() {
        let weir_bin = env!("CARGO_BIN_EXE_weir");
        let event =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/events/record.create.json");
        let run = |args: &[&str]| {
            std::process::Command::new(weir_bin)
                .args(args)
                .output()
                .unwrap()
        };
        let out = run(&[
            "plugin",
            "run",
            example_plugin("app_scope").to_str().unwrap(),
            "--event",
            event.to_str().unwrap(),
            "--config",
            "{\"form_ids\": [\"nope\"]}",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("verdict: drop")
                && stdout.contains(&format!("reason: form {FORM} not in scope")),
            "{stdout}"
        );
        assert!(stdout.contains("time: "), "{stdout}");
        let out = run(&[
            "plugin",
            "run",
            example_plugin("add_headers").to_str().unwrap(),
            "--event",
            event.to_str().unwrap(),
            "--config",
            "{\"headers\": {\"x-a\": \"1\"}}",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("log: info: adding x-a to 7d3c8f0e"),
            "{stdout}"
        );
        assert!(
            stdout.contains("header: x-a: 1") && stdout.contains("verdict: deliver"),
            "{stdout}"
        );
        let out = run(&[
            "plugin",
            "run",
            test_plugin("spin_forever").to_str().unwrap(),
            "--event",
            event.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("exceeded its time limit"), "{stdout}");
        assert_eq!(out.status.code(), Some(1));

        // `weir check` on the example config passes; a broken plugin fails it with one line.
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = run(&[
            "check",
            "--config",
            root.join("config.toml").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = common::tempdir();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        std::fs::copy(
            test_plugin("wrong_world"),
            dir.path().join("plugins/ww.wasm"),
        )
        .unwrap();
        let check = |config: &str| {
            write_config(dir.path(), config);
            run(&[
                "check",
                "--config",
                dir.path().join("config.toml").to_str().unwrap(),
            ])
        };
        let with_plugin = "[[webhooks]]\nid = \"a\"\nurl = \"https://example.com\"\n[[webhooks.plugins]]\nname = \"ww\"\n";
        let out = check(&format!(
            "{with_plugin}[[webhooks]]\nid = \"a\"\nurl = \"x\"\n"
        ));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("config.toml:7: webhooks[1].id: duplicate")),
            "{stderr}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("config.toml:8: webhooks[1].url")),
            "{stderr}"
        );
        // With the config fixed, the plugin problem is reported.
        let out = check(with_plugin);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "plugin \"ww\" cannot be loaded: does not export the weir:plugin `filter` world"
            ),
            "{stderr}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plugin_that_keeps_running_out_of_time_is_benched() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}[plugins]\ntimeout_ms = 100\n\n{}{}",
            preamble(),
            hook("spin", &sub.url("/"), "max_in_flight = 1"),
            plugin("spin_forever", "hold", "{}")
        );
        let weir = Weir::start_with(&config, &[("spin_forever", test_plugin("spin_forever"))]).await;
        weir.send(&events(8, "record.create", "o")).await;
        let rows = weir
            .wait_deliveries("webhook=spin", |r| {
                r.len() == 8 && r.iter().all(|d| d["status"] == "held")
            })
            .await;
        let benched = rows
            .iter()
            .filter(|d| {
                d["reason"]
                    .as_str()
                    .unwrap()
                    .contains("benched: it ran out of time or memory 5 times in a row")
            })
            .count();
        // One at a time: exactly five ran into the deadline, the other three
        // were held without running.
        assert_eq!(benched, 3, "{rows:?}");
        let text = weir.metrics().await;
        assert!(
            text.contains("weir_plugin_calls_total{plugin=\"spin_forever\",result=\"failure\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("weir_plugin_calls_total{plugin=\"spin_forever\",result=\"benched\"} 3"),
            "{text}"
        );
        assert_eq!(sub.count(), 0);
        weir.stop().await;
    }
}
