//! ListMetricDescriptors and ListPodSandboxMetrics, for kubelet's `PodAndContainerStatsFromCRI`
//! (its /metrics/cadvisor served from the runtime instead of cAdvisor): cAdvisor's metric
//! names as containerd and CRI-O give them, each with the labels `pod`, `namespace`,
//! `container`, `id`, `image` (then its own), and values from the same cgroup reads as the
//! stats methods (`Engine::stats_sample`). Pod-level series (the pod's network) have empty
//! `container` and `image`, as containerd's.
//!
//! The values are `UInt64Value`s, so seconds are whole seconds (containerd truncates alike).

use std::collections::BTreeMap;

use wharf_engine::{ContainerRecord, StatsSample};

use crate::grpc::Status;
use crate::meta;
use crate::proto::{self, METRIC_COUNTER as COUNTER, METRIC_GAUGE as GAUGE};
use crate::Cri;

/// The labels every series has, in this order.
const BASE_LABELS: [&str; 5] = ["pod", "namespace", "container", "id", "image"];

struct Desc {
    name: &'static str,
    help: &'static str,
    /// Labels after the base ones.
    extra: &'static [&'static str],
    kind: i32,
}

const fn d(name: &'static str, help: &'static str, extra: &'static [&'static str], kind: i32) -> Desc {
    Desc { name, help, extra, kind }
}

const IFACE: &[&str] = &["interface"];

/// Every series wharf gives, and nothing it does not.
const DESCRIPTORS: &[Desc] = &[
    d("container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", &[], COUNTER),
    d("container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", &[], COUNTER),
    d("container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", &[], COUNTER),
    d("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", &[], COUNTER),
    d("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", &[], COUNTER),
    d(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        &[],
        COUNTER,
    ),
    d(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        &[],
        GAUGE,
    ),
    d("container_memory_working_set_bytes", "Current working set in bytes.", &[], GAUGE),
    d("container_memory_rss", "Size of RSS in bytes.", &[], GAUGE),
    d("container_memory_cache", "Number of bytes of page cache memory.", &[], GAUGE),
    d("container_memory_mapped_file", "Size of memory mapped files in bytes.", &[], GAUGE),
    d("container_memory_total_active_file_bytes", "Current total active file in bytes.", &[], GAUGE),
    d("container_memory_total_inactive_file_bytes", "Current total inactive file in bytes.", &[], GAUGE),
    d(
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        &["failure_type", "scope"],
        COUNTER,
    ),
    d("container_spec_memory_limit_bytes", "Memory limit for the container.", &[], GAUGE),
    d("container_processes", "Number of processes running inside the container.", &[], GAUGE),
    d(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        &[],
        GAUGE,
    ),
    d(
        "container_blkio_device_usage_total",
        "Blkio device bytes usage",
        &["device", "major", "minor", "operation"],
        COUNTER,
    ),
    d(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        &["device"],
        GAUGE,
    ),
    d("container_last_seen", "Last time a container was seen by the exporter", &[], GAUGE),
    d("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", &[], GAUGE),
    d("container_network_receive_bytes_total", "Cumulative count of bytes received", IFACE, COUNTER),
    d("container_network_receive_packets_total", "Cumulative count of packets received", IFACE, COUNTER),
    d(
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        IFACE,
        COUNTER,
    ),
    d(
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        IFACE,
        COUNTER,
    ),
    d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", IFACE, COUNTER),
    d("container_network_transmit_packets_total", "Cumulative count of packets transmitted", IFACE, COUNTER),
    d(
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        IFACE,
        COUNTER,
    ),
    d(
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        IFACE,
        COUNTER,
    ),
];

/// The network series in the order of `StatsSample::networks`' values.
const NETWORK: [&str; 8] = [
    "container_network_receive_bytes_total",
    "container_network_receive_packets_total",
    "container_network_receive_errors_total",
    "container_network_receive_packets_dropped_total",
    "container_network_transmit_bytes_total",
    "container_network_transmit_packets_total",
    "container_network_transmit_errors_total",
    "container_network_transmit_packets_dropped_total",
];

