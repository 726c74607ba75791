//! Which plugins are loaded, and loading them.
//!
//! The map of loaded plugins is swapped whole (`ArcSwap`), so a call holds
//! one version from start to end while a reload installs the next. Loading
//! validates first (a component, the right `weir:plugin` major, a `handle`
//! or `map-request` export, it compiles); a file that fails leaves the last good
//! version in place and its error visible in `GET /v1/plugins`. Which of the
//! two exports a component has makes it a filter or a source plugin.
//!
//! A large component whose optimised build is not cached yet loads on Winch
//! (seconds sooner) and is rebuilt with Cranelift in the background; that
//! build replaces it as a new version would, but only if the same file
//! version still serves (see [`super::tier`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::Engine;

use super::bindings::FilterPre;
use super::bindings::source::SourcePre;
use super::compile::{Pre, cached, check_magic, compile, component, prepare};
use super::host::Inner;
use super::state::HostState;
use super::tier::{Spawner, TierUp};
use super::{Change, Compiler, PluginError, PluginState, PluginStatus};
use crate::event::{now_millis, rfc3339};

pub struct Loaded {
    pub name: String,
    /// The file version (content hash) this is a build of.
    pub sha256: String,
    /// Which tier built it; a Winch build gives way to Cranelift's.
    pub compiler: Compiler,
    pub pre: Pre,
    /// How this version's calls have gone: where the next one runs.
    pub pace: super::pace::Pace,
}

impl Loaded {
    /// The engine that compiled this plugin: its stores must be made on it.
    pub fn engine(&self) -> &Engine {
        match &self.pre {
            Pre::Filter(pre) => pre.instance_pre().engine(),
            Pre::Source(pre) => pre.instance_pre().engine(),
        }
    }

    /// The filter world, or why this plugin cannot serve as one.
    pub fn filter(&self) -> Result<&FilterPre<HostState>, PluginError> {
        match &self.pre {
            Pre::Filter(pre) => Ok(pre),
            Pre::Source(_) => Err(self.wrong_kind()),
        }
    }

    /// The source world, or why this plugin cannot serve as one.
    pub fn source(&self) -> Result<&SourcePre<HostState>, PluginError> {
        match &self.pre {
            Pre::Source(pre) => Ok(pre),
            Pre::Filter(_) => Err(self.wrong_kind()),
        }
    }

    fn wrong_kind(&self) -> PluginError {
        PluginError::WrongKind {
            plugin: self.name.clone(),
            is: self.pre.kind(),
        }
    }
}

pub struct Registry {
    loaded: ArcSwap<HashMap<String, Arc<Loaded>>>,
    status: Mutex<BTreeMap<String, PluginStatus>>,
    /// Serialises writers; readers never take it. Holds the hash of the last
    /// file tried per name, so unchanged (even broken) bytes are not reloaded.
    writing: Mutex<HashMap<String, String>>,
    cache: Option<PathBuf>,
    /// Components of at least this many bytes load on Winch first when
    /// their Cranelift build is not cached; `None`: Cranelift only.
    tier_threshold: Option<usize>,
    /// Runs the background Cranelift builds.
    tier_ups: Spawner,
}

impl Registry {
    pub fn new(cache: Option<PathBuf>, tier_threshold: Option<usize>) -> Registry {
        Registry {
            loaded: ArcSwap::from_pointee(HashMap::new()),
            status: Mutex::new(BTreeMap::new()),
            writing: Mutex::new(HashMap::new()),
            cache,
            tier_threshold,
            tier_ups: Spawner::default(),
        }
    }

