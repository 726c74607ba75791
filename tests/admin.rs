//! The operator surface: delivery log, replay, test sends, metrics, auth,
//! auto-disable, rate limits, and the CLI over them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

both_stores! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn delivery_log_pages_newest_first_and_rejects_bad_filters() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("log", &sub.url("/"), ""), &[]).await;
        for i in 0..5 {
            weir.send(&json!({"id": format!("p{i}"), "type": "a.b", "data": i}))
                .await;
        }
        sub.wait_for(5).await;
        weir.wait_deliveries("webhook=log&status=delivered", |r| r.len() == 5)
            .await;
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = weir
                .get(&format!("/v1/deliveries?webhook=log&limit=2{cursor}"))
                .await;
            assert_eq!(status, 200, "{page}");
            for d in page["deliveries"].as_array().unwrap() {
                seen.push(d["event_id"].as_str().unwrap().to_owned());
            }
            match page["next"].as_str() {
                Some(next) => cursor = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ["p4", "p3", "p2", "p1", "p0"]);
        let (_, by_event) = weir.get("/v1/deliveries?event=p2").await;
        assert_eq!(by_event["deliveries"].as_array().unwrap().len(), 1);
        for bad in [
            "status=lost",
            "limit=0",
            "limit=many",
            "after=nope",
            "colour=red",
        ] {
            let (status, body) = weir.get(&format!("/v1/deliveries?{bad}")).await;
            assert_eq!(status, 400, "{bad}: {body}");
            assert!(body["error"]["message"].as_str().is_some(), "{bad}: {body}");
        }
        let (status, body) = weir.get("/v1/deliveries/dlv_nope").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        let (status, _) = weir.get("/v1/webhooks/nope").await;
        assert_eq!(status, 404);
        // A NUL in an id or a filter names nothing (PostgreSQL text cannot
        // even hold one): 404 and an empty page, never 503.
        let (status, _) = weir.get("/v1/deliveries/dlv_%00").await;
        assert_eq!(status, 404);
        let (status, _) = weir.post("/v1/deliveries/dlv_%00/replay", None).await;
        assert_eq!(status, 404);
        let (status, body) = weir.get("/v1/deliveries?event=a%00b").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["deliveries"], serde_json::json!([]));
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replay_sends_again_once_even_when_asked_concurrently() {
        let sub = Receiver::start().await;
        // The replayed attempt is held for a second, so the delivery is still
        // live while all ten replays arrive (a delivered one may be replayed).
        sub.script([Reply::Status(500), Reply::Delay(Duration::from_secs(1))]);
        let weir = Weir::start(&hook("r", &sub.url("/"), "max_retries = 0"), &[]).await;
        weir.send(&json!({"id": "once", "type": "a.b", "data": 1}))
            .await;
        let rows = weir
            .wait_deliveries("webhook=r&status=dead", |r| r.len() == 1)
            .await;
        let id = rows[0]["id"].as_str().unwrap().to_owned();
        // Ten replays at once: one wins, the rest find it already queued.
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let url = format!("{}/v1/deliveries/{id}/replay", weir.url);
            tasks.push(tokio::spawn(async move {
                reqwest::Client::new()
                    .post(url)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        codes.sort();
        assert_eq!(codes.iter().filter(|c| **c == 202).count(), 1, "{codes:?}");
        assert!(codes.iter().all(|c| *c == 202 || *c == 409), "{codes:?}");
        weir.wait_deliveries("webhook=r&status=delivered", |r| r.len() == 1)
            .await;
        assert_eq!(sub.count(), 2, "one failure, one replay");
        let got = sub.received();
        assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
        assert_eq!(got[0].body, got[1].body);
        // Replaying a delivered delivery sends it once more.
        let (status, _) = weir
            .post(&format!("/v1/deliveries/{id}/replay"), None)
            .await;
        assert_eq!(status, 202);
        sub.wait_for(3).await;
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_replay_of_dead_deliveries() {
        let sub = Receiver::start().await;
        sub.script((0..4).map(|_| Reply::Status(500)));
        let weir = Weir::start(
            &hook("bulk", &sub.url("/"), "max_retries = 0\nmax_in_flight = 1"),
            &[],
        )
        .await;
        weir.send(&events(4, "a.b", "o")).await;
        weir.wait_deliveries("webhook=bulk&status=dead", |r| r.len() == 4)
            .await;
        let (status, body) = weir
            .post(
                "/v1/replay",
                Some(json!({"webhook": "bulk", "status": "dead"})),
            )
            .await;
        assert_eq!((status, body["replayed"].as_u64()), (202, Some(4)));
        weir.wait_deliveries("webhook=bulk&status=delivered", |r| r.len() == 4)
            .await;
        let (status, _) = weir
            .post(
                "/v1/replay",
                Some(json!({"webhook": "bulk", "status": "delivered"})),
            )
            .await;
        assert_eq!(status, 400);
        let (status, body) = weir
            .post(
                "/v1/replay",
                Some(json!({"webhook": "ghost", "status": "dead"})),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("ghost"));
        let (status, _) = weir
            .post("/v1/replay", Some(json!({"webhook": "bulk"})))
            .await;
        assert_eq!(status, 400);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn test_send_and_webhook_state() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("t", &sub.url("/t"), "events = [\"record.*\"]"), &[]).await;
        let (status, body) = weir.post("/v1/webhooks/t/test", None).await;
        assert_eq!(status, 202, "{body}");
        let got = sub.wait_for(1).await.remove(0);
        assert_eq!(
            got.json()["type"],
            "weir.test",
            "a test send bypasses the event filter"
        );
        let id = body["delivery_id"].as_str().unwrap();
        weir.wait_deliveries("webhook=t", |r| {
            r.iter()
                .any(|d| d["id"] == id && d["status"] == "delivered")
        })
        .await;
        let (_, hooks) = weir.get("/v1/webhooks").await;
        let t = &hooks["webhooks"][0];
        assert_eq!(t["id"], "t");
        assert_eq!(t["active"], true);
        assert_eq!(t["queue_depth"], 0);
        assert!(t["last_success_at"].is_string());
        assert!(t.get("secrets").is_none());
        let (_, plugins) = weir.get("/v1/plugins").await;
        assert!(plugins["plugins"].is_array());
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_guard_ingest_and_admin_routes() {
        let sub = Receiver::start().await;
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ningest_token = \"ingest-secret\"\nadmin_token = \"admin-secret\"\n[delivery]\nallow_targets = [\"127.0.0.0/8\"]\n\n{}",
            hook("a", &sub.url("/"), "")
        );
        let weir = Weir::start_with(&config, &[]).await;
        let client = reqwest::Client::new();
        let ev = json!({"type": "a.b", "data": 1});
        // The admin token is a global token with every scope, ingest included.
        for token in [
            None,
            Some("wrong"),
            Some("ingest-secre"),
            Some("ingest-secret2"),
        ] {
            let mut req = client.post(format!("{}/v1/events", weir.url)).json(&ev);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "ingest with {token:?}");
            let body: Value = res.json().await.unwrap();
            // A token that was sent is the caller's own: the answer says
            // what is wrong with it.
            let want = match token {
                None => "missing or wrong bearer token",
                Some(_) => "unknown token",
            };
            assert_eq!(body["error"]["message"], want);
        }
        let res = client
            .post(format!("{}/v1/events", weir.url))
            .bearer_auth("ingest-secret")
            .json(&ev)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        for path in [
            "/v1/webhooks",
            "/v1/webhooks/a",
            "/v1/deliveries",
            "/v1/plugins",
        ] {
            // The ingest token is valid but only for events: 403, not 401.
            for (token, status) in [
                (None, 401),
                (Some("wrong"), 401),
                (Some("ingest-secret"), 403),
            ] {
                let mut req = client.get(format!("{}{path}", weir.url));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let res = req.send().await.unwrap();
                assert_eq!(res.status(), status, "{path} with {token:?}");
                let text = res.text().await.unwrap();
                assert!(!text.contains("\"a\""), "{path} leaked data: {text}");
            }
        }
        for path in [
            "/v1/webhooks/a/test",
            "/v1/replay",
            "/v1/deliveries/dlv_x/replay",
        ] {
            let res = client
                .post(format!("{}{path}", weir.url))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 401, "{path}");
        }
        let (status, _) = weir.get("/v1/webhooks").await;
        assert_eq!(status, 200, "the right admin token works");
        // Health and metrics stay open.
        assert_eq!(
            client
                .get(format!("{}/healthz", weir.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            client
                .get(format!("{}/metrics", weir.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_count_events_and_outcomes() {
        let sub = Receiver::start().await;
        sub.script([Reply::Status(500)]);
        let weir = Weir::start(&hook("m", &sub.url("/"), ""), &[]).await;
        weir.send(&events(3, "a.b", "o")).await;
        let _ = weir.post_raw("{").await;
        weir.wait_deliveries("webhook=m&status=delivered", |r| r.len() == 3)
            .await;
        let text = weir.metrics().await;
        for line in [
            "weir_events_received_total 3",
            "weir_events_accepted_total 3",
            "weir_events_rejected_total{reason=\"invalid\"} 1",
            "weir_deliveries_total{outcome=\"delivered\",webhook=\"m\"} 3",
            "weir_deliveries_total{outcome=\"retrying\",webhook=\"m\"} 1",
            "weir_queue_depth{webhook=\"m\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains("weir_attempt_duration_seconds_bucket{webhook=\"m\""));
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limit_spaces_attempts() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("slow", &sub.url("/"), "rate_limit_per_sec = 10"), &[]).await;
        weir.send(&events(11, "a.b", "o")).await;
        let got = sub.wait_for(11).await;
        let span = got[10].at - got[0].at;
        // 11 attempts at 10/s need at least one second between the first and the last.
        assert!(
            span >= Duration::from_millis(950),
            "11 attempts took only {span:?}"
        );
        let gaps: Vec<u128> = got
            .windows(2)
            .map(|w| (w[1].at - w[0].at).as_millis())
            .collect();
        eprintln!("measured gaps between attempts at 10/s (ms): {gaps:?}");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn continuous_failure_disables_after_the_configured_hours() {
        let sub = Receiver::start().await;
        sub.always(Reply::Status(500));
        let clock = Arc::new(ManualClock::default());
        let weir = Weir::start_with_clock(
            &hook(
                "down",
                &sub.url("/"),
                "disable_after_hours = 2\nretry_delays_secs = [3600]",
            ),
            clock.clone(),
        )
        .await;
        weir.send(&json!({"id": "f1", "type": "a.b", "data": 1}))
            .await;
        sub.wait_for(1).await;
        // An hour later (by the injected clock) it fails again: still enabled.
        // A new event wakes the worker, which also retries the first one.
        clock.advance(Duration::from_secs(3600));
        weir.send(&json!({"id": "f2", "type": "a.b", "data": 1}))
            .await;
        sub.wait_for(3).await;
        let (_, v) = weir.get("/v1/webhooks/down").await;
        assert_eq!(v["active"], true, "{v}");
        // Two hours after the first failure, the next failure disables it.
        clock.advance(Duration::from_secs(3600));
        weir.send(&json!({"id": "f3", "type": "a.b", "data": 1}))
            .await;
        sub.wait_for(4).await;
        let v = eventually("auto-disable", async || {
            let (_, v) = weir.get("/v1/webhooks/down").await;
            (v["active"] == false).then_some(v)
        })
        .await;
        assert_eq!(v["disabled_reason"], "failing continuously for 2 hours");
        // Its deliveries are kept (live: retrying, or pending if the disable
        // came first), not canceled.
        let (_, log) = weir.get("/v1/deliveries?webhook=down").await;
        let states: Vec<&str> = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap())
            .collect();
        assert!(
            states.iter().all(|s| *s == "retrying" || *s == "pending"),
            "{states:?}"
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cli_send_deliveries_and_replay() {
        let sub = Receiver::start().await;
        sub.script([Reply::Status(500)]);
        let weir = Weir::start(&hook("cli", &sub.url("/"), "max_retries = 0"), &[]).await;
        let file = weir.path("events.ndjson");
        std::fs::write(&file, "{\"id\":\"c1\",\"type\":\"a.b\",\"data\":1}\n{\"id\":\"c2\",\"type\":\"a.b\",\"data\":2}\n").unwrap();
        // Runs the weir CLI against this server: (exit code, stdout, stderr).
        let url = weir.url.clone();
        let run = move |args: &[&str]| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
            cmd.args(args).arg("--url").arg(&url);
            async move {
                let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                    .await
                    .unwrap();
                let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
                (out.status.code(), text(&out.stdout), text(&out.stderr))
            }
        };
        let (code, out, err) = run(&["send", file.to_str().unwrap()]).await;
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "accepted 2 events"),
            "{err}"
        );
        sub.wait_for(2).await;
        let dead = weir
            .wait_deliveries("webhook=cli&status=dead", |r| r.len() == 1)
            .await;
        let (_, table, _) = run(&["deliveries", "--webhook", "cli", "--status", "dead"]).await;
        assert!(table.starts_with("DELIVERY"), "{table}");
        assert!(
            table.contains(dead[0]["id"].as_str().unwrap()) && table.contains("HTTP 500"),
            "{table}"
        );
        let (_, json, _) = run(&["deliveries", "--json"]).await;
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["deliveries"].as_array().unwrap().len(), 2);
        let (code, out, err) = run(&["replay", "--webhook", "cli", "--status", "dead"]).await;
        assert_eq!(
            (code, out.as_str()),
            (Some(0), "replayed 1 deliveries"),
            "{err}"
        );
        sub.wait_for(3).await;
        let (code, _, err) = run(&["replay", "dlv_missing"]).await;
        assert_eq!(code, Some(1));
        assert!(err.contains("404") && err.contains("dlv_missing"), "{err}");
        weir.stop().await;
    }
}
