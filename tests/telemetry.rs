//! Traces end to end: weir exports one trace per event to an OTLP/HTTP
//! receiver the test runs on loopback; subscribers get `traceparent` naming
//! the attempt's span only while traces are on.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message as _;
use serde_json::{Value, json};

/// A span as the receiver got it, with its resource's attributes.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, Value>,
    resource: HashMap<String, Value>,
    /// `(trace id, span id)` of each link.
    links: Vec<(String, String)>,
    /// The status code: 0 unset, 1 ok, 2 error.
    status: i32,
}

impl Got {
    fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }
}

/// An OTLP/HTTP (protobuf) trace receiver on loopback.
#[derive(Clone)]
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Got>>> = Arc::default();
        let keep = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let keep = keep.clone();
                async move {
                    let req = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    keep.lock().unwrap().extend(flatten(req));
                    ""
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { url, spans }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }
}

fn flatten(req: ExportTraceServiceRequest) -> Vec<Got> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = attributes(rs.resource.map(|r| r.attributes).unwrap_or_default());
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Got {
                    name: s.name,
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    attributes: attributes(s.attributes),
                    resource: resource.clone(),
                    links: s
                        .links
                        .iter()
                        .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                        .collect(),
                    status: s.status.map(|st| st.code).unwrap_or(0),
                });
            }
        }
    }
    out
}

fn attributes(kvs: Vec<KeyValue>) -> HashMap<String, Value> {
    kvs.into_iter().map(|kv| (kv.key, any(kv.value))).collect()
}

fn any(v: Option<AnyValue>) -> Value {
    match v.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        other => json!(format!("{other:?}")),
    }
}

/// The producer's span, which the event's root span links to.
const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PRODUCER_SPAN: &str = "00f067aa0ba902b7";
const FORM: &str = "a1b2c3d4-0000-4000-8000-000000000001";

/// A config for node `node` whose one webhook runs `app_scope` and retries
/// an hour later, exporting traces to `collector` when given.
fn config(node: &str, sub: &Receiver, collector: Option<&Collector>) -> String {
    let telemetry = collector
        .map(|c| {
            format!(
                "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"weir-test\"\n\n",
                c.url
            )
        })
        .unwrap_or_default();
    format!(
        "{}{telemetry}{}  [[webhooks.plugins]]\n  name = \"app_scope\"\n  config = {{ form_ids = [\"{FORM}\"] }}\n\n",
        preamble().replace("[server]\n", &format!("[server]\nnode_id = \"{node}\"\n")),
        hook("traced", &sub.url("/hook"), "retry_delays_secs = [3600]"),
    )
}

async fn start(dir: TestDir, clock: Arc<ManualClock>) -> Weir {
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::copy(
        example_plugin("app_scope"),
        dir.path().join("plugins/app_scope.wasm"),
    )
    .unwrap();
    Weir::boot_with_clock(dir, clock).await
}

/// Posts the sample record event with the producer's `traceparent`.
async fn post_traced(weir: &Weir) -> String {
    let event = fixture("record.create.json");
    let res = reqwest::Client::new()
        .post(format!("{}/v1/events", weir.url))
        .header("content-type", "application/json")
        .header(
            "traceparent",
            format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"),
        )
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let ids: Value = res.json().await.unwrap();
    ids["ids"][0].as_str().unwrap().to_owned()
}

