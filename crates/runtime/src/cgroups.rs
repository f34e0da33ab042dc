//! Container cgroups: layout detection (v1, hybrid, v2), creation with resource limits, joining,
//! OOM accounting and removal. Paths like `/wharf/<id>` are relative to each hierarchy's root.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wharf_types::ErrorKind;

use crate::spec::{BlockIo, DeviceRule, Resources};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup2 mount of a hybrid layout, under CGROUP_ROOT.
const UNIFIED: &str = "unified";

/// The v1 hierarchies a container gets a directory in: the controllers, and systemd's named
/// hierarchy as runc joins it (tools in the container look for it).
const V1_CONTROLLERS: &[&str] =
    &["cpu", "cpuacct", "memory", "pids", "blkio", "devices", "freezer", "cpuset", "name=systemd"];

/// How long `remove` waits for dying processes to leave before giving up on EBUSY.
const REMOVE_WAIT: Duration = Duration::from_millis(500);

/// How long a freeze or thaw may take before it is reported as failed.
const FREEZE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: write {value} to {}: {source}", path.display())]
    Write { path: PathBuf, value: String, source: io::Error },
    #[error("cgroup: read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cgroup: mkdir {}: {source}", path.display())]
    Mkdir { path: PathBuf, source: io::Error },
    #[error("cgroup: rmdir {}: {source}", path.display())]
    Rmdir { path: PathBuf, source: io::Error },
    #[error("cgroup: {} does not exist", path.display())]
    NotFound { path: PathBuf },
    #[error("cgroup: invalid path {path:?}: must be absolute without '..'")]
    InvalidPath { path: String },
    #[error("cgroup: no cgroup hierarchy mounted under {CGROUP_ROOT}")]
    NoHierarchy,
    #[error("cgroup: {0}")]
    Devices(#[from] crate::devices_bpf::DeviceFilterError),
    #[error("cgroup: {path}: {count} processes still running after SIGKILL")]
    StillPopulated { path: String, count: usize },
    #[error("cgroup: {0}")]
    Systemd(#[from] crate::systemd::SystemdError),
    #[error("cgroup: {0}")]
    Invalid(String),
}

impl CgroupError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            CgroupError::NotFound { .. } => ErrorKind::NotFound,
            CgroupError::InvalidPath { .. } | CgroupError::Invalid(_) => ErrorKind::InvalidArgument,
            CgroupError::Devices(e) => e.kind(),
            _ => ErrorKind::Internal,
        }
    }
}

pub type Result<T> = std::result::Result<T, CgroupError>;

/// Which cgroup versions the host has mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 controller hierarchies.
    V1,
    /// v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified, without controllers: a
    /// container gets a directory there too, for the device program.
    Hybrid,
    /// A single cgroup2 hierarchy at /sys/fs/cgroup.
    V2,
}

impl Layout {
    pub fn detect() -> Layout {
        if is_cgroup2(Path::new(CGROUP_ROOT)) {
            Layout::V2
        } else if is_cgroup2(&Path::new(CGROUP_ROOT).join(UNIFIED)) {
            Layout::Hybrid
        } else {
            Layout::V1
        }
    }
}

fn is_cgroup2(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct the kernel fills.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::CGROUP2_SUPER_MAGIC
    }
}

/// The v1 hierarchy mount points that hold at least one controller we use, one per mount
/// (co-mounted controllers such as `cpu,cpuacct` share one directory).
fn v1_mounts() -> Result<Vec<(PathBuf, Vec<String>)>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = fs::read_to_string(path).map_err(|source| CgroupError::Read { path: path.to_path_buf(), source })?;
    let mut out: Vec<(PathBuf, Vec<String>)> = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or("");
        let controllers: Vec<String> =
            super_opts.split(',').filter(|o| V1_CONTROLLERS.contains(o)).map(str::to_string).collect();
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        if controllers.is_empty() || out.iter().any(|(p, _)| p == Path::new(mount_point)) {
            continue;
        }
        out.push((PathBuf::from(mount_point), controllers));
    }
    if out.is_empty() {
        return Err(CgroupError::NoHierarchy);
    }
    Ok(out)
}

/// Starts, on a thread of its own, the kernel's wait that a container's first move into its
/// cgroup would otherwise pay, so that the wait runs beside the rest of the start.
///
/// The first write to any `cgroup.procs` after a quiet spell switches the kernel's global
/// threadgroup lock to its writer mode, which waits for an RCU grace period: 5-13 ms measured
/// on the v1 hosts here, most of a start. Writes within about one grace period after it pass
/// at once. So a start request calls this first, and the grace period overlaps the network
/// attach, the spec and the shim's spawn. The write moves this process into the v1 cgroup it
/// is already in, which changes nothing. (A pid no process has would not do: the kernel
/// looks the task up before it takes the lock.) Nothing to do on pure v2, where a container
/// is cloned straight into its cgroup. At most one such thread runs at a time.
pub fn warm_attach() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WARMING: AtomicBool = AtomicBool::new(false);
    if Layout::detect() == Layout::V2 || WARMING.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new().name("cgroup-warm".to_string()).spawn(|| {
        if let Err(e) = rejoin_own_v1_cgroup() {
            log::debug!("warm the cgroup lock: {e}");
        }
        WARMING.store(false, Ordering::Release);
    });
    if spawned.is_err() {
        WARMING.store(false, Ordering::Release);
    }
}

/// Writes this process's pid into the `cgroup.procs` of the v1 cgroup it is in (the first
/// hierarchy found): a move to where it already is.
fn rejoin_own_v1_cgroup() -> Result<()> {
    let file = own_v1_procs_file().ok_or(CgroupError::NoHierarchy)?;
    write_file(&file, &std::process::id().to_string())
}

/// `cgroup.procs` of the cgroup this process is in, in the first v1 hierarchy it can find.
fn own_v1_procs_file() -> Option<PathBuf> {
    let mounts = v1_mounts().ok()?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, names, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (root, _) =
            mounts.iter().find(|(_, controllers)| names.split(',').any(|n| controllers.iter().any(|c| c == n)))?;
        Some(root.join(path.trim_start_matches('/')).join("cgroup.procs"))
    })
}