pub fn descriptors() -> Vec<proto::MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|d| proto::MetricDescriptor {
            name: d.name.to_string(),
            help: d.help.to_string(),
            label_keys: BASE_LABELS.iter().chain(d.extra).map(|s| s.to_string()).collect(),
        })
        .collect()
}

/// Series of one sample, all with the same base label values and time.
struct Series<'a> {
    base: &'a [String],
    ts: i64,
    out: Vec<proto::Metric>,
}

impl Series<'_> {
    /// A series of `name` (one of DESCRIPTORS: its type comes from there) with `extra` label values.
    fn push(&mut self, name: &str, extra: &[&str], value: u64) {
        let kind = DESCRIPTORS.iter().find(|d| d.name == name).map_or(GAUGE, |d| d.kind);
        self.out.push(proto::Metric {
            name: name.to_string(),
            timestamp: self.ts,
            metric_type: kind,
            label_values: self.base.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect(),
            value: Some(proto::UInt64Value { value }),
        });
    }
}

const NS: u64 = 1_000_000_000;

/// The first of `keys` in memory.stat (cgroup v1's hierarchical `total_*`, then v2's names).
fn mem(s: &StatsSample, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| s.mem_stats.get(*k)).copied()
}

/// The device node of a block device number, as cAdvisor names it (`/dev/sda`), else
/// `major:minor`.
fn block_device(major: u64, minor: u64) -> String {
    std::fs::read_link(format!("/sys/dev/block/{major}:{minor}"))
        .ok()
        .and_then(|p| p.file_name().map(|n| format!("/dev/{}", n.to_string_lossy())))
        .unwrap_or_else(|| format!("{major}:{minor}"))
}

/// A running container's series. `started` and `now` are in seconds since the epoch.
fn container_series(s: &StatsSample, base: &[String], started: u64, now: u64, ts: i64) -> Vec<proto::Metric> {
    let mut m = Series { base, ts, out: Vec::new() };
    m.push("container_cpu_usage_seconds_total", &[], s.cpu_total / NS);
    m.push("container_cpu_user_seconds_total", &[], s.cpu_user / NS);
    m.push("container_cpu_system_seconds_total", &[], s.cpu_kernel / NS);
    m.push("container_cpu_cfs_periods_total", &[], s.throttle_periods);
    m.push("container_cpu_cfs_throttled_periods_total", &[], s.throttled_periods);
    m.push("container_cpu_cfs_throttled_seconds_total", &[], s.throttled_time / NS);
    m.push("container_memory_usage_bytes", &[], s.mem_usage);
    m.push("container_memory_working_set_bytes", &[], crate::stats::working_set(s));
    for (name, keys) in [
        ("container_memory_rss", &["total_rss", "anon"][..]),
        ("container_memory_cache", &["total_cache", "file"]),
        ("container_memory_mapped_file", &["total_mapped_file", "file_mapped"]),
        ("container_memory_total_active_file_bytes", &["total_active_file", "active_file"]),
        ("container_memory_total_inactive_file_bytes", &["total_inactive_file", "inactive_file"]),
    ] {
        if let Some(v) = mem(s, keys) {
            m.push(name, &[], v);
        }
    }
    for (kind, keys) in
        [("pgfault", &["total_pgfault", "pgfault"]), ("pgmajfault", &["total_pgmajfault", "pgmajfault"])]
    {
        if let Some(v) = mem(s, keys) {
            m.push("container_memory_failures_total", &[kind, "container"], v);
        }
    }
    // No limit reads as a huge number on cgroup v1 and "max" (0 here) on v2: cAdvisor says 0.
    let limit = if s.mem_limit < u64::MAX / 2 { s.mem_limit } else { 0 };
    m.push("container_spec_memory_limit_bytes", &[], limit);
    m.push("container_processes", &[], s.pids_current);
    m.push("container_threads_max", &[], s.pids_limit);
    for (major, minor, op, bytes) in &s.blkio {
        // cAdvisor's operation names.
        let op = match op.as_str() {
            "read" => "Read",
            "write" => "Write",
            other => other,
        };
        let dev = block_device(*major, *minor);
        m.push("container_blkio_device_usage_total", &[&dev, &major.to_string(), &minor.to_string(), op], *bytes);
    }
    m.push("container_last_seen", &[], now);
    m.push("container_start_time_seconds", &[], started);
    m.out
}

