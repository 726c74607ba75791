//! Several weir nodes on one PostgreSQL: the real binary, killed with -9
//! mid-stream; the database cut away under load; a webhook created on one
//! node and delivered by another; node ids, bad URLs and concurrent
//! migrations. PostgreSQL only: SQLite is one node by design.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::process::{Process, spawn};
use common::proxy::Proxy;
use common::*;
use serde_json::{Value, json};

/// A database of the test's own (dropped with the returned dir), or `None`
/// when there is no PostgreSQL (the test then skips, loudly; on CI it fails).
async fn database(test: &str) -> Option<Db> {
    if !postgres_or_skip(&format!("cluster::{test}")) {
        return None;
    }
    let dir = BACKEND.scope(Backend::Postgres, async { tempdir() }).await;
    let url = dir
        .database_url()
        .expect("a PostgreSQL test dir")
        .to_owned();
    Some(Db { url, _dir: dir })
}

struct Db {
    url: String,
    _dir: TestDir,
}

impl Db {
    fn parsed(&self) -> url::Url {
        url::Url::parse(&self.url).unwrap()
    }

    fn name(&self) -> String {
        self.parsed().path().trim_start_matches('/').to_owned()
    }

    fn server(&self) -> std::net::SocketAddr {
        let u = self.parsed();
        let host = u.host_str().unwrap();
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", u.port().unwrap_or(5432))
            .parse()
            .unwrap()
    }

    /// The same database, reached through `addr` (a [`Proxy`]).
    fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let mut u = self.parsed();
        u.set_host(Some(&addr.ip().to_string())).unwrap();
        u.set_port(Some(addr.port())).unwrap();
        u.to_string()
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }

    async fn query_i64(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn execute(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap();
    }
}

