//! A real browser for the console tests: Debian's headless Chromium, driven
//! over WebDriver by a chromedriver of its own on a free loopback port.
//!
//! Every wait polls the page with [`eventually`] until a condition holds or
//! [`PATIENCE`] runs out. Screenshots go to
//! `target/console-screenshots/`; with `WEIR_SCREENSHOTS=<dir>` the SQLite
//! run also writes them there (that is how `docs/screenshots/` is made).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::{Backend, PATIENCE, backend, eventually, on_ci};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// weir's (or a proxy's) base URL.
    base: String,
}

/// Starts a browser for `test`, or `None` (with a SKIPPED line) where no
/// Chromium is installed; on CI a missing browser fails the test.
pub async fn open(test: &str, base: &str) -> Option<Browser> {
    if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
        assert!(
            !on_ci(),
            "{test}: no {CHROMIUM} / {CHROMEDRIVER}, and CI must not skip"
        );
        eprintln!("SKIPPED {test}: install Debian's chromium and chromium-driver");
        return None;
    }
    let mut driver = Command::new(CHROMEDRIVER)
        .arg("--port=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let port = driver_port(&mut driver);
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1360,900", "--lang=en-GB",
                     "--no-first-run", "--disable-extensions"],
        }
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    Some(Browser {
        client,
        driver,
        base: base.trim_end_matches('/').to_owned(),
    })
}

/// Reads chromedriver's "started successfully on port N" line.
fn driver_port(driver: &mut Child) -> u16 {
    let out = driver.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("on port ").nth(1)
                && let Ok(port) = rest.trim_end_matches('.').trim().parse::<u16>()
                && line.contains("successfully")
            {
                let _ = tx.send(port);
            }
        }
    });
    rx.recv_timeout(PATIENCE)
        .expect("chromedriver did not say its port")
}

impl Browser {
    /// Opens `path` of weir (e.g. `/console/#/webhooks`).
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    /// Sets the URL fragment, as following an in-page link does.
    pub async fn hash(&self, hash: &str) {
        self.client
            .execute("location.hash = arguments[0]", vec![json!(hash)])
            .await
            .unwrap();
    }

    /// The script's answer for `expr` (a JSON value).
    pub async fn eval(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }

    /// Waits until `css` matches a displayed element and returns its text.
    pub async fn text(&self, css: &str) -> String {
        self.wait_text(css, |_| true).await
    }

    /// Waits until the text of the first element matching `css` satisfies `ok`.
    pub async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        eventually(&format!("{css} to show the expected text"), async || {
            let el = self.client.find(Locator::Css(css)).await.ok()?;
            el.text().await.ok().filter(|t| ok(t))
        })
        .await
    }

    /// Waits until `css` has text containing `needle`.
    pub async fn wait_contains(&self, css: &str, needle: &str) -> String {
        self.wait_text(css, |t| t.contains(needle)).await
    }

    /// Waits until `expr` (JavaScript) is true.
    pub async fn wait_true(&self, what: &str, expr: &str) {
        eventually(what, async || {
            (self.eval(expr).await == Value::Bool(true)).then_some(())
        })
        .await
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    pub async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        el.click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Replaces the value of the input `css` with `text`, as typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        el.clear().await.unwrap();
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    pub async fn select(&self, css: &str, value: &str) {
        let el = self.wait_for(css).await;
        el.select_by_value(value).await.unwrap();
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} never appeared ({e})"))
    }

    /// Saves a PNG of the page as `<name>.png` (see the module comment).
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let store = match backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{store}-{name}.png")), &png).unwrap();
        if let (Ok(docs), Backend::Sqlite) = (std::env::var("WEIR_SCREENSHOTS"), backend()) {
            std::fs::create_dir_all(&docs).unwrap();
            std::fs::write(Path::new(&docs).join(format!("{name}.png")), &png).unwrap();
        }
    }

    /// Ends the session and chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test leaves no chromedriver (and its Chromium) behind.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
