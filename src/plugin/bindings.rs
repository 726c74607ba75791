//! The one place generated code for the `weir:plugin` WIT worlds lives.
//! Everything else in the crate goes through [`super::host`] and
//! [`super::source`], which convert to and from weir's own types.
//!
//! Each world gets its own `bindgen!`; the `source` world reuses the
//! `filter` world's `host` interface, so the linker defines it (and
//! `HostState` implements it) once for both kinds of plugin.

wasmtime::component::bindgen!({
    path: "wit",
    world: "filter",
});

pub use self::weir::plugin::host::Level;

/// The `source` world: `map-request`, from a caught request to event drafts.
pub mod source {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "source",
        with: {
            "weir:plugin/host": crate::plugin::bindings::weir::plugin::host,
        },
    });
}
