//! Prometheus metrics, registered once per server and rendered at `/metrics`.

use std::collections::HashMap;

use prometheus::core::Collector as _;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// One plugin's calls on this node, from `weir_plugin_calls_total` and
/// `weir_plugin_call_duration_seconds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginFigures {
    /// Every call, whatever its result (`benched` ones included).
    pub calls: u64,
    /// Calls that produced no verdict: `failure` and `benched`.
    pub failures: u64,
    /// Time spent in calls that ran, and how many ran.
    pub seconds: f64,
    pub timed: u64,
}

pub struct Metrics {
    registry: Registry,
    pub events_received: IntCounter,
    pub events_accepted: IntCounter,
    pub events_duplicate: IntCounter,
    pub events_rejected: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub attempt_seconds: HistogramVec,
    pub queue_depth: IntGaugeVec,
    pub plugin_calls: IntCounterVec,
    pub plugin_seconds: HistogramVec,
    pub reloads: IntCounterVec,
    /// `weir_node_info{node="..."} 1`: which node these figures are from.
    pub node_info: IntGaugeVec,
    /// Requests at `/in/{source}`, by what became of them.
    pub inbound_requests: IntCounterVec,
    /// Caught requests routed (or held), by source.
    pub inbound_routed: IntCounterVec,
    /// Finished trace spans by fate: exported, dropped_queue_full,
    /// dropped_export_failed (only while `[telemetry]` exports).
    pub trace_spans: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let buckets = vec![
                0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ];
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("metric");
            registry.register(Box::new(h.clone())).expect("register");
            h
        };
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "weir_queue_depth",
                "Pending and retrying deliveries per webhook",
            ),
            &["webhook"],
        )
        .expect("metric");
        registry
            .register(Box::new(queue_depth.clone()))
            .expect("register");
        let node_info = IntGaugeVec::new(
            Opts::new("weir_node_info", "This node's id (always 1)"),
            &["node"],
        )
        .expect("metric");
        registry
            .register(Box::new(node_info.clone()))
            .expect("register");
        Metrics {
            node_info,
            inbound_requests: counter_vec(
                "weir_inbound_requests_total",
                "Requests at /in/{source}: caught, duplicate, refused_<why>, too_large, ...",
                &["source", "result"],
            ),
            inbound_routed: counter_vec(
                "weir_inbound_routed_total",
                "Caught requests turned into events (routed) or held",
                &["source", "state"],
            ),
            events_received: counter(
                "weir_events_received_total",
                "Events received on /v1/events",
            ),
            events_accepted: counter("weir_events_accepted_total", "Events durably stored"),
            events_duplicate: counter(
                "weir_events_duplicate_total",
                "Events recognised as retries inside the dedup window",
            ),
            events_rejected: counter_vec(
                "weir_events_rejected_total",
                "Ingest requests refused",
                &["reason"],
            ),
            deliveries: counter_vec(
                "weir_deliveries_total",
                "Delivery outcomes by webhook",
                &["webhook", "outcome"],
            ),
            attempt_seconds: histogram(
                "weir_attempt_duration_seconds",
                "HTTP attempt latency",
                &["webhook"],
            ),
            queue_depth,
            plugin_calls: counter_vec(
                "weir_plugin_calls_total",
                "Plugin calls by plugin and result",
                &["plugin", "result"],
            ),
            plugin_seconds: histogram(
                "weir_plugin_call_duration_seconds",
                "Plugin call latency",
                &["plugin"],
            ),
            trace_spans: counter_vec(
                "weir_trace_spans_total",
                "Trace spans exported to the OTLP collector or dropped (queue full, export failed)",
                &["result"],
            ),
            reloads: counter_vec(
                "weir_reloads_total",
                "Config and plugin reloads",
                &["kind", "result"],
            ),
            registry,
        }
    }

    /// Every plugin called on this node so far, by name. Reads the series
    /// that exist without making new ones.
    pub fn plugin_figures(&self) -> HashMap<String, PluginFigures> {
        let mut out: HashMap<String, PluginFigures> = HashMap::new();
        let label = |m: &prometheus::proto::Metric, name: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == name)
                .map(|l| l.value().to_owned())
                .unwrap_or_default()
        };
        for family in self.plugin_calls.collect() {
            for m in family.get_metric() {
                let f = out.entry(label(m, "plugin")).or_default();
                let n = m.get_counter().get_value() as u64;
                f.calls += n;
                if matches!(label(m, "result").as_str(), "failure" | "benched") {
                    f.failures += n;
                }
            }
        }
        for family in self.plugin_seconds.collect() {
            for m in family.get_metric() {
                let f = out.entry(label(m, "plugin")).or_default();
                f.seconds += m.get_histogram().get_sample_sum();
                f.timed += m.get_histogram().get_sample_count();
            }
        }
        out
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_figures_add_up_results_and_time_without_making_series() {
        let m = Metrics::new();
        assert!(m.plugin_figures().is_empty());
        for (result, n) in [("deliver", 3), ("drop", 1), ("failure", 2), ("benched", 4)] {
            m.plugin_calls.with_label_values(&["p", result]).inc_by(n);
        }
        m.plugin_seconds.with_label_values(&["p"]).observe(0.5);
        m.plugin_seconds.with_label_values(&["p"]).observe(1.5);
        let figures = m.plugin_figures();
        assert_eq!(
            figures["p"],
            PluginFigures {
                calls: 10,
                failures: 6,
                seconds: 2.0,
                timed: 2
            }
        );
        assert_eq!(figures.len(), 1);
        assert!(!m.render().contains("plugin=\"q\""));
    }
}