/// The pod's network series (not the loopback).
fn network_series(networks: &BTreeMap<String, [u64; 8]>, base: &[String], ts: i64) -> Vec<proto::Metric> {
    let mut m = Series { base, ts, out: Vec::new() };
    for (iface, v) in networks.iter().filter(|(n, _)| n.as_str() != "lo") {
        for (name, value) in NETWORK.iter().zip(v) {
            m.push(name, &[iface], *value);
        }
    }
    m.out
}

fn secs_of(rfc3339: &str) -> u64 {
    u64::try_from(meta::nanos(rfc3339)).unwrap_or(0) / NS
}

impl Cri {
    pub(crate) async fn list_metric_descriptors(&self) -> Result<proto::ListMetricDescriptorsResponse, Status> {
        Ok(proto::ListMetricDescriptorsResponse { descriptors: descriptors() })
    }

    /// The ready pods with their running containers; one that goes away meanwhile is left out.
    pub(crate) async fn list_pod_sandbox_metrics(&self) -> Result<proto::ListPodSandboxMetricsResponse, Status> {
        let mut pod_metrics = Vec::new();
        for (rec, m) in self.sandboxes()? {
            if !rec.state.running {
                continue;
            }
            let md = m.metadata();
            let Ok(s) = self.engine.stats_sample(&rec.id).await else { continue };
            let ts = crate::stats::now_nanos();
            let pod_base = [md.name.clone(), md.namespace.clone(), String::new(), rec.id.clone(), String::new()];
            let metrics = if m.host_network() { Vec::new() } else { network_series(&s.networks, &pod_base, ts) };
            let mut container_metrics = Vec::new();
            for c in self.pod_containers(&rec.id)? {
                if let Some(cm) = self.one_container_metrics(&c, &md).await {
                    container_metrics.push(cm);
                }
            }
            pod_metrics.push(proto::PodSandboxMetrics { pod_sandbox_id: rec.id.clone(), metrics, container_metrics });
        }
        Ok(proto::ListPodSandboxMetricsResponse { pod_metrics })
    }

