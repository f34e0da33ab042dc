//! OCI runtime: the bundle config.json types and the container init (namespaces, mounts, pivot_root, cgroups).

pub mod apparmor;
pub mod caps;
pub mod cgroups;
pub mod container;
pub mod devices_bpf;
pub mod exec;
mod init;
pub mod phases;
pub mod rlimit;
pub mod seccomp;
pub mod spec;
pub mod systemd;
pub mod tty;
mod userns;

pub use cgroups::{Cgroup, CgroupError, Layout};
pub use container::{spawn, ChildStdio, SpawnError, Spawned};
pub use exec::{exec, ExecOptions};
