//! The real `weir` binary as a child process, for tests that kill it or
//! change what the operating system lets it do.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::PATIENCE;

pub struct Process {
    pub child: Child,
    pub url: String,
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// Starts `weir serve` on `dir/config.toml` and waits for its address.
pub fn spawn(dir: &Path) -> Process {
    spawn_with(dir, |_| {})
}

/// [`spawn`], letting the test adjust the command first.
pub fn spawn_with(dir: &Path, adjust: impl FnOnce(&mut Command)) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(["serve", "--config"])
        .arg(dir.join("config.toml"))
        .env("WEIR_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
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
            if !sent && let Some(i) = line.find("addr=") {
                let addr: String = line[i + 5..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
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
