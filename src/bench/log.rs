//! The delivery log at scale: how long the console's first page takes (and
//! a filtered one, and one deep down the cursor) on a log of `--log-rows`
//! deliveries. The same-run reference is `GET /healthz` over the same
//! keep-alive client: the cost of a request that reads nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::harness::{Running, Shape, blast};
use super::{BenchArgs, row};

/// Requests timed per query.
const TRIES: usize = 21;

pub(super) async fn log_paging(
    args: &BenchArgs,
    template: &serde_json::Value,
) -> anyhow::Result<()> {
    // Two webhooks take every event, so rows = 2 × events. A rate limit of
    // one attempt a second keeps the deliverer out of the way: the rows
    // stay pending, as in a log whose subscriber is down.
    let url = "http://127.0.0.1:9/nowhere";
    let hooks: String = ["ledger", "search"]
        .iter()
        .map(|id| {
            format!(
                "[[webhooks]]\nid = \"{id}\"\nurl = \"{url}\"\nrate_limit_per_sec = 1\nmax_retries = 0\n\n"
            )
        })
        .collect();
    let weir = Running::start(&hooks, &args.plugins_dir).await?;
    let events = args.log_rows / 2;
    let rare = (events / 100).max(1);
    let started = Instant::now();
    // 1 % of the events, the oldest, are of a rarer type: a selective filter.
    let mut rare_event = template.clone();
    rare_event["type"] = serde_json::json!("record.purge");
    let shape_rare = Shape::new(&rare_event);
    let shape = Shape::new(template);
    let mut batches = Vec::new();
    for from in (0..rare).step_by(1000) {
        batches.push(shape_rare.batch("rare_", from, 1000.min(rare - from)));
    }
    blast(&format!("{}/v1/events", weir.url), Arc::new(batches), 4).await?;
    let chunk = 100_000;
    for first in (0..events - rare).step_by(chunk) {
        let end = (first + chunk).min(events - rare);
        let batches: Vec<String> = (first..end)
            .step_by(1000)
            .map(|from| shape.batch("log_", from, 1000.min(end - from)))
            .collect();
        blast(&format!("{}/v1/events", weir.url), Arc::new(batches), 4).await?;
    }
    let built = started.elapsed();
    row(
        &format!("log: {} deliveries built in", events * 2),
        format!("{:.1} s", built.as_secs_f64()),
        String::new(),
        None,
    );

    let client = reqwest::Client::new();
    let base = weir.url.clone();
    let reference = timed(&client, &format!("{base}/healthz")).await?;
    let middle: serde_json::Value = client
        .get(format!("{base}/v1/deliveries?limit=1000&webhook=ledger"))
        .send()
        .await?
        .json()
        .await?;
    let deep = middle["next"].as_str().unwrap_or_default().to_owned();
    let an_hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let since = an_hour_ago.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let queries = [
        ("first page, no filter", String::new()),
        ("first page, one webhook", "&webhook=search".into()),
        ("first page, status pending", "&status=pending".into()),
        ("first page, a 1 % event type", "&type=record.purge".into()),
        (
            "first page, one event id (the oldest)",
            "&event=rare_0".into(),
        ),
        ("first page, since an hour ago", format!("&since={since}")),
        (
            "first page, webhook + type + status",
            "&webhook=ledger&type=record.purge&status=pending".into(),
        ),
        (
            "page 21 (cursor after 1,000 rows)",
            format!("&after={deep}"),
        ),
    ];
    for (name, q) in queries {
        let t = timed(&client, &format!("{base}/v1/deliveries?limit=50{q}")).await?;
        row(
            &format!("  {name}, median / max"),
            format!("{} / {}", ms(t.0), ms(t.1)),
            format!("{} /healthz", ms(reference.0)),
            None,
        );
    }
    weir.stop().await?;
    Ok(())
}

/// Median and max of [`TRIES`] GETs of `url` (after one warm-up).
async fn timed(client: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, Duration)> {
    let mut took = Vec::with_capacity(TRIES);
    for i in 0..=TRIES {
        let t = Instant::now();
        let res = client.get(url).send().await?;
        anyhow::ensure!(res.status().is_success(), "{url}: {}", res.status());
        res.bytes().await?;
        if i > 0 {
            took.push(t.elapsed());
        }
    }
    took.sort();
    Ok((took[TRIES / 2], took[TRIES - 1]))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