    /// The same registry, its background builds run by `tier_ups`.
    #[cfg(test)]
    pub fn with_tier_ups(self, tier_ups: Spawner) -> Registry {
        Registry { tier_ups, ..self }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Loaded>> {
        self.loaded.load().get(name).cloned()
    }

    /// `get`, or why `name` is not loaded.
    pub fn lookup(
        &self,
        loaded: &HashMap<String, Arc<Loaded>>,
        name: &str,
    ) -> Result<Arc<Loaded>, PluginError> {
        loaded.get(name).cloned().ok_or_else(|| {
            PluginError::NotLoaded(
                self.failure(name)
                    .unwrap_or_else(|| "no such plugin in the plugins folder".into()),
            )
        })
    }

    /// Every plugin as loaded right now.
    pub fn snapshot(&self) -> Arc<HashMap<String, Arc<Loaded>>> {
        self.loaded.load_full()
    }

    /// The last load error of `name`, if it failed.
    pub fn failure(&self, name: &str) -> Option<String> {
        self.status
            .lock()
            .expect("status")
            .get(name)
            .and_then(|s| s.error.clone())
    }

    pub fn states(&self) -> Vec<PluginStatus> {
        self.status
            .lock()
            .expect("status")
            .values()
            .cloned()
            .collect()
    }

    pub fn rescan(self: &Arc<Self>, host: &Inner, dir: &Path) -> Vec<Change> {
        let mut tried = self.writing.lock().expect("registry writer");
        let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = plugin_name(&path) else {
                    continue;
                };
                if path.is_file() {
                    found.insert(name, path);
                }
            }
        }
        let mut changes = Vec::new();
        for (name, path) in &found {
            if let Some(change) = self.load_locked(host, name, path, &mut tried) {
                changes.push(change);
            }
        }
        let gone: Vec<String> = self
            .status
            .lock()
            .expect("status")
            .keys()
            .filter(|n| !found.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.swap(|map| {
                map.remove(&name);
            });
            self.status.lock().expect("status").remove(&name);
            tried.remove(&name);
            changes.push(Change {
                name,
                what: "unloaded",
                error: None,
            });
        }
        changes
    }

    pub fn load_file(self: &Arc<Self>, host: &Inner, path: &Path) -> anyhow::Result<String> {
        let mut tried = self.writing.lock().expect("registry writer");
        let name = plugin_name(path)
            .with_context(|| format!("{} is not a <name>.wasm file", path.display()))?;
        match self.load_locked(host, &name, path, &mut tried) {
            Some(Change { error: Some(e), .. }) => bail!(e),
            _ => Ok(name),
        }
    }

    /// Loads `path` as `name` unless its content is what is loaded already.
    fn load_locked(
        self: &Arc<Self>,
        host: &Inner,
        name: &str,
        path: &Path,
        tried: &mut HashMap<String, String>,
    ) -> Option<Change> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                return Some(
                    self.record_failure(name, format!("cannot read {}: {e}", path.display())),
                );
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if tried.get(name) == Some(&sha256) {
            return None;
        }
        tried.insert(name.to_owned(), sha256.clone());
        let (pre, compiler) = match self.first_build(host, name, &bytes, &sha256) {
            Ok(built) => built,
            Err(e) => return Some(self.record_failure(name, format!("{e:#}"))),
        };
        let replaced = self.get(name).is_some();
        let kind = pre.kind();
        let loaded = Arc::new(Loaded {
            name: name.to_owned(),
            sha256: sha256.clone(),
            compiler,
            pre,
            pace: Default::default(),
        });
        self.swap(|map| {
            map.insert(name.to_owned(), loaded);
        });
        self.status.lock().expect("status").insert(
            name.to_owned(),
            PluginStatus {
                name: name.to_owned(),
                sha256: Some(sha256.clone()),
                loaded_at: Some(rfc3339(now_millis())),
                state: PluginState::Ready,
                error: None,
                kind: Some(kind),
                compiler: Some(compiler),
            },
        );
        if compiler == Compiler::Winch {
            let cache = self.cache.clone();
            let job = TierUp::new(self, &host.cranelift, cache, name, sha256, bytes);
            self.tier_ups.spawn(job);
        }
        Some(Change {
            name: name.to_owned(),
            what: if replaced { "replaced" } else { "loaded" },
            error: None,
        })
    }

    /// The build a new file version starts serving with: Cranelift's if it
    /// is cached; else, for a large component, Winch's (a [`TierUp`]
    /// follows); else Cranelift's, compiled now.
    fn first_build(
        &self,
        host: &Inner,
        name: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> anyhow::Result<(Pre, Compiler)> {
        check_magic(bytes)?;
        let cache = self.cache.as_deref().map(|d| (d, sha256));
        let large = self.tier_threshold.is_some_and(|t| bytes.len() >= t);
        if large {
            if let Some(c) = cache.and_then(|(dir, sha)| cached(&host.cranelift, dir, sha)) {
                return prepare(&host.cranelift, &c).map(|pre| (pre, Compiler::Cranelift));
            }
            let winch = host.winch();
            match winch.and_then(|w| Ok((w, component(w, bytes, cache)?))) {
                Ok((w, c)) => return prepare(w, &c).map(|pre| (pre, Compiler::Winch)),
                // Winch lacks some of what Cranelift compiles (parts of
                // SIMD, for one): then Cranelift it is, at once.
                Err(e) => tracing::warn!(
                    plugin = name,
                    sha256,
                    error = format!("{e:#}"),
                    "Winch cannot build the plugin; compiling it with Cranelift"
                ),
            }
        }
        compile(&host.cranelift, bytes, cache).map(|pre| (pre, Compiler::Cranelift))
    }

    /// Swaps `pre`, the Cranelift build of file version `sha256`, in for its
    /// Winch build, as a new version replaces an old one. Returns `false`
    /// (and changes nothing) when that Winch build no longer serves: a newer
    /// file, an unload, or an earlier tier-up took its place.
    pub(super) fn tier_up(&self, name: &str, sha256: &str, pre: Pre) -> bool {
        let _writer = self.writing.lock().expect("registry writer");
        if !self.serves_on_winch(name, sha256) {
            return false;
        }
        let loaded = Arc::new(Loaded {
            name: name.to_owned(),
            sha256: sha256.to_owned(),
            compiler: Compiler::Cranelift,
            pre,
            pace: Default::default(),
        });
        self.swap(|map| {
            map.insert(name.to_owned(), loaded);
        });
        // Only the tier changed: `loaded_at` stays the file's, and `error`
        // (a later file that failed) stays true.
        if let Some(status) = self.status.lock().expect("status").get_mut(name) {
            status.compiler = Some(Compiler::Cranelift);
        }
        true
    }

    /// Whether `name` serves file version `sha256` on its Winch build.
    pub(super) fn serves_on_winch(&self, name: &str, sha256: &str) -> bool {
        self.get(name)
            .is_some_and(|l| l.sha256 == sha256 && l.compiler == Compiler::Winch)
    }

    /// Records a failed load; the previous good version (if any) stays.
    fn record_failure(&self, name: &str, error: String) -> Change {
        let mut status = self.status.lock().expect("status");
        let entry = status
            .entry(name.to_owned())
            .or_insert_with(|| PluginStatus {
                name: name.to_owned(),
                sha256: None,
                loaded_at: None,
                state: PluginState::Failed,
                error: None,
                kind: None,
                compiler: None,
            });
        // `sha256`, `loaded_at`, `kind` and `compiler` keep describing the
        // version still serving.
        entry.error = Some(error.clone());
        if self.loaded.load().get(name).is_none() {
            entry.state = PluginState::Failed;
        }
        Change {
            name: name.to_owned(),
            what: "rejected",
            error: Some(error),
        }
    }

    fn swap(&self, f: impl FnOnce(&mut HashMap<String, Arc<Loaded>>)) {
        let mut next = HashMap::clone(&self.loaded.load());
        f(&mut next);
        self.loaded.store(Arc::new(next));
    }
}

fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let name = file.strip_suffix(".wasm")?;
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| name.to_owned())
}
