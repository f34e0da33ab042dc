//! The resource controls of a container beyond memory, CPU and pids (reservation, swappiness,
//! kernel memory, real-time CPU, block I/O, storage options, device requests): what the
//! record keeps, dockerd's checks and warnings at create and update, and the OCI
//! `linux.resources` they become.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use wharf_runtime::cgroups::Support;
use wharf_runtime::spec as oci;

use crate::{EngineError, HostConfig};

/// dockerd's `linuxMinMemory`: the smallest memory, reservation or kernel memory limit.
pub(crate) const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// The period `--cpus` is expressed in (the kernel's default CFS period).
pub(crate) const CFS_PERIOD: u64 = 100_000;

/// `--blkio-weight-device PATH:WEIGHT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// `--device-{read,write}-{bps,iops} PATH:RATE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// One entry of `HostConfig.DeviceRequests` (`--gpus`); wharf refuses them all for now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequest {
    pub driver: String,
    pub count: i64,
    pub device_ids: Vec<String>,
    pub capabilities: Vec<Vec<String>>,
}

/// The part of the host config this module owns; zero values mean "not set", as dockerd's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceOptions {
    /// Bytes: v1 `memory.soft_limit_in_bytes`, v2 `memory.low`.
    pub memory_reservation: i64,
    /// 0..=100, v1 only; `None` leaves the kernel's (and `-1` from a client means the same).
    pub memory_swappiness: Option<i64>,
    /// Kept and shown, never applied: runc 1.1 (and the kernel since 5.16) ignore it.
    pub kernel_memory: i64,
    /// Microseconds, v1 `cpu.rt_period_us` / `cpu.rt_runtime_us`.
    pub cpu_rt_period: i64,
    pub cpu_rt_runtime: i64,
    /// 10..=1000; 0 unset.
    pub blkio_weight: u16,
    pub blkio_weight_device: Vec<WeightDevice>,
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// `--storage-opt`: refused unless wharf can honour it (see `check_storage_opt`).
    pub storage_opt: BTreeMap<String, String>,
    /// Hugepage limits by page size (`2MB`: bytes). The CRI's: Docker's API has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<oci::HugepageLimit>,
    /// cgroup v2 files and values (the CRI's `unified`: kubelet's memory QoS).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
    /// Windows-only fields dockerd refuses or drops on Linux, kept to answer as it does.
    #[serde(skip)]
    pub cpu_percent: i64,
    #[serde(skip)]
    pub io_maximum_bandwidth: u64,
    #[serde(skip)]
    pub io_maximum_iops: u64,
    /// Never stored non-empty: create refuses any.
    #[serde(skip)]
    pub device_requests: Vec<DeviceRequest>,
}

/// The host's cgroup capabilities, read once (the layout does not change under a daemon).
pub fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(Support::detect)
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

fn ncpu() -> i64 {
    std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1)
}

