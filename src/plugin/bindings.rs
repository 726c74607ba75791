//! The one place generated code for the `weir:plugin` WIT world lives.
//! Everything else in the crate goes through [`super::host`], which converts
//! to and from weir's own types.

wasmtime::component::bindgen!({
    path: "wit",
    world: "filter",
});

pub use self::weir::plugin::host::Level;
