//! Crash safety with the real binary: `kill -9` during a load loses no
//! accepted event, and SIGTERM shuts down cleanly.

mod common;

use std::time::{Duration, Instant};

use common::process::spawn;
use common::*;
use serde_json::{Value, json};

both_stores! {
    fn config(dir: &std::path::Path, sub: &Receiver) -> std::path::PathBuf {
        let text = format!(
            "{}[[webhooks]]\nid = \"sink\"\nurl = \"{}\"\nmax_in_flight = 16\n",
            preamble(),
            sub.url("/sink")
        );
        let path = dir.join("config.toml");
        write_config(dir, &text);
        path
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_9_during_load_loses_no_accepted_event() {
        let sub = Receiver::start().await;
        let dir = common::tempdir();
        config(dir.path(), &sub);
        let client = reqwest::Client::new();
        let mut accepted: Vec<String> = Vec::new();
        let mut next = 0usize;
        // CI runs 3 kills; the long form is `WEIR_CRASH_KILLS=12 cargo test --test crash`.
        let kills: usize = std::env::var("WEIR_CRASH_KILLS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        const PER_ROUND: usize = 1500;
        for round in 0..=kills {
            let mut weir = spawn(dir.path());
            // Stream batches of 25; kill partway through the round.
            // Kill at a different point of each round.
            let kill_after = 100 + (round * 389) % (PER_ROUND - 200);
            let mut sent_this_round = 0;
            while sent_this_round < PER_ROUND {
                let batch: Vec<Value> = (0..25)
                    .map(|i| json!({"id": format!("k{}", next + i), "type": "record.create", "data": {"n": next + i}}))
                    .collect();
                let res = client
                    .post(format!("{}/v1/events", weir.url))
                    .json(&batch)
                    .send()
                    .await;
                if let Ok(r) = res
                    && r.status() == 202
                {
                    let body: Value = r.json().await.unwrap();
                    accepted.extend(
                        body["ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap().to_owned()),
                    );
                }
                next += 25;
                sent_this_round += 25;
                if round < kills && sent_this_round >= kill_after {
                    weir.child.kill().unwrap(); // SIGKILL
                    weir.child.wait().unwrap();
                    break;
                }
            }
            if round == kills {
                // Last round: let it drain, then check.
                let want: std::collections::HashSet<String> = accepted.iter().cloned().collect();
                // Polled, not checked on every arrival: with 10,000 ids a check
                // per arrival is quadratic and starves weir of CPU on 2 cores.
                eventually("every accepted event to arrive", async || {
                    let got = sub.distinct("webhook-id");
                    want.iter().all(|id| got.contains(id)).then_some(())
                })
                .await;
                let got = sub.received();
                let dupes = got.len() - want.len();
                eprintln!(
                    "accepted {} events over {kills} kills; {} arrivals, {dupes} duplicates (at-least-once)",
                    want.len(),
                    got.len()
                );
                weir.child.kill().unwrap();
                weir.child.wait().unwrap();
            }
        }
        assert!(
            accepted.len() >= PER_ROUND * 2,
            "the load actually ran: {}",
            accepted.len()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_finishes_in_flight_attempts_and_exits_cleanly() {
        let sub = Receiver::start().await;
        sub.script([Reply::Delay(Duration::from_millis(800))]);
        let dir = common::tempdir();
        config(dir.path(), &sub);
        let mut weir = spawn(dir.path());
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/v1/events", weir.url))
            .json(&json!({"id": "t1", "type": "a.b", "data": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        // The attempt is on the wire (the subscriber holds it for 800 ms); stop weir now.
        sub.wait_started(1).await;
        let started = Instant::now();
        unsafe { libc::kill(weir.child.id() as i32, libc::SIGTERM) };
        let status = tokio::task::spawn_blocking(move || weir.child.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "exit status {status:?}");
        assert_eq!(sub.count(), 1, "the in-flight attempt finished before exit");
        assert!(started.elapsed() < Duration::from_secs(20));
        // Restarted, weir does not send the delivered event again.
        let mut weir = spawn(dir.path());
        // It is recorded delivered (final: no claim returns it), so it is
        // never sent again.
        let log: Value = reqwest::get(format!("{}/v1/deliveries", weir.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let states: Vec<&str> = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["delivered"]);
        assert_eq!(sub.count(), 1);
        weir.child.kill().unwrap();
        weir.child.wait().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigterm_ends_weir_while_a_client_holds_half_a_request() {
        use tokio::io::AsyncWriteExt;
        let dir = common::tempdir();
        write_config(
            dir.path(),
            "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_secs = 2\n",
        );
        let weir = spawn(dir.path());
        let addr = weir.url.trim_start_matches("http://").to_owned();
        let mut held = tokio::net::TcpStream::connect(&addr).await.unwrap();
        held.write_all(b"POST /v1/events HTTP/1.1\r\nhost: w\r\n")
            .await
            .unwrap();
        // Connections are accepted in order: once this one is answered, weir
        // holds the half request above.
        let r = reqwest::get(format!("{}/healthz", weir.url)).await.unwrap();
        assert_eq!(r.status(), 200);
        let started = Instant::now();
        let status = weir.terminate_within(weir::commands::EXIT_DEADLINE).await;
        assert!(status.success(), "{status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(held);
    }
}
