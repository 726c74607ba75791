//! Which plugins are loaded, and loading them.
//!
//! The map of loaded plugins is swapped whole (`ArcSwap`), so a call holds
//! one version from start to end while a reload installs the next. Loading
//! validates first (a component, the right `weir:plugin` major, a `handle`
//! or `map-request` export, it compiles); a file that fails leaves the last good
//! version in place and its error visible in `GET /v1/plugins`. Which of the
//! two exports a component has makes it a filter or a source plugin.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};

use super::bindings::FilterPre;
use super::bindings::source::SourcePre;
use super::host::{HostState, Inner};
use super::{Change, PluginError, PluginKind, PluginState, PluginStatus};
use crate::event::{now_millis, rfc3339};

/// The WIT package plugins must import from, if they import any of it.
const PACKAGE: &str = "weir:plugin/";
/// Versions of that package this host serves (same major as `0.1.0`).
const COMPATIBLE: &str = "@0.1.";

pub struct Loaded {
    pub name: String,
    pub pre: Pre,
    /// How this version's calls have gone: where the next one runs.
    pub pace: super::pace::Pace,
}

/// A plugin pre-instantiated as the world it exports.
pub enum Pre {
    Filter(FilterPre<HostState>),
    Source(SourcePre<HostState>),
}

impl Pre {
    pub fn kind(&self) -> PluginKind {
        match self {
            Pre::Filter(_) => PluginKind::Filter,
            Pre::Source(_) => PluginKind::Source,
        }
    }
}

impl Loaded {
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
}

impl Registry {
    pub fn new(cache: Option<PathBuf>) -> Registry {
        Registry {
            loaded: ArcSwap::from_pointee(HashMap::new()),
            status: Mutex::new(BTreeMap::new()),
            writing: Mutex::new(HashMap::new()),
            cache,
        }
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

    pub fn rescan(&self, host: &Inner, dir: &Path) -> Vec<Change> {
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

    pub fn load_file(&self, host: &Inner, path: &Path) -> anyhow::Result<String> {
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
        &self,
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
        let pre = match compile(
            host,
            &bytes,
            self.cache.as_deref().map(|d| (d, sha256.as_str())),
        ) {
            Ok(pre) => pre,
            Err(e) => return Some(self.record_failure(name, format!("{e:#}"))),
        };
        let replaced = self.get(name).is_some();
        let kind = pre.kind();
        let loaded = Arc::new(Loaded {
            name: name.to_owned(),
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
                sha256: Some(sha256),
                loaded_at: Some(rfc3339(now_millis())),
                state: PluginState::Ready,
                error: None,
                kind: Some(kind),
            },
        );
        Some(Change {
            name: name.to_owned(),
            what: if replaced { "replaced" } else { "loaded" },
            error: None,
        })
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
            });
        // `sha256`, `loaded_at` and `kind` keep describing the version still
        // serving.
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

/// Validates and compiles a plugin, using (and filling) the on-disk cache
/// `(dir, sha256)` when given.
pub(super) fn compile(
    host: &Inner,
    bytes: &[u8],
    cache: Option<(&Path, &str)>,
) -> anyhow::Result<Pre> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => {}
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => bail!(
            "a core WebAssembly module, not a component; build it as a component (e.g. `cargo build --target wasm32-wasip2`)"
        ),
        _ => bail!("not a WebAssembly component (bad magic bytes)"),
    }
    let component = match cache {
        Some((dir, sha)) => cached_component(host, bytes, dir, sha)?,
        None => from_binary(host, bytes)?,
    };
    for (import, _) in component.component_type().imports(&host.engine) {
        if let Some(rest) = import.strip_prefix(PACKAGE)
            && !rest.contains(COMPATIBLE)
        {
            bail!("imports {import}, but this weir serves weir:plugin@0.1.x");
        }
    }
    let exports = |name: &str| {
        component
            .component_type()
            .exports(&host.engine)
            .any(|(n, _)| n == name)
    };
    let source = exports("map-request") && !exports("handle");
    let mut linker = host.linker.clone();
    stub_foreign_imports(&mut linker, &component)?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow::anyhow!("cannot be linked: {e:#}"))?;
    if source {
        return SourcePre::new(pre).map(Pre::Source).map_err(|e| {
            anyhow::anyhow!(
                "does not export the weir:plugin `source` world ({SOURCE_EXPORT}): {e:#}"
            )
        });
    }
    FilterPre::new(pre).map(Pre::Filter).map_err(|e| {
        anyhow::anyhow!("does not export the weir:plugin `filter` world (`handle: func(event, request, config) -> result<verdict, string>`) or `source` world ({SOURCE_EXPORT}): {e:#}")
    })
}

const SOURCE_EXPORT: &str =
    "`map-request: func(request: incoming, config: string) -> result<list<event-draft>, string>`";

fn cached_component(
    host: &Inner,
    bytes: &[u8],
    dir: &Path,
    sha: &str,
) -> anyhow::Result<Component> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    host.engine.precompile_compatibility_hash().hash(&mut h);
    let file = dir.join(format!("{sha}-{:016x}.cwasm", h.finish()));
    if file.is_file() {
        // SAFETY: only weir writes this directory, and the file name binds
        // the artifact to both the source bytes and this engine's settings.
        if let Ok(c) = unsafe { Component::deserialize_file(&host.engine, &file) } {
            return Ok(c);
        }
    }
    let component = from_binary(host, bytes)?;
    if let Ok(artifact) = component.serialize() {
        let _ = std::fs::create_dir_all(dir);
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, artifact).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
    Ok(component)
}

fn from_binary(host: &Inner, bytes: &[u8]) -> anyhow::Result<Component> {
    Component::from_binary(&host.engine, bytes)
        .map_err(|e| anyhow::anyhow!("does not compile: {e:#}"))
}

/// Defines every function of imported interfaces weir does not provide (not
/// `wasi:*`, not `weir:*`) as a trap, so a component that imports something
/// it never calls still loads. WASI names are left to the linker's semver
/// matching: stubbing them would shadow the real implementation.
fn stub_foreign_imports(
    linker: &mut Linker<HostState>,
    component: &Component,
) -> anyhow::Result<()> {
    let engine = linker.engine().clone();
    let ty = component.component_type();
    for (name, item) in ty.imports(&engine) {
        if name.starts_with("wasi:") || name.starts_with("weir:") {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        let mut scope = linker.instance(name)?;
        for (export, export_item) in instance.exports(&engine) {
            match export_item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let full = format!("{name}#{export}");
                    scope.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!("import `{full}` is not available to weir plugins")
                    })?;
                }
                ComponentItem::Resource(_) => {
                    scope.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?
                }
                _ => {}
            }
        }
    }
    Ok(())
}
