//! ContainerStats, ListContainerStats, PodSandboxStats and ListPodSandboxStats from the
//! engine's cgroup reads (`Engine::stats_sample`), and UpdateContainerResources. CPU use in
//! nano-cores is the rate since the previous sample of the same container, as containerd
//! computes it (none on the first).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use wharf_engine::{ContainerRecord, StatsSample, UpdateRequest};

use crate::grpc::Status;
use crate::meta;
use crate::proto::{self, UInt64Value};
use crate::Cri;

/// The previous CPU sample of each container: (time in ns, cumulative usage in ns).
#[derive(Default)]
pub struct CpuSamples(Mutex<HashMap<String, (i64, u64)>>);

fn u(v: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: v })
}

pub(crate) fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// The bytes the kernel would not give back under pressure: usage less the inactive file
/// cache, as the kubelet's working set.
pub(crate) fn working_set(s: &StatsSample) -> u64 {
    let inactive = s.mem_stats.get("total_inactive_file").or(s.mem_stats.get("inactive_file")).copied().unwrap_or(0);
    s.mem_usage.saturating_sub(inactive)
}

fn stat(s: &StatsSample, keys: &[&str]) -> Option<UInt64Value> {
    keys.iter().find_map(|k| s.mem_stats.get(*k)).copied().and_then(u)
}

/// What a directory tree takes on disk, as `du` counts it (allocated blocks, and each inode
/// once however many links it has, the directory itself included): (bytes, inodes). Symlinks
/// are not followed. `None` when `dir` cannot be read at all.
pub(crate) fn layer_usage(dir: &Path) -> Option<(u64, u64)> {
    let top = std::fs::symlink_metadata(dir).ok()?;
    let mut seen = HashSet::new();
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut count = |md: &std::fs::Metadata| {
        if seen.insert((md.dev(), md.ino())) {
            bytes += md.blocks() * 512;
            inodes += 1;
        }
    };
    count(&top);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        // Entries can go while the container runs: what is gone is not counted.
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = std::fs::symlink_metadata(e.path()) else { continue };
            count(&md);
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Some((bytes, inodes))
}

impl Cri {
    fn cpu_usage(&self, id: &str, s: &StatsSample, ts: i64) -> proto::CpuUsage {
        let mut nano_cores = None;
        if let Ok(mut m) = self.cpu_samples.0.lock() {
            if let Some((t0, u0)) = m.get(id).copied() {
                let dt = ts.saturating_sub(t0);
                if dt > 0 && s.cpu_total >= u0 {
                    nano_cores = u(((s.cpu_total - u0) as u128 * 1_000_000_000 / dt as u128) as u64);
                }
            }
            m.insert(id.to_string(), (ts, s.cpu_total));
        }
        proto::CpuUsage { timestamp: ts, usage_core_nano_seconds: u(s.cpu_total), usage_nano_cores: nano_cores }
    }

    fn memory_usage(&self, s: &StatsSample, ts: i64) -> proto::MemoryUsage {
        proto::MemoryUsage {
            timestamp: ts,
            working_set_bytes: u(working_set(s)),
            available_bytes: if s.mem_limit > 0 && s.mem_limit < u64::MAX / 2 {
                u(s.mem_limit.saturating_sub(working_set(s)))
            } else {
                None
            },
            usage_bytes: u(s.mem_usage),
            rss_bytes: stat(s, &["total_rss", "anon"]),
            page_faults: stat(s, &["total_pgfault", "pgfault"]),
            major_page_faults: stat(s, &["total_pgmajfault", "pgmajfault"]),
        }
    }

    async fn one_container_stats(
        &self,
        rec: &ContainerRecord,
        m: &meta::ContainerMeta,
    ) -> Result<proto::ContainerStats, Status> {
        let s = self.engine.stats_sample(&rec.id).await?;
        let ts = now_nanos();
        Ok(proto::ContainerStats {
            attributes: Some(proto::ContainerAttributes {
                id: rec.id.clone(),
                metadata: Some(m.metadata.clone()),
                labels: m.labels.clone(),
                annotations: m.annotations.clone(),
            }),
            cpu: Some(self.cpu_usage(&rec.id, &s, ts)),
            memory: Some(self.memory_usage(&s, ts)),
            writable_layer: self.writable_layer(&rec.id, ts).await,
        })
    }

