//! The server's metrics, in the Prometheus text format (`GET /metrics`): requests by route and
//! status, a latency histogram, the queue depth, how full batches are and how many requests they
//! mix, generated tokens and translation time (their ratio is the tokens per second), and how long
//! the models took to load.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the batch-size histogram's buckets, in segments.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.len() != bounds.len() {
            self.counts = vec![0; bounds.len()];
        }
        for (c, &b) in self.counts.iter_mut().zip(bounds) {
            if v <= b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, &b) in bounds.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Everything counted; shared by the handlers and the schedulers.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    batch_segments: Mutex<Histogram>,
    batches: AtomicU64,
    multi_request_batches: AtomicU64,
    batched_segments: AtomicU64,
    generated_tokens: AtomicU64,
    translate_micros: AtomicU64,
    queue_depth: AtomicU64,
    in_flight: AtomicU64,
    cancelled: AtomicU64,
    load_micros: AtomicU64,
}

impl Metrics {
    /// A request to `route` answered with `status` after `elapsed`.
    pub(crate) fn request(&self, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_string(), status)).or_insert(0) += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            l.entry(route.to_string())
                .or_default()
                .observe(&LATENCY_BUCKETS, elapsed.as_secs_f64());
        }
    }

    pub(crate) fn queue_depth(&self, segments: usize) {
        self.queue_depth.store(segments as u64, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self, delta: i64) {
        if delta >= 0 {
            self.in_flight.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.in_flight
                .fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    pub(crate) fn cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn loaded(&self, took: Duration) {
        self.load_micros
            .store(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Rounds that held segments of more than one request.
    pub(crate) fn multi_request_batches(&self) -> u64 {
        self.multi_request_batches.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP tolk_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE tolk_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "tolk_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP tolk_request_seconds Time to answer a request, by route.\n");
        out.push_str("# TYPE tolk_request_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                h.write(
                    &mut out,
                    "tolk_request_seconds",
                    &format!("route=\"{route}\""),
                    &LATENCY_BUCKETS,
                );
            }
        }
        let counters = [
            (
                "tolk_batches_total",
                "Decoding steps of the batch in flight run.",
                &self.batches,
            ),
            (
                "tolk_batches_multi_request_total",
                "Steps whose batch held segments of more than one request.",
                &self.multi_request_batches,
            ),
            (
                "tolk_batched_segments_total",
                "Segments in the batch, summed over steps (divided by tolk_batches_total: the mean batch).",
                &self.batched_segments,
            ),
            (
                "tolk_generated_tokens_total",
                "Tokens generated (rate: divide by tolk_translate_seconds_total).",
                &self.generated_tokens,
            ),
            (
                "tolk_cancelled_requests_total",
                "Requests whose client went away before the answer.",
                &self.cancelled,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP tolk_translate_seconds_total Time spent in decoding steps.\n# TYPE tolk_translate_seconds_total counter\ntolk_translate_seconds_total {}",
            self.translate_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        out.push_str("# HELP tolk_batch_segments Segments in the batch, per step.\n");
        out.push_str("# TYPE tolk_batch_segments histogram\n");
        if let Ok(h) = self.batch_segments.lock() {
            h.write(&mut out, "tolk_batch_segments", "", &BATCH_BUCKETS);
        }
        let gauges = [
            (
                "tolk_queue_segments",
                "Segments waiting for a round.",
                self.queue_depth.load(Ordering::Relaxed) as f64,
            ),
            (
                "tolk_requests_in_flight",
                "Requests being answered.",
                self.in_flight.load(Ordering::Relaxed) as f64,
            ),
            (
                "tolk_model_load_seconds",
                "Time the models took to load.",
                self.load_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}

impl crate::scheduler::SchedulerObserver for Metrics {
    fn queue_depth(&self, segments: usize) {
        Metrics::queue_depth(self, segments);
    }

    fn batch(&self, segments: usize, requests: usize, tokens: usize, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        if requests > 1 {
            self.multi_request_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.batched_segments
            .fetch_add(segments as u64, Ordering::Relaxed);
        self.generated_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
        self.translate_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if let Ok(mut h) = self.batch_segments.lock() {
            h.observe(&BATCH_BUCKETS, segments as f64);
        }
    }
}
