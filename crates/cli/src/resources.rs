//! The resource-control flags of `run`, `create` and `update` (docker's names, short forms
//! and value syntax) and the HostConfig fields they become.

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Map, Value};

use crate::human;

/// The flags `update` shares with `run` and `create`.
#[derive(Debug, Clone, Default, Args)]
pub struct ResourceFlags {
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short = 'm', long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Kernel memory limit (deprecated)
    #[arg(long = "kernel-memory", value_name = "BYTES")]
    pub kernel_memory: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "INT")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "INT")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period", value_name = "INT")]
    pub cpu_rt_period: Option<i64>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime", value_name = "INT")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "STRING")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "STRING")]
    pub cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight", value_name = "UINT16")]
    pub blkio_weight: Option<u16>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "INT", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// The flags only `run` and `create` have.
#[derive(Debug, Clone, Default, Args)]
pub struct CreateResourceFlags {
    /// Tune container memory swappiness (0 to 100) (default -1)
    #[arg(long = "memory-swappiness", value_name = "INT", allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// Block IO weight (relative device weight) (PATH:WEIGHT)
    #[arg(long = "blkio-weight-device", value_name = "LIST")]
    pub blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device (PATH:RATE, e.g. /dev/sda:1mb)
    #[arg(long = "device-read-bps", value_name = "LIST")]
    pub device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long = "device-write-bps", value_name = "LIST")]
    pub device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long = "device-read-iops", value_name = "LIST")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long = "device-write-iops", value_name = "LIST")]
    pub device_write_iops: Vec<String>,
    /// Storage driver options for the container (e.g. size=10G)
    #[arg(long = "storage-opt", value_name = "LIST")]
    pub storage_opt: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long = "gpus", value_name = "GPU-REQUEST")]
    pub gpus: Option<String>,
    /// CPU count (Windows only)
    #[arg(long = "cpu-count", value_name = "INT")]
    pub cpu_count: Option<i64>,
    /// CPU percent (Windows only)
    #[arg(long = "cpu-percent", value_name = "INT")]
    pub cpu_percent: Option<i64>,
    /// Maximum IO bandwidth limit for the system drive (Windows only)
    #[arg(long = "io-maxbandwidth", value_name = "BYTES")]
    pub io_maxbandwidth: Option<String>,
    /// Maximum IOps limit for the system drive (Windows only)
    #[arg(long = "io-maxiops", value_name = "UINT")]
    pub io_maxiops: Option<u64>,
}

fn bytes(flag: &str, v: &str) -> Result<i64> {
    human::parse_memory(v).map_err(|e| anyhow!("invalid argument {v:?} for \"{flag}\" flag: {e}"))
}

impl ResourceFlags {
    pub fn memory(&self) -> Result<i64> {
        self.memory.as_deref().map_or(Ok(0), |m| bytes("-m, --memory", m))
    }

    pub fn nano_cpus(&self) -> Result<i64> {
        match &self.cpus {
            Some(c) => human::parse_cpus(c).map_err(|e| anyhow!("invalid argument {c:?} for \"--cpus\" flag: {e}")),
            None => Ok(0),
        }
    }

    /// The HostConfig (or update) fields of the flags given, `Memory`, `NanoCpus`,
    /// `CpuShares` and `PidsLimit` aside (typed fields of the client's HostConfig).
    pub fn fields(&self) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        if let Some(s) = &self.memory_swap {
            let v = if s == "-1" { -1 } else { bytes("--memory-swap", s)? };
            m.insert("MemorySwap".into(), json!(v));
        }
        if let Some(r) = &self.memory_reservation {
            m.insert("MemoryReservation".into(), json!(bytes("--memory-reservation", r)?));
        }
        if let Some(k) = &self.kernel_memory {
            m.insert("KernelMemory".into(), json!(bytes("--kernel-memory", k)?));
        }
        for (key, v) in [
            ("CpuPeriod", self.cpu_period),
            ("CpuQuota", self.cpu_quota),
            ("CpuRealtimePeriod", self.cpu_rt_period),
            ("CpuRealtimeRuntime", self.cpu_rt_runtime),
        ] {
            if let Some(v) = v {
                m.insert(key.into(), json!(v));
            }
        }
        if let Some(c) = &self.cpuset_cpus {
            m.insert("CpusetCpus".into(), json!(c));
        }
        if let Some(c) = &self.cpuset_mems {
            m.insert("CpusetMems".into(), json!(c));
        }
        if let Some(w) = self.blkio_weight {
            m.insert("BlkioWeight".into(), json!(w));
        }
        Ok(m)
    }

    /// The body of `POST /containers/{id}/update`: only what was given.
    pub fn update_body(&self) -> Result<Map<String, Value>> {
        let mut m = self.fields()?;
        if self.memory.is_some() {
            m.insert("Memory".into(), json!(self.memory()?));
        }
        if self.cpus.is_some() {
            m.insert("NanoCpus".into(), json!(self.nano_cpus()?));
        }
        if let Some(s) = self.cpu_shares {
            m.insert("CpuShares".into(), json!(s));
        }
        if let Some(p) = self.pids_limit {
            m.insert("PidsLimit".into(), json!(p));
        }
        Ok(m)
    }
}