/// A node's config.toml on `db`, with `lease_secs` short so a killed node's
/// work is picked up quickly.
fn node_config(dir: &Path, db: &str, extra_server: &str, webhooks: &str) {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{extra_server}\n\
         [delivery]\nallow_targets = [\"127.0.0.0/8\"]\nretry_delays_secs = [0]\ntimeout_secs = 5\n\n\
         [store]\nbackend = \"postgres\"\nurl = \"{db}\"\nlease_secs = 3\n\n{webhooks}"
    );
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

fn two_webhooks(sub: &Receiver) -> String {
    format!(
        "{}{}",
        hook("all", &sub.url("/all"), "max_in_flight = 8\n"),
        hook("fifo", &sub.url("/fifo"), "ordering = \"fifo\"\n")
    )
}

/// Posts `batch` to the nodes in turn from `start`, moving on when one is
/// down; returns the ids a node accepted (202), or `None` if none did.
async fn post_somewhere(
    client: &reqwest::Client,
    urls: &[String],
    start: usize,
    batch: &Value,
) -> Option<Vec<String>> {
    for k in 0..urls.len() * 3 {
        let url = &urls[(start + k) % urls.len()];
        if let Ok(r) = client
            .post(format!("{url}/v1/events"))
            .json(batch)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            && r.status() == 202
        {
            let body: Value = r.json().await.unwrap();
            return Some(
                body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Event ids in the order they first reached `path`, and how many arrived
/// more than once.
fn arrivals(sub: &Receiver, path: &str) -> (Vec<String>, usize) {
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    let mut dups = 0;
    for r in sub.received().iter().filter(|r| r.path == path) {
        let id = r.json()["id"].as_str().unwrap().to_owned();
        if seen.insert(id.clone()) {
            order.push(id);
        } else {
            dups += 1;
        }
    }
    (order, dups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_lose_nothing_when_nodes_are_killed() {
    let Some(db) = database("three_nodes_lose_nothing_when_nodes_are_killed").await else {
        return;
    };
    let sub = Receiver::start().await;
    // A subscriber slow enough that attempts are on the wire when a node dies.
    sub.always(Reply::Delay(Duration::from_millis(40)));
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        node_config(d.path(), &db.url, "", &two_webhooks(&sub));
    }
    let mut nodes: Vec<Process> = dirs.iter().map(|d| spawn(d.path())).collect();
    let client = reqwest::Client::new();
    let mut accepted: Vec<String> = Vec::new();
    let kills: usize = std::env::var("WEIR_CLUSTER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    const PER_ROUND: usize = 60;
    // One producer, one batch at a time, spread over the nodes: the order
    // of its 202s is the order the FIFO webhook must keep.
    for round in 0..=kills {
        let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            let batch = json!([{"id": format!("c{n}"), "type": "record.create", "data": {"n": n}}]);
            if let Some(ids) = post_somewhere(&client, &urls, n, &batch).await {
                accepted.extend(ids);
            }
            if i == PER_ROUND / 2 && round < kills {
                // kill -9 one node mid-stream (a different one each round)
                // while it holds leases, and start it again.
                let victim = round % nodes.len();
                let dead = std::mem::replace(&mut nodes[victim], spawn(dirs[victim].path()));
                dead.kill();
            }
        }
    }
    assert!(
        accepted.len() >= PER_ROUND * (kills + 1) * 9 / 10,
        "too few accepted: {}",
        accepted.len()
    );
    let want: HashSet<String> = accepted.iter().cloned().collect();
    sub.wait_until(|got| {
        ["/all", "/fifo"].iter().all(|p| {
            let ids: HashSet<String> = got
                .iter()
                .filter(|r| r.path == *p)
                .filter_map(|r| r.json()["id"].as_str().map(str::to_owned))
                .collect();
            want.is_subset(&ids)
        })
    })
    .await;
    let (all_order, all_dups) = arrivals(&sub, "/all");
    let (fifo_order, fifo_dups) = arrivals(&sub, "/fifo");
    eprintln!(
        "cluster: {} accepted over {} kills; duplicates: all {all_dups}, fifo {fifo_dups}",
        accepted.len(),
        kills
    );
    assert_eq!(
        all_order.len(),
        accepted.len(),
        "unordered webhook got events nobody accepted"
    );
    assert_eq!(fifo_order, accepted, "FIFO order broke across nodes");
    for n in nodes {
        n.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_created_on_one_node_is_routed_by_another() {
    let Some(db) = database("a_webhook_created_on_one_node_is_routed_by_another").await else {
        return;
    };
    let sub = Receiver::start().await;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&a_dir, &b_dir] {
        node_config(d.path(), &db.url, "admin_token = \"admin-secret\"", "");
    }
    let a = spawn(a_dir.path());
    let b = spawn(b_dir.path());
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/webhooks", a.url))
        .bearer_auth("admin-secret")
        .json(&json!({"id": "late", "url": sub.url("/late"), "events": ["*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let since = Instant::now();
    // Node B learns of it by notification: poll B's own view.
    let seen_after = eventually("node B to see the webhook", async || {
        let r = client
            .get(format!("{}/v1/webhooks/late", b.url))
            .bearer_auth("admin-secret")
            .send()
            .await
            .ok()?;
        (r.status() == 200).then(|| since.elapsed())
    })
    .await;
    eprintln!(
        "node B saw the webhook {} ms after it was created on A",
        seen_after.as_millis()
    );
    // Well under the 10 s periodic re-read: the notification did it.
    assert!(seen_after < Duration::from_secs(5), "took {seen_after:?}");
    let r = client
        .post(format!("{}/v1/events", b.url))
        .bearer_auth("admin-secret")
        .json(&json!({"id": "e1", "type": "record.create", "data": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let got = sub.wait_for(1).await;
    assert_eq!(got[0].json()["id"], "e1");
    // Its attempt names the node that made it, one of the two.
    let detail = eventually("the delivery to be recorded", async || {
        let list: Value = client
            .get(format!("{}/v1/deliveries?webhook=late", a.url))
            .bearer_auth("admin-secret")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let id = list["deliveries"][0]["id"].as_str()?.to_owned();
        let d: Value = client
            .get(format!("{}/v1/deliveries/{id}", a.url))
            .bearer_auth("admin-secret")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (d["status"] == "delivered").then_some(d)
    })
    .await;
    let node = detail["attempt_log"][0]["node"]
        .as_str()
        .unwrap()
        .to_owned();
    let metrics = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{url}/metrics"))
                .bearer_auth("admin-secret")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let (ma, mb) = (metrics(a.url.clone()).await, metrics(b.url.clone()).await);
    assert!(
        ma.contains(&format!("weir_node_info{{node=\"{node}\"}} 1"))
            || mb.contains(&format!("weir_node_info{{node=\"{node}\"}} 1")),
        "attempt node {node:?} is neither node's weir_node_info"
    );
    a.kill();
    b.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_answers_503_while_the_database_is_away_and_loses_nothing() {
    let Some(db) = database("ingest_answers_503_while_the_database_is_away").await else {
        return;
    };
    let proxy = Proxy::start(db.server()).await;
    let via_proxy = db.url_via(proxy.addr);
    let sub = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    node_config(
        dir.path(),
        &via_proxy,
        "",
        &hook("all", &sub.url("/all"), "max_in_flight = 8\n"),
    );
    let node = spawn(dir.path());
    let client = reqwest::Client::new();
    let mut accepted = Vec::new();
    let mut statuses_while_down: HashMap<u16, usize> = HashMap::new();
    let post = |n: usize| {
        let client = client.clone();
        let url = node.url.clone();
        async move {
            let batch: Vec<Value> = (0..10)
                .map(|i| json!({"id": format!("p{n}-{i}"), "type": "record.create", "data": {}}))
                .collect();
            let r = client
                .post(format!("{url}/v1/events"))
                .json(&batch)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").is_some();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry_after, body)
        }
    };
    let mut n = 0;
    let collect = |body: &Value, accepted: &mut Vec<String>| {
        accepted.extend(
            body["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    };
    for _ in 0..20 {
        let (status, _, body) = post(n).await;
        n += 1;
        assert_eq!(status, 202);
        collect(&body, &mut accepted);
    }
    proxy.down();
    for _ in 0..5 {
        let (status, retry_after, _) = post(n).await;
        n += 1;
        *statuses_while_down.entry(status).or_default() += 1;
        if status == 503 {
            assert!(retry_after, "a 503 without Retry-After");
        }
    }
    assert_eq!(
        statuses_while_down.get(&503),
        Some(&5),
        "while PostgreSQL was away ingest answered {statuses_while_down:?}"
    );
    proxy.up();
    let (status, _, body) = eventually("ingest to accept again", async || {
        let out = post(n).await;
        (out.0 == 202).then_some(out)
    })
    .await;
    n += 1;
    assert_eq!(status, 202);
    collect(&body, &mut accepted);
    for _ in 0..20 {
        let (status, _, body) = post(n).await;
        n += 1;
        assert_eq!(status, 202);
        collect(&body, &mut accepted);
    }
    let want: HashSet<String> = accepted.iter().cloned().collect();
    sub.wait_until(|got| {
        let ids: HashSet<String> = got
            .iter()
            .filter_map(|r| r.json()["id"].as_str().map(str::to_owned))
            .collect();
        want.is_subset(&ids)
    })
    .await;
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_nodes_cannot_share_a_node_id() {
    let Some(db) = database("two_live_nodes_cannot_share_a_node_id").await else {
        return;
    };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&a_dir, &b_dir] {
        node_config(d.path(), &db.url, "node_id = \"twin\"", "");
    }
    let a = spawn(a_dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(b_dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node_id \"twin\" is in use"), "{err}");
    // A node killed with -9 leaves its id behind; a restart takes it over.
    a.kill();
    let again = spawn(a_dir.path());
    again.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_clear_error_that_never_shows_it() {
    let Some(db) = database("a_wrong_password_is_a_clear_error").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let url = format!("postgres://postgres:hunter2@127.0.0.1:1/{}", db.name());
    node_config(dir.path(), &url, "", "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["serve", "--config"])
        .arg(dir.path().join("config.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to postgres://postgres:***@127.0.0.1:1/"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "the password was shown: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_each_version_once() {
    let Some(db) = database("concurrent_migrations_apply_each_version_once").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    node_config(dir.path(), &db.url, "", "");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["migrate", "--config"])
            .arg(dir.path().join("config.toml"))
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (one, two) = (run(), run());
    for child in [one, two] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("store schema at version"));
    }
    let rows = db
        .query_i64("SELECT count(*) - count(DISTINCT version) FROM schema_migrations")
        .await;
    assert_eq!(rows, 0, "a migration was applied twice");
    let applied = db.query_i64("SELECT count(*) FROM schema_migrations").await;
    assert!(applied >= 1);
    // And a database newer than this weir is refused.
    db.execute("INSERT INTO schema_migrations (version) VALUES (9999)")
        .await;
    let out = run().wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 9999"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_in_flight_and_rate_limit_hold_for_the_whole_cluster() {
    let Some(db) = database("max_in_flight_and_rate_limit_hold_for_the_whole_cluster").await else {
        return;
    };
    const DELAY: Duration = Duration::from_millis(200);
    let capped = Receiver::start().await;
    capped.always(Reply::Delay(DELAY));
    let paced = Receiver::start().await;
    let webhooks = format!(
        "{}{}",
        hook(
            "capped",
            &capped.url("/"),
            "max_in_flight = 2\nevents = [\"c.*\"]"
        ),
        hook(
            "paced",
            &paced.url("/"),
            "rate_limit_per_sec = 5\nevents = [\"p.*\"]"
        )
    );
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        node_config(d.path(), &db.url, "", &webhooks);
    }
    let nodes: Vec<Process> = dirs.iter().map(|d| spawn(d.path())).collect();
    let client = reqwest::Client::new();
    const N: usize = 16;
    // Both nodes take half of each webhook's events, so both claim work.
    for i in 0..N {
        let url = &nodes[i % 2].url;
        let batch = json!([
            {"id": format!("c{i}"), "type": "c.x", "data": {}},
            {"id": format!("p{i}"), "type": "p.x", "data": {}}
        ]);
        let r = client
            .post(format!("{url}/v1/events"))
            .json(&batch)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let got = capped.wait_for(N).await;
    // A request's answer is taken when the handler is done, `DELAY` after
    // it came in: count the requests the subscriber held at once.
    let mut edges: Vec<(Instant, i32)> = got
        .iter()
        .flat_map(|r| [(r.at - DELAY, 1), (r.at, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0, 0);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    assert!(
        most <= 2,
        "{most} requests at once against max_in_flight = 2 across two nodes"
    );
    let got = paced.wait_for(N).await;
    let mut at: Vec<Instant> = got.iter().map(|r| r.at).collect();
    at.sort();
    let span = at[N - 1] - at[0];
    // 5 per second for the cluster: 16 sends take 14 intervals of 200 ms
    // (an idle webhook may send two at once), 2.8 s; allow 0.3 s of arrival
    // jitter. Two nodes pacing themselves apart would take about half.
    assert!(
        span >= Duration::from_millis(2_500),
        "16 sends in {span:?} against rate_limit_per_sec = 5 across two nodes"
    );
    for n in nodes {
        n.kill();
    }
}
