//! Which store a test runs on and, for PostgreSQL, a server to run on and a
//! fresh database per test.
//!
//! The backend is chosen per test by [`both_stores!`](crate::common::both_stores)
//! through the task-local [`BACKEND`] (SQLite when unset). A PostgreSQL server
//! is found once per test process: `WEIR_TEST_DATABASE_URL` (an admin URL)
//! when set, else `postgres://postgres@127.0.0.1:5432/postgres`, else a
//! throwaway server started from the installed binaries. Each [`TestDir`]
//! made in a PostgreSQL test owns a database `weir_t_<random hex>`, created
//! with it and dropped with it, and every config.toml the harness writes in
//! that directory names the database in its `[store]` table.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The store a test's weir keeps its data in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

tokio::task_local! {
    /// The running test's store; set by `both_stores!`, SQLite when unset.
    pub static BACKEND: Backend;
}

/// The running test's store. Tasks the test spawns do not inherit it: make
/// [`TestDir`]s (and so start weir) from the test's own task.
pub fn backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// The admin URL tried when `WEIR_TEST_DATABASE_URL` is not set.
const LOCAL_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What the search for a PostgreSQL server found.
enum Server {
    /// An admin URL that answers.
    Found(String),
    /// No server to be had: PostgreSQL tests skip (and fail on CI).
    Missing(String),
    /// `WEIR_TEST_DATABASE_URL` is set but does not answer: PostgreSQL tests fail.
    Broken(String),
}

/// The server, looked for once per test process.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(find_server)
}

fn find_server() -> Server {
    if let Some(url) = std::env::var("WEIR_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        return match admin(&url, "SELECT 1") {
            Ok(()) => Server::Found(url),
            Err(e) => Server::Broken(format!(
                "WEIR_TEST_DATABASE_URL ({}) does not answer: {e}",
                redact(&url)
            )),
        };
    }
    let local = match admin(LOCAL_ADMIN_URL, "SELECT 1") {
        Ok(()) => return Server::Found(LOCAL_ADMIN_URL.to_owned()),
        Err(e) => e,
    };
    match throwaway() {
        Ok(url) => Server::Found(url),
        Err(e) => Server::Missing(one_line(&format!(
            "{LOCAL_ADMIN_URL}: {local}; no throwaway server: {e}"
        ))),
    }
}

/// Whether CI runs us: there a PostgreSQL test must never skip.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Called first by every PostgreSQL test (`test` is its name): true when a
/// server is there. Otherwise prints one loud SKIPPED line and returns false,
/// or fails the test on CI or when `WEIR_TEST_DATABASE_URL` does not answer.
pub fn postgres_or_skip(test: &str) -> bool {
    match server() {
        Server::Found(_) => true,
        Server::Broken(why) => panic!("{test}: {why}"),
        Server::Missing(why) => {
            assert!(
                !on_ci(),
                "{test}: no PostgreSQL, and CI must not skip ({why})"
            );
            // Straight to stderr: the test harness captures eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no PostgreSQL (set WEIR_TEST_DATABASE_URL) [{why}]"
            );
            false
        }
    }
}

/// Runs `sql` on a fresh connection to `url`, on a thread of its own with
/// its own runtime (so it works from async tests, even paused ones, and from
/// `Drop`).
fn admin(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let mut config: tokio_postgres::Config = url.parse().map_err(|e| chain(&e))?;
            config.connect_timeout(Duration::from_secs(5));
            let (client, connection) = tokio::time::timeout(
                Duration::from_secs(10),
                config.connect(tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| "connecting timed out".to_owned())?
            .map_err(|e| chain(&e))?;
            let connection = tokio::spawn(connection);
            let done = tokio::time::timeout(Duration::from_secs(60), client.batch_execute(&sql))
                .await
                .map_err(|_| format!("{sql}: timed out"))
                .and_then(|r| r.map_err(|e| format!("{sql}: {}", chain(&e))));
            drop(client);
            let _ = connection.await;
            done
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the admin thread panicked".into()))
}

/// An error with its causes, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    one_line(&text)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `url` with any password replaced.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<not a URL>".into(),
    }
}

/// Starts a PostgreSQL server from the installed binaries in a temp dir on
/// a free port, trusting local connections, and returns its admin URL. It
/// stops (and its directory goes) when this test process exits.
fn throwaway() -> Result<String, String> {
    let bin = pg_bin().ok_or("no initdb and pg_ctl in /usr/lib/postgresql/*/bin or PATH")?;
    // initdb and pg_ctl refuse to run as root: then they run as postgres.
    let as_root = unsafe { libc::geteuid() } == 0;
    let base = tempfile::Builder::new()
        .prefix("weir-test-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    if as_root {
        let (uid, gid) = postgres_user().ok_or("running as root and there is no user postgres")?;
        std::os::unix::fs::chown(&base, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
    }
    let data = base.join("data");
    let pg_ctl = bin.join("pg_ctl");
    // The watchdog comes first so that even a failed start is cleaned up.
    watchdog(&base, &data, &pg_ctl, as_root)?;
    run_pg(
        as_root,
        &base,
        &bin.join("initdb"),
        &[
            "-D".as_ref(),
            data.as_os_str(),
            "-U".as_ref(),
            "postgres".as_ref(),
            "--auth=trust".as_ref(),
            "-E".as_ref(),
            "UTF8".as_ref(),
            "--locale=C".as_ref(),
            "--no-sync".as_ref(),
        ],
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={} \
         -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        base.display()
    );
    run_pg(
        as_root,
        &base,
        &pg_ctl,
        &[
            "-D".as_ref(),
            data.as_os_str(),
            "-l".as_ref(),
            base.join("server.log").as_os_str(),
            "-o".as_ref(),
            options.as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            "60".as_ref(),
            "start".as_ref(),
        ],
    )?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    admin(&url, "SELECT 1")?;
    Ok(url)
}

/// The newest `/usr/lib/postgresql/<version>/bin` (or a PATH entry) with
/// both initdb and pg_ctl.
fn pg_bin() -> Option<PathBuf> {
    let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| complete(dir)))
}