    /// The bytes and inodes of the container's overlay upper dir, on the file system that
    /// ImageFsInfo names (kubelet matches the two by mountpoint); none if it cannot be read.
    pub(crate) async fn writable_layer(&self, id: &str, ts: i64) -> Option<proto::FilesystemUsage> {
        let (upper, root) = self.engine.container_upper_dir(id).ok()?;
        let (bytes, inodes) = tokio::task::spawn_blocking(move || layer_usage(&upper)).await.ok()??;
        Some(proto::FilesystemUsage {
            timestamp: ts,
            fs_id: Some(proto::FilesystemIdentifier { mountpoint: root.display().to_string() }),
            used_bytes: u(bytes),
            inodes_used: u(inodes),
        })
    }

    pub(crate) async fn container_stats(
        &self,
        r: proto::ContainerIdRequest,
    ) -> Result<proto::ContainerStatsResponse, Status> {
        let (rec, m) = self.find_cri_container(&r.container_id)?;
        Ok(proto::ContainerStatsResponse { stats: Some(self.one_container_stats(&rec, &m).await?) })
    }

    pub(crate) async fn list_container_stats(
        &self,
        r: proto::ListContainerStatsRequest,
    ) -> Result<proto::ListContainerStatsResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let mut stats = Vec::new();
        for rec in self.list_typed(meta::TYPE_CONTAINER)? {
            let Some(m) = meta::container_meta(&rec) else { continue };
            // Stats are of running containers, as containerd lists them.
            if !rec.state.running
                || (!f.id.is_empty() && !rec.id.starts_with(&f.id))
                || (!f.pod_sandbox_id.is_empty() && !m.sandbox_id.starts_with(&f.pod_sandbox_id))
                || !meta::selects(&f.label_selector, &m.labels)
            {
                continue;
            }
            match self.one_container_stats(&rec, &m).await {
                Ok(s) => stats.push(s),
                // Removed meanwhile.
                Err(s) if s.code == crate::grpc::Code::NotFound => {}
                Err(s) => return Err(s),
            }
        }
        Ok(proto::ListContainerStatsResponse { stats })
    }

    async fn one_sandbox_stats(
        &self,
        rec: &ContainerRecord,
        m: &meta::SandboxMeta,
    ) -> Result<proto::PodSandboxStats, Status> {
        let s = self.engine.stats_sample(&rec.id).await?;
        let ts = now_nanos();
        let mut containers = Vec::new();
        let (mut cpu, mut mem, mut ws, mut procs) = (s.cpu_total, s.mem_usage, working_set(&s), s.pids_current);
        for c in self.pod_containers(&rec.id)? {
            let Some(cm) = meta::container_meta(&c) else { continue };
            if !c.state.running {
                continue;
            }
            let Ok(cs) = self.engine.stats_sample(&c.id).await else { continue };
            cpu += cs.cpu_total;
            mem += cs.mem_usage;
            ws += working_set(&cs);
            procs += cs.pids_current;
            containers.push(self.one_container_stats(&c, &cm).await?);
        }
        let pod = StatsSample { cpu_total: cpu, mem_usage: mem, ..Default::default() };
        let mut memory = self.memory_usage(&pod, ts);
        memory.working_set_bytes = u(ws);
        let iface = |name: &str, v: &[u64; 8]| proto::NetworkInterfaceUsage {
            name: name.to_string(),
            rx_bytes: u(v[0]),
            rx_errors: u(v[2]),
            tx_bytes: u(v[4]),
            tx_errors: u(v[6]),
        };
        let interfaces: Vec<proto::NetworkInterfaceUsage> =
            s.networks.iter().filter(|(n, _)| n.as_str() != "lo").map(|(n, v)| iface(n, v)).collect();
        let network = if m.host_network() {
            None
        } else {
            Some(proto::NetworkUsage {
                timestamp: ts,
                default_interface: interfaces.iter().find(|i| i.name == crate::cni::IFNAME).cloned(),
                interfaces,
            })
        };
        Ok(proto::PodSandboxStats {
            attributes: Some(proto::PodSandboxAttributes {
                id: rec.id.clone(),
                metadata: Some(m.metadata()),
                labels: m.config.labels.clone(),
                annotations: m.config.annotations.clone(),
            }),
            linux: Some(proto::LinuxPodSandboxStats {
                cpu: Some(self.cpu_usage(&format!("pod/{}", rec.id), &pod, ts)),
                memory: Some(memory),
                network,
                process: Some(proto::ProcessUsage { timestamp: ts, process_count: u(procs) }),
                containers,
            }),
        })
    }

    pub(crate) async fn pod_sandbox_stats(
        &self,
        r: proto::PodSandboxIdRequest,
    ) -> Result<proto::PodSandboxStatsResponse, Status> {
        let (rec, m) = self.find_sandbox(&r.pod_sandbox_id)?;
        Ok(proto::PodSandboxStatsResponse { stats: Some(self.one_sandbox_stats(&rec, &m).await?) })
    }

    pub(crate) async fn list_pod_sandbox_stats(
        &self,
        r: proto::ListPodSandboxStatsRequest,
    ) -> Result<proto::ListPodSandboxStatsResponse, Status> {
        let f = r.filter.unwrap_or_default();
        let mut stats = Vec::new();
        for (rec, m) in self.sandboxes()? {
            if !rec.state.running
                || (!f.id.is_empty() && !rec.id.starts_with(&f.id))
                || !meta::selects(&f.label_selector, &m.config.labels)
            {
                continue;
            }
            stats.push(self.one_sandbox_stats(&rec, &m).await?);
        }
        Ok(proto::ListPodSandboxStatsResponse { stats })
    }

    /// CPU, cpuset and memory limits of a running or created container, through the engine's
    /// update. Hugepage and unified settings are not changed live: kubelet sends the ones the
    /// container was created with, and a request for others is refused, naming them.
    pub(crate) async fn update_container_resources(
        &self,
        r: proto::UpdateContainerResourcesRequest,
    ) -> Result<proto::Empty, Status> {
        let (rec, _) = self.find_cri_container(&r.container_id)?;
        let Some(l) = r.linux else { return Ok(proto::Empty {}) };
        let unsupported = |what: &str| {
            Status::new(
                crate::grpc::Code::Unimplemented,
                format!("updating {what} of a running container is not supported by wharf yet"),
            )
        };
        if !l.hugepage_limits.is_empty() && crate::container::hugepages(&l) != rec.host_config.resources.hugepage_limits
        {
            return Err(unsupported("hugepage limits"));
        }
        if !l.unified.is_empty() && l.unified != rec.host_config.resources.unified {
            return Err(unsupported("unified cgroup settings"));
        }
        let some = |v: i64| if v > 0 { Some(v) } else { None };
        let nonempty = |s: &str| if s.is_empty() { None } else { Some(s.to_string()) };
        let req = UpdateRequest {
            memory: some(l.memory_limit_in_bytes),
            memory_swap: some(l.memory_swap_limit_in_bytes),
            cpu_shares: some(l.cpu_shares),
            cpu_quota: some(l.cpu_quota),
            cpu_period: some(l.cpu_period),
            cpuset_cpus: nonempty(&l.cpuset_cpus),
            cpuset_mems: nonempty(&l.cpuset_mems),
            ..Default::default()
        };
        self.engine.update_container(&rec.id, req).await?;
        Ok(proto::Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_usage_counts_blocks_and_each_inode_once() {
        let dir = std::env::temp_dir().join(format!("wharf-cri-du-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/data"), vec![7u8; 1 << 20]).unwrap();
        std::fs::hard_link(dir.join("sub/data"), dir.join("again")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("link")).unwrap();
        let (bytes, inodes) = layer_usage(&dir).unwrap();
        // dir, sub, data (twice linked, once counted), link.
        assert_eq!(inodes, 4);
        assert!((1 << 20..2 << 20).contains(&bytes), "{bytes}");
        assert!(layer_usage(&dir.join("nope")).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