/// dockerd's checks of a create request's resources, in its order (`verifyPlatformContainer
/// Resources`), on `hc` as it will be stored: what the host cannot do is dropped with
/// dockerd's warning, what is wrong is refused with its message. Returns the warnings.
pub(crate) fn check_create(hc: &mut HostConfig, sup: &Support) -> Result<Vec<String>, EngineError> {
    let mut warnings = Vec::new();
    // dockerd checks real-time CPU as it decodes the request, before everything else.
    check_realtime(hc.resources.cpu_rt_period, hc.resources.cpu_rt_runtime, sup, false)?;
    let r = &mut hc.resources;
    if r.memory_swappiness == Some(-1) {
        r.memory_swappiness = None;
    }
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if hc.nano_cpus < 0 || hc.cpu_shares < 0 {
        return Err(invalid("resource limits must not be negative"));
    }
    // dockerd's default (`adaptContainerSettings`): as much swap as memory, kept in the record.
    if hc.memory > 0 && hc.memory_swap == 0 {
        hc.memory_swap = hc.memory * 2;
    }
    if hc.memory > 0 && hc.memory_swap != -1 && !sup.swap_limit {
        warnings.push(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                .to_string(),
        );
        hc.memory_swap = -1;
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(invalid("Minimum memoryswap limit should be larger than memory limit, see usage"));
    }
    if hc.memory == 0 && hc.memory_swap > 0 {
        return Err(invalid("You should always set the Memory limit when using Memoryswap limit, see usage"));
    }
    if r.memory_swappiness.is_some() && !sup.memory_swappiness {
        warnings.push(
            "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded."
                .to_string(),
        );
        r.memory_swappiness = None;
    }
    if let Some(s) = r.memory_swappiness.filter(|s| !(0..=100).contains(s)) {
        return Err(invalid(format!("Invalid value: {s}, valid memory swappiness range is 0-100")));
    }
    if r.memory_reservation > 0 && !sup.memory_reservation {
        warnings.push(
            "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded."
                .to_string(),
        );
        r.memory_reservation = 0;
    }
    if r.memory_reservation != 0 && r.memory_reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if hc.memory > 0 && r.memory_reservation > 0 && hc.memory < r.memory_reservation {
        return Err(invalid("Minimum memory limit can not be less than memory reservation limit, see usage"));
    }
    if r.kernel_memory > 0 {
        warnings.push(
            "Specifying a kernel memory limit is deprecated and will be removed in a future release.".to_string(),
        );
        if !sup.kernel_memory {
            warnings.push(
                "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded."
                    .to_string(),
            );
            r.kernel_memory = 0;
        }
    }
    if r.kernel_memory != 0 && r.kernel_memory < MIN_MEMORY {
        return Err(invalid("Minimum kernel memory limit allowed is 6MB"));
    }
    warnings.extend(crate::security::security_warnings(&hc.security, hc.memory));

    check_cpu(hc.nano_cpus, hc.cpu_quota, hc.cpu_period)?;
    let r = &mut hc.resources;
    if r.cpu_percent > 0 {
        warnings.push("linux does not support CPU percent. Percent discarded.".to_string());
        r.cpu_percent = 0;
    }
    crate::spec::check_cpuset(&hc.cpuset_cpus, "cpuset.cpus")?;
    crate::spec::check_cpuset(&hc.cpuset_mems, "cpuset.mems")?;

    if r.blkio_weight > 0 && !sup.blkio_weight {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".to_string(),
        );
        r.blkio_weight = 0;
    }
    if r.blkio_weight > 0 && !(10..=1000).contains(&r.blkio_weight) {
        return Err(invalid("Range of blkio weight is from 10 to 1000"));
    }
    if r.io_maximum_bandwidth != 0 || r.io_maximum_iops != 0 {
        return Err(invalid("Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"));
    }
    if !r.blkio_weight_device.is_empty() && !sup.blkio_weight_device {
        warnings.push(
            "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."
                .to_string(),
        );
        r.blkio_weight_device.clear();
    }
    for (list, supported, what) in [
        (
            &mut r.blkio_device_read_bps,
            sup.blkio_read_bps,
            "BPS Block I/O read limit or the cgroup is not mounted. Block I/O BPS read limit",
        ),
        (
            &mut r.blkio_device_write_bps,
            sup.blkio_write_bps,
            "BPS Block I/O write limit or the cgroup is not mounted. Block I/O BPS write limit",
        ),
        (
            &mut r.blkio_device_read_iops,
            sup.blkio_read_iops,
            "IOPS Block read limit or the cgroup is not mounted. Block I/O IOPS read limit",
        ),
        (
            &mut r.blkio_device_write_iops,
            sup.blkio_write_iops,
            "IOPS Block write limit or the cgroup is not mounted. Block I/O IOPS write limit",
        ),
    ] {
        if !list.is_empty() && !supported {
            warnings.push(format!("Your kernel does not support {what} discarded."));
            list.clear();
        }
    }
    if !r.device_requests.is_empty() {
        let caps: Vec<String> = r.device_requests.iter().map(|d| format!("{:?}", d.capabilities)).collect();
        return Err(invalid(format!(
            "could not select device driver {:?} with capabilities: {}: wharf has no GPU (device request) support yet",
            r.device_requests[0].driver,
            caps.join(" ")
        )));
    }
    Ok(warnings)
}

