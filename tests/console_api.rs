//! The API the console stands on, through the real server: who a token is,
//! the delivery log filtered by type and time, a delivery's event, request
//! and plugin log, per-webhook stats, plugin use and dry runs, and bulk
//! replays by filter with a dry run. Each route keeps to the caller's owner.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    ManualClock, Receiver, Reply, Weir, both_stores, example_plugin, hook, preamble, test_plugin,
    write_config,
};
use reqwest::Method;
use serde_json::{Value, json};
use weir::event::{Clock as _, rfc3339};

both_stores! {
    const ADMIN: &str = "admin-secret";
    const INGEST: &str = "ingest-secret";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// Starts weir on exactly `config`, with `plugins` copied in and server
    /// time from `clock`.
    async fn boot(
        config: &str,
        plugins: &[(&str, std::path::PathBuf)],
        clock: Arc<dyn weir::event::Clock>,
    ) -> Weir {
        let dir = common::tempdir();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        for (name, src) in plugins {
            std::fs::copy(src, dir.path().join("plugins").join(format!("{name}.wasm"))).unwrap();
        }
        write_config(dir.path(), config);
        Weir::boot_with_clock(dir, clock).await
    }

    /// The test preamble with an admin and an ingest token.
    fn with_tokens(webhooks: &str) -> String {
        preamble().replace(
            "[server]\n",
            &format!("[server]\nadmin_token = \"{ADMIN}\"\ningest_token = \"{INGEST}\"\n"),
        ) + webhooks
    }

    fn plugin(name: &str, config: &str) -> String {
        format!("  [[webhooks.plugins]]\n  name = \"{name}\"\n  on_error = \"hold\"\n  config = {config}\n\n")
    }

    fn ids(rows: &[Value], key: &str) -> Vec<String> {
        rows.iter().map(|d| d[key].as_str().unwrap().to_owned()).collect()
    }

    /// A token answers the moment it is created, even while the node
    /// re-reads the catalog because webhooks change (on PostgreSQL each
    /// change notifies every node, this one included, and a re-read that
    /// read the tokens just before a new one was stored used to drop it from
    /// the cache for up to ten seconds).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_answers_at_once_while_the_catalog_is_re_read() {
        let weir = Weir::start_with(&with_tokens(""), &[]).await;
        for i in 0..40 {
            let hook = json!({"id": format!("w{i}"), "url": "https://example.com/h"});
            let (status, answer) = weir.post("/v1/webhooks", Some(hook)).await;
            assert_eq!(status, 201, "{answer}");
            let token = weir.token(None, &["webhooks:read"]).await;
            let (status, answer) = weir.call(Method::GET, "/v1/whoami", Some(&token), None).await;
            assert_eq!(status, 200, "token {i}: {answer}");
        }
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn whoami_names_the_token_and_a_refused_token_is_told_why() {
        let clock = Arc::new(ManualClock::default());
        let weir = boot(&with_tokens(""), &[], clock.clone()).await;
        let who = |token: Option<&'static str>| {
            let weir = &weir;
            async move { weir.call(Method::GET, "/v1/whoami", token, None).await }
        };
        let (status, admin) = who(Some(ADMIN)).await;
        assert_eq!(status, 200, "{admin}");
        assert_eq!(admin["admin"], true);
        assert_eq!((admin["owner"].clone(), admin["token"].clone()), (Value::Null, Value::Null));
        assert_eq!(admin["scopes"].as_array().unwrap().len(), 9, "{admin}");
        let (status, ingest) = who(Some(INGEST)).await;
        assert_eq!(status, 200, "{ingest}");
        assert_eq!(ingest["scopes"], json!(["events:write"]));
        assert_eq!(ingest["admin"], false);
        let (status, _) = who(None).await;
        assert_eq!(status, 401, "no token, and an admin token is set");

        let tenant = weir.token(Some("org_a"), &["webhooks:read", "deliveries:read"]).await;
        let (status, me) = weir.call(Method::GET, "/v1/whoami", Some(&tenant), None).await;
        assert_eq!(status, 200, "{me}");
        assert_eq!(me["owner"], "org_a");
        assert_eq!(me["admin"], false);
        assert_eq!(me["scopes"], json!(["webhooks:read", "deliveries:read"]));
        assert_eq!(me["token"]["prefix"], &tenant[..13]);
        let id = me["token"]["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("tok_"), "{me}");

        let (status, body) = weir.call(Method::GET, "/v1/whoami", Some("weir_nope"), None).await;
        assert_eq!((status, body["error"]["message"].as_str()), (401, Some("unknown token")));
        let (status, _) = weir
            .call(Method::DELETE, &format!("/v1/tokens/{id}"), Some(ADMIN), None)
            .await;
        assert_eq!(status, 200);
        let (status, body) = weir.call(Method::GET, "/v1/webhooks", Some(&tenant), None).await;
        assert_eq!(
            (status, body["error"]["message"].as_str()),
            (401, Some("this token was revoked"))
        );

        let expires = rfc3339(clock.now() + 3_600_000);
        let (status, made) = weir
            .call(
                Method::POST,
                "/v1/tokens",
                Some(ADMIN),
                Some(&json!({"scopes": ["deliveries:read"], "expires_at": expires})),
            )
            .await;
        assert_eq!(status, 201, "{made}");
        let short = made["token"].as_str().unwrap().to_owned();
        let (status, _) = weir.call(Method::GET, "/v1/whoami", Some(&short), None).await;
        assert_eq!(status, 200);
        clock.advance(Duration::from_secs(7200));
        let (status, body) = weir.call(Method::GET, "/v1/whoami", Some(&short), None).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["message"], format!("this token expired at {expires}"));
        weir.stop().await;

        // Without an admin token, a caller without one is the admin.
        let open = Weir::start("", &[]).await;
        let (status, me) = open.get("/v1/whoami").await;
        assert_eq!(status, 200, "{me}");
        assert_eq!((me["admin"].clone(), me["token"].clone()), (json!(true), Value::Null));
        open.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_filters_by_type_and_creation_time_and_pages_inside_the_filter() {
        let sub = Receiver::start().await;
        let clock = Arc::new(ManualClock::default());
        let config = preamble()
            + &hook("a", &sub.url("/a"), "owners = [\"org_a\"]")
            + &hook("b", &sub.url("/b"), "owners = [\"org_b\"]");
        let weir = boot(&config, &[], clock.clone()).await;
        let early = clock.now();
        let send = |id: &str, t: &str, owner: &str| {
            json!({"id": id, "type": t, "owner_id": owner, "data": {}})
        };
        weir.send(&json!([
            send("p1", "order.paid", "org_a"),
            send("p2", "order.paid", "org_a"),
            send("r1", "order.refunded", "org_a"),
            send("p3", "order.paid", "org_a"),
            send("x1", "order.paid", "org_b"),
        ]))
        .await;
        clock.advance(Duration::from_secs(3600));
        let late = clock.now();
        weir.send(&json!([send("p4", "order.paid", "org_a"), send("r2", "order.refunded", "org_a")]))
            .await;
        weir.wait_deliveries("status=delivered", |r| r.len() == 7).await;

        let paid = weir.all_deliveries("type=order.paid&webhook=a").await;
        assert_eq!(ids(&paid, "event_id"), ["p4", "p3", "p2", "p1"]);
        // Pages of two walk the same rows, newest first.
        let mut seen = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, page) = weir
                .get(&format!("/v1/deliveries?type=order.paid&webhook=a&limit=2{cursor}"))
                .await;
            assert_eq!(status, 200, "{page}");
            seen.extend(ids(page["deliveries"].as_array().unwrap(), "event_id"));
            match page["next"].as_str() {
                Some(next) => cursor = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ["p4", "p3", "p2", "p1"]);
        // A batch shares one creation time: pages of one still see each
        // delivery once, in the order of the whole list.
        let whole = ids(&weir.all_deliveries("").await, "id");
        let mut one_by_one = Vec::new();
        let mut cursor = String::new();
        loop {
            let (_, page) = weir.get(&format!("/v1/deliveries?limit=1{cursor}")).await;
            one_by_one.extend(ids(page["deliveries"].as_array().unwrap(), "id"));
            match page["next"].as_str() {
                Some(next) => cursor = format!("&after={next}"),
                None => break,
            }
        }
        assert_eq!(one_by_one, whole);
        assert_eq!(whole.len(), 7);

        let middle = rfc3339(early + 1_800_000);
        let newer = weir.all_deliveries(&format!("since={middle}")).await;
        assert_eq!(ids(&newer, "event_id"), ["r2", "p4"]);
        let older = weir.all_deliveries(&format!("until={middle}&type=order.paid")).await;
        assert_eq!(ids(&older, "event_id"), ["x1", "p3", "p2", "p1"]);
        // since is inclusive, until exclusive.
        let created = newer[0]["created_at"].as_str().unwrap();
        assert!(created >= rfc3339(late).as_str(), "{created}");
        let from = weir.all_deliveries(&format!("since={created}")).await;
        assert_eq!(ids(&from, "event_id"), ["r2", "p4"]);
        let before = weir.all_deliveries(&format!("since={middle}&until={created}")).await;
        assert!(before.is_empty(), "{before:?}");
        let refunded = weir
            .all_deliveries("type=order.refunded&status=delivered&webhook=a")
            .await;
        assert_eq!(ids(&refunded, "event_id"), ["r2", "r1"]);
        assert!(weir.all_deliveries("type=order.paid&event=r1").await.is_empty());
        assert!(weir.all_deliveries("type=order").await.is_empty(), "the type is exact");
        assert!(weir.all_deliveries("type=a%00b").await.is_empty());

        // An owner's token filters inside its own share only.
        let b = weir.token(Some("org_b"), &["deliveries:read"]).await;
        let (status, page) = weir
            .call(Method::GET, "/v1/deliveries?type=order.paid", Some(&b), None)
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(ids(page["deliveries"].as_array().unwrap(), "event_id"), ["x1"]);

        for (query, named) in [
            ("since=yesterday", "since"),
            ("until=2026-13-01T00:00:00Z", "until"),
            ("since=2026-01-01", "since"),
        ] {
            let (status, body) = weir.get(&format!("/v1/deliveries?{query}")).await;
            assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_time")), "{query}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(named), "{query}: {message}");
        }
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_shows_its_event_its_request_and_what_the_plugins_logged() {
        let sub = Receiver::start().await;
        let other = Receiver::start().await;
        // The decorated webhook's first attempt fails: the retry sends the
        // request already made, so the chain (and its log) ran once.
        sub.script([Reply::Status(500)]);
        let config = preamble()
            + &hook(
                "dec",
                &sub.url("/dec"),
                &format!("owners = [\"org_a\"]\nsecrets = [\"{SECRET}\"]\nheaders = {{ \"x-secret\" = \"s3cret-value\" }}"),
            )
            + &plugin("add_headers", "{ headers = { \"x-team\" = \"geo\" } }")
            + &hook("plain", &other.url("/plain"), "")
            + &hook("held", &other.url("/held"), "")
            + &plugin("trap", "{}");
        let plugins = [
            ("add_headers", example_plugin("add_headers")),
            ("trap", test_plugin("trap")),
        ];
        let weir = Weir::start_with(&config, &plugins).await;
        let data = json!({"html": "<script>alert(1)</script>", "n": [1, 2]});
        weir.send(&json!({"id": "e1", "type": "a.b", "owner_id": "org_a", "data": data}))
            .await;
        let dec = weir.sole_delivery("dec", "delivered").await;
        let plain = weir.sole_delivery("plain", "delivered").await;
        let held = weir.sole_delivery("held", "held").await;

        assert_eq!(dec["attempts"], 2);
        assert_eq!(
            dec["event"],
            json!({"id": "e1", "type": "a.b", "owner_id": "org_a",
                   "occurred_at": dec["event"]["occurred_at"], "data": data})
        );
        let got = sub.wait_until(|r| r.iter().filter(|x| x.path == "/dec").count() == 2).await;
        let sent = got.iter().rfind(|r| r.path == "/dec").unwrap();
        assert_eq!(dec["request"]["body"].as_str().unwrap().as_bytes(), &sent.body[..]);
        let headers: Vec<(String, String)> =
            serde_json::from_value(dec["request"]["headers"].clone()).unwrap();
        for want in [
            ("content-type", "application/json"),
            ("x-secret", "(redacted)"),
            ("x-team", "geo"),
        ] {
            assert!(
                headers.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {headers:?}"
            );
        }
        assert!(headers.iter().all(|(k, _)| !k.starts_with("webhook-")), "{headers:?}");
        assert!(!dec.to_string().contains("s3cret-value"), "{dec}");
        assert_eq!(sent.header("x-secret"), "s3cret-value");
        assert_eq!(
            dec["signed_headers"],
            json!(["webhook-id", "webhook-timestamp", "webhook-signature"])
        );
        assert_eq!(dec["plugin_log"], json!(["add_headers: info: adding x-team to e1"]));

        assert_eq!(plain["plugin_log"], json!([]));
        assert_eq!(plain["signed_headers"], json!(["webhook-id", "webhook-timestamp"]));
        assert!(plain["request"]["body"].as_str().unwrap().contains("<script>alert(1)</script>"));

        assert_eq!(held["request"], Value::Null);
        let log: Vec<String> = serde_json::from_value(held["plugin_log"].clone()).unwrap();
        assert!(
            log.iter().any(|l| l.starts_with("trap: ") && l.contains("boom on e1")),
            "{log:?}"
        );
        assert!(held["reason"].as_str().unwrap().contains("boom on e1"), "{held}");

        // Another owner's token does not see it; its own owner's does.
        for (owner, status) in [("org_b", 404), ("org_a", 200)] {
            let token = weir.token(Some(owner), &["deliveries:read"]).await;
            let path = format!("/v1/deliveries/{}", dec["id"].as_str().unwrap());
            let (got, body) = weir.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(got, status, "{owner}: {body}");
        }
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn webhook_stats_count_each_minute_of_attempts_by_outcome() {
        let sub = Receiver::start().await;
        sub.script([Reply::Status(500), Reply::Status(503)]);
        let clock = Arc::new(ManualClock::default());
        let config = preamble()
            + &hook("s", &sub.url("/"), "owners = [\"org_a\"]\nmax_in_flight = 1")
            + &hook("idle", &sub.url("/idle"), "events = [\"never.*\"]");
        let weir = boot(&config, &[], clock.clone()).await;
        weir.send(&common::events(3, "a.b", "org_a")).await;
        weir.wait_deliveries("webhook=s&status=delivered", |r| r.len() == 3).await;

        let minute_before = clock.now() / 60_000 * 60_000;
        let (status, stats) = weir.get("/v1/webhooks/s/stats").await;
        let minute_after = clock.now() / 60_000 * 60_000;
        assert_eq!(status, 200, "{stats}");
        assert_eq!(stats["webhook"], "s");
        assert_eq!(stats["minutes"], 60);
        assert_eq!((stats["attempts"].as_u64(), stats["delivered"].as_u64(), stats["failed"].as_u64()),
            (Some(5), Some(3), Some(2)));
        assert_eq!(stats["success_rate"], 0.6);
        assert!(stats["latency_ms"]["p50"].is_u64() && stats["latency_ms"]["p99"].is_u64(), "{stats}");
        assert_eq!(stats["queue_depth"], 0);
        assert_eq!(stats["capped"], false);
        assert!(stats["last_success_at"].is_string() && stats["last_failure_at"].is_string());
        let buckets = stats["buckets"].as_array().unwrap();
        assert_eq!(buckets.len(), 60);
        let sum = |k: &str| buckets.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
        assert_eq!((sum("delivered"), sum("failed")), (3, 2));
        let last = buckets[59]["at"].as_str().unwrap();
        let minute = [minute_before, minute_after]
            .into_iter()
            .find(|m| rfc3339(*m) == last)
            .unwrap_or_else(|| panic!("the last bucket {last} is not the current minute"));
        assert_eq!(buckets[0]["at"], rfc3339(minute - 59 * 60_000));
        for b in buckets {
            let n = b["delivered"].as_u64().unwrap() + b["failed"].as_u64().unwrap();
            assert_eq!(b["p50_ms"].is_null(), n == 0, "{b}");
        }

        let (status, five) = weir.get("/v1/webhooks/s/stats?minutes=5").await;
        assert_eq!(status, 200, "{five}");
        assert_eq!(five["buckets"].as_array().unwrap().len(), 5);
        let (_, idle) = weir.get("/v1/webhooks/idle/stats").await;
        assert_eq!((idle["attempts"].as_u64(), idle["success_rate"].clone()), (Some(0), Value::Null));
        assert_eq!(idle["latency_ms"], json!({"p50": null, "p99": null}));
        for bad in ["0", "1441", "ten", "-1"] {
            let (status, body) = weir.get(&format!("/v1/webhooks/s/stats?minutes={bad}")).await;
            assert_eq!(status, 400, "{bad}: {body}");
        }
        // Two hours on, the attempts are out of the window.
        clock.advance(Duration::from_secs(7200));
        let (_, later) = weir.get("/v1/webhooks/s/stats").await;
        assert_eq!(later["attempts"], 0);
        assert_eq!(later["success_rate"], Value::Null);
        let (_, day) = weir.get("/v1/webhooks/s/stats?minutes=1440").await;
        assert_eq!(day["attempts"], 5);

        let mine = weir.token(Some("org_a"), &["webhooks:read"]).await;
        let theirs = weir.token(Some("org_b"), &["webhooks:read"]).await;
        let unscoped = weir.token(Some("org_a"), &["deliveries:read"]).await;
        for (token, status) in [(&mine, 200), (&theirs, 404), (&unscoped, 403)] {
            let (got, body) = weir.call(Method::GET, "/v1/webhooks/s/stats", Some(token), None).await;
            assert_eq!(got, status, "{body}");
        }
        let (status, _) = weir.get("/v1/webhooks/ghost/stats").await;
        assert_eq!(status, 404);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plugins_name_the_webhooks_that_use_them_and_count_their_calls() {
        let sub = Receiver::start().await;
        let config = preamble()
            + &hook("mine", &sub.url("/mine"), "owners = [\"org_a\"]")
            + &plugin("add_headers", "{ headers = { \"x-a\" = \"1\" } }")
            + &hook("theirs", &sub.url("/theirs"), "owners = [\"org_b\"]")
            + &plugin("add_headers", "{ headers = { \"x-b\" = \"1\" } }")
            + &hook("trapper", &sub.url("/trapper"), "")
            + &plugin("trap", "{}");
        let plugins = [
            ("add_headers", example_plugin("add_headers")),
            ("trap", test_plugin("trap")),
            ("echo_config", test_plugin("echo_config")),
        ];
        let weir = Weir::start_with(&config, &plugins).await;
        weir.send(&json!([
            {"type": "a.b", "owner_id": "org_a", "data": 1},
            {"type": "a.b", "owner_id": "org_b", "data": 2},
            {"type": "a.b", "data": 3},
        ]))
        .await;
        weir.wait_deliveries("status=delivered", |r| r.len() == 2).await;
        weir.wait_deliveries("webhook=trapper&status=held", |r| r.len() == 3).await;

        let by_name = |list: &Value| -> std::collections::HashMap<String, Value> {
            list["plugins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
                .collect()
        };
        let (status, list) = weir.get("/v1/plugins").await;
        assert_eq!(status, 200, "{list}");
        let all = by_name(&list);
        let add = &all["add_headers"];
        assert_eq!(add["used_by"], json!(["mine", "theirs"]));
        assert_eq!((add["calls"].as_u64(), add["failures"].as_u64()), (Some(2), Some(0)));
        assert!(add["mean_ms"].as_f64().unwrap() > 0.0, "{add}");
        assert_eq!(add["state"], "ready");
        let trap = &all["trap"];
        assert_eq!(trap["used_by"], json!(["trapper"]));
        assert_eq!((trap["calls"].as_u64(), trap["failures"].as_u64()), (Some(3), Some(3)));
        let echo = &all["echo_config"];
        assert_eq!(echo["used_by"], json!([]));
        assert_eq!((echo["calls"].as_u64(), echo["mean_ms"].clone()), (Some(0), Value::Null));

        // An owner's token hears only of its own webhooks.
        let a = weir.token(Some("org_a"), &["plugins:read"]).await;
        let (status, list) = weir.call(Method::GET, "/v1/plugins", Some(&a), None).await;
        assert_eq!(status, 200, "{list}");
        let mine = by_name(&list);
        assert_eq!(mine["add_headers"]["used_by"], json!(["mine"]));
        assert_eq!(mine["trap"]["used_by"], json!([]));
        let unscoped = weir.token(Some("org_a"), &["webhooks:read"]).await;
        let (status, _) = weir.call(Method::GET, "/v1/plugins", Some(&unscoped), None).await;
        assert_eq!(status, 403);
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plugin_runs_once_on_a_posted_event_for_an_admin() {
        let config = with_tokens("");
        let plugins = [
            ("add_headers", example_plugin("add_headers")),
            ("app_scope", example_plugin("app_scope")),
            ("echo_config", test_plugin("echo_config")),
            ("trap", test_plugin("trap")),
            ("github_push", example_plugin("github_push")),
        ];
        let weir = Weir::start_with(&config, &plugins).await;
        let run = |name: &str, body: Value| {
            let weir = &weir;
            let path = format!("/v1/plugins/{name}/run");
            async move { weir.call(Method::POST, &path, Some(ADMIN), Some(&body)).await }
        };
        let event = json!({"id": "e1", "type": "a.b", "data": {"x": "<b>hi</b>"}});

        let (status, out) = run("add_headers", json!({"event": event, "config": {"headers": {"x-a": "1"}}})).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["plugin"], "add_headers");
        assert_eq!(out["verdict"], "deliver");
        assert_eq!(out["headers"], json!([["x-a", "1"]]));
        assert_eq!(out["logs"], json!(["info: adding x-a to e1"]));
        assert_eq!((out["reason"].clone(), out["error"].clone()), (Value::Null, Value::Null));
        let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
        assert_eq!((body["id"].clone(), body["data"]["x"].clone()), (json!("e1"), json!("<b>hi</b>")));
        assert!(out["time_ms"].as_f64().unwrap() > 0.0, "{out}");

        let (status, out) = run("echo_config", json!({"event": event})).await;
        assert_eq!((status, out["body"].as_str()), (200, Some("{}")), "config defaults to {{}}");

        let (status, out) = run("app_scope", json!({"event": event, "config": {"form_ids": ["f"]}})).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["verdict"], "drop");
        assert!(out["reason"].is_string() && out["body"].is_null(), "{out}");

        let (status, out) = run("trap", json!({"event": event})).await;
        assert_eq!(status, 200, "a failing plugin is still a run: {out}");
        assert_eq!(out["verdict"], "failure");
        assert!(out["error"].as_str().unwrap().contains("boom on e1"), "{out}");

        let (status, out) = run("github_push", json!({"event": event})).await;
        assert_eq!((status, out["error"]["code"].as_str()), (400, Some("wrong_plugin_kind")), "{out}");
        let (status, _) = run("nope", json!({"event": event})).await;
        assert_eq!(status, 404);
        for bad in [
            json!({"event": {"data": 1}}),
            json!({"event": [event]}),
            json!({"event": "e1"}),
            json!({"event": event, "colour": "red"}),
            json!({"config": {}}),
        ] {
            let (status, out) = run("add_headers", bad.clone()).await;
            assert_eq!(status, 400, "{bad}: {out}");
        }

        // Only an admin may run plugins; a run is not one of its calls.
        let reader = weir.token(None, &["plugins:read", "webhooks:write"]).await;
        let (status, _) = weir
            .call(Method::POST, "/v1/plugins/add_headers/run", Some(&reader), Some(&json!({"event": event})))
            .await;
        assert_eq!(status, 403);
        let (status, _) = weir
            .call(Method::POST, "/v1/plugins/add_headers/run", None, Some(&json!({"event": event})))
            .await;
        assert_eq!(status, 401);
        let (_, list) = weir.call(Method::GET, "/v1/plugins", Some(ADMIN), None).await;
        let add = list["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "add_headers").unwrap();
        assert_eq!(add["calls"], 0, "{add}");
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bulk_replay_takes_a_type_and_a_window_and_a_dry_run_changes_nothing() {
        let sub = Receiver::start().await;
        sub.always(Reply::Status(500));
        let clock = Arc::new(ManualClock::default());
        let config = preamble()
            + &hook("bulk", &sub.url("/"), "owners = [\"org_a\"]\nmax_retries = 0");
        let weir = boot(&config, &[], clock.clone()).await;
        weir.send(&json!([
            {"type": "a.x", "owner_id": "org_a", "data": 1},
            {"type": "a.x", "owner_id": "org_a", "data": 2},
            {"type": "a.y", "owner_id": "org_a", "data": 3},
            {"type": "a.x", "owner_id": "org_a", "data": 4},
        ]))
        .await;
        weir.wait_deliveries("webhook=bulk&status=dead", |r| r.len() == 4).await;
        let died = clock.now();
        clock.advance(Duration::from_secs(60));

        let replay = |body: Value| {
            let weir = &weir;
            async move { weir.post("/v1/replay", Some(body)).await }
        };
        let (status, out) = replay(json!({"webhook": "bulk", "status": "dead", "type": "a.x", "dry_run": true})).await;
        assert_eq!((status, out.clone()), (200, json!({"replayed": 0, "matched": 3})));
        assert_eq!(weir.all_deliveries("webhook=bulk&status=dead").await.len(), 4, "a dry run changes nothing");
        let (_, out) = replay(json!({"webhook": "bulk", "status": "dead", "until": rfc3339(died - 60_000), "dry_run": true})).await;
        assert_eq!(out["matched"], 0, "updated_at is when they died: {out}");
        let (_, out) = replay(json!({"webhook": "bulk", "status": "dead", "since": rfc3339(died - 60_000), "until": rfc3339(clock.now()), "dry_run": true})).await;
        assert_eq!(out["matched"], 4, "{out}");
        let (status, out) = replay(json!({"webhook": "bulk", "status": "dead", "until": "soon"})).await;
        assert_eq!((status, out["error"]["code"].as_str()), (400, Some("bad_time")), "{out}");
        assert!(out["error"]["message"].as_str().unwrap().starts_with("until"), "{out}");

        let theirs = weir.token(Some("org_b"), &["deliveries:replay"]).await;
        let (status, _) = weir
            .call(Method::POST, "/v1/replay", Some(&theirs), Some(&json!({"webhook": "bulk", "status": "dead", "dry_run": true})))
            .await;
        assert_eq!(status, 404, "another owner's webhook");

        sub.always(Reply::Status(200));
        let (status, out) = replay(json!({"webhook": "bulk", "status": "dead", "type": "a.x"})).await;
        assert_eq!((status, out), (202, json!({"replayed": 3, "matched": 3})));
        weir.wait_deliveries("webhook=bulk&status=delivered", |r| r.len() == 3).await;
        let dead = weir.all_deliveries("webhook=bulk&status=dead").await;
        assert_eq!(ids(&dead, "event_type"), ["a.y"]);
        weir.stop().await;
    }

    /// A webhook id deleted by one owner and taken by another is another
    /// webhook: the first owner's old deliveries are never replayed to it,
    /// one at a time or in bulk, whoever asks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replays_never_reach_another_owners_webhook_with_a_reused_id() {
        let (sub_a, sub_b) = (Receiver::start().await, Receiver::start().await);
        sub_a.always(Reply::Status(500));
        let weir = Weir::start_with(&with_tokens(""), &[]).await;
        let create = async |owner: &str, url: String| {
            let body = json!({"id": "orders", "url": url, "owners": [owner], "max_retries": 50});
            let (status, answer) = weir.post("/v1/webhooks", Some(body)).await;
            assert_eq!(status, 201, "{answer}");
        };
        let post = async |owner: &str, id: &str| {
            let e = json!({"id": id, "type": "order.paid", "owner_id": owner, "data": {}});
            let (status, answer) = weir.call(Method::POST, "/v1/events", Some(INGEST), Some(&e)).await;
            assert_eq!(status, 202, "{answer}");
        };
        create("org_a", sub_a.url("/a")).await;
        post("org_a", "a_1").await;
        sub_a.wait_for(1).await;
        let (status, _) = weir.call(Method::DELETE, "/v1/webhooks/orders", Some(ADMIN), None).await;
        assert_eq!(status, 200);
        let old = weir.sole_delivery("orders", "canceled").await;
        create("org_b", sub_b.url("/b")).await;

        let a_token = weir.token(Some("org_a"), &["deliveries:read", "deliveries:replay"]).await;
        let path = format!("/v1/deliveries/{}/replay", old["id"].as_str().unwrap());
        let (status, body) = weir.call(Method::POST, &path, Some(&a_token), None).await;
        assert_eq!(status, 409, "{body}");
        assert_eq!(body["error"]["code"], "webhook_not_configured");
        for dry_run in [true, false] {
            let req = json!({"webhook": "orders", "status": "canceled", "dry_run": dry_run});
            let (_, answer) = weir.post("/v1/replay", Some(req)).await;
            assert_eq!(answer["matched"], 0, "{answer}");
            assert_eq!(answer["replayed"], 0, "{answer}");
        }
        // B's own event is the first and only thing B's subscriber gets.
        post("org_b", "b_1").await;
        let got = sub_b.wait_for(1).await;
        weir.wait_deliveries("webhook=orders&status=delivered", |r| r.len() == 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].json()["id"], "b_1");
        weir.stop().await;
    }

    /// A webhook's queue is counted on its own, in the webhook and in its
    /// stats, and another webhook's queue does not leak into it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_webhooks_queue_depth_counts_its_own_live_deliveries() {
        let sub = Receiver::start().await;
        sub.always(Reply::Status(500));
        let later = "retry_delays_secs = [3600]";
        let config = with_tokens(&(hook("slow", &sub.url("/s"), later) + &hook("idle", &sub.url("/i"), "events = [\"none.*\"]")));
        let weir = Weir::start_with(&config, &[]).await;
        let events = common::events(3, "a.b", "org_1");
        let (status, _) = weir.call(Method::POST, "/v1/events", Some(INGEST), Some(&events)).await;
        assert_eq!(status, 202);
        weir.wait_deliveries("webhook=slow&status=retrying", |r| r.len() == 3).await;
        for (id, live) in [("slow", 3), ("idle", 0)] {
            let (_, hook) = weir.get(&format!("/v1/webhooks/{id}")).await;
            assert_eq!(hook["queue_depth"], live, "{hook}");
            let (_, stats) = weir.get(&format!("/v1/webhooks/{id}/stats")).await;
            assert_eq!(stats["queue_depth"], live, "{stats}");
        }
        weir.stop().await;
    }
}
