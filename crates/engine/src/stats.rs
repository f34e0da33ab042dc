//! `top` (the host's `ps`, rows kept by the container's cgroup) and `stats` (one sample of a
//! container's cgroup counters and its network interfaces).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use wharf_runtime::cgroups::{Cgroup, Layout};

use crate::{blocking, Engine, EngineError};

/// `ps` output: the header's titles and one row per process of the container.
#[derive(Debug, Clone, Default)]
pub struct TopResult {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// One read of a container's counters; zero everywhere for a container that does not run.
#[derive(Debug, Clone, Default)]
pub struct StatsSample {
    /// RFC 3339 time of the read.
    pub read: String,
    pub running: bool,
    /// Nanoseconds.
    pub cpu_total: u64,
    pub cpu_percpu: Vec<u64>,
    pub cpu_kernel: u64,
    pub cpu_user: u64,
    /// The host's cpu time in nanoseconds (Docker's `system_cpu_usage`).
    pub system_cpu: u64,
    pub online_cpus: u32,
    pub throttle_periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
    pub mem_usage: u64,
    pub mem_limit: u64,
    pub mem_stats: BTreeMap<String, u64>,
    pub pids_current: u64,
    /// 0 when unlimited.
    pub pids_limit: u64,
    /// (major, minor, op, bytes), op as dockerd shows it: the v1 file's (`Read`, `Write`,
    /// `Sync`, `Async`, `Discard`, `Total`), or `read`/`write` on v2.
    pub blkio: Vec<(u64, u64, String, u64)>,
    /// The same for the number of I/Os (`io_serviced_recursive`).
    pub blkio_serviced: Vec<(u64, u64, String, u64)>,
    /// Interface → rx bytes, rx packets, rx errors, rx dropped, tx bytes, tx packets, tx errors, tx dropped.
    pub networks: BTreeMap<String, [u64; 8]>,
}

impl Engine {
    /// Runs `ps` with `ps_args` (default `-ef`) on the host and keeps the rows of the
    /// container's processes.
    pub async fn top_container(&self, name: &str, ps_args: Option<&str>) -> Result<TopResult, EngineError> {
        let rec = self.find_container(name)?;
        if !self.live(&rec.id).is_running() {
            return Err(EngineError::Conflict(format!("Container {} is not running", rec.id)));
        }
        let args: Vec<String> = ps_args.unwrap_or("-ef").split_whitespace().map(str::to_string).collect();
        let cgroup = self.container_cgroup(&rec.id);
        blocking(move || {
            let pids = Cgroup::open(&cgroup)
                .and_then(|cg| cg.procs())
                .map_err(|e| EngineError::Internal(format!("top: {e}")))?;
            let out = Command::new("ps").args(&args).output().map_err(|e| EngineError::io("top: run ps", e))?;
            if !out.status.success() {
                return Err(EngineError::Invalid(format!("ps: {}", String::from_utf8_lossy(&out.stderr).trim())));
            }
            parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
        })
        .await
    }

    /// Where a container's writable layer (its overlay upper dir) is, and the root of the
    /// snapshots it lives under (the file system the CRI reports it on). Read-only: for
    /// usage reports.
    pub fn container_upper_dir(&self, name: &str) -> Result<(std::path::PathBuf, std::path::PathBuf), EngineError> {
        let rec = self.find_container(name)?;
        let snaps = &self.inner.snapshots;
        Ok((snaps.container_dirs(&rec.id).upper, snaps.root().to_path_buf()))
    }

    /// One sample of a container's statistics.
    pub async fn stats_sample(&self, name: &str) -> Result<StatsSample, EngineError> {
        let rec = self.find_container(name)?;
        let running = self.live(&rec.id).is_running();
        let cgroup = self.container_cgroup(&rec.id);
        let pid = rec.state.pid;
        blocking(move || {
            let mut s = StatsSample {
                read: wharf_types::time::rfc3339_nanos(SystemTime::now()),
                online_cpus: online_cpus(),
                system_cpu: system_cpu_nanos(),
                ..Default::default()
            };
            if !running {
                return Ok(s);
            }
            s.running = true;
            // The container may exit between the check and the reads: a vanished cgroup
            // reads as zeros, as a stopped container's.
            if let Ok(cg) = Cgroup::open(&cgroup) {
                match cg.layout() {
                    Layout::V2 => read_v2(&cg, &mut s),
                    Layout::V1 | Layout::Hybrid => read_v1(&cg, &mut s),
                }
            }
            if pid > 0 {
                if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
                    s.networks = parse_net_dev(&text);
                }
            }
            Ok(s)
        })
        .await
    }
}

