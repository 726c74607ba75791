//! Turning a plugin file's bytes into a pre-instantiated plugin with one
//! compiler tier: the checks (a component, the right `weir:plugin` major, a
//! `handle` or `map-request` export, it links), the compile, and the on-disk
//! cache, whose file names bind an artifact to the source bytes, the
//! compiler and the engine's settings.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::bail;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceType};

use super::PluginKind;
use super::bindings::FilterPre;
use super::bindings::source::SourcePre;
use super::engine::Tier;
use super::state::HostState;

/// The WIT package plugins must import from, if they import any of it.
const PACKAGE: &str = "weir:plugin/";
/// Versions of that package this host serves (same major as `0.1.0`).
const COMPATIBLE: &str = "@0.1.";

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

/// Validates and compiles a plugin with `tier`, using (and filling) the
/// on-disk cache `(dir, sha256)` when given.
pub(super) fn compile(
    tier: &Tier,
    bytes: &[u8],
    cache: Option<(&Path, &str)>,
) -> anyhow::Result<Pre> {
    check_magic(bytes)?;
    prepare(tier, &component(tier, bytes, cache)?)
}

pub(super) fn check_magic(bytes: &[u8]) -> anyhow::Result<()> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => bail!(
            "a core WebAssembly module, not a component; build it as a component (e.g. `cargo build --target wasm32-wasip2`)"
        ),
        _ => bail!("not a WebAssembly component (bad magic bytes)"),
    }
}

/// Checks a compiled component's imports and exports, and pre-instantiates
/// it as the world it exports.
pub(super) fn prepare(tier: &Tier, component: &Component) -> anyhow::Result<Pre> {
    let engine = &tier.engine;
    for (import, _) in component.component_type().imports(engine) {
        if let Some(rest) = import.strip_prefix(PACKAGE)
            && !rest.contains(COMPATIBLE)
        {
            bail!("imports {import}, but this weir serves weir:plugin@0.1.x");
        }
    }
    let exports = |name: &str| {
        component
            .component_type()
            .exports(engine)
            .any(|(n, _)| n == name)
    };
    let source = exports("map-request") && !exports("handle");
    let mut linker = tier.linker.clone();
    stub_foreign_imports(&mut linker, component)?;
    let pre = linker
        .instantiate_pre(component)
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

/// `tier`'s build of the component, from the cache `(dir, sha256)` if it is
/// there, else compiled now (and cached).
pub(super) fn component(
    tier: &Tier,
    bytes: &[u8],
    cache: Option<(&Path, &str)>,
) -> anyhow::Result<Component> {
    let Some((dir, sha)) = cache else {
        return from_binary(tier, bytes);
    };
    if let Some(c) = cached(tier, dir, sha) {
        return Ok(c);
    }
    let component = from_binary(tier, bytes)?;
    let file = cache_file(tier, dir, sha);
    if let Ok(artifact) = component.serialize() {
        let _ = std::fs::create_dir_all(dir);
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, artifact).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
    Ok(component)
}

/// `tier`'s build of file version `sha` from the cache, if it is there.
pub(super) fn cached(tier: &Tier, dir: &Path, sha: &str) -> Option<Component> {
    let file = cache_file(tier, dir, sha);
    if !file.is_file() {
        return None;
    }
    // SAFETY: only weir writes this directory, and the file name binds the
    // artifact to the source bytes, the compiler and this engine's settings.
    unsafe { Component::deserialize_file(&tier.engine, &file) }.ok()
}

/// Where `tier`'s build of file version `sha` is cached. The compiler is
/// named outright, not left to the engine's compatibility hash alone.
fn cache_file(tier: &Tier, dir: &Path, sha: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tier.engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{sha}-{}-{:016x}.cwasm", tier.compiler, h.finish()))
}

fn from_binary(tier: &Tier, bytes: &[u8]) -> anyhow::Result<Component> {
    Component::from_binary(&tier.engine, bytes)
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
