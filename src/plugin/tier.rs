//! Tiered compilation: a large plugin serves on Winch's quick build while
//! Cranelift's optimised build is made in the background, then swaps in.
//!
//! A tier-up replaces only the Winch build of the very file version (sha256)
//! it was made from, under the registry's writer lock as a reload does: a
//! newer version, an unload or an earlier tier-up wins, and the stale build
//! is dropped. Tier-ups compile one at a time (each takes every core for
//! seconds); one that went stale while it waited is dropped unbuilt.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use super::compile::{Pre, compile};
use super::engine::Tier;
use super::registry::Registry;

/// Components of at least this many bytes load on Winch first when their
/// Cranelift build is not cached. Measured on a 2-core machine, Cranelift
/// compiles 1.3 to 3.6 MB of component a second (a 145 KB Rust plugin in
/// 75 to 115 ms, 12.5 MB of componentize-js in 6.1 s, 18.4 MB of
/// componentize-py in 5.1 s), Winch four to six times that. Below 1 MiB,
/// Cranelift alone is done in under a second, within the 2 s a new plugin
/// may take to be in effect, and a second build plus slower code meanwhile
/// would buy nothing. weir's Rust plugins are 40 to 180 KB; componentize-js
/// and -py components are 12 MB and more.
pub const TIER_THRESHOLD: usize = 1 << 20;

/// Runs tier-ups: each on a thread of its own, one compiling at a time.
/// Tests hand them over instead, to run them at a chosen moment.
pub(super) struct Spawner(Box<dyn Fn(TierUp) + Send + Sync>);

impl Default for Spawner {
    fn default() -> Spawner {
        let turn = Arc::new(Mutex::new(()));
        Spawner(Box::new(move |job| {
            let turn = turn.clone();
            let name = job.name.clone();
            let spawned = std::thread::Builder::new()
                .name("weir-plugin-tier-up".into())
                .spawn(move || {
                    let _turn = turn.lock().unwrap_or_else(PoisonError::into_inner);
                    job.run();
                });
            if let Err(e) = spawned {
                tracing::warn!(plugin = %name, error = %e, "cannot start the Cranelift build; the plugin keeps running on Winch");
            }
        }))
    }
}

impl Spawner {
    pub(super) fn spawn(&self, job: TierUp) {
        (self.0)(job)
    }
}

/// The Cranelift build of a file version that went into effect on Winch.
pub(super) struct TierUp {
    /// Weak: a host dropped meanwhile is not kept alive for a stale build.
    registry: Weak<Registry>,
    /// Cranelift's engine and linker.
    tier: Tier,
    cache: Option<PathBuf>,
    name: String,
    sha256: String,
    bytes: Vec<u8>,
    /// When the Winch build went into effect, for the log.
    since: Instant,
}

/// How a tier-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The Cranelift build serves now.
    SwappedIn,
    /// That Winch build no longer served; nothing changed.
    Stale,
    /// Cranelift failed where Winch did not; the Winch build keeps serving.
    Failed,
}

impl TierUp {
    pub(super) fn new(
        registry: &Arc<Registry>,
        tier: &Tier,
        cache: Option<PathBuf>,
        name: &str,
        sha256: String,
        bytes: Vec<u8>,
    ) -> TierUp {
        TierUp {
            registry: Arc::downgrade(registry),
            tier: tier.clone(),
            cache,
            name: name.to_owned(),
            sha256,
            bytes,
            since: Instant::now(),
        }
    }

    /// Builds and swaps in, unless the Winch build is stale already.
    pub(super) fn run(self) -> Outcome {
        let wanted = self
            .registry
            .upgrade()
            .is_some_and(|r| r.serves_on_winch(&self.name, &self.sha256));
        if !wanted {
            tracing::debug!(plugin = %self.name, sha256 = %self.sha256, "no Cranelift build: that version no longer serves on Winch");
            return Outcome::Stale;
        }
        let built = self.build();
        self.finish(built)
    }

    /// Compiles with Cranelift (and fills the cache); the slow part.
    pub(super) fn build(&self) -> anyhow::Result<Pre> {
        let cache = self.cache.as_deref().map(|d| (d, self.sha256.as_str()));
        compile(&self.tier, &self.bytes, cache)
    }