/// One directory of the cgroup, in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dir {
    /// The hierarchy's mount point.
    root: PathBuf,
    /// The controllers of that hierarchy we care about (`cgroup2` for v2).
    controllers: Vec<String>,
    /// `root` joined with the cgroup path.
    path: PathBuf,
}

impl Dir {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A container's cgroup: one directory per v1 hierarchy, or one directory on v2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: String,
    layout: Layout,
    dirs: Vec<Dir>,
    /// The systemd scope that holds it, for a path in the systemd driver's form.
    scope: Option<crate::systemd::Scope>,
}

/// The cgroup's path below the root of each hierarchy: `path` itself, or for the systemd
/// driver's `slice:prefix:name`, the scope's place in the slices.
pub fn fs_path(path: &str) -> Result<String> {
    match crate::systemd::Scope::parse(path) {
        Some(Ok(scope)) => Ok(scope.cgroup_path()),
        Some(Err(_)) => Err(CgroupError::InvalidPath { path: path.to_string() }),
        None => Ok(path.to_string()),
    }
}

impl Cgroup {
    fn locate(given: &str) -> Result<Cgroup> {
        let scope = match crate::systemd::Scope::parse(given) {
            Some(Ok(scope)) => Some(scope),
            Some(Err(_)) => return Err(CgroupError::InvalidPath { path: given.to_string() }),
            None => None,
        };
        let path = scope.as_ref().map_or_else(|| given.to_string(), |s| s.cgroup_path());
        let path = path.as_str();
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(CgroupError::InvalidPath { path: path.to_string() });
        }
        let rel = path.trim_start_matches('/');
        let layout = Layout::detect();
        let dirs = match layout {
            Layout::V2 => vec![Dir {
                root: PathBuf::from(CGROUP_ROOT),
                controllers: vec!["cgroup2".to_string()],
                path: Path::new(CGROUP_ROOT).join(rel),
            }],
            Layout::V1 | Layout::Hybrid => {
                let mut dirs: Vec<Dir> = v1_mounts()?
                    .into_iter()
                    .map(|(root, controllers)| Dir { path: root.join(rel), root, controllers })
                    .collect();
                if layout == Layout::Hybrid {
                    // The kernel also runs the device programs of the task's cgroup in the
                    // unified hierarchy: a second fence, as runc and systemd put there.
                    let root = Path::new(CGROUP_ROOT).join(UNIFIED);
                    dirs.push(Dir { path: root.join(rel), root, controllers: vec!["cgroup2".to_string()] });
                }
                dirs
            }
        };
        Ok(Cgroup { path: path.to_string(), layout, dirs, scope })
    }

    /// Creates the cgroup (and missing parents) in every hierarchy and applies `resources`.
    pub fn create(path: &str, resources: &Resources) -> Result<Cgroup> {
        let cg = Cgroup::locate(path)?;
        // A restarted container's last scope may not have ended yet (systemd notices an empty
        // cgroup a moment later): it must go before the directory is made again, since
        // stopping it later would kill what now runs there.
        if let Some(scope) = &cg.scope {
            crate::systemd::Manager::connect()?.stop_unit(&scope.unit)?;
        }
        let created = cg.create_dirs().and_then(|()| cg.apply(resources, true));
        if let Err(e) = created {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    /// Opens a cgroup that already exists, e.g. after a daemon restart.
    pub fn open(path: &str) -> Result<Cgroup> {
        let mut cg = Cgroup::locate(path)?;
        // Containers started before wharf used the unified and systemd's hierarchies on a v1
        // host have no directory there: those two are optional.
        let layout = cg.layout;
        cg.dirs.retain(|d| {
            let optional = d.has("name=systemd") || (layout == Layout::Hybrid && d.has("cgroup2"));
            !optional || d.path.is_dir()
        });
        match cg.dirs.iter().find(|d| !d.path.is_dir()) {
            Some(missing) => Err(CgroupError::NotFound { path: missing.path.clone() }),
            None => Ok(cg),
        }
    }

    /// The path below each hierarchy's root (a systemd scope's directory for that form).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The systemd scope the cgroup belongs to, when it was named in the systemd form.
    pub fn scope(&self) -> Option<&crate::systemd::Scope> {
        self.scope.as_ref()
    }

    /// Puts the cgroup, which holds `pid`, under systemd as a transient delegated scope, then
    /// writes `resources` again: systemd writes a unit's own cgroup files when it starts it.
    /// The limits systemd knows by name go in as properties as well, so that its later
    /// rewrites (daemon-reload) keep them.
    pub fn start_scope(&self, pid: i32, resources: &Resources) -> Result<()> {
        let Some(scope) = &self.scope else { return Ok(()) };
        let mut props = scope_properties(resources);
        // Without a limit of its own, a container has none, as under cgroupfs; systemd would
        // give the scope its DefaultTasksMax.
        if resources.pids.is_none() {
            props.push(("TasksMax", crate::systemd::Value::U64(u64::MAX)));
        }
        let mut manager = crate::systemd::Manager::connect()?;
        manager.start_scope(&scope.unit, &scope.slice, pid as u32, "wharf container", &props)?;
        self.apply(resources, false)
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The directories of this cgroup, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    fn create_dirs(&self) -> Result<()> {
        for dir in &self.dirs {
            let rel = dir.path.strip_prefix(&dir.root).unwrap_or(Path::new(""));
            let mut cur = dir.root.clone();
            for comp in rel.components() {
                if self.layout == Layout::V2 {
                    enable_v2_controllers(&cur)?;
                }
                let parent = cur.clone();
                cur.push(comp);
                match fs::create_dir(&cur) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(CgroupError::Mkdir { path: cur, source });
                    }
                }
                if dir.has("cpuset") {
                    // A v1 cpuset starts empty and refuses tasks until it has cpus and mems.
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        if read_trimmed(&cur.join(file))?.is_empty() {
                            let value = read_trimmed(&parent.join(file))?;
                            write_file(&cur.join(file), &value)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `devices`: also (re)write the device rules; an update that names no device keeps them
    /// (the default list would take away a privileged container's or a `--device`'s access).
    fn apply(&self, r: &Resources, devices: bool) -> Result<()> {
        match self.layout {
            Layout::V2 => self.apply_v2(r)?,
            Layout::V1 | Layout::Hybrid => self.apply_v1(r, devices)?,
        }
        if devices {
            let rules = device_rules(&r.devices);
            for dir in self.dirs.iter().filter(|d| d.has("cgroup2")) {
                crate::devices_bpf::apply(&dir.path, &rules)?;
            }
        }
        Ok(())
    }

    fn dir_with(&self, controller: &str) -> Option<&Path> {
        self.dirs.iter().find(|d| d.has(controller)).map(|d| d.path.as_path())
    }

    fn apply_v1(&self, r: &Resources, devices: bool) -> Result<()> {
        if let (Some(mem), Some(dir)) = (&r.memory, self.dir_with("memory")) {
            if let Some(limit) = mem.limit {
                write_file(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
            }
            if let Some(res) = mem.reservation {
                write_file(&dir.join("memory.soft_limit_in_bytes"), &res.to_string())?;
            }
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            // Only present with swap accounting; Docker skips it silently too.
            if let (Some(swap), true) = (mem.swap, memsw.exists()) {
                write_file(&memsw, &swap.to_string())?;
            }
            if let Some(disable) = mem.disable_oom_killer {
                write_file(&dir.join("memory.oom_control"), if disable { "1" } else { "0" })?;
            }
            if let Some(swappiness) = mem.swappiness {
                write_file(&dir.join("memory.swappiness"), &swappiness.to_string())?;
            }
        }
        if let Some(cpu) = &r.cpu {
            if let Some(dir) = self.dir_with("cpu") {
                if let Some(shares) = cpu.shares {
                    write_file(&dir.join("cpu.shares"), &shares.to_string())?;
                }
                // The period first, as runc: the runtime is checked against it (and against
                // what the parent's budget leaves; the kernel answers EINVAL past it).
                if let Some(period) = cpu.realtime_period {
                    write_file(&dir.join("cpu.rt_period_us"), &period.to_string())?;
                }
                if let Some(runtime) = cpu.realtime_runtime {
                    write_file(&dir.join("cpu.rt_runtime_us"), &runtime.to_string())?;
                }
                // The period first: the kernel checks the quota against the current period.
                if let Some(period) = cpu.period {
                    write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                }
                if let Some(quota) = cpu.quota {
                    let q = if quota > 0 { quota } else { -1 };
                    write_file(&dir.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
            }
            if let Some(dir) = self.dir_with("cpuset") {
                if let Some(cpus) = &cpu.cpus {
                    write_file(&dir.join("cpuset.cpus"), cpus)?;
                }
                if let Some(mems) = &cpu.mems {
                    write_file(&dir.join("cpuset.mems"), mems)?;
                }
            }
        }
        if let (Some(pids), Some(dir)) = (&r.pids, self.dir_with("pids")) {
            write_file(&dir.join("pids.max"), &pids_max(pids.limit))?;
        }
        if let (Some(io), Some(dir)) = (&r.block_io, self.dir_with("blkio")) {
            apply_blkio_v1(dir, io)?;
        }
        if !r.unified.is_empty() {
            return Err(CgroupError::Invalid("unified cgroup settings need cgroup v2; this host has v1".into()));
        }
        // As runc: without a hugetlb hierarchy there is nothing to limit (and no page to take).
        if let Some(dir) = self.dir_with("hugetlb") {
            for h in &r.hugepage_limits {
                write_file(
                    &dir.join(format!("hugetlb.{}.limit_in_bytes", page_size(&h.page_size)?)),
                    &h.limit.to_string(),
                )?;
            }
        }
        if let (Some(dir), true) = (self.dir_with("devices"), devices) {
            for rule in device_rules(&r.devices) {
                let file = if rule.allow { "devices.allow" } else { "devices.deny" };
                write_file(&dir.join(file), &device_rule_v1(&rule))?;
            }
        }
        Ok(())
    }

    fn apply_v2(&self, r: &Resources) -> Result<()> {
        let Some(dir) = self.dirs.first().map(|d| d.path.as_path()) else {
            return Ok(());
        };
        if let Some(mem) = &r.memory {
            if let Some(limit) = mem.limit {
                write_file(&dir.join("memory.max"), &v2_max(limit))?;
                // v2 accounts swap apart from memory; the OCI value is memory+swap.
                if let Some(swap) = mem.swap {
                    let value = if swap < 0 || limit < 0 {
                        "max".to_string()
                    } else {
                        swap.saturating_sub(limit).max(0).to_string()
                    };
                    let file = dir.join("memory.swap.max");
                    if file.exists() {
                        write_file(&file, &value)?;
                    }
                }
            }
            if let Some(res) = mem.reservation {
                write_file(&dir.join("memory.low"), &v2_max(res))?;
            }
        }
        if let Some(cpu) = &r.cpu {
            if let Some(shares) = cpu.shares {
                write_file(&dir.join("cpu.weight"), &shares_to_weight(shares).to_string())?;
            }
            if cpu.quota.is_some() || cpu.period.is_some() {
                write_file(&dir.join("cpu.max"), &cpu_max(cpu.quota, cpu.period))?;
            }
            if let Some(cpus) = &cpu.cpus {
                write_file(&dir.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = &cpu.mems {
                write_file(&dir.join("cpuset.mems"), mems)?;
            }
        }
        if let Some(pids) = &r.pids {
            write_file(&dir.join("pids.max"), &pids_max(pids.limit))?;
        }
        if let Some(io) = &r.block_io {
            apply_io_v2(dir, io)?;
        }
        for h in &r.hugepage_limits {
            let size = page_size(&h.page_size)?;
            write_file(&dir.join(format!("hugetlb.{size}.max")), &h.limit.to_string())?;
            // Reservations count against the limit too on kernels that have them (as runc).
            let rsvd = dir.join(format!("hugetlb.{size}.rsvd.max"));
            if rsvd.exists() {
                write_file(&rsvd, &h.limit.to_string())?;
            }
        }
        for (file, value) in &r.unified {
            write_file(&dir.join(unified_file(file)?), value)?;
        }
        Ok(())
    }

    /// Applies new limits to a live cgroup (`docker update`). On v1 the memory limit and the
    /// memory+swap limit must stay ordered (limit <= memsw) after each write, so when raising
    /// both the memsw limit goes first.
    pub fn update(&self, resources: &Resources) -> Result<()> {
        self.update_files(resources)?;
        // systemd would write the unit's old limits back at its next daemon-reload.
        if let Some(scope) = &self.scope {
            let props = scope_properties(resources);
            if !props.is_empty() {
                crate::systemd::Manager::connect()?.set_unit_properties(&scope.unit, &props)?;
            }
        }
        Ok(())
    }

    fn update_files(&self, resources: &Resources) -> Result<()> {
        if let (Layout::V1 | Layout::Hybrid, Some(mem), Some(dir)) =
            (self.layout, &resources.memory, self.dir_with("memory"))
        {
            let memsw = dir.join("memory.memsw.limit_in_bytes");
            if let (Some(swap), true) = (mem.swap, memsw.exists()) {
                let current: i64 = read_trimmed(&dir.join("memory.limit_in_bytes"))?.parse().unwrap_or(i64::MAX);
                if mem.limit.is_some_and(|l| l < 0 || l > current) || swap < 0 {
                    write_file(&memsw, &swap.to_string())?;
                }
            }
        }
        self.apply(resources, !resources.devices.is_empty())
    }

    /// Freezes (`docker pause`) or thaws every process of the cgroup and waits until the kernel
    /// reports the new state: v1's freezer passes through FREEZING, v2 reports `frozen` in
    /// cgroup.events.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let (file, value, check): (PathBuf, &str, Box<dyn Fn() -> Result<bool>>) = match self.layout {
            Layout::V2 => {
                let Some(dir) = self.dirs.first().map(|d| d.path.clone()) else {
                    return Err(CgroupError::NoHierarchy);
                };
                let events = dir.join("cgroup.events");
                let want = if frozen { 1 } else { 0 };
                (
                    dir.join("cgroup.freeze"),
                    if frozen { "1" } else { "0" },
                    Box::new(move || Ok(parse_counter(&read_trimmed(&events)?, "frozen") == Some(want))),
                )
            }
            Layout::V1 | Layout::Hybrid => {
                let Some(dir) = self.dir_with("freezer").map(Path::to_path_buf) else {
                    return Err(CgroupError::NoHierarchy);
                };
                let state = dir.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                let file = state.clone();
                (file, want, Box::new(move || Ok(read_trimmed(&state)? == want)))
            }
        };
        let start = Instant::now();
        loop {
            // v1 may stay FREEZING while a task is in an uninterruptible sleep; writing again
            // retries the freeze, as runc does.
            write_file(&file, value)?;
            if check()? {
                return Ok(());
            }
            if start.elapsed() > FREEZE_WAIT {
                if frozen {
                    // Leave nothing half frozen behind a failed pause.
                    let _ = write_file(&file, if self.layout == Layout::V2 { "0" } else { "THAWED" });
                }
                return Err(CgroupError::Write {
                    path: file,
                    value: value.to_string(),
                    source: io::Error::new(io::ErrorKind::TimedOut, "the kernel did not reach the state in time"),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether the cgroup is frozen now.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.layout {
            Layout::V2 => {
                let Some(dir) = self.dirs.first() else {
                    return Ok(false);
                };
                Ok(parse_counter(&read_trimmed(&dir.path.join("cgroup.events"))?, "frozen") == Some(1))
            }
            Layout::V1 | Layout::Hybrid => match self.dir_with("freezer") {
                Some(dir) => Ok(read_trimmed(&dir.join("freezer.state"))? != "THAWED"),
                None => Ok(false),
            },
        }
    }

    /// The directory of a v1 controller (or the single v2 directory), for readers of
    /// statistics files.
    pub fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        match self.layout {
            Layout::V2 => self.dirs.first().map(|d| d.path.clone()),
            Layout::V1 | Layout::Hybrid => self.dir_with(controller).map(Path::to_path_buf),
        }
    }

    /// Moves a process into the cgroup in every hierarchy.
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for dir in &self.dirs {
            write_file(&dir.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup (from the first hierarchy).
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.dirs.first() else {
            return Ok(Vec::new());
        };
        let text = read_trimmed(&dir.path.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Every process in the cgroup, in any of its hierarchies (a process that died half-way
    /// through joining may sit in some only).
    pub fn all_procs(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = Vec::new();
        for dir in &self.dirs {
            if let Ok(text) = fs::read_to_string(dir.path.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Kills every process in the cgroup and waits until none is left, at most `timeout`.
    /// The cgroup is the truth about what a container runs: its init, what init forked, and
    /// exec'd processes, whoever their parent is now. A cgroup2 directory is emptied with
    /// `cgroup.kill` (atomic against forks); v1 processes are frozen first where the freezer is
    /// mounted, so none can fork between the listing and the signal.
    pub fn kill_all(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let pids = self.all_procs();
            if pids.is_empty() {
                return Ok(());
            }
            let mut killed = false;
            for dir in self.dirs.iter().filter(|d| d.has("cgroup2")) {
                let file = dir.path.join("cgroup.kill");
                killed |= file.exists() && fs::write(&file, "1").is_ok();
            }
            // On a hybrid host a process may sit in the v1 hierarchies only: those are
            // signalled one by one whatever cgroup.kill did.
            if !killed || self.layout != Layout::V2 {
                let freezer = self.dir_with("freezer").map(|d| d.join("freezer.state"));
                let frozen = freezer.as_ref().is_some_and(|f| fs::write(f, "FROZEN").is_ok());
                for pid in self.all_procs() {
                    // SAFETY: kill(2) has no memory effects; the pid was just read from the
                    // cgroup, and SIGKILL of a frozen task is delivered on thaw.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                if let (true, Some(f)) = (frozen, &freezer) {
                    let _ = fs::write(f, "THAWED");
                }
            }
            if start.elapsed() > timeout {
                return Err(CgroupError::StillPopulated { path: self.path.clone(), count: pids.len() });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> Result<u64> {
        let file = match self.layout {
            Layout::V2 => self.dirs.first().map(|d| d.path.join("memory.events")),
            Layout::V1 | Layout::Hybrid => self.dir_with("memory").map(|d| d.join("memory.oom_control")),
        };
        let Some(file) = file else {
            return Ok(0);
        };
        Ok(parse_counter(&read_trimmed(&file)?, "oom_kill").unwrap_or(0))
    }

    /// Whether the OOM killer has killed anything in this cgroup.
    /// Whether the OOM killer can be turned off for a container: only the v1 memory
    /// controller has `memory.oom_control`.
    pub fn oom_kill_disable_supported() -> bool {
        match Layout::detect() {
            Layout::V2 => false,
            Layout::V1 | Layout::Hybrid => v1_mounts()
                .map(|dirs| {
                    dirs.iter().any(|(root, ctrls)| {
                        ctrls.iter().any(|c| c == "memory") && root.join("memory.oom_control").exists()
                    })
                })
                .unwrap_or(false),
        }
    }

    pub fn memory_oom_killed(&self) -> bool {
        self.oom_kills().map(|n| n > 0).unwrap_or(false)
    }

    /// Removes the cgroup's directory in every hierarchy. Missing directories are fine; on EBUSY
    /// it retries briefly while dying processes leave. Goes on after a failure and returns the
    /// first error.
    pub fn remove(&self) -> Result<()> {
        let mut first_err = None;
        for dir in &self.dirs {
            if let Err(e) = rmdir_retry(&dir.path) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// How many hierarchies a process of the cgroup `path` is in (one line each in /proc/PID/cgroup).
pub(crate) fn hierarchy_count(path: &str) -> Result<usize> {
    Ok(Cgroup::locate(path)?.dirs.len())
}

/// One hierarchy of a container's cgroup as the container sees it under /sys/fs/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerView {
    /// The container's own directory in the hierarchy, on the host.
    pub source: PathBuf,
    /// Its name under /sys/fs/cgroup, as on the host (`memory`, `cpu,cpuacct`, `unified`);
    /// empty on v2, where the directory is /sys/fs/cgroup itself.
    pub name: String,
    /// Symlinks to `name`, one per controller of a co-mounted hierarchy (`cpu`, `cpuacct`).
    pub links: Vec<String>,
}

/// What /sys/fs/cgroup shows in a container whose cgroup is `path` (as runc shows it): its own
/// directory of each hierarchy, so that a process reads its limits where it expects them
/// (`memory/memory.limit_in_bytes`). Not the unified one of a hybrid host: runc leaves it out,
/// and the same bundle looks the same under both.
pub(crate) fn container_view(path: &str) -> Result<Vec<ContainerView>> {
    let cg = Cgroup::locate(path)?;
    let hybrid = cg.layout == Layout::Hybrid;
    Ok(cg
        .dirs
        .into_iter()
        .filter(|d| !(hybrid && d.has("cgroup2")))
        .map(|d| {
            let name = match cg.layout {
                Layout::V2 => String::new(),
                Layout::V1 | Layout::Hybrid => {
                    d.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
                }
            };
            let links = if name.contains(',') { name.split(',').map(str::to_string).collect() } else { Vec::new() };
            ContainerView { source: d.path, name, links }
        })
        .collect())
}

fn rmdir_retry(path: &Path) -> Result<()> {
    let start = Instant::now();
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < REMOVE_WAIT => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(source) => return Err(CgroupError::Rmdir { path: path.to_path_buf(), source }),
        }
    }
}

/// Turns on, in `dir`'s `cgroup.subtree_control`, every controller `dir` offers, as runc does:
/// a container's cgroup then has the interface files (hugetlb, rdma, misc too) that it has
/// under dockerd, and its limits for any of them can be set.
fn enable_v2_controllers(dir: &Path) -> Result<()> {
    let available = read_trimmed(&dir.join("cgroup.controllers"))?;
    let enabled = read_trimmed(&dir.join("cgroup.subtree_control"))?;
    for c in available.split_whitespace() {
        if !enabled.split_whitespace().any(|a| a == c) {
            write_file(&dir.join("cgroup.subtree_control"), &format!("+{c}"))?;
        }
    }
    Ok(())
}

/// dockerd's `cpu-rt-period`/`cpu-rt-runtime`: every cgroup from the top of the v1 `cpu`
/// hierarchy down to `parent` (made where missing) gets the period and the runtime that are
/// not 0, parents first, since a child's budget is bounded by its parent's.
pub fn set_realtime_budget(parent: &str, period: i64, runtime: i64) -> Result<()> {
    if period == 0 && runtime == 0 {
        return Ok(());
    }
    if !parent.starts_with('/') || parent.split('/').any(|c| c == "..") {
        return Err(CgroupError::InvalidPath { path: parent.to_string() });
    }
    let mounts = if Layout::detect() == Layout::V2 { Vec::new() } else { v1_mounts()? };
    let Some((root, _)) = mounts.into_iter().find(|(_, cs)| cs.iter().any(|c| c == "cpu")) else {
        return Err(CgroupError::NoHierarchy);
    };
    let mut dir = root;
    for part in parent.split('/').filter(|c| !c.is_empty() && *c != ".") {
        dir.push(part);
        fs::create_dir_all(&dir).map_err(|source| CgroupError::Mkdir { path: dir.clone(), source })?;
        if period != 0 {
            write_file(&dir.join("cpu.rt_period_us"), &period.to_string())?;
        }
        if runtime != 0 {
            write_file(&dir.join("cpu.rt_runtime_us"), &runtime.to_string())?;
        }
    }
    Ok(())
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn read_trimmed(path: &Path) -> Result<String> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| CgroupError::Read { path: path.to_path_buf(), source })
}

/// v1 `blkio`, as runc writes it: the weight to `blkio.weight`, or to BFQ's file where the
/// kernel has only that one; throttles one device a line.
fn apply_blkio_v1(dir: &Path, io: &BlockIo) -> Result<()> {
    let (weight_file, device_file) = if dir.join("blkio.weight").exists() {
        ("blkio.weight", "blkio.weight_device")
    } else {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    };
    if let Some(w) = io.weight.filter(|w| *w > 0) {
        write_file(&dir.join(weight_file), &w.to_string())?;
    }
    for d in &io.weight_device {
        if let Some(w) = d.weight {
            write_file(&dir.join(device_file), &format!("{}:{} {w}", d.major, d.minor))?;
        }
    }
    for (file, list) in [
        ("blkio.throttle.read_bps_device", &io.throttle_read_bps_device),
        ("blkio.throttle.write_bps_device", &io.throttle_write_bps_device),
        ("blkio.throttle.read_iops_device", &io.throttle_read_iops_device),
        ("blkio.throttle.write_iops_device", &io.throttle_write_iops_device),
    ] {
        for d in list {
            write_file(&dir.join(file), &format!("{}:{} {}", d.major, d.minor, d.rate))?;
        }
    }
    Ok(())
}

/// v2 `io`, as runc writes it: with BFQ the weight (and per-device weights, which only BFQ
/// has) to `io.bfq.weight`, else the weight converted to `io.weight`; throttles to `io.max`.
fn apply_io_v2(dir: &Path, io: &BlockIo) -> Result<()> {
    let bfq = dir.join("io.bfq.weight");
    let has_bfq = bfq.exists();
    if let Some(w) = io.weight.filter(|w| *w > 0) {
        if has_bfq {
            write_file(&bfq, &w.to_string())?;
        } else {
            write_file(&dir.join("io.weight"), &blkio_to_io_weight(w).to_string())?;
        }
    }
    if has_bfq {
        for d in &io.weight_device {
            if let Some(w) = d.weight {
                write_file(&bfq, &format!("{}:{} {w}", d.major, d.minor))?;
            }
        }
    }
    for (key, list) in [
        ("rbps", &io.throttle_read_bps_device),
        ("wbps", &io.throttle_write_bps_device),
        ("riops", &io.throttle_read_iops_device),
        ("wiops", &io.throttle_write_iops_device),
    ] {
        for d in list {
            write_file(&dir.join("io.max"), &format!("{}:{} {key}={}", d.major, d.minor, d.rate))?;
        }
    }
    Ok(())
}

/// runc's conversion of a v1 blkio weight (10..1000) to a v2 io weight (1..10000).
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (u64::from(weight.max(10)) - 10) * 9999 / 990
}

/// What the host's cgroups can limit, as dockerd's `sysinfo` finds it: a control the host
/// lacks is discarded with a warning (or refused) at create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    pub layout: Option<Layout>,
    pub swap_limit: bool,
    pub memory_reservation: bool,
    pub memory_swappiness: bool,
    pub kernel_memory: bool,
    pub kernel_memory_tcp: bool,
    pub oom_kill_disable: bool,
    pub cpu_realtime: bool,
    pub blkio_weight: bool,
    pub blkio_weight_device: bool,
    pub blkio_read_bps: bool,
    pub blkio_write_bps: bool,
    pub blkio_read_iops: bool,
    pub blkio_write_iops: bool,
}

impl Support {
    /// Reads the root of each hierarchy (the files a child cgroup gets are the root's).
    pub fn detect() -> Support {
        let layout = Layout::detect();
        match layout {
            Layout::V2 => {
                let controllers =
                    fs::read_to_string(Path::new(CGROUP_ROOT).join("cgroup.controllers")).unwrap_or_default();
                let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
                let io = has("io");
                // dockerd: the v2 memory controller has no swappiness, kernel memory or
                // OOM-killer switch, and v2 has no real-time group scheduling.
                // As dockerd: swap can be limited when the daemon's own cgroup has
                // memory.swap.max (the root cgroup has none, so a daemon there reports none).
                let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                let swap_file = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .map(|p| Path::new(CGROUP_ROOT).join(p.trim_start_matches('/')).join("memory.swap.max"));
                Support {
                    layout: Some(layout),
                    swap_limit: has("memory") && swap_file.is_some_and(|f| f.exists()),
                    memory_reservation: has("memory"),
                    blkio_weight: io,
                    blkio_weight_device: io,
                    blkio_read_bps: io,
                    blkio_write_bps: io,
                    blkio_read_iops: io,
                    blkio_write_iops: io,
                    ..Support::default()
                }
            }
            Layout::V1 | Layout::Hybrid => {
                let mounts = v1_mounts().unwrap_or_default();
                let root = |c: &str| mounts.iter().find(|(_, cs)| cs.iter().any(|x| x == c)).map(|(p, _)| p.clone());
                let file = |c: &str, f: &str| root(c).is_some_and(|r| r.join(f).exists());
                Support {
                    layout: Some(layout),
                    swap_limit: file("memory", "memory.memsw.limit_in_bytes"),
                    memory_reservation: file("memory", "memory.soft_limit_in_bytes"),
                    memory_swappiness: file("memory", "memory.swappiness"),
                    kernel_memory: file("memory", "memory.kmem.limit_in_bytes"),
                    kernel_memory_tcp: file("memory", "memory.kmem.tcp.limit_in_bytes"),
                    oom_kill_disable: file("memory", "memory.oom_control"),
                    cpu_realtime: file("cpu", "cpu.rt_period_us") && file("cpu", "cpu.rt_runtime_us"),
                    blkio_weight: file("blkio", "blkio.weight"),
                    blkio_weight_device: file("blkio", "blkio.weight_device"),
                    blkio_read_bps: file("blkio", "blkio.throttle.read_bps_device"),
                    blkio_write_bps: file("blkio", "blkio.throttle.write_bps_device"),
                    blkio_read_iops: file("blkio", "blkio.throttle.read_iops_device"),
                    blkio_write_iops: file("blkio", "blkio.throttle.write_iops_device"),
                }
            }
        }
    }
}

/// The limits of `r` that systemd has unit properties for, in its units (v2 semantics); a
/// limit given as none (-1, or 0 where Docker means none) is systemd's infinity.
fn scope_properties(r: &Resources) -> Vec<(&'static str, crate::systemd::Value)> {
    use crate::systemd::Value;
    let bytes = |v: i64| Value::U64(if v > 0 { v as u64 } else { u64::MAX });
    let mut props = Vec::new();
    if let Some(mem) = &r.memory {
        if let Some(limit) = mem.limit {
            props.push(("MemoryMax", bytes(limit)));
        }
        if let Some(res) = mem.reservation {
            props.push(("MemoryLow", Value::U64(res.max(0) as u64)));
        }
    }
    if let Some(pids) = &r.pids {
        props.push(("TasksMax", bytes(pids.limit)));
    }
    if let Some(cpu) = &r.cpu {
        if let Some(shares) = cpu.shares.filter(|s| *s > 0) {
            props.push(("CPUWeight", Value::U64(shares_to_weight(shares))));
        }
        if let Some(quota) = cpu.quota {
            let period = cpu.period.filter(|p| *p > 0).unwrap_or(100_000);
            let per_sec = if quota > 0 { quota as u64 * 1_000_000 / period } else { u64::MAX };
            props.push(("CPUQuotaPerSecUSec", Value::U64(per_sec)));
            props.push(("CPUQuotaPeriodUSec", Value::U64(period)));
        }
    }
    props
}

/// The standard conversion of v1 cpu shares (2..262144) to a v2 cpu weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// A hugepage size as the cgroup files name it (`2MB`, `1GB`); anything else is refused
/// before it becomes part of a path.
fn page_size(size: &str) -> Result<&str> {
    let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !size.ends_with("B")
        || size.len() - digits.len() != 2
    {
        return Err(CgroupError::Invalid(format!("hugepage size {size:?} is not a size like 2MB or 1GB")));
    }
    Ok(size)
}

/// A `unified` key: a file of the container's own cgroup, never a path out of it.
fn unified_file(name: &str) -> Result<&str> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') || !name.contains('.') {
        return Err(CgroupError::Invalid(format!("unified cgroup setting {name:?} is not a cgroup file name")));
    }
    Ok(name)
}

fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

fn v2_max(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

fn cpu_max(quota: Option<i64>, period: Option<u64>) -> String {
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        _ => "max".to_string(),
    };
    format!("{q} {}", period.filter(|p| *p > 0).unwrap_or(100_000))
}

/// The device rules a container's cgroup gets, as runc computes them for the same bundle:
/// everything denied, then the spec's rules in order, then the devices every container may
/// use (runc's `AllowedDevices`). A spec without rules therefore gets no access to the host's
/// disks, not the kernel's default of all devices.
pub(crate) fn device_rules(spec: &[DeviceRule]) -> Vec<DeviceRule> {
    let rule = |allow: bool, kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| DeviceRule {
        allow,
        kind: Some(kind.to_string()),
        major,
        minor,
        access: Some(access.to_string()),
    };
    let mut out = vec![rule(false, "a", None, None, "rwm")];
    out.extend(spec.iter().cloned());
    out.extend([
        rule(true, "c", None, None, "m"),
        rule(true, "b", None, None, "m"),
        rule(true, "c", Some(1), Some(3), "rwm"),
        rule(true, "c", Some(1), Some(8), "rwm"),
        rule(true, "c", Some(1), Some(7), "rwm"),
        rule(true, "c", Some(5), Some(0), "rwm"),
        rule(true, "c", Some(1), Some(5), "rwm"),
        rule(true, "c", Some(1), Some(9), "rwm"),
        rule(true, "c", Some(136), None, "rwm"),
        rule(true, "c", Some(5), Some(2), "rwm"),
        rule(true, "c", Some(10), Some(200), "rwm"),
    ]);
    out
}

fn device_rule_v1(rule: &DeviceRule) -> String {
    let num = |n: Option<i64>| match n {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".to_string(),
    };
    let kind = rule.kind.as_deref().unwrap_or("a");
    if kind == "a" && rule.major.is_none() && rule.minor.is_none() {
        return "a".to_string();
    }
    format!("{kind} {}:{} {}", num(rule.major), num(rule.minor), rule.access.as_deref().unwrap_or("rwm"))
}

/// Finds `key N` in a flat-keyed cgroup file such as memory.events.
fn parse_counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The write that warms the kernel's lock leaves the process where it was.
    #[test]
    fn rejoining_the_own_cgroup_changes_nothing() {
        if Layout::detect() == Layout::V2 {
            eprintln!("pure cgroup v2: nothing to warm");
            return;
        }
        let before = fs::read_to_string("/proc/self/cgroup").unwrap_or_else(|e| panic!("{e}"));
        rejoin_own_v1_cgroup().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_to_string("/proc/self/cgroup").unwrap_or_else(|e| panic!("{e}")), before);
        let file = own_v1_procs_file().unwrap_or_else(|| panic!("no v1 cgroup of our own"));
        let procs = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(procs.lines().any(|l| l.trim() == std::process::id().to_string()), "{} lacks our pid", file.display());
    }

    /// The lines runc writes, checked on plain files (each write replaces the file, so one
    /// device a list).
    #[test]
    fn block_io_files_are_written_as_runc_writes_them() {
        use crate::spec::{ThrottleDevice, WeightDevice};
        let dir = std::env::temp_dir().join(format!("wharf-blkio-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let io = BlockIo {
            weight: Some(500),
            weight_device: vec![WeightDevice { major: 7, minor: 0, weight: Some(200) }],
            throttle_read_bps_device: vec![ThrottleDevice { major: 7, minor: 0, rate: 1 << 20 }],
            throttle_write_iops_device: vec![ThrottleDevice { major: 7, minor: 1, rate: 100 }],
            ..Default::default()
        };
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap_or_default();
        // v1 without blkio.weight (BFQ only): the BFQ files.
        apply_blkio_v1(&dir, &io).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("blkio.bfq.weight"), "500");
        assert_eq!(read("blkio.bfq.weight_device"), "7:0 200");
        assert_eq!(read("blkio.throttle.read_bps_device"), "7:0 1048576");
        assert_eq!(read("blkio.throttle.write_iops_device"), "7:1 100");
        // v2 without BFQ: io.weight converted, no per-device weight, throttles in io.max.
        let no_weight_devices = BlockIo { throttle_read_bps_device: Vec::new(), ..io.clone() };
        apply_io_v2(&dir, &no_weight_devices).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read("io.weight"), "4950");
        assert_eq!(read("io.max"), "7:1 wiops=100");
        assert!(!dir.join("io.bfq.weight").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn blkio_weight_conversion() {
        for (blkio, io) in [(10, 1), (1000, 10_000), (500, 4950), (0, 0)] {
            assert_eq!(blkio_to_io_weight(blkio), io, "blkio weight {blkio}");
        }
    }

    #[test]
    fn weight_conversion() {
        for (shares, weight) in [(2, 1), (1024, 39), (262_144, 10_000), (1, 1), (0, 100), (512, 20)] {
            assert_eq!(shares_to_weight(shares), weight, "shares {shares}");
        }
    }

    #[test]
    fn hugepage_sizes_and_unified_names_stay_file_names() {
        assert_eq!(page_size("2MB").unwrap(), "2MB");
        assert_eq!(page_size("1GB").unwrap(), "1GB");
        assert_eq!(page_size("64KB").unwrap(), "64KB");
        for bad in ["", "MB", "2M", "2MBB", "../2MB", "2 MB", "2mb"] {
            assert!(page_size(bad).is_err(), "{bad:?}");
        }
        assert_eq!(unified_file("memory.high").unwrap(), "memory.high");
        for bad in ["", "memory", "../memory.max", "a/b.c", ".hidden.x"] {
            assert!(unified_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn limits_render() {
        assert_eq!(pids_max(0), "max");
        assert_eq!(pids_max(-1), "max");
        assert_eq!(pids_max(64), "64");
        assert_eq!(v2_max(-1), "max");
        assert_eq!(v2_max(1 << 20), "1048576");
        assert_eq!(cpu_max(Some(50_000), Some(100_000)), "50000 100000");
        assert_eq!(cpu_max(None, Some(20_000)), "max 20000");
        assert_eq!(cpu_max(Some(-1), None), "max 100000");
    }

    #[test]
    fn device_rules_render() {
        let table = [
            ((false, Some("a"), None, None, Some("rwm")), "a"),
            ((true, Some("c"), Some(1), Some(3), Some("rwm")), "c 1:3 rwm"),
            ((true, Some("c"), None, None, Some("m")), "c *:* m"),
            ((true, Some("b"), Some(8), Some(-1), None), "b 8:* rwm"),
        ];
        for ((allow, kind, major, minor, access), want) in table {
            let rule =
                DeviceRule { allow, kind: kind.map(str::to_string), major, minor, access: access.map(str::to_string) };
            assert_eq!(device_rule_v1(&rule), want);
        }
    }

    #[test]
    fn device_rules_deny_first_and_allow_the_standard_devices_last() {
        let spec = [DeviceRule {
            allow: true,
            kind: Some("c".to_string()),
            major: Some(4),
            minor: Some(64),
            access: Some("rw".to_string()),
        }];
        let rendered: Vec<String> = device_rules(&spec).iter().map(device_rule_v1).collect();
        assert_eq!(rendered[0], "a");
        assert_eq!(rendered[1], "c 4:64 rw");
        for want in ["c *:* m", "b *:* m", "c 1:3 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"] {
            assert!(rendered[2..].iter().any(|r| r == want), "{want} missing from {rendered:?}");
        }
        assert_eq!(device_rules(&[]).len(), rendered.len() - 1);
    }

    #[test]
    fn counters_parse() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2";
        assert_eq!(parse_counter(v1, "oom_kill"), Some(2));
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0";
        assert_eq!(parse_counter(v2, "oom_kill"), Some(1));
        assert_eq!(parse_counter("", "oom_kill"), None);
    }

    /// A container from before wharf used the unified and systemd hierarchies has no
    /// directory there; a restarted daemon still opens its cgroup.
    #[test]
    fn open_tolerates_missing_optional_hierarchies() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || Layout::detect() == Layout::V2 {
            return;
        }
        let path = format!("/wharf-test-open-{}", std::process::id());
        let cg = Cgroup::create(&path, &Resources::default()).unwrap_or_else(|e| panic!("{e}"));
        let optional: Vec<PathBuf> =
            cg.dirs.iter().filter(|d| d.has("name=systemd") || d.has("cgroup2")).map(|d| d.path.clone()).collect();
        for d in &optional {
            let _ = fs::remove_dir(d);
        }
        let opened = Cgroup::open(&path);
        let _ = cg.remove();
        let opened = opened.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.dirs().len(), cg.dirs().len() - optional.len());
        assert!(matches!(Cgroup::open(&path), Err(CgroupError::NotFound { .. })));
    }

    #[test]
    fn paths_are_checked() {
        assert!(matches!(Cgroup::locate("relative/x"), Err(CgroupError::InvalidPath { .. })));
        assert!(matches!(Cgroup::locate("/wharf/../etc"), Err(CgroupError::InvalidPath { .. })));
    }
}
