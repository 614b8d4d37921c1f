//! The server's Prometheus metrics (`GET /metrics`, text exposition format), kept with the
//! official Rust client: requests by endpoint and status, queue depth, running sequences,
//! tokens, cancellations, decode throughput, time to first token and latency histograms.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// Sequences waiting for a KV-cache slot plus requests still in the queue.
    pub queue_depth: Gauge,
    /// Sequences in the running batch.
    pub running: Gauge,
    pub prompt_tokens: Counter,
    pub generated_tokens: Counter,
    /// Sequences dropped because their client went away.
    pub cancelled: Counter,
    /// Tokens per second of the last decode step (all running sequences together).
    pub decode_tokens_per_second: Gauge<f64, AtomicU64>,
    /// From the request's arrival at the engine to its first sampled token.
    pub time_to_first_token: Histogram,
    /// From the request's arrival at the server to its last byte handed to the connection.
    pub request_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("seft");
        let m = Metrics {
            requests: Family::default(),
            queue_depth: Gauge::default(),
            running: Gauge::default(),
            prompt_tokens: Counter::default(),
            generated_tokens: Counter::default(),
            cancelled: Counter::default(),
            decode_tokens_per_second: Gauge::default(),
            // 5 ms .. ~82 s
            time_to_first_token: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            request_latency: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "HTTP requests by endpoint and status",
            m.requests.clone(),
        );
        registry.register(
            "queue_depth",
            "Sequences waiting for a KV-cache slot",
            m.queue_depth.clone(),
        );
        registry.register(
            "running_sequences",
            "Sequences in the running batch",
            m.running.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens prefilled",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "generation_tokens",
            "Tokens generated",
            m.generated_tokens.clone(),
        );
        registry.register(
            "cancelled_sequences",
            "Sequences dropped because their client disconnected",
            m.cancelled.clone(),
        );
        registry.register(
            "decode_tokens_per_second",
            "Tokens per second of the last decode step",
            m.decode_tokens_per_second.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Seconds from a request's arrival at the engine to its first token",
            m.time_to_first_token.clone(),
        );
        registry.register(
            "request_latency_seconds",
            "Seconds from a request's arrival to its response's end",
            m.request_latency.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn count_request(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status: status.to_string(),
            })
            .inc();
    }
}