    /// Swaps `built` in if its file version still serves on Winch.
    pub(super) fn finish(self, built: anyhow::Result<Pre>) -> Outcome {
        let (plugin, sha256) = (&self.name, &self.sha256);
        let pre = match built {
            Ok(pre) => pre,
            Err(e) => {
                tracing::warn!(
                    plugin,
                    sha256,
                    error = format!("{e:#}"),
                    "the Cranelift build failed; the plugin keeps running on Winch"
                );
                return Outcome::Failed;
            }
        };
        let swapped = self
            .registry
            .upgrade()
            .is_some_and(|r| r.tier_up(plugin, sha256, pre));
        if !swapped {
            tracing::debug!(plugin, sha256, "dropped a stale Cranelift build");
            return Outcome::Stale;
        }
        let on_winch_ms = self.since.elapsed().as_millis() as u64;
        tracing::info!(
            plugin,
            sha256,
            on_winch_ms,
            "plugin runs its Cranelift build now"
        );
        Outcome::SwappedIn
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::PluginLimits;
    use crate::event::Event;
    use crate::plugin::{Compiler, Incoming, PluginError, PluginStatus, Plugins, Verdict};
    use crate::store::Rendered;

    /// How long a background build may take before a test fails.
    const PATIENCE: Duration = Duration::from_secs(60);

    fn test_plugin(name: &str) -> PathBuf {
        Path::new(env!("WEIR_TEST_PLUGINS")).join(format!("{name}.wasm"))
    }

    /// Tier-ups handed to the test instead of run.
    type Held = Arc<Mutex<Vec<TierUp>>>;

    /// A host that starts every plugin on Winch (threshold 0), caching in
    /// `cache`, with a deadline generous enough for unoptimised tests;
    /// `held` takes its tier-ups, or they run on threads as in production.
    fn host(cache: &Path, timeout_ms: u64, held: Option<&Held>) -> Plugins {
        let mut registry = Registry::new(Some(cache.to_owned()), Some(0));
        if let Some(held) = held {
            let held = held.clone();
            registry = registry
                .with_tier_ups(Spawner(Box::new(move |job| held.lock().unwrap().push(job))));
        }
        let limits = PluginLimits {
            timeout: Duration::from_millis(timeout_ms),
            ..PluginLimits::DEFAULT
        };
        Plugins::build(limits, Default::default(), registry).unwrap()
    }

    fn take(held: &Held) -> TierUp {
        let mut jobs = held.lock().unwrap();
        assert_eq!(jobs.len(), 1, "one tier-up waiting");
        jobs.pop().unwrap()
    }

    /// Puts test plugin `plugin` at `dir/versioned.wasm` and loads it.
    fn land(plugins: &Plugins, dir: &Path, plugin: &str) {
        let path = dir.join("versioned.wasm");
        std::fs::copy(test_plugin(plugin), &path).unwrap();
        plugins.load_file(&path).unwrap();
    }

    fn status(plugins: &Plugins, name: &str) -> PluginStatus {
        plugins
            .states()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap()
    }

    fn sha256(plugin: &str) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(
            std::fs::read(test_plugin(plugin)).unwrap(),
        ))
    }

    /// An event and a request to call a test plugin with.
    fn probe() -> (Event, Rendered) {
        let event = Event {
            id: "e1".into(),
            event_type: "x.y".into(),
            owner_id: None,
            data: "{}".into(),
            occurred_at: "2026-01-01T00:00:00Z".into(),
        };
        let request = Rendered {
            body: "{}".into(),
            headers: Vec::new(),
        };
        (event, request)
    }

    /// The `x-plugin-version` the `versioned` plugin serving now adds.
    fn version(plugins: &Plugins) -> String {
        let (event, request) = probe();
        match plugins.call_blocking("versioned", &event, &request, "{}") {
            Ok(Verdict::Deliver(r)) => r.headers[0].1.clone(),
            other => panic!("versioned should deliver, got {other:?}"),
        }
    }

    /// Which tier's engine the serving version of `name` runs on.
    fn engine_of(plugins: &Plugins, name: &str) -> Compiler {
        let loaded = plugins.inner.registry.get(name).unwrap();
        let inner = &plugins.inner;
        if wasmtime::Engine::same(loaded.engine(), &inner.cranelift.engine) {
            Compiler::Cranelift
        } else {
            assert!(wasmtime::Engine::same(
                loaded.engine(),
                &inner.winch().unwrap().engine
            ));
            Compiler::Winch
        }
    }

    /// Waits, a bounded time, until `name` reports its Cranelift build.
    fn until_cranelift(plugins: &Plugins, name: &str) {
        let started = Instant::now();
        while status(plugins, name).compiler != Some(Compiler::Cranelift) {
            assert!(
                started.elapsed() < PATIENCE,
                "no tier-up within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn cached_files(dir: &Path, sha256: &str) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|f| f.starts_with(sha256) && f.ends_with(".cwasm"))
            .map(|f| f.split('-').nth(1).unwrap().to_owned())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_large_plugin_serves_on_winch_until_its_cranelift_build_swaps_in() {
        let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let held = Held::default();
        let plugins = host(cache.path(), 5000, Some(&held));
        land(&plugins, dir.path(), "versioned");
        let first = status(&plugins, "versioned");
        assert_eq!(first.compiler, Some(Compiler::Winch));
        assert_eq!(engine_of(&plugins, "versioned"), Compiler::Winch);
        assert_eq!(version(&plugins), "1");

        let job = take(&held);
        std::thread::spawn(move || job.run());
        until_cranelift(&plugins, "versioned");
        let now = status(&plugins, "versioned");
        assert_eq!(engine_of(&plugins, "versioned"), Compiler::Cranelift);
        assert_eq!(version(&plugins), "1");
        // The same file version, loaded at the same time: only the tier changed.
        assert_eq!(
            PluginStatus {
                compiler: Some(Compiler::Winch),
                ..now
            },
            first
        );
        assert_eq!(
            cached_files(cache.path(), &sha256("versioned")),
            ["cranelift", "winch"]
        );

        // Once Cranelift's build is cached, it is used at once, as before tiering.
        let again = host(cache.path(), 5000, Some(&held));
        land(&again, dir.path(), "versioned");
        assert_eq!(
            status(&again, "versioned").compiler,
            Some(Compiler::Cranelift)
        );
        assert!(
            held.lock().unwrap().is_empty(),
            "no tier-up for a cached build"
        );
    }

    #[test]
    fn a_newer_version_wins_over_a_stale_cranelift_build() {
        let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let held = Held::default();
        let plugins = host(cache.path(), 5000, Some(&held));
        land(&plugins, dir.path(), "versioned");
        let v1 = take(&held);
        let built = v1.build();

        // Version 2 lands while version 1's Cranelift build is made.
        land(&plugins, dir.path(), "versioned_v2");
        let v2 = take(&held);
        assert_eq!(v1.finish(built), Outcome::Stale);
        let serving = status(&plugins, "versioned");
        assert_eq!(serving.sha256, Some(sha256("versioned_v2")));
        assert_eq!(serving.compiler, Some(Compiler::Winch));
        assert_eq!(version(&plugins), "2");

        assert_eq!(v2.run(), Outcome::SwappedIn);
        assert_eq!(
            status(&plugins, "versioned").compiler,
            Some(Compiler::Cranelift)
        );
        assert_eq!(version(&plugins), "2");

        // A tier-up that went stale before its turn is dropped unbuilt.
        land(&plugins, dir.path(), "versioned_v3");
        let v3 = take(&held);
        land(&plugins, dir.path(), "versioned_v2");
        assert!(
            held.lock().unwrap().is_empty(),
            "v2's Cranelift build is cached"
        );
        assert_eq!(v3.run(), Outcome::Stale);
        assert_eq!(
            cached_files(cache.path(), &sha256("versioned_v3")),
            ["winch"]
        );
        assert_eq!(version(&plugins), "2");
        assert_eq!(engine_of(&plugins, "versioned"), Compiler::Cranelift);
    }

    #[test]
    fn the_production_spawner_tiers_up_on_its_own() {
        let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let plugins = host(cache.path(), 5000, None);
        land(&plugins, dir.path(), "versioned");
        until_cranelift(&plugins, "versioned");
        assert_eq!(engine_of(&plugins, "versioned"), Compiler::Cranelift);
        assert_eq!(version(&plugins), "1");
    }

    #[test]
    fn on_winch_a_plugin_keeps_its_deadline_memory_limit_and_kind() {
        let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let held = Held::default();
        let plugins = host(cache.path(), 200, Some(&held));
        for name in ["spin_forever", "memory_bomb", "source_fanout"] {
            let path = dir.path().join(format!("{name}.wasm"));
            std::fs::copy(test_plugin(name), &path).unwrap();
            plugins.load_file(&path).unwrap();
            assert_eq!(engine_of(&plugins, name), Compiler::Winch);
        }
        let (event, request) = probe();
        let call = |name| plugins.call_blocking(name, &event, &request, "{}");
        assert_eq!(call("spin_forever"), Err(PluginError::Timeout(200)));
        assert_eq!(call("memory_bomb"), Err(PluginError::Memory(32)));
        let req = Incoming {
            method: "POST".into(),
            path: "/in/shop".into(),
            query: String::new(),
            headers: Vec::new(),
            body: br#"{"n": 3, "type": "x.y"}"#.to_vec(),
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let drafts = runtime.block_on(plugins.map_request("source_fanout", &req, "{}", "shop"));
        assert_eq!(drafts.map(|d| d.len()), Ok(3));
    }
}