impl CreateResourceFlags {
    pub fn fields(&self) -> Result<Map<String, Value>> {
        // The docker CLI refuses the Windows-only flags itself, before any request, against a
        // daemon on Linux (which wharfd always is).
        for (flag, given) in [
            ("--cpu-count", self.cpu_count.is_some()),
            ("--cpu-percent", self.cpu_percent.is_some()),
            ("--io-maxbandwidth", self.io_maxbandwidth.is_some()),
            ("--io-maxiops", self.io_maxiops.is_some()),
        ] {
            if given {
                bail!("\"{flag}\" is only supported on a Docker daemon running on windows, but the Docker daemon is running on linux");
            }
        }
        let mut m = Map::new();
        if let Some(s) = self.memory_swappiness {
            // The docker CLI sends nothing for its default of -1.
            if s != -1 {
                m.insert("MemorySwappiness".into(), json!(s));
            }
        }
        if !self.blkio_weight_device.is_empty() {
            let list: Vec<Value> = self
                .blkio_weight_device
                .iter()
                .map(|v| parse_weight_device(v).map(|(path, weight)| json!({"Path": path, "Weight": weight})))
                .collect::<Result<_>>()?;
            m.insert("BlkioWeightDevice".into(), json!(list));
        }
        for (key, list, iops) in [
            ("BlkioDeviceReadBps", &self.device_read_bps, false),
            ("BlkioDeviceWriteBps", &self.device_write_bps, false),
            ("BlkioDeviceReadIOps", &self.device_read_iops, true),
            ("BlkioDeviceWriteIOps", &self.device_write_iops, true),
        ] {
            if !list.is_empty() {
                let v: Vec<Value> = list
                    .iter()
                    .map(|v| parse_throttle(v, iops).map(|(path, rate)| json!({"Path": path, "Rate": rate})))
                    .collect::<Result<_>>()?;
                m.insert(key.into(), json!(v));
            }
        }
        if !self.storage_opt.is_empty() {
            let mut opts = Map::new();
            for o in &self.storage_opt {
                let Some((k, v)) = o.split_once('=') else {
                    bail!("invalid storage option {o:?}: use key=value");
                };
                opts.insert(k.to_string(), json!(v));
            }
            m.insert("StorageOpt".into(), Value::Object(opts));
        }
        if let Some(g) = &self.gpus {
            m.insert("DeviceRequests".into(), json!([parse_gpus(g)?]));
        }
        Ok(m)
    }
}

/// `PATH:WEIGHT`, docker's `ValidateWeightDevice`.
fn parse_weight_device(v: &str) -> Result<(String, u16)> {
    let Some((path, w)) = v.split_once(':') else { bail!("bad format: {v}") };
    if !path.starts_with("/dev/") {
        bail!("bad format for device path: {v}");
    }
    let weight: u16 = w.parse().map_err(|_| anyhow!("invalid weight for device: {v}"))?;
    if weight > 0 && !(10..=1000).contains(&weight) {
        bail!("invalid weight for device: {v}");
    }
    Ok((path.to_string(), weight))
}