/// Docker's parse of `ps` output: the PID column found in the header, each row split in as
/// many fields as there are titles, the last one keeping its spaces (the command).
fn parse_ps(output: &str, pids: &[i32]) -> Result<TopResult, EngineError> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let Some(pid_col) = titles.iter().position(|t| t == "PID") else {
        return Err(EngineError::Invalid("Couldn't find PID field in ps output".to_string()));
    };
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() <= pid_col {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            return Err(EngineError::Invalid(format!("Unexpected pid '{}'", fields[pid_col])));
        };
        if !pids.contains(&pid) {
            continue;
        }
        let n = titles.len().max(1);
        let mut row: Vec<String> = fields.iter().take(n - 1).map(|f| f.to_string()).collect();
        if fields.len() >= n {
            row.push(fields[n - 1..].join(" "));
        }
        processes.push(row);
    }
    Ok(TopResult { titles, processes })
}

/// The host's online CPUs, as dockerd counts them (`sysconf(_SC_NPROCESSORS_ONLN)`): not
/// wharfd's own affinity or quota, which `available_parallelism` would give. The docker CLI
/// puts CPU percent against this count, a container's cpuset or quota notwithstanding.
fn online_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|t| count_cpu_list(t.trim()))
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1))
}

/// The number of CPUs in a kernel CPU list (`0-3,6`); `None` if it does not parse.
fn count_cpu_list(list: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in list.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u32>().ok()?.checked_sub(a.parse::<u32>().ok()?)? + 1,
            None => {
                part.parse::<u32>().ok()?;
                1
            }
        };
    }
    (n > 0).then_some(n)
}

/// The host's total cpu time from the first line of /proc/stat, in nanoseconds.
fn system_cpu_nanos() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else { return 0 };
    parse_proc_stat(&text)
}

