//! The HTTP layer under clients that misbehave below the API: trickling
//! heads and bodies, too many connections, and requests hyper cannot parse.
//! Every answer, even to those, is the API's JSON error shape.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

both_stores! {
    /// An answer read off the wire: status, lower-cased head, body as JSON.
    #[derive(Debug)]
    struct Answer {
        status: u16,
        head: String,
        body: Value,
    }

    fn parse(bytes: &[u8]) -> Option<Answer> {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n")?;
        Some(Answer {
            status: head.get(9..12)?.parse().ok()?,
            head: head.to_ascii_lowercase(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        })
    }

    impl Answer {
        /// Asserts a JSON error with `status` and `code`.
        fn is_error(&self, status: u16, code: &str) {
            assert_eq!(self.status, status, "{self:?}");
            assert!(
                self.head.contains("content-type: application/json"),
                "{self:?}"
            );
            assert_eq!(self.body["error"]["code"], code, "{self:?}");
            assert!(self.body["error"]["message"].is_string(), "{self:?}");
        }
    }

    /// Sends `request` on a new connection (while reading, so a large one cannot
    /// block on a full socket) and reads until weir closes it.
    async fn exchange(addr: &str, request: Vec<u8>) -> Answer {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut rd, mut wr) = stream.into_split();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&request).await;
            wr
        });
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, rd.read_to_end(&mut answer)).await;
        writer.abort();
        parse(&answer).unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&answer)))
    }

    fn addr(weir: &Weir) -> String {
        weir.url.trim_start_matches("http://").to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_hyper_cannot_parse_get_json_errors() {
        let weir = Weir::start("", &[]).await;
        let addr = addr(&weir);
        let many: String = (0..101).map(|i| format!("x-h{i}: 1\r\n")).collect();
        let huge = format!("x-big: {}\r\n", "a".repeat(1 << 20));
        for (what, request, status, code) in [
            (
                "a bad Content-Length",
                "POST /v1/events HTTP/1.1\r\nhost: w\r\ncontent-length: 12abc\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
            (
                "two Content-Lengths",
                "POST /v1/events HTTP/1.1\r\nhost: w\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n{}"
                    .to_owned(),
                400,
                "bad_request",
            ),
            (
                "HTTP/0.9",
                "GET /healthz\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
            (
                "a bad method",
                "G(T /healthz HTTP/1.1\r\nhost: w\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
            (
                "101 headers",
                format!("GET /healthz HTTP/1.1\r\nhost: w\r\n{many}\r\n"),
                431,
                "headers_too_large",
            ),
            (
                "a 1 MB header",
                format!("GET /healthz HTTP/1.1\r\nhost: w\r\n{huge}\r\n"),
                431,
                "headers_too_large",
            ),
            (
                "a path that is not UTF-8",
                "GET /v1/webhooks/%FF HTTP/1.1\r\nhost: w\r\nconnection: close\r\n\r\n".to_owned(),
                400,
                "bad_request",
            ),
        ] {
            let answer = exchange(&addr, request.into_bytes()).await;
            println!("{what}: {answer:?}");
            answer.is_error(status, code);
        }
        // After all that, a plain request is served as before.
        let (status, _) = weir.get("/healthz").await;
        assert_eq!(status, 200);
        weir.stop().await;
    }

    /// Writes `head`, then `bytes` every 200 ms until the connection fails.
    async fn drip(
        mut wr: tokio::net::tcp::OwnedWriteHalf,
        head: &'static [u8],
        bytes: &'static [u8],
    ) -> std::io::Result<()> {
        wr.write_all(head).await?;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            wr.write_all(bytes).await?;
        }
    }

    /// What became of one slow client: how long it was held, and its answer.
    async fn trickle(addr: String, body: bool) -> (Duration, Option<Answer>) {
        // From before the connection: weir's clock for it starts later.
        let started = Instant::now();
        let stream = TcpStream::connect(&addr).await.unwrap();
        let (mut rd, wr) = stream.into_split();
        let (head, bytes): (&[u8], &[u8]) = if body {
            (
                b"POST /v1/events HTTP/1.1\r\nhost: w\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                b"1\r\n \r\n",
            )
        } else {
            (b"POST /v1/events HTTP/1.1\r\nhost: w\r\n", b"x-slow: 1\r\n")
        };
        let writer = tokio::spawn(drip(wr, head, bytes));
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, rd.read_to_end(&mut answer)).await;
        let held = started.elapsed();
        writer.abort();
        (held, parse(&answer))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_are_cut_in_time_while_healthz_stays_fast() {
        let config = "[server]\nlisten = \"127.0.0.1:0\"\nheader_read_timeout_secs = 1\nbody_read_timeout_secs = 2\n";
        let weir = Weir::start_with(config, &[]).await;
        let addr = addr(&weir);
        // 400 trickle their headers, 100 a chunked body, one byte every 200 ms.
        let mut slow = tokio::task::JoinSet::new();
        for i in 0..500 {
            let body = i % 5 == 0;
            let addr = addr.clone();
            slow.spawn(async move { (body, trickle(addr, body).await) });
        }
        // Meanwhile /healthz, on a new connection each time.
        let done = tokio_util::sync::CancellationToken::new();
        let probing = done.clone();
        let url = format!("{}/healthz", weir.url);
        let prober = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let mut latencies = Vec::new();
            while !probing.is_cancelled() {
                let asked = Instant::now();
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                latencies.push(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            latencies
        });
        let (mut heads, mut bodies) = (0, 0);
        while let Some(outcome) = slow.join_next().await {
            let (body, (held, answer)) = outcome.unwrap();
            let answer = answer.unwrap_or_else(|| {
                panic!("a slow client was cut without an answer after {held:?} (body: {body})")
            });
            answer.is_error(408, "request_timeout");
            let (limit, counter) = if body {
                (Duration::from_secs(2), &mut bodies)
            } else {
                (Duration::from_secs(1), &mut heads)
            };
            assert!(
                held >= limit && held < limit + Duration::from_secs(2),
                "held {held:?} with a limit of {limit:?} ({answer:?})"
            );
            *counter += 1;
        }
        done.cancel();
        let latencies = prober.await.unwrap();
        assert_eq!((heads, bodies), (400, 100));
        let worst = latencies.iter().max().unwrap();
        assert!(latencies.len() >= 10, "{latencies:?}");
        assert!(
            *worst < Duration::from_millis(500),
            "/healthz took {worst:?} while slow clients were held"
        );
        weir.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_past_the_cap_get_503_until_one_closes() {
        let config =
            "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 4\nheader_read_timeout_secs = 60\n";
        let weir = Weir::start_with(config, &[]).await;
        let addr = addr(&weir);
        let mut held = Vec::new();
        for _ in 0..4 {
            let mut c = TcpStream::connect(&addr).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            held.push(c);
        }
        // Accepted in order: the four hold every slot when the fifth comes.
        let answer = exchange(&addr, b"GET /healthz HTTP/1.1\r\nhost: w\r\n\r\n".to_vec()).await;
        answer.is_error(503, "too_many_connections");
        assert!(answer.head.contains("retry-after: 1"), "{answer:?}");
        drop(held.pop());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        eventually("a slot to free up", async || {
            let r = client
                .get(format!("{}/healthz", weir.url))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await;
        drop(held);
        weir.stop().await;
    }
}