    async fn one_container_metrics(
        &self,
        c: &ContainerRecord,
        pod: &proto::PodSandboxMetadata,
    ) -> Option<proto::ContainerMetrics> {
        let cm = meta::container_meta(c)?;
        if !c.state.running {
            return None;
        }
        let s = self.engine.stats_sample(&c.id).await.ok()?;
        let ts = crate::stats::now_nanos();
        let image = if cm.image.user_specified_image.is_empty() {
            cm.image.image.clone()
        } else {
            cm.image.user_specified_image.clone()
        };
        let base = [pod.name.clone(), pod.namespace.clone(), cm.metadata.name.clone(), c.id.clone(), image];
        let now = u64::try_from(ts).unwrap_or(0) / NS;
        let mut metrics = container_series(&s, &base, secs_of(&c.state.started_at), now, ts);
        // The writable layer, on the file system ImageFsInfo names.
        if let Some(w) = self.writable_layer(&c.id, ts).await {
            let device = w.fs_id.map(|f| f.mountpoint).unwrap_or_default();
            let mut m = Series { base: &base, ts, out: metrics };
            m.push("container_fs_usage_bytes", &[&device], w.used_bytes.map_or(0, |v| v.value));
            metrics = m.out;
        }
        Some(proto::ContainerMetrics { container_id: c.id.clone(), metrics })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(m: &proto::Metric) {
        let d = DESCRIPTORS.iter().find(|d| d.name == m.name).unwrap_or_else(|| panic!("{} has no descriptor", m.name));
        assert_eq!(m.label_values.len(), BASE_LABELS.len() + d.extra.len(), "labels of {}", m.name);
        assert_eq!(m.metric_type, d.kind, "type of {}", m.name);
    }

    #[test]
    fn descriptors_are_unique_and_carry_the_base_labels() {
        let all = descriptors();
        let mut names: Vec<&str> = all.iter().map(|d| d.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        for d in &all {
            assert_eq!(&d.label_keys[..5], &BASE_LABELS.map(String::from)[..], "{}", d.name);
        }
        let wanted = ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes"];
        assert!(wanted.iter().all(|w| names.contains(w)));
    }

    #[test]
    fn container_series_come_from_the_cgroup_sample() {
        let mut s = StatsSample {
            cpu_total: 3_500_000_000,
            cpu_user: 2_100_000_000,
            cpu_kernel: 1_400_000_000,
            mem_usage: 10 << 20,
            mem_limit: 64 << 20,
            pids_current: 3,
            pids_limit: 100,
            blkio: vec![(7, 0, "write".into(), 4096)],
            ..Default::default()
        };
        // cgroup v1's hierarchical keys.
        for (k, v) in [("total_inactive_file", 2u64 << 20), ("total_rss", 5 << 20), ("total_pgfault", 42)] {
            s.mem_stats.insert(k.into(), v);
        }
        let base: Vec<String> = ["p", "ns", "c", "id1", "busybox"].map(String::from).to_vec();
        let out = container_series(&s, &base, 1_700_000_000, 1_700_000_100, 5);
        out.iter().for_each(described);
        let value = |name: &str| out.iter().find(|m| m.name == name).and_then(|m| m.value.clone()).map(|v| v.value);
        assert_eq!(value("container_cpu_usage_seconds_total"), Some(3));
        assert_eq!(value("container_cpu_user_seconds_total"), Some(2));
        assert_eq!(value("container_memory_working_set_bytes"), Some(8 << 20));
        assert_eq!(value("container_memory_rss"), Some(5 << 20));
        assert_eq!(value("container_memory_cache"), None, "not in memory.stat, so not given");
        assert_eq!(value("container_spec_memory_limit_bytes"), Some(64 << 20));
        assert_eq!(value("container_processes"), Some(3));
        assert_eq!(value("container_start_time_seconds"), Some(1_700_000_000));
        let faults = out.iter().find(|m| m.name == "container_memory_failures_total").unwrap();
        assert_eq!(&faults.label_values[5..], ["pgfault", "container"]);
        let io = out.iter().find(|m| m.name == "container_blkio_device_usage_total").unwrap();
        assert_eq!(&io.label_values[6..], ["7", "0", "Write"]);
        assert!(out.iter().all(|m| m.label_values[..5] == base[..] && m.timestamp == 5));

        // cgroup v2's names, and no memory limit.
        let mut v2 = StatsSample { mem_usage: 4096, mem_limit: u64::MAX, ..Default::default() };
        v2.mem_stats.insert("anon".into(), 1024);
        let out = container_series(&v2, &base, 0, 0, 0);
        out.iter().for_each(described);
        let value = |name: &str| out.iter().find(|m| m.name == name).and_then(|m| m.value.clone()).map(|v| v.value);
        assert_eq!(value("container_memory_rss"), Some(1024));
        assert_eq!(value("container_spec_memory_limit_bytes"), Some(0));
    }

    #[test]
    fn pod_network_series_leave_out_the_loopback() {
        let mut n = BTreeMap::new();
        n.insert("lo".to_string(), [9; 8]);
        n.insert("eth0".to_string(), [100, 2, 0, 1, 200, 3, 0, 0]);
        let base: Vec<String> = ["p", "ns", "", "sid", ""].map(String::from).to_vec();
        let out = network_series(&n, &base, 1);
        assert_eq!(out.len(), 8);
        out.iter().for_each(described);
        assert!(out.iter().all(|m| m.label_values[5] == "eth0"));
        let rx = out.iter().find(|m| m.name == "container_network_receive_bytes_total").unwrap();
        assert_eq!(rx.value.as_ref().map(|v| v.value), Some(100));
        let drop = out.iter().find(|m| m.name == "container_network_receive_packets_dropped_total").unwrap();
        assert_eq!(drop.value.as_ref().map(|v| v.value), Some(1));
    }
}
