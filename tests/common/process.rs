//! The real `weir` binary as a child process, for tests that kill it or
//! change what the operating system lets it do.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use super::PATIENCE;

pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits for the exit, failing the test (and killing
    /// weir) if it takes longer than `deadline`.
    pub async fn terminate_within(mut self, deadline: std::time::Duration) -> ExitStatus {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let exited = tokio::time::timeout(deadline, async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        match exited {
            Ok(status) => status,
            Err(_) => {
                self.child.kill().unwrap();
                self.child.wait().unwrap();
                panic!("SIGTERM did not end weir within {deadline:?}");
            }
        }
    }

    /// `kill -9`, and waits until it is gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// A weir a test forgot (or a panicking test left) is killed with it, so it
/// never outlives the test holding ports, the database or the build lock.
impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // SIGKILL
        }
        let _ = self.child.wait();
    }
}

/// Starts `weir serve` on `dir/config.toml` and waits for its address.
/// `dir` is a [`super::tempdir`] whose config.toml came from
/// [`super::write_config`], so weir runs on the test's store.
pub fn spawn(dir: &Path) -> Process {
    spawn_with(dir, |_| {})
}

fn serve(dir: &Path) -> Command {
    super::assert_on_test_store(dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(["serve", "--config"])
        .arg(dir.join("config.toml"))
        .env("WEIR_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    cmd
}

/// The address in weir's "serving" log line.
fn serving_addr(line: &str) -> Option<String> {
    if !line.contains("weir is serving") {
        return None;
    }
    let i = line.find("addr=")?;
    Some(
        line[i + 5..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect(),
    )
}

/// [`spawn_with`], with stderr written to the file `log` instead.
pub fn spawn_logging_to(dir: &Path, log: &Path, adjust: impl FnOnce(&mut Command)) -> Process {
    let mut cmd = serve(dir);
    cmd.stderr(std::fs::File::create(log).unwrap());
    adjust(&mut cmd);
    let child = cmd.spawn().expect("weir starts");
    let deadline = std::time::Instant::now() + PATIENCE;
    let addr = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(addr) = text.lines().find_map(serving_addr) {
            break addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "weir never printed its address"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Process {
        child,
        url: format!("http://{addr}"),
    }
}

/// [`spawn`], letting the test adjust the command first.
pub fn spawn_with(dir: &Path, adjust: impl FnOnce(&mut Command)) -> Process {
    let mut cmd = serve(dir);
    adjust(&mut cmd);
    let mut child = cmd.spawn().expect("weir starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if std::env::var_os("WEIR_TEST_ECHO").is_some() {
                eprintln!("weir: {line}");
            }
            if !sent && let Some(addr) = serving_addr(&line) {
                let _ = tx.send(addr);
                sent = true;
            }
        }
    });
    let addr = rx.recv_timeout(PATIENCE).expect("weir printed its address");
    Process {
        child,
        url: format!("http://{addr}"),
    }
}