fn parse_proc_stat(text: &str) -> u64 {
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else { return 0 };
    // USER_HZ is 100 on every Linux ABI wharf runs on.
    let ticks: u64 = line.split_whitespace().skip(1).take(7).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks * 10_000_000
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
fn flat_keyed(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn read_v1(cg: &Cgroup, s: &mut StatsSample) {
    if let Some(dir) = cg.controller_dir("cpuacct") {
        s.cpu_total = read_u64(&dir.join("cpuacct.usage"));
        s.cpu_percpu = std::fs::read_to_string(dir.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        let stat = flat_keyed(&dir.join("cpuacct.stat"));
        s.cpu_user = stat.get("user").copied().unwrap_or(0) * 10_000_000;
        s.cpu_kernel = stat.get("system").copied().unwrap_or(0) * 10_000_000;
    }
    if let Some(dir) = cg.controller_dir("cpu") {
        let stat = flat_keyed(&dir.join("cpu.stat"));
        s.throttle_periods = stat.get("nr_periods").copied().unwrap_or(0);
        s.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
        s.throttled_time = stat.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(dir) = cg.controller_dir("memory") {
        s.mem_usage = read_u64(&dir.join("memory.usage_in_bytes"));
        s.mem_limit = read_u64(&dir.join("memory.limit_in_bytes"));
        s.mem_stats = flat_keyed(&dir.join("memory.stat"));
    }
    if let Some(dir) = cg.controller_dir("pids") {
        s.pids_current = read_u64(&dir.join("pids.current"));
        s.pids_limit = read_u64(&dir.join("pids.max"));
    }
    if let Some(dir) = cg.controller_dir("blkio") {
        s.blkio = parse_blkio_v1(&dir.join("blkio.throttle.io_service_bytes_recursive"));
        s.blkio_serviced = parse_blkio_v1(&dir.join("blkio.throttle.io_serviced_recursive"));
    }
    clamp_limit(s);
}

fn read_v2(cg: &Cgroup, s: &mut StatsSample) {
    let Some(dir) = cg.controller_dir("cpu") else { return };
    let stat = flat_keyed(&dir.join("cpu.stat"));
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    s.cpu_total = get("usage_usec") * 1000;
    s.cpu_user = get("user_usec") * 1000;
    s.cpu_kernel = get("system_usec") * 1000;
    s.throttle_periods = get("nr_periods");
    s.throttled_periods = get("nr_throttled");
    s.throttled_time = get("throttled_usec") * 1000;
    s.mem_usage = read_u64(&dir.join("memory.current"));
    s.mem_limit = read_u64(&dir.join("memory.max"));
    s.mem_stats = flat_keyed(&dir.join("memory.stat"));
    s.pids_current = read_u64(&dir.join("pids.current"));
    s.pids_limit = read_u64(&dir.join("pids.max"));
    let text = std::fs::read_to_string(dir.join("io.stat")).unwrap_or_default();
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((ma, mi)) = f.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(ma), Ok(mi)) = (ma.parse(), mi.parse()) else { continue };
        for kv in f {
            match kv.split_once('=') {
                Some(("rbytes", v)) => s.blkio.push((ma, mi, "read".to_string(), v.parse().unwrap_or(0))),
                Some(("wbytes", v)) => s.blkio.push((ma, mi, "write".to_string(), v.parse().unwrap_or(0))),
                Some(("rios", v)) => s.blkio_serviced.push((ma, mi, "read".to_string(), v.parse().unwrap_or(0))),
                Some(("wios", v)) => s.blkio_serviced.push((ma, mi, "write".to_string(), v.parse().unwrap_or(0))),
                _ => {}
            }
        }
    }
    clamp_limit(s);
}

/// `MAJ:MIN Op value` lines of a v1 blkio file (the `Total N` line at the end left out).
fn parse_blkio_v1(path: &Path) -> Vec<(u64, u64, String, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, v] = f[..] else { return None };
            let (ma, mi) = dev.split_once(':')?;
            Some((ma.parse().ok()?, mi.parse().ok()?, op.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// An unlimited cgroup reports a huge (v1) or no (v2) limit: Docker shows the host's memory.
fn clamp_limit(s: &mut StatsSample) {
    let host = host_memory();
    if s.mem_limit == 0 || (host > 0 && s.mem_limit > host) {
        s.mem_limit = host;
    }
}

fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// `/proc/<pid>/net/dev` of the container's init: its network namespace's interfaces, `lo` left out.
fn parse_net_dev(text: &str) -> BTreeMap<String, [u64; 8]> {
    let mut out = BTreeMap::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else { continue };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() < 16 {
            continue;
        }
        out.insert(name.to_string(), [v[0], v[1], v[2], v[3], v[8], v[9], v[10], v[11]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_rows_are_filtered_and_the_command_keeps_its_spaces() {
        let out = "UID          PID    PPID  C STIME TTY          TIME CMD\n\
                   root           1       0  0 10:00 ?        00:00:01 /sbin/init\n\
                   root         123       1  0 10:01 ?        00:00:00 sleep 100 --flag\n";
        let top = parse_ps(out, &[123]).unwrap_or_default();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 1);
        assert_eq!(top.processes[0][1], "123");
        assert_eq!(top.processes[0][7], "sleep 100 --flag");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1]).is_err());
    }

    #[test]
    fn v1_blkio_keeps_the_kernels_ops() {
        let dir = std::env::temp_dir().join(format!("wharf-blkio-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("io_service_bytes_recursive");
        let _ = std::fs::write(&file, "7:0 Read 2097152\n7:0 Write 0\n7:0 Total 2097152\nTotal 2097152\n");
        let got = parse_blkio_v1(&file);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (7, 0, "Read".to_string(), 2 << 20));
        assert_eq!(got[2].2, "Total");
    }

    #[test]
    fn cpu_lists_count() {
        assert_eq!(count_cpu_list("0-1"), Some(2));
        assert_eq!(count_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
    }

    #[test]
    fn proc_files_parse() {
        assert_eq!(parse_proc_stat("cpu  10 0 5 100 5 0 0 0 0 0\ncpu0 1 2 3\n"), 120 * 10_000_000);
        let dev = "Inter-|   Receive  |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n\
                       lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n\
                     eth0: 1500 12 0 1 0 0 0 0 900 8 0 0 0 0 0 0\n";
        let n = parse_net_dev(dev);
        assert_eq!(n.len(), 1);
        assert_eq!(n["eth0"], [1500, 12, 0, 1, 900, 8, 0, 0]);
    }
}