/// The CFS checks create and update share.
pub(crate) fn check_cpu(nano_cpus: i64, quota: i64, period: i64) -> Result<(), EngineError> {
    if nano_cpus > 0 && period > 0 {
        return Err(invalid("Conflicting options: Nano CPUs and CPU Period cannot both be set"));
    }
    if nano_cpus > 0 && quota > 0 {
        return Err(invalid("Conflicting options: Nano CPUs and CPU Quota cannot both be set"));
    }
    let n = ncpu();
    if nano_cpus < 0 || nano_cpus > n * 1_000_000_000 {
        return Err(invalid(format!("Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available")));
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(invalid("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"));
    }
    if quota > 0 && quota < 1000 {
        return Err(invalid("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    Ok(())
}

/// dockerd's `validateResources`: real-time group scheduling needs the kernel's
/// `CONFIG_RT_GROUP_SCHED` (v1 `cpu.rt_*`; cgroup v2 has no such files). dockerd 20.10 checks
/// the kernel at create only: an update stores the values (checked against each other) for
/// the next start, on a pure v2 host too (seen against it in the cgroup v2 guest).
pub(crate) fn check_realtime(period: i64, runtime: i64, sup: &Support, update: bool) -> Result<(), EngineError> {
    if !update && (period != 0 || runtime != 0) && !sup.cpu_realtime {
        return Err(invalid("Your kernel does not support CPU real-time scheduler"));
    }
    if period != 0 && runtime != 0 && runtime > period {
        return Err(invalid("cpu real-time runtime cannot be higher than cpu real-time period"));
    }
    Ok(())
}

/// `--storage-opt`: only `size` means anything for overlay, and only over xfs mounted with
/// project quotas (dockerd's overlay2 rule). wharf sets no project quotas yet, so where the
/// file system could do it the refusal says that instead.
pub(crate) fn check_storage_opt(
    opts: &BTreeMap<String, String>,
    data_root: &std::path::Path,
) -> Result<(), EngineError> {
    if opts.is_empty() {
        return Ok(());
    }
    if let Some(k) = opts.keys().find(|k| k.as_str() != "size") {
        return Err(invalid(format!("Unknown option {k}")));
    }
    if !project_quota_fs(data_root) {
        return Err(invalid(format!(
            "--storage-opt is supported only for overlay over xfs with 'pquota' mount option (the data root {} is not)",
            data_root.display()
        )));
    }
    Err(invalid("--storage-opt size: wharf does not set project quotas on container layers yet"))
}

/// Whether `dir` lies on xfs mounted with project quotas (`prjquota`/`pquota`).
fn project_quota_fs(dir: &std::path::Path) -> bool {
    const XFS_SUPER_MAGIC: i64 = 0x5846_5342;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct the kernel fills.
    let xfs = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == XFS_SUPER_MAGIC
    };
    if !xfs {
        return false;
    }
    // The longest mount point that holds `dir` decides its options.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 3 && f[2] == "xfs" && dir.starts_with(f[1])).then(|| (f[1].len(), f[3].to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .is_some_and(|(_, opts)| opts.split(',').any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce")))
}

/// A block device path as the kernel numbers it; dockerd stats it when the spec is made.
fn device_numbers(path: &str) -> Result<(i64, i64), EngineError> {
    let md = std::fs::metadata(path).map_err(|e| invalid(format!("stat {path}: {e}")))?;
    if !md.file_type().is_block_device() {
        return Err(invalid(format!("{path} is not a block device")));
    }
    let rdev = md.rdev();
    Ok((libc::major(rdev) as i64, libc::minor(rdev) as i64))
}

/// The OCI `linux.resources` of a host config (devices aside), for the spec at start.
pub(crate) fn oci_resources(hc: &HostConfig) -> Result<oci::Resources, EngineError> {
    let r = &hc.resources;
    let mut out = oci::Resources::default();
    let mut memory = oci::Memory::default();
    if hc.memory > 0 {
        memory.limit = Some(hc.memory);
        memory.swap = (hc.memory_swap != 0).then_some(hc.memory_swap);
    }
    if r.memory_reservation > 0 {
        memory.reservation = Some(r.memory_reservation);
    }
    memory.swappiness = r.memory_swappiness.and_then(|s| u64::try_from(s).ok());
    if memory != oci::Memory::default() {
        out.memory = Some(memory);
    }
    let mut cpu = oci::Cpu::default();
    if hc.cpu_shares > 0 {
        cpu.shares = Some(hc.cpu_shares as u64);
    }
    if hc.nano_cpus > 0 {
        cpu.period = Some(CFS_PERIOD);
        cpu.quota = Some(hc.nano_cpus * CFS_PERIOD as i64 / 1_000_000_000);
    } else if hc.cpu_quota > 0 {
        cpu.quota = Some(hc.cpu_quota);
        cpu.period = Some(if hc.cpu_period > 0 { hc.cpu_period as u64 } else { CFS_PERIOD });
    } else if hc.cpu_period > 0 {
        cpu.period = Some(hc.cpu_period as u64);
    }
    if !hc.cpuset_cpus.is_empty() {
        cpu.cpus = Some(hc.cpuset_cpus.clone());
    }
    if !hc.cpuset_mems.is_empty() {
        cpu.mems = Some(hc.cpuset_mems.clone());
    }
    if r.cpu_rt_period > 0 {
        cpu.realtime_period = Some(r.cpu_rt_period as u64);
    }
    if r.cpu_rt_runtime != 0 {
        cpu.realtime_runtime = Some(r.cpu_rt_runtime);
    }
    if cpu != oci::Cpu::default() {
        out.cpu = Some(cpu);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p > 0) {
        out.pids = Some(oci::Pids { limit: p });
    }
    out.block_io = block_io(r)?;
    out.hugepage_limits = r.hugepage_limits.clone();
    out.unified = r.unified.clone();
    Ok(out)
}

fn block_io(r: &ResourceOptions) -> Result<Option<oci::BlockIo>, EngineError> {
    let throttles = |list: &[ThrottleDevice]| -> Result<Vec<oci::ThrottleDevice>, EngineError> {
        list.iter()
            .map(|d| device_numbers(&d.path).map(|(major, minor)| oci::ThrottleDevice { major, minor, rate: d.rate }))
            .collect()
    };
    let io = oci::BlockIo {
        weight: (r.blkio_weight > 0).then_some(r.blkio_weight),
        weight_device: r
            .blkio_weight_device
            .iter()
            .map(|d| {
                device_numbers(&d.path).map(|(major, minor)| oci::WeightDevice { major, minor, weight: Some(d.weight) })
            })
            .collect::<Result<_, _>>()?,
        throttle_read_bps_device: throttles(&r.blkio_device_read_bps)?,
        throttle_write_bps_device: throttles(&r.blkio_device_write_bps)?,
        throttle_read_iops_device: throttles(&r.blkio_device_read_iops)?,
        throttle_write_iops_device: throttles(&r.blkio_device_write_iops)?,
    };
    Ok((io != oci::BlockIo::default()).then_some(io))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Support {
        Support {
            layout: Some(wharf_runtime::cgroups::Layout::V1),
            swap_limit: true,
            memory_reservation: true,
            memory_swappiness: true,
            kernel_memory: true,
            kernel_memory_tcp: true,
            oom_kill_disable: true,
            cpu_realtime: true,
            blkio_weight: true,
            blkio_weight_device: true,
            blkio_read_bps: true,
            blkio_write_bps: true,
            blkio_read_iops: true,
            blkio_write_iops: true,
        }
    }

    fn refused(hc: HostConfig, sup: &Support) -> String {
        let mut hc = hc;
        match check_create(&mut hc, sup) {
            Err(e) => e.to_string(),
            Ok(w) => panic!("accepted with warnings {w:?}"),
        }
    }

    #[test]
    fn dockerd_refusals_table() {
        let mb = 1024 * 1024;
        let res = |r: ResourceOptions| HostConfig { resources: r, ..Default::default() };
        let table: Vec<(HostConfig, &str)> = vec![
            (HostConfig { memory: 1000, ..Default::default() }, "Minimum memory limit allowed is 6MB"),
            (HostConfig { memory: 64 * mb, memory_swap: 1000, ..Default::default() }, "Minimum memoryswap limit"),
            (HostConfig { memory_swap: 64 * mb, ..Default::default() }, "You should always set the Memory limit"),
            (
                res(ResourceOptions { memory_swappiness: Some(101), ..Default::default() }),
                "Invalid value: 101, valid memory swappiness range is 0-100",
            ),
            (
                res(ResourceOptions { memory_reservation: 1000, ..Default::default() }),
                "Minimum memory reservation allowed is 6MB",
            ),
            (
                HostConfig {
                    memory: 64 * mb,
                    resources: ResourceOptions { memory_reservation: 128 * mb, ..Default::default() },
                    ..Default::default()
                },
                "Minimum memory limit can not be less than memory reservation limit",
            ),
            (
                res(ResourceOptions { kernel_memory: 1000, ..Default::default() }),
                "Minimum kernel memory limit allowed is 6MB",
            ),
            (HostConfig { cpu_period: 10, ..Default::default() }, "CPU cfs period can not be less than 1ms"),
            (HostConfig { cpu_quota: 10, ..Default::default() }, "CPU cfs quota can not be less than 1ms"),
            (HostConfig { nano_cpus: 500_000_000, cpu_quota: 50_000, ..Default::default() }, "Nano CPUs and CPU Quota"),
            (
                HostConfig { nano_cpus: 500_000_000, cpu_period: 50_000, ..Default::default() },
                "Nano CPUs and CPU Period",
            ),
            (
                res(ResourceOptions { blkio_weight: 5, ..Default::default() }),
                "Range of blkio weight is from 10 to 1000",
            ),
            (
                res(ResourceOptions { blkio_weight: 2000, ..Default::default() }),
                "Range of blkio weight is from 10 to 1000",
            ),
            (
                res(ResourceOptions { cpu_rt_period: 1000, cpu_rt_runtime: 2000, ..Default::default() }),
                "cpu real-time runtime cannot be higher",
            ),
            (res(ResourceOptions { io_maximum_bandwidth: 5, ..Default::default() }), "Invalid QoS settings"),
            (
                res(ResourceOptions {
                    device_requests: vec![DeviceRequest {
                        count: -1,
                        capabilities: vec![vec!["gpu".into()]],
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                "no GPU (device request) support yet",
            ),
        ];
        for (hc, want) in table {
            let got = refused(hc.clone(), &all());
            assert!(got.contains(want), "{hc:?}: {got:?} lacks {want:?}");
        }
    }

    #[test]
    fn what_the_host_lacks_is_discarded_with_dockerds_warning() {
        let mut hc = HostConfig {
            resources: ResourceOptions {
                blkio_weight: 5,
                blkio_weight_device: vec![WeightDevice { path: "/dev/x".into(), weight: 10 }],
                memory_swappiness: Some(10),
                kernel_memory: 8 << 20,
                ..Default::default()
            },
            ..Default::default()
        };
        let sup = Support { blkio_read_bps: true, ..Support::default() };
        let w = check_create(&mut hc, &sup).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hc.resources.blkio_weight, 0);
        assert!(hc.resources.blkio_weight_device.is_empty());
        assert_eq!(hc.resources.memory_swappiness, None);
        assert_eq!(hc.resources.kernel_memory, 0);
        assert_eq!(
            w,
            [
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
                "Specifying a kernel memory limit is deprecated and will be removed in a future release.",
                "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded.",
                "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
                "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
            ]
        );
        let mut rt = HostConfig {
            resources: ResourceOptions { cpu_rt_runtime: 950_000, ..Default::default() },
            ..Default::default()
        };
        assert!(check_create(&mut rt, &sup)
            .unwrap_err()
            .to_string()
            .contains("Your kernel does not support CPU real-time scheduler"));
        let mut minus_one = HostConfig {
            resources: ResourceOptions { memory_swappiness: Some(-1), ..Default::default() },
            ..Default::default()
        };
        assert_eq!(check_create(&mut minus_one, &sup).map_err(|e| e.to_string()), Ok(Vec::new()));
    }

    #[test]
    fn oci_resources_carry_each_control() {
        let hc = HostConfig {
            memory: 64 << 20,
            cpu_period: 50_000,
            cpu_quota: 25_000,
            resources: ResourceOptions {
                memory_reservation: 32 << 20,
                memory_swappiness: Some(10),
                cpu_rt_period: 1_000_000,
                cpu_rt_runtime: 1000,
                blkio_weight: 300,
                ..Default::default()
            },
            ..Default::default()
        };
        let r = oci_resources(&hc).unwrap_or_else(|e| panic!("{e}"));
        let mem = r.memory.unwrap_or_default();
        assert_eq!((mem.limit, mem.reservation, mem.swappiness), (Some(64 << 20), Some(32 << 20), Some(10)));
        let cpu = r.cpu.unwrap_or_default();
        assert_eq!((cpu.quota, cpu.period), (Some(25_000), Some(50_000)));
        assert_eq!((cpu.realtime_period, cpu.realtime_runtime), (Some(1_000_000), Some(1000)));
        assert_eq!(r.block_io.and_then(|b| b.weight), Some(300));
        let only_reservation = HostConfig {
            resources: ResourceOptions { memory_reservation: 32 << 20, ..Default::default() },
            ..Default::default()
        };
        let mem = oci_resources(&only_reservation).unwrap_or_default().memory.unwrap_or_default();
        assert_eq!((mem.limit, mem.reservation), (None, Some(32 << 20)));
        let missing = HostConfig {
            resources: ResourceOptions {
                blkio_device_read_bps: vec![ThrottleDevice { path: "/dev/wharf-no-such-disk".into(), rate: 1 }],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(oci_resources(&missing).unwrap_err().to_string().contains("stat /dev/wharf-no-such-disk"));
    }
}
