//! What a call's store holds: WASI with nothing granted, `wasi:http` that
//! refuses every request, the memory limit, and the log sink that tags and
//! rate-limits what the plugin logs.

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::bindings::{self, Level};
use super::host::truncate;

/// Log lines a single call may emit before the rest are dropped.
const MAX_LOG_LINES: usize = 20;
pub(super) const MAX_LOG_LINE: usize = 1024;

/// Per-call store data.
pub(super) struct HostState {
    pub(super) wasi: WasiCtx,
    pub(super) http: WasiHttpCtx,
    pub(super) hooks: DenyHttp,
    pub(super) table: ResourceTable,
    pub(super) memory: MemoryLimit,
    pub(super) log: LogSink,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Plugins may link `wasi:http` but never reach the network.
pub(super) struct DenyHttp;

type Io = Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>;

impl WasiHttpHooks for DenyHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Io,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Io,
                )>,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Enforces `memory_mb` and remembers that it did.
pub(super) struct MemoryLimit {
    pub(super) max: usize,
    pub(super) exceeded: bool,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// What a call's log lines are tagged with besides the plugin's name.
pub(super) enum Tags {
    /// A step of a webhook's chain, for one delivery of one event.
    Filter {
        webhook: String,
        event: String,
        delivery: String,
    },
    /// A source plugin mapping one request caught for `source`.
    Source { source: String },
}

/// Emits a `tracing` event at a plugin's log [`Level`].
macro_rules! at_level {
    ($level:expr, $($arg:tt)+) => {
        match $level {
            Level::Debug => tracing::debug!($($arg)+),
            Level::Info => tracing::info!($($arg)+),
            Level::Warn => tracing::warn!($($arg)+),
            Level::Error => tracing::error!($($arg)+),
        }
    };
}

/// `host.log` and captured stdio, tagged with ids and rate-limited.
pub(super) struct LogSink {
    pub(super) plugin: String,
    pub(super) tags: Tags,
    pub(super) lines: Vec<String>,
    pub(super) dropped: usize,
}

impl LogSink {
    pub(super) fn line(&mut self, level: Level, message: &str) {
        if self.lines.len() >= MAX_LOG_LINES {
            self.dropped += 1;
            return;
        }
        let message = truncate(message, MAX_LOG_LINE);
        let plugin = &self.plugin;
        match &self.tags {
            Tags::Filter {
                webhook,
                event,
                delivery,
            } => at_level!(level, plugin, webhook, event, delivery, "plugin: {message}"),
            Tags::Source { source } => at_level!(level, plugin, source, "plugin: {message}"),
        }
        let tag = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.lines.push(format!("{tag}: {message}"));
    }

    pub(super) fn finish(&mut self) {
        if self.dropped == 0 {
            return;
        }
        let (plugin, dropped) = (&self.plugin, self.dropped);
        let limit = MAX_LOG_LINES;
        match &self.tags {
            Tags::Filter { event, .. } => tracing::warn!(
                plugin,
                event,
                dropped,
                "plugin log lines dropped (limit {limit} per call)"
            ),
            Tags::Source { source } => tracing::warn!(
                plugin,
                source,
                dropped,
                "plugin log lines dropped (limit {limit} per call)"
            ),
        }
    }
}

impl bindings::weir::plugin::host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.log.line(level, &message);
    }
}

impl bindings::weir::plugin::types::Host for HostState {}
