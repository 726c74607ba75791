//! Live reload: config.toml edits and plugin files changing under a running
//! weir, with nothing lost.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

both_stores! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhooks_are_added_removed_and_deactivated_by_editing_config() {
        let (a, b) = (Receiver::start().await, Receiver::start().await);
        let weir = Weir::start(&hook("a", &a.url("/"), ""), &[]).await;
        weir.send(&json!({"id": "1", "type": "x.y", "data": 1}))
            .await;
        a.wait_for(1).await;

        // Add b.
        weir.rewrite_config(&format!(
            "{}{}{}",
            preamble(),
            hook("a", &a.url("/"), ""),
            hook("b", &b.url("/"), "")
        ));
        eventually("b configured", async || {
            let (s, _) = weir.get("/v1/webhooks/b").await;
            (s == 200).then_some(())
        })
        .await;
        weir.send(&json!({"id": "2", "type": "x.y", "data": 1}))
            .await;
        a.wait_for(2).await;
        b.wait_for(1).await;

        // Deactivate b while it is failing: its pending deliveries are canceled.
        b.always(Reply::Status(500));
        let slow_retry = "events = [\"x.*\"]\nretry_delays_secs = [3600]";
        weir.rewrite_config(&format!(
            "{}{}{}",
            preamble(),
            hook("a", &a.url("/"), ""),
            hook("b", &b.url("/"), slow_retry)
        ));
        eventually("b retrying slowly", async || {
            let (_, v) = weir.get("/v1/webhooks/b").await;
            (v["events"][0] == "x.*").then_some(())
        })
        .await;
        weir.send(&json!({"id": "3", "type": "x.y", "data": 1}))
            .await;
        weir.wait_deliveries("webhook=b&status=retrying", |r| r.len() == 1)
            .await;
        weir.rewrite_config(&format!(
            "{}{}{}",
            preamble(),
            hook("a", &a.url("/"), ""),
            hook("b", &b.url("/"), "active = false")
        ));
        weir.wait_deliveries("webhook=b&status=canceled", |r| r.len() == 1)
            .await;
        weir.send(&json!({"id": "4", "type": "x.y", "data": 1}))
            .await;
        a.wait_for(4).await;
        let (_, log) = weir.get("/v1/deliveries?event=4").await;
        assert_eq!(
            log["deliveries"].as_array().unwrap().len(),
            1,
            "inactive b got no delivery: {log}"
        );

        // Remove a: it stops receiving.
        weir.rewrite_config(&format!(
            "{}{}",
            preamble(),
            hook("b", &b.url("/"), "active = false")
        ));
        eventually("a removed", async || {
            let (s, _) = weir.get("/v1/webhooks/a").await;
            (s == 404).then_some(())
        })
        .await;
        weir.send(&json!({"id": "5", "type": "x.y", "data": 1}))
            .await;
        // Routing happens at ingest: no delivery was made, so none is sent.
        assert!(weir.all_deliveries("event=5").await.is_empty());
        assert_eq!(a.count(), 4);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_config_is_rejected_and_the_old_one_keeps_running() {
        let a = Receiver::start().await;
        let good = format!("{}{}", preamble(), hook("a", &a.url("/"), ""));
        let weir = Weir::start_with(&good, &[]).await;
        weir.rewrite_config(&format!(
            "{good}[[webhooks]]\nid = \"a\"\nurl = \"nope\"\ncolour = \"red\"\n"
        ));
        let err = eventually("reload error visible", async || {
            let (_, v) = weir.get("/v1/webhooks").await;
            v["config"]["last_reload_error"].as_str().map(str::to_owned)
        })
        .await;
        assert!(
            err.contains("config.toml:") && err.contains("colour"),
            "{err}"
        );
        // Still serving with the old config.
        weir.send(&json!({"id": "still", "type": "x.y", "data": 1}))
            .await;
        a.wait_for(1).await;
        let (_, v) = weir.get("/v1/webhooks").await;
        assert_eq!(v["webhooks"].as_array().unwrap().len(), 1);
        // A later good edit clears the error.
        weir.rewrite_config(&format!("{good}{}", hook("b", &a.url("/b"), "")));
        eventually("reload applied", async || {
            let (_, v) = weir.get("/v1/webhooks").await;
            (v["webhooks"].as_array().unwrap().len() == 2 && v["config"]["last_reload_error"].is_null())
                .then_some(())
        })
        .await;
        let text = weir.metrics().await;
        assert!(
            text.contains("weir_reloads_total{kind=\"config\",result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weir_reloads_total{kind=\"config\",result=\"ok\"} 1"),
            "{text}"
        );
        weir.stop().await;
    }

    fn plugin_step(name: &str, on_error: &str) -> String {
        format!("  [[webhooks.plugins]]\n  name = \"{name}\"\n  on_error = \"{on_error}\"\n\n")
    }

    /// Puts `src` at `plugins/<name>.wasm`, by rename-over or by rewriting the
    /// file in place in several chunks, as deploy tools and editors do.
    fn land(weir: &Weir, name: &str, src: &std::path::Path, in_place: bool) {
        use std::io::Write as _;
        let dest = weir.path(&format!("plugins/{name}.wasm"));
        let bytes = std::fs::read(src).unwrap();
        if in_place {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&dest)
                .unwrap();
            for chunk in bytes.chunks(bytes.len() / 3 + 1) {
                f.write_all(chunk).unwrap();
                f.flush().unwrap();
            }
        } else {
            let tmp = weir.path(&format!("plugins/.{name}.wasm.tmp"));
            std::fs::write(&tmp, &bytes).unwrap();
            std::fs::rename(&tmp, &dest).unwrap();
        }
    }

    fn sha256_hex(path: &std::path::Path) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
    }

    async fn loaded_sha(weir: &Weir, name: &str) -> Option<String> {
        let (_, s) = weir.get("/v1/plugins").await;
        s["plugins"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["sha256"]
            .as_str()
            .map(str::to_owned)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replacing_a_plugin_20_times_under_load_loses_and_mixes_nothing() {
        let sub = Receiver::start().await;
        // The same plugin twice in one chain: both calls must be the same version.
        let config = format!(
            "{}{}{}",
            hook("v", &sub.url("/"), "max_in_flight = 8"),
            plugin_step("versioned", "hold"),
            plugin_step("versioned", "hold")
        );
        let versions = [
            test_plugin("versioned"),
            test_plugin("versioned_v2"),
            test_plugin("versioned_v3"),
        ];
        let weir = Weir::start(&config, &[("versioned", versions[0].clone())]).await;
        let client = reqwest::Client::new();
        let url = format!("{}/v1/events", weir.url);
        // Producer: 2,000 events in batches of 20; each asks version "2" to drop it.
        let producer = tokio::spawn(async move {
            let mut ids = Vec::new();
            for b in 0..100 {
                let batch: Vec<serde_json::Value> = (0..20)
                    .map(|i| json!({"id": format!("hr{}", b * 20 + i), "type": "x.y", "data": {"drop_if_version": "2"}}))
                    .collect();
                let r = client.post(&url).json(&batch).send().await.unwrap();
                assert_eq!(r.status(), 202);
                ids.extend((0..20).map(|i| format!("hr{}", b * 20 + i)));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ids
        });
        let mut latencies = Vec::new();
        for swap in 0..20 {
            let src = &versions[(swap + 1) % 3];
            let want = sha256_hex(src);
            let landed = std::time::Instant::now();
            land(&weir, "versioned", src, swap % 2 == 1);
            eventually("new version in effect", async || {
                (loaded_sha(&weir, "versioned").await? == want).then_some(())
            })
            .await;
            latencies.push(landed.elapsed());
        }
        let ids = producer.await.unwrap();
        let rows = weir
            .wait_deliveries("webhook=v", |r| {
                r.len() == ids.len()
                    && r.iter()
                        .all(|d| d["status"] == "delivered" || d["status"] == "filtered")
            })
            .await;
        let filtered: Vec<&serde_json::Value> =
            rows.iter().filter(|d| d["status"] == "filtered").collect();
        for d in &filtered {
            assert_eq!(d["reason"], "versioned: version 2 drops");
        }
        let delivered = ids.len() - filtered.len();
        let got = sub.wait_for(delivered).await;
        let mut seen = std::collections::HashSet::new();
        for r in &got {
            let tags: Vec<&str> = r
                .headers
                .get_all("x-plugin-version")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(tags.len(), 2, "both chain steps ran: {tags:?}");
            assert_eq!(
                tags[0], tags[1],
                "an event was handled by a mix of versions: {tags:?}"
            );
            assert_ne!(tags[0], "2", "version 2 would have dropped it");
            seen.insert(r.header("webhook-id").to_owned());
        }
        assert_eq!(seen.len(), delivered, "every delivered event arrived");
        assert_eq!(filtered.len() + seen.len(), ids.len(), "none lost");
        latencies.sort();
        eprintln!(
            "plugin reload, file landed -> new version in effect: median {:?}, max {:?} over 20 swaps; {} delivered, {} filtered by v2",
            latencies[10],
            latencies[19],
            seen.len(),
            filtered.len()
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_plugin_is_rejected_and_a_deleted_one_follows_on_error() {
        let sub = Receiver::start().await;
        let config = format!(
            "{}{}",
            hook("p", &sub.url("/"), ""),
            plugin_step("versioned", "hold")
        );
        let weir = Weir::start(&config, &[("versioned", test_plugin("versioned"))]).await;
        let good = sha256_hex(&test_plugin("versioned"));
        eventually("loaded", async || {
            (loaded_sha(&weir, "versioned").await? == good).then_some(())
        })
        .await;
        // A broken file: rejected, the previous version keeps serving.
        let broken = weir.path("broken.wasm");
        std::fs::write(&broken, b"\0asm\x0d\0\x01\0garbage").unwrap();
        land(&weir, "versioned", &broken, false);
        let error = eventually("rejection recorded", async || {
            let (_, s) = weir.get("/v1/plugins").await;
            s["plugins"][0]["error"].as_str().map(str::to_owned)
        })
        .await;
        assert!(error.contains("does not compile"), "{error}");
        let (_, s) = weir.get("/v1/plugins").await;
        assert_eq!(
            s["plugins"][0]["sha256"],
            good.as_str(),
            "still the good version"
        );
        assert_eq!(s["plugins"][0]["state"], "ready");
        weir.send(&json!({"id": "b1", "type": "x.y", "data": {}}))
            .await;
        assert_eq!(sub.wait_for(1).await[0].header("x-plugin-version"), "1");
        // Deleted: webhooks that name it hold their deliveries.
        std::fs::remove_file(weir.path("plugins/versioned.wasm")).unwrap();
        eventually("unloaded", async || {
            loaded_sha(&weir, "versioned").await.is_none().then_some(())
        })
        .await;
        weir.send(&json!({"id": "b2", "type": "x.y", "data": {}}))
            .await;
        let rows = weir
            .wait_deliveries("webhook=p&status=held", |r| r.len() == 1)
            .await;
        assert!(
            rows[0]["reason"].as_str().unwrap().contains("not loaded"),
            "{}",
            rows[0]
        );
        let text = weir.metrics().await;
        assert!(
            text.contains("weir_reloads_total{kind=\"plugin\",result=\"error\"} 1"),
            "{text}"
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trace_log_beside_the_config_does_not_feed_the_watcher() {
        let sub = Receiver::start().await;
        let dir = common::tempdir();
        write_config(
            dir.path(),
            &format!("{}{}", preamble(), hook("a", &sub.url("/"), "")),
        );
        // Every line weir logs is a change in the directory it watches.
        let log = dir.path().join("weir.log");
        let weir = common::process::spawn_logging_to(dir.path(), &log, |cmd| {
            cmd.env("WEIR_LOG", "trace");
        });
        let r = reqwest::Client::new()
            .post(format!("{}/v1/events", weir.url))
            .json(&json!({"id": "traced", "type": "x.y", "data": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        sub.wait_for(1).await;
        let status = weir.terminate_within(weir::commands::EXIT_DEADLINE).await;
        assert!(status.success(), "{status:?}");
        // The log's own changes were ignored before anything logged them.
        let text = std::fs::read_to_string(&log).unwrap();
        let about_itself = text.lines().filter(|l| l.contains("weir.log")).count();
        assert_eq!(about_itself, 0, "{} bytes of log", text.len());
        assert!(text.contains("weir is serving") && text.contains("stopped"));
    }
}
