//! weir: a WebAssembly-pluggable webhook event router.
//!
//! Data flows `ingest` → `router` → `plugin` → `deliver`, with `store` under
//! all of them and `listen` (connections, HTTP/1.1) before `ingest`.
//! [`server::run`] wires the stages; [`commands`] is the CLI.

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod console;
pub mod deliver;
pub mod error;
pub mod event;
pub mod inbound;
pub mod ingest;
pub mod json;
pub mod listen;
pub mod metrics;
pub mod plugin;
pub mod reload;
pub mod router;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod token;
