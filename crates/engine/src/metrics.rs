//! The daemon's counters for `metrics-addr`, in Prometheus' text format: containers by state,
//! starts and their latency, pulls and pushes, bytes pulled and pushed, API requests by
//! endpoint and status, and errors. Counters only grow; the state gauge is counted at scrape.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::{Engine, ListOptions};

/// Upper bounds (seconds) of the start latency histogram's buckets.
const START_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Default)]
pub(crate) struct Metrics {
    starts: AtomicU64,
    start_failures: AtomicU64,
    /// Per bucket of [`START_BUCKETS`], then the +Inf one; not cumulative (summed at render).
    start_buckets: [AtomicU64; START_BUCKETS.len() + 1],
    start_micros: AtomicU64,
    pulls: AtomicU64,
    pull_failures: AtomicU64,
    pushes: AtomicU64,
    push_failures: AtomicU64,
    bytes_pulled: AtomicU64,
    bytes_pushed: AtomicU64,
    /// (method, endpoint pattern, status) → count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
}

impl Metrics {
    pub(crate) fn start_done(&self, ok: bool, took: Duration) {
        if !ok {
            self.start_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.starts.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        let i = START_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(START_BUCKETS.len());
        if let Some(b) = self.start_buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.start_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn pull_done(&self, ok: bool) {
        let c = if ok { &self.pulls } else { &self.pull_failures };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn push_done(&self, ok: bool) {
        let c = if ok { &self.pushes } else { &self.push_failures };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn pulled(&self, bytes: u64) {
        self.bytes_pulled.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn pushed(&self, bytes: u64) {
        self.bytes_pushed.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The API endpoint of a request path, with names and ids replaced (`/containers/{id}/start`),
/// so that the number of series stays bounded.
pub fn endpoint_pattern(path: &str) -> String {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((first, rest)) = segs.split_first() else { return "/".to_string() };
    // Collections whose second segment is a name or id unless it is one of these verbs.
    const VERBS: &[&str] = &["json", "create", "prune", "load", "get", "search", "push"];
    let named = ["containers", "images", "networks", "volumes", "exec", "plugins", "distribution", "session"];
    let known = named.contains(first)
        || [
            "_ping", "version", "info", "events", "auth", "build", "commit", "system", "swarm", "services", "nodes",
            "tasks", "secrets", "configs", "grpc",
        ]
        .contains(first);
    if !known {
        return "/{other}".to_string();
    }
    if !named.contains(first) || rest.is_empty() || VERBS.contains(&rest[0]) {
        // Fixed paths: `/containers/json`, `/system/df`, `/build/prune`.
        let mut out = format!("/{first}");
        for s in rest.iter().take(2) {
            out.push('/');
            out.push_str(if s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') { s } else { "{x}" });
        }
        return out;
    }
    // `/images/<name with slashes>/json`: the name runs up to the last segment, an action.
    let action = if rest.len() > 1 { rest.last().copied() } else { None };
    match action {
        Some(a) if a.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') => format!("/{first}/{{name}}/{a}"),
        _ => format!("/{first}/{{name}}"),
    }
}

/// A label value with Prometheus' escapes.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Engine {
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// One API request answered (the API layer calls this for every request).
    pub fn record_request(&self, method: &str, path: &str, status: u16) {
        let key = (method.to_string(), endpoint_pattern(path), status);
        {
            let mut m = crate::sync::lock(&self.inner.metrics.requests);
            *m.entry(key).or_insert(0) += 1;
        }
    }

    /// Every metric in Prometheus' text exposition format (version 0.0.4).
    pub fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut states: BTreeMap<&str, u64> =
            ["created", "running", "paused", "restarting", "removing", "exited", "dead"]
                .iter()
                .map(|s| (*s, 0))
                .collect();
        if let Ok(all) = self.list_containers(&ListOptions { all: true, ..Default::default() }) {
            for c in all {
                let s = c.state.status.as_str();
                *states.entry(s).or_insert(0) += 1;
            }
        }
        let _ = writeln!(out, "# HELP wharf_containers Containers by state.\n# TYPE wharf_containers gauge");
        for (s, n) in &states {
            let _ = writeln!(out, "wharf_containers{{state=\"{s}\"}} {n}");
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(&mut out, "wharf_container_starts_total", "Containers started.", get(&m.starts));
        counter(
            &mut out,
            "wharf_container_start_failures_total",
            "Container starts that failed.",
            get(&m.start_failures),
        );
        let _ = writeln!(
            out,
            "# HELP wharf_container_start_seconds Time from the start request to the container running.\n\
             # TYPE wharf_container_start_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, b) in START_BUCKETS.iter().enumerate() {
            cumulative += m.start_buckets.get(i).map(get).unwrap_or(0);
            let _ = writeln!(out, "wharf_container_start_seconds_bucket{{le=\"{b}\"}} {cumulative}");
        }
        cumulative += m.start_buckets.get(START_BUCKETS.len()).map(get).unwrap_or(0);
        let _ = writeln!(out, "wharf_container_start_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "wharf_container_start_seconds_sum {}", get(&m.start_micros) as f64 / 1e6);
        let _ = writeln!(out, "wharf_container_start_seconds_count {cumulative}");
        counter(&mut out, "wharf_image_pulls_total", "Image pulls that completed.", get(&m.pulls));
        counter(&mut out, "wharf_image_pull_failures_total", "Image pulls that failed.", get(&m.pull_failures));
        counter(&mut out, "wharf_image_pushes_total", "Image pushes that completed.", get(&m.pushes));
        counter(&mut out, "wharf_image_push_failures_total", "Image pushes that failed.", get(&m.push_failures));
        counter(&mut out, "wharf_pulled_bytes_total", "Layer bytes received from registries.", get(&m.bytes_pulled));
        counter(&mut out, "wharf_pushed_bytes_total", "Blob bytes uploaded to registries.", get(&m.bytes_pushed));
        let requests = crate::sync::lock(&m.requests).clone();
        let _ = writeln!(out, "# HELP wharf_api_requests_total API requests by endpoint and status.");
        let _ = writeln!(out, "# TYPE wharf_api_requests_total counter");
        let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
        for ((method, endpoint, status), n) in &requests {
            let _ = writeln!(
                out,
                "wharf_api_requests_total{{method=\"{}\",endpoint=\"{}\",status=\"{status}\"}} {n}",
                label(method),
                label(endpoint)
            );
            if *status >= 400 {
                *errors.entry(*status).or_insert(0) += n;
            }
        }
        let _ = writeln!(out, "# HELP wharf_api_errors_total API requests answered with an error, by status.");
        let _ = writeln!(out, "# TYPE wharf_api_errors_total counter");
        for (status, n) in errors {
            let _ = writeln!(out, "wharf_api_errors_total{{status=\"{status}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_patterns() {
        assert_eq!(endpoint_pattern("/containers/json"), "/containers/json");
        assert_eq!(endpoint_pattern("/containers/abc123/start"), "/containers/{name}/start");
        assert_eq!(endpoint_pattern("/containers/abc123"), "/containers/{name}");
        assert_eq!(endpoint_pattern("/images/library/busybox:latest/json"), "/images/{name}/json");
        assert_eq!(endpoint_pattern("/images/create"), "/images/create");
        assert_eq!(endpoint_pattern("/_ping"), "/_ping");
        assert_eq!(endpoint_pattern("/system/df"), "/system/df");
        assert_eq!(endpoint_pattern("/exec/0123/json"), "/exec/{name}/json");
        assert_eq!(endpoint_pattern("/whatever/x/y"), "/{other}");
        assert_eq!(endpoint_pattern("/"), "/");
    }

    #[test]
    fn start_latency_falls_in_its_bucket() {
        let m = Metrics::default();
        m.start_done(true, Duration::from_millis(70));
        m.start_done(true, Duration::from_secs(60));
        m.start_done(false, Duration::from_millis(1));
        assert_eq!(m.start_buckets[1].load(Ordering::Relaxed), 1);
        assert_eq!(m.start_buckets[START_BUCKETS.len()].load(Ordering::Relaxed), 1);
        assert_eq!(m.starts.load(Ordering::Relaxed), 2);
        assert_eq!(m.start_failures.load(Ordering::Relaxed), 1);
    }
}
