//! OCI runtime: the bundle config.json types and the container init (namespaces, mounts, pivot_root, cgroups).

pub mod spec;