both_stores! {
    /// Node a takes the event in, runs the plugin and fails the first
    /// attempt; node b (the same database, a later clock) sends the retry.
    /// Both nodes' spans land in one trace, and each request names its
    /// attempt's span.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_trace_per_event_across_nodes_and_attempts() {
        let collector = Collector::start().await;
        let sub = Receiver::start().await;
        sub.script([Reply::Status(500)]);
        let dir = tempdir();
        write_config(dir.path(), &config("node-a", &sub, Some(&collector)));
        let clock = Arc::new(ManualClock::default());
        let a = start(dir, clock.clone()).await;
        let event_id = post_traced(&a).await;
        a.wait_deliveries("webhook=traced", |r| {
            r.len() == 1 && r[0]["status"] == "retrying"
        })
        .await;
        let dir = a.stop().await;

        write_config(dir.path(), &config("node-b", &sub, Some(&collector)));
        clock.advance(std::time::Duration::from_secs(2 * 3600));
        let b = start(dir, clock).await;
        let delivery = b.sole_delivery("traced", "delivered").await;
        b.stop().await;
        assert_eq!(delivery["attempts"], 2, "{delivery}");
        let mut nodes: Vec<&str> = delivery["attempt_log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["node"].as_str().unwrap())
            .collect();
        nodes.sort();
        assert_eq!(nodes, ["node-a", "node-b"], "each node made one attempt");

        let spans = eventually("the spans of both nodes", async || {
            let spans = collector.spans();
            let attempts = spans.iter().filter(|s| s.name == "attempt").count();
            (attempts == 2 && spans.iter().any(|s| s.name == "plugin")).then_some(spans)
        })
        .await;
        let named = |name: &str| -> Vec<&Got> { spans.iter().filter(|s| s.name == name).collect() };

        // The root: made at ingest, linked to the producer's span.
        let roots = named("ingest");
        assert_eq!(roots.len(), 1, "{spans:#?}");
        let root = roots[0];
        assert_eq!(root.parent, "");
        assert_eq!(root.attr("weir.event.id"), &json!(event_id));
        assert_eq!(root.attr("weir.event.type"), &json!("record.create"));
        assert_eq!(root.attr("weir.owner_id"), &json!("00053caf-4b6e-4c86-88b6-c1c3a5e7b5f2"));
        assert_eq!(root.attr("weir.node"), &json!("node-a"));
        assert_eq!(root.attr("weir.ingest.source"), &json!("api"));
        assert_eq!(root.links, vec![(PRODUCER_TRACE.to_owned(), PRODUCER_SPAN.to_owned())]);
        assert_ne!(root.trace_id, PRODUCER_TRACE, "the event has a trace of its own");
        assert_eq!(root.resource["service.name"], json!("weir-test"));
        assert_eq!(root.resource["service.instance.id"], json!("node-a"));
        // Every span of the event is in the root's trace.
        for s in &spans {
            assert_eq!(s.trace_id, root.trace_id, "{s:#?}");
        }

        // The plugin chain ran once, on node a, under the root.
        let chain = named("chain");
        assert_eq!(chain.len(), 1, "{spans:#?}");
        assert_eq!(chain[0].parent, root.span_id);
        assert_eq!(chain[0].attr("weir.chain.outcome"), &json!("deliver"));
        let plugin = named("plugin");
        assert_eq!(plugin.len(), 1, "{spans:#?}");
        assert_eq!(plugin[0].parent, chain[0].span_id);
        assert_eq!(plugin[0].attr("weir.plugin"), &json!("app_scope"));
        assert_eq!(plugin[0].attr("weir.plugin.verdict"), &json!("deliver"));
        assert_eq!(plugin[0].attr("weir.webhook"), &json!("traced"));

        // Two attempts under the root: a's failed, b's succeeded.
        let mut attempts = named("attempt");
        attempts.sort_by_key(|s| s.attr("weir.attempt").as_i64());
        let (first, second) = (attempts[0], attempts[1]);
        for (s, n, node, status, outcome) in [
            (first, 1, "node-a", 500, "retrying"),
            (second, 2, "node-b", 200, "delivered"),
        ] {
            assert_eq!(s.parent, root.span_id, "{s:#?}");
            assert_eq!(s.attr("weir.attempt"), &json!(n));
            assert_eq!(s.attr("weir.node"), &json!(node));
            assert_eq!(s.resource["service.instance.id"], json!(node));
            assert_eq!(s.attr("http.response.status_code"), &json!(status));
            assert_eq!(s.attr("weir.attempt.outcome"), &json!(outcome));
            assert_eq!(s.attr("weir.delivery.id"), &delivery["id"]);
            assert_eq!(s.attr("weir.event.id"), &json!(event_id));
        }
        assert_eq!(first.status, 2, "a failed attempt is an error span");
        assert_eq!(first.attr("error.type"), &json!("500"));
        assert_ne!(second.status, 2);

        // Each request named its own attempt's span in the event's trace.
        let got = sub.wait_for(2).await;
        let sent: Vec<&str> = got.iter().map(|r| r.header("traceparent")).collect();
        assert_eq!(
            sent,
            [first, second]
                .map(|s| format!("00-{}-{}-01", root.trace_id, s.span_id))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        );
    }

    /// An event made from a request caught at `/in/{source}` is traced the
    /// same way, linked to the sender's span; a webhook without plugins
    /// has no chain span.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inbound_events_are_traced_and_linked_to_the_sender() {
        let collector = Collector::start().await;
        let sub = Receiver::start().await;
        let config = format!(
            "{}[telemetry]\notlp_endpoint = \"{}\"\n\n\
             [[sources]]\nid = \"shop\"\nverify = \"none\"\ntype_from = \"literal:order.create\"\n\n{}",
            preamble(),
            collector.url,
            hook("orders", &sub.url("/orders"), "events = [\"order.create\"]"),
        );
        let weir = Weir::start_with(&config, &[]).await;
        let res = reqwest::Client::new()
            .post(format!("{}/in/shop", weir.url))
            .header("content-type", "application/json")
            .header("traceparent", format!("00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"))
            .body(r#"{"order": 1}"#)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
        let got = sub.wait_for(1).await;
        weir.stop().await;
        let spans = eventually("the inbound event's spans", async || {
            let spans = collector.spans();
            let attempts = spans.iter().filter(|s| s.name == "attempt").count();
            (attempts == 1 && spans.iter().any(|s| s.name == "ingest")).then_some(spans)
        })
        .await;
        let root = spans.iter().find(|s| s.name == "ingest").unwrap();
        assert_eq!(root.attr("weir.ingest.source"), &json!("inbound"));
        assert_eq!(root.attr("weir.event.type"), &json!("order.create"));
        assert_eq!(root.links, vec![(PRODUCER_TRACE.to_owned(), PRODUCER_SPAN.to_owned())]);
        let attempt = spans.iter().find(|s| s.name == "attempt").unwrap();
        assert_eq!(attempt.parent, root.span_id);
        assert_eq!(attempt.trace_id, root.trace_id);
        assert!(spans.iter().all(|s| s.name != "chain"), "{spans:#?}");
        assert_eq!(
            got[0].header("traceparent"),
            format!("00-{}-{}-01", root.trace_id, attempt.span_id)
        );
    }

    /// With `[telemetry]` left out, nothing about traces reaches the wire:
    /// not weir's, not the producer's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_telemetry_no_traceparent_is_sent() {
        let sub = Receiver::start().await;
        let dir = tempdir();
        write_config(dir.path(), &config("node-a", &sub, None));
        let weir = start(dir, Arc::default()).await;
        post_traced(&weir).await;
        let got = sub.wait_for(1).await;
        assert!(!got[0].header("webhook-id").is_empty(), "a real delivery");
        assert_eq!(got[0].headers.get("traceparent"), None);
        assert_eq!(got[0].headers.get("tracestate"), None);
        weir.stop().await;
    }
}
