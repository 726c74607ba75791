//! Faults below and above weir: a full disk, producers faster than the disk,
//! and subscribers that hang or reset. Nothing accepted may be lost, nothing
//! refused may be half-stored, and one webhook's trouble stays its own.

mod common;

use std::collections::HashSet;
use std::os::unix::process::CommandExt;

use common::process::spawn_with;
use common::*;
use serde_json::{Value, json};

both_stores! {
    /// Sets the child's file-size limit: writes at or past `bytes` fail with
    /// `EFBIG`, which is what a full disk looks like to SQLite.
    fn limit_file_size(pid: i32, bytes: u64) {
        let limit = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Option<String>, Value) {
        let r = client
            .post(format!("{url}/v1/events"))
            .json(body)
            .send()
            .await
            .expect("weir answers");
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, retry_after, r.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overload_answers_429_with_retry_after_and_keeps_everything_accepted() {
        let sub = Receiver::start().await;
        let config = format!("{}{}", preamble(), hook("sink", &sub.url("/"), ""))
            .replace("[server]\n", "[server]\nmax_pending_events = 1000\n");
        let weir = Weir::start_with(&config, &[]).await;
        let client = reqwest::Client::new();
        let mut accepted: Vec<String> = Vec::new();
        let mut refused_requests = 0;
        // Rounds of 16 concurrent 500-event batches against room for 1000
        // pending events: some must be turned away.
        for round in 0..20 {
            let posts = (0..16).map(|k| {
                let client = client.clone();
                let url = weir.url.clone();
                let body = Value::Array(
                    (0..500)
                        .map(|i| json!({"id": format!("r{round}-{k}-{i}"), "type": "a.b", "data": {"i": i}}))
                        .collect(),
                );
                async move { post(&client, &url, &body).await }
            });
            for (status, retry_after, body) in futures_util::future::join_all(posts).await {
                match status {
                    202 => accepted.extend(
                        body["ids"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_str().unwrap().to_owned()),
                    ),
                    429 => {
                        assert_eq!(body["error"]["code"], "overloaded", "{body}");
                        assert_eq!(retry_after.as_deref(), Some("1"));
                        refused_requests += 1;
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            if refused_requests > 0 && !accepted.is_empty() {
                break;
            }
        }
        assert!(refused_requests > 0, "no request was ever turned away");
        assert!(!accepted.is_empty(), "no request was ever accepted");
        let want: HashSet<&str> = accepted.iter().map(String::as_str).collect();
        sub.wait_until(|r| {
            let got: HashSet<&str> = r.iter().map(|x| x.header("webhook-id")).collect();
            want.iter().all(|id| got.contains(id))
        })
        .await;
        // Exactly what was accepted was stored: a refused batch left nothing.
        let text = weir.metrics().await;
        assert!(
            text.contains(&format!("weir_events_accepted_total {}", accepted.len())),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "weir_events_rejected_total{{reason=\"overloaded\"}} {refused_requests}"
            )),
            "{text}"
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hanging_and_resetting_subscribers_do_not_hold_up_others() {
        let healthy = Receiver::start().await;
        let mut hang = RawSubscriber::start(Fault::Hang).await;
        let reset = RawSubscriber::start(Fault::Reset).await;
        let config = [
            hook("hang", &hang.url, "timeout_secs = 60\nmax_in_flight = 4"),
            hook("reset", &reset.url, "max_retries = 1"),
            hook("healthy", &healthy.url("/"), ""),
        ]
        .concat();
        let weir = Weir::start(&config, &[]).await;
        weir.send(&events(200, "a.b", "o")).await;
        // Every slot of the hanging webhook is taken...
        for _ in 0..4 {
            hang.seen.recv().await.unwrap();
        }
        // ...and the healthy one still gets all 200, before any hung attempt
        // could even have timed out.
        healthy.wait_for(200).await;
        let hung = weir.all_deliveries("webhook=hang").await;
        assert!(
            hung.iter().all(|d| d["attempts"] == 0),
            "no hung attempt has finished yet"
        );
        let rows = weir
            .wait_deliveries("webhook=reset", |r| {
                r.len() == 200 && r.iter().all(|d| d["status"] == "dead")
            })
            .await;
        let id = rows[0]["id"].as_str().unwrap();
        let (_, detail) = weir.get(&format!("/v1/deliveries/{id}")).await;
        let error = detail["attempt_log"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(
            error.starts_with("request error") && error.contains("Connection reset by peer"),
            "{error}"
        );
        drop(hang);
        weir.stop().await;
    }
}

/// A full disk is a SQLite fault: weir's own file writes fail. On PostgreSQL
/// the same promise (503, never a false 202, nothing lost) is tested with the
/// database cut away: `cluster::ingest_answers_503_while_the_database_is_away`.
mod sqlite_only {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_gets_503_never_a_false_202_and_weir_recovers() {
        let sub = Receiver::start().await;
        let dir = common::tempdir();
        write_config(
            dir.path(),
            &format!("{}{}", preamble(), hook("sink", &sub.url("/"), "")),
        );
        // A file-size limit kills with SIGXFSZ unless ignored; ignored, writes
        // fail with EFBIG instead, as they would with ENOSPC on a full disk.
        let weir = spawn_with(dir.path(), |cmd| unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                Ok(())
            });
        });
        let client = reqwest::Client::new();
        let batch = |prefix: &str, n: usize| {
            Value::Array(
                (0..n)
                    .map(|i| json!({"id": format!("{prefix}{i}"), "type": "a.b", "data": {"i": i}}))
                    .collect(),
            )
        };
        let (status, _, _) = post(&client, &weir.url, &batch("before-", 20)).await;
        assert_eq!(status, 202);
        sub.wait_for(20).await;

        // The disk fills up.
        limit_file_size(weir.pid(), 1);
        let mut refused = Vec::new();
        for i in 0..10 {
            let id = format!("full-{i}");
            let (status, retry_after, body) = post(
                &client,
                &weir.url,
                &json!({"id": id, "type": "a.b", "data": {}}),
            )
            .await;
            assert_eq!(status, 503, "event {id} while the disk is full: {body}");
            assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
            assert!(retry_after.is_some(), "a 503 says when to retry");
            refused.push(id);
        }
        let (status, body) = {
            let r = client
                .get(format!("{}/healthz", weir.url))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        assert_eq!(status, 200, "weir still serves: {body}");

        // The disk has room again: weir takes events without a restart.
        limit_file_size(weir.pid(), libc::RLIM_INFINITY);
        eventually("ingest to recover", async || {
            let (status, _, _) = post(
                &client,
                &weir.url,
                &json!({"id": "probe", "type": "a.b", "data": {}}),
            )
            .await;
            (status == 202).then_some(())
        })
        .await;
        let (status, _, _) = post(&client, &weir.url, &batch("after-", 20)).await;
        assert_eq!(status, 202);
        let arrived = sub
            .wait_until(|r| {
                r.iter()
                    .filter(|x| x.header("webhook-id").starts_with("after-"))
                    .count()
                    == 20
            })
            .await;
        let ids: HashSet<&str> = arrived.iter().map(|r| r.header("webhook-id")).collect();
        assert!(ids.contains("probe"));
        // Nothing refused was stored: the log has no delivery for any of them.
        for id in &refused {
            assert!(!ids.contains(id.as_str()), "{id} was refused yet delivered");
            let r: Value = client
                .get(format!("{}/v1/deliveries?event={id}", weir.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(r["deliveries"], json!([]), "{id} was refused yet stored");
        }
        weir.kill();
    }
}
