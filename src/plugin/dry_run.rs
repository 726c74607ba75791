//! A dry run: one call of a filter plugin on one event, outside any webhook,
//! as `weir plugin run` and `POST /v1/plugins/{name}/run` make it. The call
//! runs in the sandbox with the usual limits, but neither the breaker nor
//! the call metrics count it: trying a plugin out says nothing about how it
//! serves the webhooks.

use std::time::{Duration, Instant};

use super::host::CallJob;
use super::{PluginError, Plugins, Verdict};
use crate::event::Event;
use crate::store::Rendered;

/// What the plugin's log lines are tagged with instead of a webhook.
const DRY_RUN: &str = "(dry run)";

/// What one dry run produced.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// The verdict, or why the plugin gave none.
    pub result: Result<Verdict, PluginError>,
    /// `host.log` lines and stdio, as the log would show them.
    pub logs: Vec<String>,
    /// How long the call took in the sandbox.
    pub took: Duration,
}

impl Plugins {
    /// Runs the version of filter plugin `name` serving now, once, on
    /// `event` (with the default envelope as the request so far) and
    /// `config` (JSON text). `Err` when it cannot run at all: no version is
    /// loaded, or it is a source plugin.
    pub async fn dry_run(
        &self,
        name: &str,
        event: &Event,
        config: &str,
    ) -> Result<DryRun, PluginError> {
        let loaded = self.serving_filter(name)?;
        let job = CallJob {
            event: event.clone(),
            request: Rendered {
                body: event.envelope_json(),
                headers: Vec::new(),
            },
            config: config.to_owned(),
            webhook: DRY_RUN.to_owned(),
            delivery: DRY_RUN.to_owned(),
        };
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("semaphore never closes");
        let inner = self.inner.clone();
        let started = Instant::now();
        let (result, logs) =
            tokio::task::spawn_blocking(move || inner.call_sync(&loaded, &job, None))
                .await
                .unwrap_or_else(|e| {
                    (
                        Err(PluginError::Trap(format!("host task failed: {e}"))),
                        Vec::new(),
                    )
                });
        Ok(DryRun {
            result,
            logs,
            took: started.elapsed(),
        })
    }
}