/// `PATH:RATE`: bytes with a unit (`1mb`) for bps, a plain number for iops.
fn parse_throttle(v: &str, iops: bool) -> Result<(String, u64)> {
    let Some((path, r)) = v.split_once(':') else { bail!("bad format: {v}") };
    if !path.starts_with("/dev/") {
        bail!("bad format for device path: {v}");
    }
    let rate = if iops {
        r.parse::<u64>().map_err(|_| {
            anyhow!("invalid rate for device: {v}. The correct format is <device-path>:<number>. Number must be a positive integer")
        })?
    } else {
        human::parse_memory(r).ok().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
            anyhow!(
                "invalid rate for device: {v}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"
            )
        })?
    };
    Ok((path.to_string(), rate))
}

/// `--gpus all`, `--gpus 2`, `--gpus count=2,capabilities=compute`, `--gpus device=0,1`, as
/// docker's `GpuOpts`.
fn parse_gpus(v: &str) -> Result<Value> {
    let mut count: i64 = 0;
    let mut driver = String::new();
    let mut ids: Vec<String> = Vec::new();
    let mut caps: Vec<String> = vec!["gpu".to_string()];
    let fields: Vec<&str> = v.split(',').collect();
    let mut i = 0;
    while i < fields.len() {
        let f = fields[i];
        match f.split_once('=') {
            None if f == "all" => count = -1,
            None => count = f.parse().map_err(|_| anyhow!("invalid count ({f}) for GPU device request"))?,
            Some(("count", "all")) => count = -1,
            Some(("count", c)) => {
                count = c.parse().map_err(|_| anyhow!("invalid count ({c}) for GPU device request"))?
            }
            Some(("driver", d)) => driver = d.to_string(),
            Some(("capabilities", c)) => caps.push(c.to_string()),
            Some(("device", d)) => {
                ids.push(d.to_string());
                // `device=0,1`: the ids run on until the next key.
                while i + 1 < fields.len() && !fields[i + 1].contains('=') {
                    i += 1;
                    ids.push(fields[i].to_string());
                }
            }
            Some((k, _)) => bail!("unexpected key '{k}' in '{v}'"),
        }
        i += 1;
    }
    if count != 0 && !ids.is_empty() {
        bail!("cannot set both Count and DeviceIDs on device request");
    }
    Ok(json!({"Driver": driver, "Count": count, "DeviceIDs": ids, "Capabilities": [caps], "Options": {}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_values_parse_as_docker_parses_them() {
        assert_eq!(parse_throttle("/dev/sda:1mb", false).ok(), Some(("/dev/sda".to_string(), 1 << 20)));
        assert_eq!(parse_throttle("/dev/sda:100", true).ok(), Some(("/dev/sda".to_string(), 100)));
        assert!(parse_throttle("/dev/sda:1mb", true).is_err());
        assert!(parse_throttle("sda:1mb", false).unwrap_err().to_string().contains("bad format for device path"));
        assert!(parse_throttle("/dev/sda", false).unwrap_err().to_string().contains("bad format"));
        assert_eq!(parse_weight_device("/dev/sda:300").ok(), Some(("/dev/sda".to_string(), 300)));
        assert!(parse_weight_device("/dev/sda:5").unwrap_err().to_string().contains("invalid weight for device"));
        assert_eq!(parse_gpus("all").ok().map(|g| g["Count"].clone()), Some(json!(-1)));
        assert_eq!(parse_gpus("device=0,1").ok().map(|g| g["DeviceIDs"].clone()), Some(json!(["0", "1"])));
        assert!(parse_gpus("count=1,device=0").is_err());
    }

    #[test]
    fn windows_only_flags_are_refused_before_any_request() {
        let f = CreateResourceFlags { io_maxiops: Some(5), ..Default::default() };
        let e = f.fields().unwrap_err().to_string();
        assert!(e.contains("\"--io-maxiops\" is only supported on a Docker daemon running on windows"), "{e}");
    }

    #[test]
    fn update_body_has_only_what_was_given() {
        let f = ResourceFlags {
            memory: Some("64m".into()),
            cpuset_cpus: Some("0".into()),
            memory_swap: Some("-1".into()),
            ..Default::default()
        };
        let b = f.update_body().unwrap_or_default();
        assert_eq!(Value::Object(b), json!({"Memory": 64 << 20, "CpusetCpus": "0", "MemorySwap": -1}));
    }
}
