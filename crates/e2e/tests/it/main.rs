//! End-to-end tests: a real registry, a real wharfd per test, the wharf CLI and the docker CLI.

// Test code: a panic (an unwrap, or a slice off a char boundary) is the test's failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::string_slice)]

/// Defines a test twice, once through `wharf` and once through the real `docker` CLI:
/// `both!(name)` expects `fn name(cli: Cli)` in scope.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[test]
            fn wharf() {
                super::$name(crate::harness::Cli::Wharf)
            }
            #[test]
            fn docker() {
                super::$name(crate::harness::Cli::Docker)
            }
        }
    };
}

mod harness;

mod apparmor;
mod archive;
mod bad_input;
mod build;
mod build_diff;
mod build_flags;
mod build_py;
mod cgroup_v2;
mod cli_context;
mod cli_flags;
mod cli_manifest;
mod commit;
mod compose;
mod compose_diff;
mod copy;
mod cpu;
mod crash;
mod credentials;
mod cri;
mod daemon;
mod daemon_ops;
mod docker_lifecycle;
mod docker_py;
mod dockerd;
mod drain;
mod events;
mod exec;
mod export_import;
mod fixtures;
mod formats;
mod health;
mod hostile;
mod images;
mod images_io;
mod init;
mod interactive;
mod isolation;
mod layers;
mod lifecycle;
mod lifecycle_extras;
mod log_rotation;
mod logs;
mod many_containers;
mod mirrors;
mod network;
mod network_flags;
mod network_ipv6;
mod network_options;
mod network_order;
mod network_user;
mod proxy;
mod prune;
mod ps;
mod pull_faults;
mod registry_auth;
mod registry_harbor;
mod registry_harbor_audit;
mod registry_harbor_proxy;
mod registry_harbor_retention;
mod registry_harbor_ui;
mod registry_harbor_ui_policies;
mod registry_pg;
mod registry_s3;
mod registry_scale;
mod registry_search;
mod registry_server;
mod registry_tls;
mod resource_controls;
mod resources;
mod restart_policy;
mod run;
mod run_flags;
mod runc_compare;
mod runtime_runc;
mod ssh_host;
mod systemd_driver;
mod userns;
mod volumes;
