//! The daemon itself: ping, version, info, daemon.json validation.

use crate::harness::{http_unix, Daemon, DaemonOptions};

#[test]
fn ping_version_info() {
    let d = Daemon::start();
    let ping = http_unix(&d.sock, "GET", "/_ping").expect("ping");
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");
    assert!(ping.to_lowercase().contains("api-version:"), "{ping}");
    d.wharf(&["version"]).ok().mentions(&["Server", "API version"]);
    d.docker(&["version"]).ok().mentions(&["Server"]);
    d.wharf(&["info"]).ok();
    d.docker(&["info"]).ok();
}

#[test]
fn unknown_config_key_is_refused() {
    let opts =
        DaemonOptions { config_json: Some(r#"{"debug": true, "no-such-key": 1}"#.to_string()), ..Default::default() };
    match Daemon::try_start(opts) {
        Ok(d) => panic!("wharfd started with an unknown key; log:\n{}", d.log_text()),
        Err(e) => {
            assert!(e.code.is_some_and(|c| c != 0), "exit code {:?}\n{}", e.code, e.log);
            assert!(e.log.contains("no-such-key"), "the error does not name the key:\n{}", e.log);
        }
    }
}

#[test]
fn config_file_that_is_not_json_is_refused() {
    let opts = DaemonOptions { config_json: Some("{ not json".to_string()), ..Default::default() };
    match Daemon::try_start(opts) {
        Ok(d) => panic!("wharfd started with a broken config; log:\n{}", d.log_text()),
        Err(e) => assert!(e.code.is_some_and(|c| c != 0), "{}", e.log),
    }
}

#[test]
fn a_valid_config_file_is_accepted() {
    let opts = DaemonOptions {
        config_json: Some(r#"{"debug": true, "log-level": "debug"}"#.to_string()),
        ..Default::default()
    };
    let d = Daemon::start_with(opts);
    d.wharf(&["version"]).ok();
}

#[test]
fn docker_cli_without_a_daemon_fails_cleanly() {
    // The harness itself: a socket that nobody serves.
    let dir = crate::harness::TempDir::new("wharf-e2e-nosock");
    let sock = dir.0.join("none.sock");
    let mut cmd = std::process::Command::new("docker");
    cmd.env("DOCKER_HOST", format!("unix://{}", sock.display())).env("DOCKER_CONFIG", &dir.0).arg("version");
    let out = crate::harness::run_cmd(cmd, std::time::Duration::from_secs(30));
    out.fails().mentions(&["Cannot connect"]);
}

/// `exec-opts: native.cgroupdriver=systemd` copied from a Docker host: where systemd is not
/// the init (as here), wharfd starts with one warning and manages the containers' cgroups
/// itself; where it is, it refuses at start and says to use cgroupfs.
#[test]
fn systemd_cgroup_driver_falls_back_to_cgroupfs_without_systemd() {
    let json = r#"{"exec-opts": ["native.cgroupdriver=systemd"]}"#;
    let opts = DaemonOptions { config_json: Some(json.to_string()), ..Default::default() };
    if std::path::Path::new("/run/systemd/system").is_dir() {
        match Daemon::try_start(opts) {
            Ok(d) => panic!("wharfd started with the systemd driver under systemd; log:\n{}", d.log_text()),
            Err(e) => assert!(e.log.contains("systemd runs on this host"), "{}", e.log),
        }
        return;
    }
    let d = Daemon::start_with(opts);
    let log = d.log_text();
    assert_eq!(log.lines().filter(|l| l.contains("managed directly (cgroupfs)")).count(), 1, "{log}");
    let image = d.pull("library/busybox:latest");
    let out = d.docker(&["run", "--rm", &image, "cat", "/proc/self/cgroup"]);
    out.ok();
    // The container's cgroup is under the daemon's cgroup parent, as with cgroupfs.
    assert!(out.stdout.contains(&d.cgroup_parent), "{out}");
}
