//! The console in a real browser: headless Chromium driven over WebDriver
//! against a real weir and real fake subscribers, on both stores. Each test
//! reads the page the way a person would (text on screen, buttons) and
//! checks the outcome on the subscriber's side too.

mod common;

use common::browser::{self, Browser};
use common::proxy::Proxy;
use common::{Receiver, Reply, Weir, both_stores, eventually, example_plugin, hook, preamble};
use serde_json::json;

const ADMIN: &str = "admin-secret";

/// The test preamble with an admin token, so the console needs a sign-in.
fn guarded(webhooks: &str) -> String {
    let config = preamble().replacen(
        "[server]\n",
        &format!("[server]\nadmin_token = \"{ADMIN}\"\n"),
        1,
    );
    format!("{config}{webhooks}")
}

async fn sign_in(b: &Browser, token: &str) {
    b.goto("/console/").await;
    b.fill("#token", token).await;
    b.click("#signin-button").await;
    b.text("#whoami").await;
}

both_stores! {
    /// Sign-in refuses a wrong token and says so; a tenant's token then
    /// creates a webhook, watches a posted event arrive in the live log,
    /// and sends a test event that is delivered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_signs_in_creates_a_webhook_and_watches_deliveries_arrive() {
        let sub = Receiver::start().await;
        let weir = Weir::start_with(&guarded(""), &[]).await;
        let Some(b) = browser::open("console::sign_in", &weir.url).await else { return };
        let token = weir
            .token(Some("org_1"), &["webhooks:read", "webhooks:write", "deliveries:read", "deliveries:replay"])
            .await;

        b.goto("/console/").await;
        b.fill("#token", "weir_0000000000000000000000000000000000000000deadbeef").await;
        b.click("#signin-button").await;
        let refused = b.wait_contains("#signin-error", "Not signed in").await;
        assert!(refused.contains("unknown token"), "{refused}");

        b.fill("#token", &token).await;
        b.click("#signin-button").await;
        assert_eq!(b.text("#whoami").await, "owner org_1");
        b.text("#no-webhooks").await;
        // A tenant without the admin scope is not offered the playground.
        assert_eq!(b.count("#nav-playground").await, 0);
        assert_eq!(b.count("#nav-plugins").await, 0);

        b.click("#new-webhook").await;
        b.fill("#f-id", "orders").await;
        b.fill("#f-url", &sub.url("/orders")).await;
        b.fill("#f-description", "Order feed for the warehouse").await;
        b.fill("#f-events", "order.*").await;
        b.click("#create").await;
        let secret = b.text("#created-secret").await;
        assert!(secret.starts_with("whsec_"), "{secret}");
        let (status, created) = weir.get("/v1/webhooks/orders").await;
        assert_eq!(status, 200, "{created}");
        assert_eq!(created["owners"], json!(["org_1"]));

        b.click("#created-link").await;
        b.wait_contains("h1", "orders").await;
        b.click("#webhook-log").await;
        b.text("#deliveries").await;
        assert_eq!(b.eval("document.getElementById('live').checked").await, json!(true));
        weir.send(&json!({"id": "ord_1", "type": "order.paid", "owner_id": "org_1", "data": {"total": 12}})).await;
        let arrived = sub.wait_for(1).await;
        assert_eq!(arrived[0].json()["data"], json!({"total": 12}));
        // The open page shows the delivery without being reloaded.
        b.wait_true("live row", "!!document.querySelector('#deliveries tr[data-status=delivered]')").await;
        assert!(b.text("#deliveries tbody").await.contains("ord_1"));
        b.screenshot("delivery-log").await;

        b.hash("#/webhooks/orders").await;
        b.click("#send-test").await;
        b.click("#test-delivery").await;
        b.wait_contains("h1", "delivered").await;
        let attempts = b.text("#attempts").await;
        assert!(attempts.contains("200"), "{attempts}");
        let got = sub.wait_for(2).await;
        assert_eq!(got[1].json()["type"], "weir.test");
        b.hash("#/webhooks/orders").await;
        b.wait_contains("#stats-line", "2 attempts").await;
        b.screenshot("webhook").await;
        b.hash("#/webhooks").await;
        b.wait_true("stats filled", "!document.querySelector('#webhooks').textContent.includes('…')").await;
        b.screenshot("webhooks").await;
        b.close().await;
        weir.stop().await;
    }

    /// A delivery that died against a failing subscriber shows each attempt
    /// with the subscriber's answer; once it recovers, replay delivers it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_delivery_shows_its_attempts_and_replays_after_recovery() {
        let sub = Receiver::start().await;
        sub.always(Reply::StatusBody(500, "database is down"));
        let weir = Weir::start_with(
            &guarded(&hook("billing", &sub.url("/billing"), "max_retries = 1")),
            &[],
        )
        .await;
        let Some(b) = browser::open("console::failed", &weir.url).await else { return };
        weir.send(&json!({"id": "inv_7", "type": "invoice.paid", "owner_id": "org_1", "data": {}})).await;
        let dead = weir.sole_delivery("billing", "dead").await;
        let id = dead["id"].as_str().unwrap().to_owned();

        sign_in(&b, ADMIN).await;
        b.hash("#/deliveries?webhook=billing&status=dead").await;
        b.click(&format!("tr[data-delivery='{id}'] a")).await;
        b.wait_contains("h1", "dead").await;
        let attempts = b.text("#attempts").await;
        assert_eq!(b.count("#attempts tbody tr").await, 2, "{attempts}");
        assert!(attempts.contains("500") && attempts.contains("database is down"), "{attempts}");
        assert!(b.text("#event").await.contains("inv_7"));
        b.screenshot("delivery-failed").await;

        sub.always(Reply::Status(200));
        b.click("#replay").await;
        b.wait_contains("h1", "delivered").await;
        assert_eq!(b.count("#attempts tbody tr").await, 3);
        let got = sub.wait_for(3).await;
        assert_eq!(got[2].json()["id"], "inv_7");
        b.close().await;
        weir.stop().await;
    }

    /// Deliveries held by a broken plugin are found with the filters and
    /// replayed in bulk (counted and confirmed first) once the plugin is
    /// fixed; each arrives once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn held_deliveries_replay_in_bulk_after_a_plugin_fix() {
        let sub = Receiver::start().await;
        let config = guarded(&hook(
            "crm",
            &sub.url("/crm"),
            "[[webhooks.plugins]]\nname = \"guard\"\non_error = \"hold\"",
        ));
        let weir = Weir::start_with(&config, &[("guard", common::test_plugin("trap"))]).await;
        let Some(b) = browser::open("console::held", &weir.url).await else { return };
        weir.send(&common::events(3, "contact.update", "org_1")).await;
        weir.wait_deliveries("webhook=crm&status=held", |r| r.len() == 3).await;

        sign_in(&b, ADMIN).await;
        b.hash("#/deliveries").await;
        b.fill("#q-webhook", "crm").await;
        b.select("#q-status", "held").await;
        b.click("#apply").await;
        b.wait_true("three held rows", "document.querySelectorAll('#deliveries tr[data-status=held]').length === 3").await;
        b.click("#deliveries tbody tr a").await;
        let reason = b.wait_contains("#reason", "Held").await;
        assert!(reason.contains("guard"), "{reason}");

        // The fix lands: a plugin that delivers, under the same name.
        let before = weir.get("/v1/plugins").await.1;
        std::fs::copy(common::test_plugin("echo_config"), weir.path("plugins/guard.wasm")).unwrap();
        eventually("the fixed plugin loaded", async || {
            let now = weir.get("/v1/plugins").await.1;
            (now["plugins"][0]["sha256"] != before["plugins"][0]["sha256"]
                && now["plugins"][0]["state"] == "ready").then_some(())
        }).await;

        b.client.back().await.unwrap();
        b.click("#replay-all").await;
        let question = b.text("#confirm").await;
        assert!(question.contains("Replay 3 held deliveries of crm"), "{question}");
        b.click("#confirm-yes").await;
        b.wait_contains("#replay-progress", "all sent").await;
        let got = sub.wait_for(3).await;
        let mut ids: Vec<String> = got.iter().map(|r| r.header("webhook-id").to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 3, "each held delivery arrives once");
        weir.wait_deliveries("webhook=crm&status=delivered", |r| r.len() == 3).await;
        b.close().await;
        weir.stop().await;
    }

    /// An owner's token sees only its owner's webhooks and deliveries; the
    /// other owner's ids are "not found", and what the token may not do is
    /// not offered (and still refused by the API).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_owner_never_sees_another_owners_webhook() {
        let sub = Receiver::start().await;
        let weir = Weir::start_with(&guarded(""), &[]).await;
        let Some(b) = browser::open("console::tenants", &weir.url).await else { return };
        for (id, owner) in [("a_hook", "org_a"), ("b_hook", "org_b")] {
            let body = json!({"id": id, "url": sub.url("/x"), "owners": [owner]});
            let (status, answer) = weir.post("/v1/webhooks", Some(body)).await;
            assert_eq!(status, 201, "{answer}");
        }
        weir.send(&json!([{"id": "b1", "type": "t.x", "owner_id": "org_b", "data": {}}])).await;
        let b_delivery = weir.sole_delivery("b_hook", "delivered").await;
        let reader = weir.token(Some("org_a"), &["webhooks:read", "deliveries:read"]).await;

        sign_in(&b, &reader).await;
        let list = b.text("#webhooks").await;
        assert!(list.contains("a_hook") && !list.contains("b_hook"), "{list}");
        assert_eq!(b.count("#new-webhook").await, 0, "a read-only token is not offered a form");
        b.hash("#/webhooks/a_hook").await;
        b.wait_contains("h1", "a_hook").await;
        assert_eq!(b.count("#send-test").await + b.count("#delete").await, 0);

        b.hash("#/webhooks/b_hook").await;
        b.wait_contains("#page-error", "Not found").await;
        b.hash(&format!("#/deliveries/{}", b_delivery["id"].as_str().unwrap())).await;
        b.wait_contains("#page-error", "Not found").await;
        b.hash("#/deliveries").await;
        let log = b.text("#deliveries").await;
        assert!(log.contains("No deliveries match") && !log.contains("b1"), "{log}");

        let (status, _) = weir
            .call(reqwest::Method::POST, "/v1/webhooks/a_hook/test", Some(&reader), None)
            .await;
        assert_eq!(status, 403, "the API refuses what the page does not offer");
        b.close().await;
        weir.stop().await;
    }

    /// Markup written by a producer (event id and data), a subscriber (its
    /// answer), a tenant (a description) and a plugin (its log) is shown as
    /// text and never runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn markup_from_producers_subscribers_and_plugins_is_shown_as_text() {
        const DESC: &str = "<img src=x onerror=\"window.__pwned=1\">";
        const EVENT_ID: &str = "<svg onload=\"window.__pwned=2\">";
        const DATA: &str = "<script>window.__pwned=3</script>";
        const ANSWER: &str = "<img src=y onerror=\"window.__pwned=4\"><b>bold?</b>";
        let sub = Receiver::start().await;
        sub.always(Reply::StatusBody(500, ANSWER));
        let config = guarded(&hook(
            "hostile",
            &sub.url("/h"),
            "max_retries = 0\n[[webhooks.plugins]]\nname = \"add_headers\"\nconfig = { headers = { x-a = \"1\" } }",
        ));
        let weir = Weir::start_with(&config, &[("add_headers", example_plugin("add_headers"))]).await;
        let Some(b) = browser::open("console::markup", &weir.url).await else { return };
        let body = json!({"id": "described", "url": sub.url("/d"), "description": DESC, "events": ["nothing.*"]});
        assert_eq!(weir.post("/v1/webhooks", Some(body)).await.0, 201);
        weir.send(&json!({"id": EVENT_ID, "type": "page.edit", "owner_id": "org_1", "data": {"html": DATA}})).await;
        let dead = weir.sole_delivery("hostile", "dead").await;

        sign_in(&b, ADMIN).await;
        let list = b.text("#webhooks").await;
        assert!(list.contains(DESC), "{list}");
        b.hash(&format!("#/deliveries/{}", dead["id"].as_str().unwrap())).await;
        let attempts = b.text("#attempts").await;
        assert!(attempts.contains(ANSWER), "{attempts}");
        assert!(b.text("#event").await.contains(DATA));
        assert!(b.text("h1").await.contains("dlv_"));
        let log = b.text("#plugin-log").await;
        assert!(log.contains(EVENT_ID), "{log}");
        b.hash("#/deliveries?webhook=hostile").await;
        assert!(b.text("#deliveries").await.contains(EVENT_ID));

        assert_eq!(b.eval("window.__pwned === undefined").await, json!(true));
        assert_eq!(
            b.eval("document.querySelectorAll('img, script:not([src]), main svg:not(.chart), b').length").await,
            json!(0),
            "no element was made from someone else's markup"
        );
        b.close().await;
        weir.stop().await;
    }

    /// When weir goes away mid-session the page says so, and it recovers by
    /// itself when weir is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn losing_the_server_shows_a_banner_until_it_returns() {
        let sub = Receiver::start().await;
        let weir = Weir::start_with(&guarded(&hook("audit", &sub.url("/a"), "")), &[]).await;
        let addr: std::net::SocketAddr = weir.url.trim_start_matches("http://").parse().unwrap();
        let proxy = Proxy::start(addr).await;
        let Some(b) = browser::open("console::banner", &format!("http://{}", proxy.addr)).await else { return };
        sign_in(&b, ADMIN).await;
        b.hash("#/deliveries").await;
        b.text("#deliveries").await;
        assert_eq!(b.eval("document.getElementById('banner').hidden").await, json!(true));

        proxy.down();
        b.wait_contains("#banner", "not answering").await;
        proxy.up();
        b.wait_true("banner gone", "document.getElementById('banner').hidden").await;
        weir.send(&json!({"id": "back", "type": "t.x", "data": {}})).await;
        b.wait_true("log live again", "document.querySelector('#deliveries').textContent.includes('back')").await;
        b.close().await;
        weir.stop().await;
    }

    /// The plugins page lists each plugin's version, state and users, and
    /// the playground runs one on a pasted event.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_playground_runs_a_plugin_on_a_pasted_event() {
        let sub = Receiver::start().await;
        let config = guarded(&hook(
            "scoped",
            &sub.url("/s"),
            "[[webhooks.plugins]]\nname = \"add_headers\"\nconfig = { headers = { x-team = \"data\" } }",
        ));
        let weir = Weir::start_with(&config, &[("add_headers", example_plugin("add_headers"))]).await;
        let Some(b) = browser::open("console::plugins", &weir.url).await else { return };
        weir.send(&json!({"id": "p1", "type": "t.x", "data": {}})).await;
        sub.wait_for(1).await;

        sign_in(&b, ADMIN).await;
        b.click("#nav-plugins").await;
        let row = b.text("tr[data-plugin=add_headers]").await;
        assert!(row.contains("ready") && row.contains("scoped") && row.contains("filter"), "{row}");
        b.screenshot("plugins").await;

        b.click("#nav-playground").await;
        b.fill("#pg-config", r#"{"headers": {"x-try": "yes"}}"#).await;
        b.click("#pg-run").await;
        assert!(b.text("#pg-verdict").await.contains("deliver"));
        assert!(b.text("#pg-headers").await.contains("x-try: yes"));
        assert!(b.text("#pg-logs").await.contains("evt_try_1"));
        assert!(b.text("#pg-body").await.contains("evt_try_1"));
        b.screenshot("playground").await;
        b.close().await;
        weir.stop().await;
    }
}
