//! The core router end to end: ingest, fan-out, signing, retries, ordering,
//! SSRF guard and bad input, against real subscribers on loopback.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

both_stores! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_fan_out_to_exactly_the_matching_webhooks() {
        let (records, forms, org7, everything, inactive) = (
            Receiver::start().await,
            Receiver::start().await,
            Receiver::start().await,
            Receiver::start().await,
            Receiver::start().await,
        );
        let config = [
            hook("records", &records.url("/r"), "events = [\"record.*\"]"),
            hook("forms", &forms.url("/f"), "events = [\"form.create\"]"),
            hook("org7", &org7.url("/o"), "owners = [\"org_7\"]"),
            hook("everything", &everything.url("/all"), ""),
            hook("inactive", &inactive.url("/x"), "active = false"),
        ]
        .concat();
        let weir = Weir::start(&config, &[]).await;
        weir.send(&json!([
            {"id": "a", "type": "record.create", "owner_id": "org_42", "data": {}},
            {"id": "b", "type": "form.create", "owner_id": "org_7", "data": {}},
            {"id": "c", "type": "form.delete", "owner_id": "org_42", "data": {}},
            {"id": "d", "type": "record.update", "owner_id": "org_7", "data": {}},
        ]))
        .await;
        let ids = |r: &Receiver| {
            let mut v: Vec<String> = r
                .received()
                .iter()
                .map(|x| x.header("webhook-id").to_owned())
                .collect();
            v.sort();
            v
        };
        everything.wait_for(4).await;
        records.wait_for(2).await;
        forms.wait_for(1).await;
        org7.wait_for(2).await;
        // Everything that will arrive has arrived once the log shows no live delivery.
        weir.wait_deliveries("status=pending", |r| r.is_empty())
            .await;
        assert_eq!(ids(&everything), ["a", "b", "c", "d"]);
        assert_eq!(ids(&records), ["a", "d"]);
        assert_eq!(ids(&forms), ["b"]);
        assert_eq!(ids(&org7), ["b", "d"]);
        assert_eq!(inactive.count(), 0);
        let (_, log) = weir.get("/v1/deliveries?webhook=inactive").await;
        assert_eq!(log["deliveries"].as_array().unwrap().len(), 0);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fails_twice_then_succeeds_with_the_same_webhook_id() {
        let sub = Receiver::start().await;
        sub.script([Reply::Status(500), Reply::Status(503), Reply::Status(200)]);
        let weir = Weir::start(&hook("flaky", &sub.url("/hook"), ""), &[]).await;
        let ids = weir.send(&json!({"id": "evt_1", "type": "record.create", "owner_id": "org_42", "data": {"x": 1}})).await;
        assert_eq!(ids, ["evt_1"]);
        let got = sub.wait_for(3).await;
        assert!(got.iter().all(|r| r.header("webhook-id") == "evt_1"));
        assert!(
            got.iter().all(|r| r.body == got[0].body),
            "every retry carries the same body"
        );
        let rows = weir
            .wait_deliveries("webhook=flaky", |r| {
                r.len() == 1 && r[0]["status"] == "delivered"
            })
            .await;
        let id = rows[0]["id"].as_str().unwrap();
        let (status, detail) = weir.get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(status, 200);
        let attempts = detail["attempt_log"].as_array().unwrap();
        let codes: Vec<u64> = attempts
            .iter()
            .map(|a| a["status"].as_u64().unwrap())
            .collect();
        assert_eq!(codes, [500, 503, 200]);
        assert_eq!(detail["attempts"], 3);
        assert_eq!(attempts[2]["response"], "ok");
        weir.stop().await;
    }

    /// The store keeps a chain's body only when the chain changed it; a
    /// retry must still send exactly what the first attempt sent, whether the
    /// chain kept the envelope (and added a header) or reshaped it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_sends_what_the_chain_made_whether_it_kept_the_body_or_not() {
        let (sub_kept, sub_reshaped) = (Receiver::start().await, Receiver::start().await);
        for sub in [&sub_kept, &sub_reshaped] {
            sub.script([Reply::Status(500), Reply::Status(200)]);
        }
        let kept = "[[webhooks.plugins]]\nname = \"add_headers\"\nconfig = { headers = { x-team = \"geo\" } }";
        let reshaped = "[[webhooks.plugins]]\nname = \"reshape\"\nconfig = { template = { text = \"{type} {id}\" } }";
        let config = format!(
            "{}{}",
            hook("kept", &sub_kept.url("/kept"), kept),
            hook("reshaped", &sub_reshaped.url("/reshaped"), reshaped)
        );
        let weir = Weir::start(
            &config,
            &[("add_headers", example_plugin("add_headers")), ("reshape", example_plugin("reshape"))],
        )
        .await;
        let event = json!({"id": "evt_k", "type": "record.create", "owner_id": "org_1", "data": {"n": [1, 2.50, "x"]}});
        weir.send(&event).await;
        let (kept, reshaped) = (sub_kept.wait_for(2).await, sub_reshaped.wait_for(2).await);
        for sent in [&kept, &reshaped] {
            assert_eq!(sent[0].body, sent[1].body, "the retry carries the first attempt's body");
        }
        assert!(kept.iter().all(|r| r.header("x-team") == "geo"), "and the chain's headers");
        let envelope: Value = serde_json::from_slice(&kept[0].body).unwrap();
        assert_eq!(envelope["data"], json!({"n": [1, 2.50, "x"]}));
        let text: Value = serde_json::from_slice(&reshaped[0].body).unwrap();
        assert_eq!(text, json!({"text": "record.create evt_k"}));
        // The log shows the request as sent, for both.
        for (hook, first) in [("kept", &kept[0]), ("reshaped", &reshaped[0])] {
            let rows = weir
                .wait_deliveries(&format!("webhook={hook}"), |r| {
                    r.len() == 1 && r[0]["status"] == "delivered"
                })
                .await;
            let (_, detail) = weir.get(&format!("/v1/deliveries/{}", rows[0]["id"].as_str().unwrap())).await;
            assert_eq!(detail["request"]["body"].as_str().unwrap().as_bytes(), &first.body[..], "{hook}");
        }
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn body_and_headers_are_the_signed_envelope() {
        let sub = Receiver::start().await;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let rotated = "whsec_c2Vjb25kLXNlY3JldC1mb3ItdGVzdHM=";
        let extra =
            format!("secrets = [\"{secret}\", \"{rotated}\"]\nheaders = {{ \"x-api-key\" = \"k1\" }}");
        let weir = Weir::start(&hook("signed", &sub.url("/in"), &extra), &[]).await;
        let sent = r#"{"id":"evt_sig","type":"record.create","owner_id":"org_42","data":{"b": [1, 2],  "a":"é"},"occurred_at":"2026-11-20T14:03:11Z"}"#;
        let (status, _) = weir.post_raw(sent).await;
        assert_eq!(status, 202);
        let got = sub.wait_for(1).await.remove(0);
        // The body is the envelope with `data` byte for byte as the producer sent it.
        assert_eq!(
            std::str::from_utf8(&got.body).unwrap(),
            r#"{"id":"evt_sig","type":"record.create","owner_id":"org_42","data":{"b": [1, 2],  "a":"é"},"occurred_at":"2026-11-20T14:03:11Z"}"#
        );
        assert_eq!(got.header("content-type"), "application/json");
        assert_eq!(
            got.header("user-agent"),
            concat!("weir/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(got.header("x-api-key"), "k1");
        assert_eq!(got.header("webhook-id"), "evt_sig");
        let sigs: Vec<&str> = got.header("webhook-signature").split(' ').collect();
        assert_eq!(sigs.len(), 2, "both secrets sign during rotation");
        // Verified by an independent Standard Webhooks implementation, with each key.
        for key in [secret, rotated] {
            let wh = standardwebhooks::Webhook::new(key).unwrap();
            wh.verify(&got.body, &got.headers)
                .unwrap_or_else(|e| panic!("signature does not verify with {key}: {e}"));
        }
        let other =
            standardwebhooks::Webhook::new("whsec_b3RoZXIta2V5LW5vdC11c2VkLWJ5LXdlaXI=").unwrap();
        assert!(other.verify(&got.body, &got.headers).is_err());
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retry_schedule_honours_retry_after_and_gives_up() {
        let sub = Receiver::start().await;
        sub.always(Reply::Status(500));
        let weir = Weir::start(&hook("dies", &sub.url("/"), "max_retries = 2"), &[]).await;
        weir.send(&json!({"id": "d1", "type": "a.b", "data": 1}))
            .await;
        sub.wait_for(3).await;
        weir.wait_deliveries("webhook=dies", |r| r.len() == 1 && r[0]["status"] == "dead")
            .await;
        // Exactly 1 + max_retries attempts, none after death: `dead` is
        // recorded after the last one, and no claim returns a dead delivery.
        assert_eq!(sub.count(), 3);
        weir.stop().await;

        // 429 with Retry-After pushes the next attempt back by that long.
        let sub = Receiver::start().await;
        sub.script([Reply::StatusHeader(429, "retry-after", "1".into())]);
        let weir = Weir::start(&hook("busy", &sub.url("/"), ""), &[]).await;
        weir.send(&json!({"id": "r1", "type": "a.b", "data": 1}))
            .await;
        let got = sub.wait_for(2).await;
        let gap = got[1].at - got[0].at;
        assert!(
            gap >= Duration::from_millis(900),
            "retried after {gap:?}, before Retry-After"
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gone_disables_the_webhook_and_keeps_its_deliveries() {
        let sub = Receiver::start().await;
        sub.script([Reply::Status(410)]);
        let weir = Weir::start(&hook("gone", &sub.url("/"), ""), &[]).await;
        weir.send(&json!([{"id": "g1", "type": "a.b", "data": 1}]))
            .await;
        sub.wait_for(1).await;
        let v = eventually("webhook disabled", async || {
            let (_, v) = weir.get("/v1/webhooks/gone").await;
            (v["active"] == false).then_some(v)
        })
        .await;
        assert!(
            v["disabled_reason"].as_str().unwrap().contains("410"),
            "{v}"
        );
        weir.send(&json!([{"id": "g2", "type": "a.b", "data": 1}]))
            .await;
        // Enabling it again resumes the queue; g2 was queued all along, and
        // no attempt of it came before the enable (a disabled webhook gets none).
        let enabled_at = std::time::Instant::now();
        let (status, _) = weir.post("/v1/webhooks/gone/enable", None).await;
        assert_eq!(status, 200);
        let got = sub
            .wait_until(|r| r.iter().any(|x| x.header("webhook-id") == "g2"))
            .await;
        let early = got
            .iter()
            .filter(|x| x.header("webhook-id") == "g2" && x.at < enabled_at)
            .count();
        assert_eq!(early, 0, "a disabled webhook got an attempt");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifo_sends_one_at_a_time_in_event_order() {
        let sub = Receiver::start().await;
        sub.script([Reply::Status(500), Reply::Status(500)]);
        let weir = Weir::start(&hook("ordered", &sub.url("/"), "ordering = \"fifo\""), &[]).await;
        let ids: Vec<String> = (0..20).map(|i| format!("f{i:02}")).collect();
        for chunk in ids.chunks(5) {
            let batch: Vec<Value> = chunk
                .iter()
                .map(|id| json!({"id": id, "type": "a.b", "data": 1}))
                .collect();
            weir.send(&Value::Array(batch)).await;
        }
        let got = sub.wait_for(22).await;
        let order: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        // The failing head is retried before anything behind it is sent.
        assert_eq!(&order[..3], ["f00", "f00", "f00"]);
        let delivered: Vec<&str> = order[2..].to_vec();
        assert_eq!(
            delivered,
            ids.iter().map(String::as_str).collect::<Vec<_>>()
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ssrf_guard_refuses_loopback_unless_allowed() {
        let sub = Receiver::start().await;
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[delivery]\nretry_delays_secs = [0]\nmax_retries = 0\n\n{}",
            hook("internal", &sub.url("/"), "")
        );
        let weir = Weir::start_with(&config, &[]).await;
        weir.send(&json!({"id": "s1", "type": "a.b", "data": 1}))
            .await;
        let detail = weir.sole_delivery("internal", "dead").await;
        let error = detail["attempt_log"][0]["error"].as_str().unwrap();
        assert!(error.contains("not a global address"), "{error}");
        assert_eq!(sub.count(), 0);
        weir.stop().await;

        // By name, too: `localhost` resolves to loopback and is refused the same way.
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[delivery]\nretry_delays_secs = [0]\nmax_retries = 0\n\n{}",
            hook(
                "byname",
                &format!("http://localhost:{}/", sub.addr.port()),
                ""
            )
        );
        let weir = Weir::start_with(&config, &[]).await;
        weir.send(&json!({"id": "s2", "type": "a.b", "data": 1}))
            .await;
        weir.wait_deliveries("webhook=byname", |r| {
            r.len() == 1 && r[0]["status"] == "dead"
        })
        .await;
        assert_eq!(sub.count(), 0);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redirects_are_not_followed() {
        let target = Receiver::start().await;
        let redirector = Receiver::start().await;
        redirector.always(Reply::StatusHeader(307, "location", target.url("/stolen")));
        let weir = Weir::start(&hook("redir", &redirector.url("/"), "max_retries = 0"), &[]).await;
        weir.send(&json!({"id": "x1", "type": "a.b", "data": 1}))
            .await;
        weir.wait_deliveries("webhook=redir", |r| {
            r.len() == 1 && r[0]["status"] == "dead"
        })
        .await;
        assert_eq!(redirector.count(), 1);
        assert_eq!(target.count(), 0);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_is_refused_and_nothing_of_it_is_stored() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("all", &sub.url("/"), ""), &[]).await;
        let cases: Vec<(&str, String, u16, &str)> = vec![
            ("malformed JSON", "{\"type\": ".into(), 400, "invalid_event"),
            ("not an object", "42".into(), 400, "invalid_event"),
            (
                "unknown key",
                r#"{"type":"a.b","data":1,"extra":2}"#.into(),
                400,
                "invalid_event",
            ),
            (
                "bad type",
                r#"{"type":"A B","data":1}"#.into(),
                400,
                "invalid_event",
            ),
            (
                "missing data",
                r#"{"type":"a.b"}"#.into(),
                400,
                "invalid_event",
            ),
            (
                "one bad event in a batch",
                r#"[{"id":"ok1","type":"a.b","data":1},{"id":"bad","type":"a.b"}]"#.into(),
                400,
                "invalid_event",
            ),
            (
                "oversized body",
                format!("{{\"type\":\"a.b\",\"data\":\"{}\"}}", "x".repeat(1 << 20)),
                413,
                "body_too_large",
            ),
        ];
        for (what, body, status, code) in cases {
            let (got, answer) = weir.post_raw(body).await;
            assert_eq!(got, status, "{what}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
            assert!(
                !answer["error"]["message"].as_str().unwrap().is_empty(),
                "{what}"
            );
        }
        let (_, answer) = weir
            .post_raw(r#"[{"id":"ok1","type":"a.b","data":1},{"id":"bad","type":"a.b"}]"#)
            .await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("event[1]"),
            "{answer}"
        );
        // None of the refused events was stored or delivered.
        weir.send(&json!({"id": "marker", "type": "a.b", "data": 1}))
            .await;
        sub.wait_for(1).await;
        let (_, log) = weir.get("/v1/deliveries").await;
        let events: Vec<&str> = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_id"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["marker"]);
        // Unknown routes and methods answer in the same error shape.
        let (status, body) = weir.get("/v1/nothing").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found"))
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn producer_retries_are_deduplicated() {
        let sub = Receiver::start().await;
        let weir = Weir::start(&hook("all", &sub.url("/"), ""), &[]).await;
        let ev = json!({"id": "same", "type": "a.b", "owner_id": "o1", "data": 1});
        assert_eq!(weir.send(&ev).await, ["same"]);
        assert_eq!(
            weir.send(&ev).await,
            ["same"],
            "a retry gets the same answer"
        );
        // The same id under another owner is another event.
        weir.send(&json!({"id": "same", "type": "a.b", "owner_id": "o2", "data": 1}))
            .await;
        sub.wait_for(2).await;
        // The retry made no delivery, so nothing more can ever be sent.
        assert_eq!(weir.all_deliveries("").await.len(), 2);
        assert_eq!(sub.count(), 2);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_slow_and_garbage_subscribers_are_retried() {
        // Connection refused: bind a port, then free it.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_url = format!("http://{}/", dead.local_addr().unwrap());
        drop(dead);
        let slow = Receiver::start().await;
        slow.script([Reply::Delay(Duration::from_secs(3))]);
        let garbage = Receiver::start().await;
        garbage.always(Reply::Garbage);
        let config = [
            hook("refused", &dead_url, "max_retries = 1"),
            hook("slow", &slow.url("/"), "timeout_secs = 1"),
            hook("garbage", &garbage.url("/"), ""),
        ]
        .concat();
        let weir = Weir::start(&config, &[]).await;
        weir.send(&json!({"id": "u1", "type": "a.b", "data": 1}))
            .await;
        let d = weir.sole_delivery("refused", "dead").await;
        assert!(
            d["attempt_log"][0]["error"]
                .as_str()
                .unwrap()
                .starts_with("connect error"),
            "{d}"
        );
        // The slow answer times out, then the retry succeeds.
        let d = weir.sole_delivery("slow", "delivered").await;
        assert!(
            d["attempt_log"][0]["error"]
                .as_str()
                .unwrap()
                .starts_with("timeout"),
            "{d}"
        );
        assert_eq!(d["attempt_log"][1]["status"], 200);
        // A 200 with a garbage body is still a 200.
        weir.wait_deliveries("webhook=garbage", |r| {
            r.len() == 1 && r[0]["status"] == "delivered"
        })
        .await;
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn byte_level_faults_are_failures_and_others_keep_delivering() {
        let healthy = Receiver::start().await;
        let cut = RawSubscriber::start(Fault::CloseMidResponse).await;
        let drip = RawSubscriber::start(Fault::SlowDrip).await;
        let garbled = RawSubscriber::start(Fault::NotHttp).await;
        let config = [
            hook("cut", &cut.url, "max_retries = 1"),
            hook("drip", &drip.url, "max_retries = 0\ntimeout_secs = 1"),
            hook("garbled", &garbled.url, "max_retries = 1"),
            hook("healthy", &healthy.url("/"), ""),
        ]
        .concat();
        let weir = Weir::start(&config, &[]).await;
        weir.send(&events(20, "a.b", "o")).await;
        // The healthy webhook is not held up by the broken ones.
        healthy.wait_for(20).await;
        for (hook, expect) in [
            ("cut", "error reading the answer"),
            ("drip", "timeout"),
            ("garbled", "request error"),
        ] {
            let rows = weir
                .wait_deliveries(&format!("webhook={hook}"), |r| {
                    r.len() == 20 && r.iter().all(|d| d["status"] == "dead")
                })
                .await;
            let detail = weir
                .get(&format!(
                    "/v1/deliveries/{}",
                    rows[0]["id"].as_str().unwrap()
                ))
                .await
                .1;
            let error = detail["attempt_log"][0]["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(error.starts_with(expect), "{hook}: {error}");
        }
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_back_from_an_outage_gets_its_backlog_at_once() {
        let sub = Receiver::start().await;
        sub.always(Reply::Status(503));
        // Retries an hour apart: without catching up, the backlog would wait.
        let clock = std::sync::Arc::new(ManualClock::default());
        let weir = Weir::start_with_clock(
            &hook("down", &sub.url("/"), "retry_delays_secs = [3600]"),
            clock.clone(),
        )
        .await;
        weir.send(&json!([
            {"id": "o1", "type": "a.b", "data": 1},
            {"id": "o2", "type": "a.b", "data": 2},
        ]))
        .await;
        weir.wait_deliveries("webhook=down", |r| {
            r.len() == 2 && r.iter().all(|d| d["status"] == "retrying")
        })
        .await;
        // 31 s of failures make an outage.
        clock.advance(Duration::from_secs(31));
        sub.always(Reply::Status(200));
        // A new event goes out at once and succeeds; the two retries that were
        // due in an hour follow straight after.
        weir.send(&json!({"id": "n1", "type": "a.b", "data": 3}))
            .await;
        let got = sub
            .wait_until(|r| {
                let ok: Vec<&str> = r.iter().skip(2).map(|x| x.header("webhook-id")).collect();
                ["n1", "o1", "o2"].iter().all(|id| ok.contains(id))
            })
            .await;
        assert_eq!(got.len(), 5, "two failures, then three deliveries");
        weir.wait_deliveries("webhook=down", |r| {
            r.len() == 3 && r.iter().all(|d| d["status"] == "delivered")
        })
        .await;
        weir.stop().await;
    }
}