/// The uid and gid of the user `postgres`.
fn postgres_user() -> Option<(u32, u32)> {
    let pw = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// Lets a child keep none of our inherited descriptors: `flock` hands the
/// cargo lock to the test process, and a server outliving it must not hold it.
fn no_inherited_fds(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            for fd in 3..1024 {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
}

/// Runs a PostgreSQL program (as postgres when we are root), in `cwd`.
fn run_pg(
    as_root: bool,
    cwd: &Path,
    program: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<(), String> {
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args).current_dir(cwd).stdin(Stdio::null());
    no_inherited_fds(&mut cmd);
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} failed ({}): {}",
        program.display(),
        out.status,
        one_line(&String::from_utf8_lossy(&out.stderr))
    ))
}

/// A detached shell that waits for this process to end, then stops the
/// server at `data` and removes `base`.
fn watchdog(base: &Path, data: &Path, pg_ctl: &Path, as_root: bool) -> Result<(), String> {
    let stop = format!(
        "{}'{}' -D '{}' -m immediate stop",
        if as_root {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl.display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf '{base}'",
        pid = std::process::id(),
        base = base.display()
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    no_inherited_fds(&mut cmd);
    unsafe {
        // Its own session: a Ctrl-C to the test run does not stop it first.
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().map(drop).map_err(|e| format!("watchdog: {e}"))
}

/// A database of its own for one test directory, dropped with it.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    fn create() -> TestDb {
        let admin_url = match server() {
            Server::Found(url) => url.clone(),
            Server::Missing(why) | Server::Broken(why) => {
                panic!("a PostgreSQL test dir without a server: {why}")
            }
        };
        let name = format!("weir_t_{:016x}", rand::random::<u64>());
        admin(&admin_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating the test database: {e}"));
        let mut url = url::Url::parse(&admin_url)
            .unwrap_or_else(|e| panic!("the admin URL {}: {e}", redact(&admin_url)));
        url.set_path(&format!("/{name}"));
        TestDb {
            admin_url,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.admin_url, &sql) {
            let _ = writeln!(std::io::stderr(), "warning: test database left behind: {e}");
        }
    }
}

/// The database URL of each live [`TestDir`] of a PostgreSQL test, by path.
fn databases() -> &'static Mutex<HashMap<PathBuf, String>> {
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    DATABASES.get_or_init(Default::default)
}

/// A test's temp dir (config.toml, plugins/, data/) and, in a PostgreSQL
/// test, its database: a restart on the same dir finds the same data.
pub struct TestDir {
    dir: tempfile::TempDir,
    db: Option<TestDb>,
}

/// A fresh [`TestDir`]; in a PostgreSQL test, with a fresh database.
pub fn tempdir() -> TestDir {
    let dir = tempfile::tempdir().unwrap();
    let db = (backend() == Backend::Postgres).then(TestDb::create);
    if let Some(db) = &db {
        databases()
            .lock()
            .unwrap()
            .insert(dir.path().to_owned(), db.url.clone());
    }
    TestDir { dir, db }
}

impl TestDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL database weir uses here, if any.
    pub fn database_url(&self) -> Option<&str> {
        self.db.as_ref().map(|db| db.url.as_str())
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if self.db.is_some() {
            databases().lock().unwrap().remove(self.dir.path());
        }
    }
}

fn database_of(dir: &Path) -> Option<String> {
    databases().lock().unwrap().get(dir).cloned()
}

/// `config` with the `[store]` table for `dir`'s database appended, in a
/// PostgreSQL test; unchanged otherwise. Appended, so line numbers hold.
pub fn with_store(dir: &Path, config: &str) -> String {
    match database_of(dir) {
        Some(url) => {
            let sep = if config.is_empty() || config.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            // Short leases: a node killed by a test has its work taken over
            // in seconds, not the default half minute.
            format!(
                "{config}{sep}\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nlease_secs = 3\n"
            )
        }
        None => {
            assert_eq!(
                backend(),
                Backend::Sqlite,
                "{} is not a common::tempdir(): a PostgreSQL test would run on SQLite",
                dir.display()
            );
            config.to_owned()
        }
    }
}

/// Writes `dir/config.toml`: `config`, on the test's store.
pub fn write_config(dir: &Path, config: &str) {
    std::fs::write(dir.join("config.toml"), with_store(dir, config)).unwrap();
}

/// Fails the test if weir is about to start on `dir` on another store than
/// the test's: every config.toml must come from [`write_config`] (or
/// [`with_store`]).
pub fn assert_on_test_store(dir: &Path) {
    let want = database_of(dir);
    assert_eq!(
        want.is_some(),
        backend() == Backend::Postgres,
        "{} is not a common::tempdir() of this test",
        dir.display()
    );
    if let Some(url) = want {
        let text = std::fs::read_to_string(dir.join("config.toml")).unwrap_or_default();
        assert!(
            text.contains(&format!("url = \"{url}\"")),
            "{}/config.toml was not written by common::write_config: weir would not use the test database",
            dir.display()
        );
    }
}
