//! Lifecycle extras: rename, pause/unpause (the cgroup freezer), update of a container's
//! resources (live cgroup and record), and `container prune`.

use std::collections::BTreeMap;

use wharf_runtime::cgroups::Cgroup;
use wharf_runtime::spec as oci;

use crate::containers::{ContainerRecord, Status};
use crate::{blocking, ids, Engine, EngineError, RestartPolicy};

const CFS_PERIOD: i64 = 100_000;

/// `POST /containers/{id}/update`: `None` (or 0 for the sizes, as Docker) leaves a value as it is.
#[derive(Debug, Clone, Default)]
pub struct UpdateRequest {
    pub memory: Option<i64>,
    /// Memory plus swap; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    /// 0 or -1: unlimited.
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
    /// Empty leaves it as it is.
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory_reservation: Option<i64>,
    /// Kept in the record, as dockerd; never applied (see `ResourceOptions`).
    pub kernel_memory: Option<i64>,
    pub blkio_weight: Option<u16>,
    /// Kept in the record for the next start, not applied live: dockerd's update does the
    /// same (its containerd update carries no real-time values).
    pub cpu_rt_period: Option<i64>,
    pub cpu_rt_runtime: Option<i64>,
}

/// What `container prune` removed.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}

impl Engine {
    /// Renames a container; the new name must be free, as at create.
    pub async fn rename_container(&self, name: &str, new_name: &str) -> Result<(), EngineError> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name).to_string();
        if new_name.is_empty() {
            return Err(EngineError::Invalid("Neither old nor new names may be empty".to_string()));
        }
        if !ids::valid_name(&new_name) {
            return Err(EngineError::Invalid(format!(
                "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let _guard = self.inner.containers_lock.lock().await;
        let rec = self.find_container(name)?;
        if rec.name == new_name {
            return Err(EngineError::Invalid(
                "Renaming a container with the same name as its current name".to_string(),
            ));
        }
        let old_name = rec.name.clone();
        let rec = self.inner.containers.write(|tx| {
            if let Some(holder) = tx.holder_of(&new_name) {
                return Err(EngineError::Conflict(format!(
                    "Conflict. The container name \"/{new_name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
            let Some(mut r) = tx.get(&rec.id) else {
                return Err(EngineError::NotFound(format!("No such container: {name}")));
            };
            if tx.holder_of(&r.name).as_deref() == Some(r.id.as_str()) {
                tx.delete_name(&r.name);
            }
            r.name = new_name.clone();
            tx.put_name(&new_name, &r.id);
            tx.put(&r);
            Ok(r)
        })?;
        self.container_event(&rec, "rename", &[("oldName", format!("/{old_name}"))]);
        Ok(())
    }

    /// Freezes every process of a running container.
    pub async fn pause_container(&self, name: &str) -> Result<(), EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let rec = self.find_container(&rec.id)?;
        if !live.is_running() {
            return Err(EngineError::Conflict(format!("Container {} is not running", rec.id)));
        }
        if rec.state.paused {
            return Err(EngineError::Conflict(format!("Container {} is already paused", rec.id)));
        }
        self.set_frozen(&rec.id, true).await?;
        self.set_paused_state(&rec.id, true)?;
        self.container_event(&rec, "pause", &[]);
        Ok(())
    }

    /// Thaws a paused container.
    pub async fn unpause_container(&self, name: &str) -> Result<(), EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let rec = self.find_container(&rec.id)?;
        if !live.is_running() || !rec.state.paused {
            return Err(EngineError::Conflict(format!("Container {} is not paused", rec.id)));
        }
        self.set_frozen(&rec.id, false).await?;
        self.set_paused_state(&rec.id, false)?;
        self.container_event(&rec, "unpause", &[]);
        Ok(())
    }

    /// Called by stop, kill and forced removal (under the container's op lock): a frozen
    /// process cannot handle a signal, nor even die of SIGKILL, until it is thawed.
    pub(crate) async fn thaw_if_paused(&self, id: &str) -> Result<(), EngineError> {
        let rec = self.find_container(id)?;
        if !rec.state.paused {
            return Ok(());
        }
        self.set_frozen(id, false).await?;
        self.set_paused_state(id, false)?;
        self.container_event(&rec, "unpause", &[]);
        Ok(())
    }

    async fn set_frozen(&self, id: &str, frozen: bool) -> Result<(), EngineError> {
        let path = self.container_cgroup(id);
        let what = if frozen { "pause" } else { "unpause" };
        let id = id.to_string();
        blocking(move || {
            let cg = Cgroup::open(&path).map_err(|e| EngineError::Internal(format!("{what} container {id}: {e}")))?;
            cg.set_frozen(frozen).map_err(|e| EngineError::Internal(format!("{what} container {id}: {e}")))
        })
        .await
    }

    fn set_paused_state(&self, id: &str, paused: bool) -> Result<(), EngineError> {
        self.inner.containers.write(|tx| {
            let Some(mut r) = tx.get(id) else { return Ok(()) };
            if r.state.running {
                r.state.paused = paused;
                r.state.status = if paused { Status::Paused } else { Status::Running };
            }
            tx.put(&r);
            Ok(())
        })
    }

    /// Changes a container's resources and restart policy: written to the record, and to the
    /// cgroup when it runs. Returns Docker's warnings.
    pub async fn update_container(&self, name: &str, req: UpdateRequest) -> Result<Vec<String>, EngineError> {
        let rec = self.find_container(name)?;
        let live = self.live(&rec.id);
        let _op = live.op.lock().await;
        let mut rec = self.find_container(&rec.id)?;
        let mut hc = rec.host_config.clone();
        let positive = |v: Option<i64>| v.filter(|v| *v != 0);
        for (what, v) in [
            ("memory", req.memory),
            ("nano cpus", req.nano_cpus),
            ("cpu shares", req.cpu_shares),
            ("cpu period", req.cpu_period),
        ] {
            if v.is_some_and(|v| v < 0) {
                return Err(EngineError::Invalid(format!("invalid {what}: must not be negative")));
            }
        }
        if let Some(m) = positive(req.memory) {
            if m < 6 * 1024 * 1024 {
                return Err(EngineError::Invalid("Minimum memory limit allowed is 6MB".to_string()));
            }
            hc.memory = m;
        }
        if let Some(s) = positive(req.memory_swap) {
            if s > 0 && hc.memory > 0 && s < hc.memory {
                return Err(EngineError::Invalid(
                    "Minimum memoryswap limit should be larger than memory limit, see usage".to_string(),
                ));
            }
            if hc.memory == 0 {
                return Err(EngineError::Invalid(
                    "You should always set the Memory limit when using Memoryswap limit, see usage".to_string(),
                ));
            }
            hc.memory_swap = s;
        }
        let nano = positive(req.nano_cpus);
        let quota = positive(req.cpu_quota);
        let period = positive(req.cpu_period);
        // dockerd's checks first (on the update's own values), then its update step.
        crate::resources::check_cpu(nano.unwrap_or(0), quota.unwrap_or(0), period.unwrap_or(0))?;
        let mut warnings = Vec::new();
        self.update_more_resources(&req, &mut hc, &mut warnings)?;
        // Without swap accounting dockerd's checks make the update's swap -1, with a warning, so
        // its update step below has a swap limit and says nothing (seen on a pure v2 host whose
        // daemon's cgroup has no memory.swap.max).
        let swap_given = positive(req.memory_swap).is_some();
        let unlimited_swap = positive(req.memory).is_some() && !crate::resources::support().swap_limit;
        if unlimited_swap {
            warnings.push(
                "Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap."
                    .to_string(),
            );
            hc.memory_swap = -1;
        }
        // dockerd 20.10's update step: a new memory limit above the swap limit the container
        // has (whatever it is, -1 and 0 included) needs a new swap limit with it.
        if !unlimited_swap && positive(req.memory).is_some_and(|m| m > rec.host_config.memory_swap) && !swap_given {
            return Err(EngineError::Conflict(format!(
                "Cannot update container {}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
                rec.id
            )));
        }
        if let Some(n) = nano {
            hc.nano_cpus = n;
            hc.cpu_quota = 0;
            hc.cpu_period = 0;
        }
        if quota.is_some() || period.is_some() {
            if hc.nano_cpus > 0 {
                // dockerd's update step (not its checks) says which container it could not update,
                // as a conflict (409) with what the container has.
                return Err(EngineError::Conflict(format!(
                    "Cannot update container {}: Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
                    rec.id
                )));
            }
            if let Some(q) = quota {
                hc.cpu_quota = q;
            }
            if let Some(p) = period {
                hc.cpu_period = p;
            }
        }
        if let Some(s) = positive(req.cpu_shares) {
            hc.cpu_shares = s;
        }
        if let Some(p) = req.pids_limit {
            hc.pids_limit = Some(if p <= 0 { -1 } else { p });
        }
        if let Some(policy) = req.restart_policy.clone() {
            policy.validate()?;
            if hc.auto_remove && !policy.is_none() {
                return Err(EngineError::Conflict(format!(
                    "Cannot update container {}: Restart policy cannot be updated because AutoRemove is enabled for the container",
                    rec.id
                )));
            }
            hc.restart_policy = policy;
        }

        if live.is_running() {
            let resources = update_resources(&req, &hc);
            let path = self.container_cgroup(&rec.id);
            let id = rec.id.clone();
            blocking(move || {
                let cg = Cgroup::open(&path)
                    .map_err(|e| EngineError::Internal(format!("Cannot update container {id}: {e}")))?;
                cg.update(&resources).map_err(|e| EngineError::Internal(format!("Cannot update container {id}: {e}")))
            })
            .await?;
        }
        rec.host_config = hc;
        // Re-read the state: the exit of the container may have been recorded meanwhile.
        let state = self.find_container(&rec.id)?.state;
        rec.state = state;
        self.put_container(&rec)?;
        self.container_event(&rec, "update", &[]);
        Ok(warnings)
    }

    /// The update fields of `resources.rs`, checked as dockerd checks them (`update` true):
    /// cpuset, memory reservation, kernel memory, blkio weight.
    fn update_more_resources(
        &self,
        req: &UpdateRequest,
        hc: &mut crate::HostConfig,
        warnings: &mut Vec<String>,
    ) -> Result<(), EngineError> {
        let sup = crate::resources::support();
        if let Some(c) = req.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
            crate::spec::check_cpuset(c, "cpuset.cpus")?;
            hc.cpuset_cpus = c.clone();
        }
        if let Some(m) = req.cpuset_mems.as_ref().filter(|m| !m.is_empty()) {
            crate::spec::check_cpuset(m, "cpuset.mems")?;
            hc.cpuset_mems = m.clone();
        }
        if let Some(r) = req.memory_reservation.filter(|r| *r != 0) {
            if !sup.memory_reservation {
                warnings.push(
                    "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded."
                        .to_string(),
                );
            } else {
                if r < crate::resources::MIN_MEMORY {
                    return Err(EngineError::Invalid("Minimum memory reservation allowed is 6MB".to_string()));
                }
                // As dockerd: against the memory limit of the same update only (the kernel
                // takes a v1 soft limit above the hard one).
                if req.memory.is_some_and(|m| m > 0 && m < r) {
                    return Err(EngineError::Invalid(
                        "Minimum memory limit can not be less than memory reservation limit, see usage".to_string(),
                    ));
                }
                hc.resources.memory_reservation = r;
            }
        }
        if let Some(k) = req.kernel_memory.filter(|k| *k != 0) {
            warnings.push(
                "Specifying a kernel memory limit is deprecated and will be removed in a future release.".to_string(),
            );
            if !sup.kernel_memory {
                warnings.push(
                    "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. Limitation discarded."
                        .to_string(),
                );
            } else {
                if k < crate::resources::MIN_MEMORY {
                    return Err(EngineError::Invalid("Minimum kernel memory limit allowed is 6MB".to_string()));
                }
                hc.resources.kernel_memory = k;
            }
        }
        let (rt_period, rt_runtime) = (req.cpu_rt_period.unwrap_or(0), req.cpu_rt_runtime.unwrap_or(0));
        if rt_period != 0 || rt_runtime != 0 {
            crate::resources::check_realtime(rt_period, rt_runtime, &sup, true)?;
            if rt_period != 0 {
                hc.resources.cpu_rt_period = rt_period;
            }
            if rt_runtime != 0 {
                hc.resources.cpu_rt_runtime = rt_runtime;
            }
        }
        if let Some(w) = req.blkio_weight.filter(|w| *w != 0) {
            if !sup.blkio_weight {
                warnings.push(
                    "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                        .to_string(),
                );
            } else {
                if !(10..=1000).contains(&w) {
                    return Err(EngineError::Invalid("Range of blkio weight is from 10 to 1000".to_string()));
                }
                hc.resources.blkio_weight = w;
            }
        }
        Ok(())
    }

    /// Removes every stopped container (`created`, `exited`, `dead`) that matches the filters
    /// (`until`, `label`, `label!`).
    pub async fn prune_containers(&self, filters: &BTreeMap<String, Vec<String>>) -> Result<PruneReport, EngineError> {
        let now = std::time::SystemTime::now();
        let mut until: Option<std::time::SystemTime> = None;
        let mut labels = Vec::new();
        let mut not_labels = Vec::new();
        for (key, values) in filters {
            match key.as_str() {
                "until" => {
                    for v in values {
                        let t = wharf_types::time::parse_time_arg(v, now)
                            .ok_or_else(|| EngineError::Invalid(format!("Invalid filter 'until={v}'")))?;
                        until = Some(until.map_or(t, |u| u.min(t)));
                    }
                }
                "label" => labels.extend(values.iter().cloned()),
                "label!" => not_labels.extend(values.iter().cloned()),
                other => return Err(EngineError::Invalid(format!("Invalid filter '{other}'"))),
            }
        }
        let has = |r: &ContainerRecord, spec: &str| match spec.split_once('=') {
            Some((k, v)) => r.config.labels.get(k).is_some_and(|x| x == v),
            None => r.config.labels.contains_key(spec),
        };
        let all = self.all_containers();
        let mut report = PruneReport::default();
        for r in all {
            if r.state.running || matches!(r.state.status, Status::Running | Status::Paused | Status::Restarting) {
                continue;
            }
            if let Some(u) = until {
                let created = wharf_types::time::parse_rfc3339(&r.created);
                if created.is_none_or(|c| c >= u) {
                    continue;
                }
            }
            if !labels.iter().all(|l| has(&r, l)) || not_labels.iter().any(|l| has(&r, l)) {
                continue;
            }
            let upper = self.inner.config.data_root.join("snapshots/containers").join(&r.id).join("upper");
            let size = blocking(move || Ok(dir_size(&upper))).await.unwrap_or(0);
            match self.remove_container(&r.id, false).await {
                Ok(()) => {
                    report.deleted.push(r.id.clone());
                    report.space_reclaimed += size;
                }
                Err(e) if e.kind() == wharf_types::ErrorKind::NotFound => {}
                Err(e) => log::warn!("prune: container {}: {e}", r.id),
            }
        }
        self.publish_event("container", "prune", "", {
            let mut a = BTreeMap::new();
            a.insert("reclaimed".to_string(), report.space_reclaimed.to_string());
            a
        });
        Ok(report)
    }
}

/// The cgroup limits an update changes, from the merged host config.
fn update_resources(req: &UpdateRequest, hc: &crate::HostConfig) -> oci::Resources {
    let mut r = oci::Resources::default();
    if req.memory.is_some_and(|m| m > 0) || req.memory_swap.is_some_and(|s| s != 0) {
        let swap = if hc.memory_swap != 0 {
            Some(hc.memory_swap)
        } else if req.memory.is_some_and(|m| m > 0) {
            // Docker's default: as much swap as memory.
            Some(hc.memory * 2)
        } else {
            None
        };
        r.memory = Some(oci::Memory { limit: Some(hc.memory), swap, ..Default::default() });
    }
    let mut cpu = oci::Cpu::default();
    if req.cpu_shares.is_some_and(|s| s > 0) {
        cpu.shares = Some(hc.cpu_shares as u64);
    }
    if req.nano_cpus.is_some_and(|n| n > 0) {
        cpu.period = Some(CFS_PERIOD as u64);
        cpu.quota = Some(hc.nano_cpus * CFS_PERIOD / 1_000_000_000);
    } else if req.cpu_quota.is_some_and(|q| q != 0) || req.cpu_period.is_some_and(|p| p > 0) {
        cpu.quota = Some(if hc.cpu_quota > 0 { hc.cpu_quota } else { -1 });
        cpu.period = Some(if hc.cpu_period > 0 { hc.cpu_period as u64 } else { CFS_PERIOD as u64 });
    }
    if req.cpuset_cpus.as_ref().is_some_and(|c| !c.is_empty()) {
        cpu.cpus = Some(hc.cpuset_cpus.clone());
    }
    if req.cpuset_mems.as_ref().is_some_and(|m| !m.is_empty()) {
        cpu.mems = Some(hc.cpuset_mems.clone());
    }
    if cpu != oci::Cpu::default() {
        r.cpu = Some(cpu);
    }
    if req.pids_limit.is_some() {
        r.pids = Some(oci::Pids { limit: hc.pids_limit.unwrap_or(-1) });
    }
    if req.memory_reservation.is_some_and(|m| m != 0) && hc.resources.memory_reservation > 0 {
        r.memory.get_or_insert_with(oci::Memory::default).reservation = Some(hc.resources.memory_reservation);
    }
    if req.blkio_weight.is_some_and(|w| w != 0) && hc.resources.blkio_weight > 0 {
        r.block_io = Some(oci::BlockIo { weight: Some(hc.resources.blkio_weight), ..Default::default() });
    }
    r
}

/// The bytes under `dir`, without following symlinks (a container's upper dir).
pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for e in entries.flatten() {
        let Ok(md) = e.metadata() else { continue };
        if md.is_dir() {
            total += dir_size(&e.path());
        } else {
            total += md.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_resources_touch_only_what_was_asked() {
        let hc = crate::HostConfig { memory: 64 << 20, cpu_shares: 512, pids_limit: Some(10), ..Default::default() };
        let req = UpdateRequest { cpu_shares: Some(512), ..Default::default() };
        let r = update_resources(&req, &hc);
        assert!(r.memory.is_none());
        assert!(r.pids.is_none());
        assert_eq!(r.cpu.and_then(|c| c.shares), Some(512));

        let req = UpdateRequest { memory: Some(64 << 20), pids_limit: Some(10), ..Default::default() };
        let r = update_resources(&req, &hc);
        let mem = r.memory.unwrap_or_default();
        assert_eq!(mem.limit, Some(64 << 20));
        assert_eq!(mem.swap, Some(128 << 20));
        assert_eq!(r.pids.map(|p| p.limit), Some(10));

        let hc = crate::HostConfig { nano_cpus: 500_000_000, ..Default::default() };
        let req = UpdateRequest { nano_cpus: Some(500_000_000), ..Default::default() };
        let cpu = update_resources(&req, &hc).cpu.unwrap_or_default();
        assert_eq!((cpu.quota, cpu.period), (Some(50_000), Some(100_000)));
    }
}
