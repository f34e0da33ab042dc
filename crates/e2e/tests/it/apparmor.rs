//! AppArmor as dockerd applies it. Each test checks both kinds of host: where the kernel has
//! AppArmor (the pure cgroup v2 guest, whose Debian kernel enables it, runs these), containers
//! are confined by wharf's default profile; where it has not (this machine), profiles are
//! accepted and ignored, and `docker info` and inspect say nothing of AppArmor.

use std::process::Command;
use std::time::Duration;

use crate::harness::{run_cmd, Daemon};

pub(crate) fn host_has_apparmor() -> bool {
    std::fs::read("/sys/module/apparmor/parameters/enabled").is_ok_and(|b| b.first() == Some(&b'Y'))
        && std::path::Path::new("/sys/kernel/security/apparmor").is_dir()
}

fn security_options(d: &Daemon) -> String {
    d.docker(&["info", "--format", "{{json .SecurityOptions}}"]).ok().trimmed().to_string()
}

fn inspect_profile(d: &Daemon, name: &str) -> String {
    d.docker(&["inspect", "--format", "{{.AppArmorProfile}}", name]).ok().trimmed().to_string()
}

/// The profile the process runs under, as the kernel reports it (`name (mode)`).
const CURRENT: &str = "cat /proc/self/attr/current";

#[test]
fn containers_run_under_the_default_profile_where_the_host_has_apparmor() {
    let d = Daemon::start();
    let img = d.pull("library/busybox:latest");
    let run = |flags: &[&str], script: &str| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[img.as_str(), "sh", "-c", script]);
        d.docker(&args)
    };
    // A mount is what the default profile refuses even with CAP_SYS_ADMIN (the default
    // seccomp profile lets mount through once the capability is there).
    let mount = "mkdir -p /m && mount -t tmpfs none /m && echo mounted";
    if !host_has_apparmor() {
        assert!(!security_options(&d).contains("apparmor"), "{}", security_options(&d));
        run(&["--cap-add", "SYS_ADMIN"], mount).ok().mentions(&["mounted"]);
        // Accepted and ignored, as dockerd on such a host.
        run(&["--security-opt", "apparmor=no-such-profile"], "true").ok();
        d.docker(&["create", "--name", "aa-c", &img, "true"]).ok();
        assert_eq!(inspect_profile(&d, "aa-c"), "");
        return;
    }
    assert!(security_options(&d).contains("name=apparmor"), "{}", security_options(&d));
    assert_eq!(run(&[], CURRENT).ok().trimmed(), "wharf-default (enforce)");
    let refused = run(&["--cap-add", "SYS_ADMIN"], mount);
    refused.fails().mentions(&["permission denied"]);
    run(&["--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"], mount).ok().mentions(&["mounted"]);
    assert_eq!(run(&["--privileged"], CURRENT).ok().trimmed(), "unconfined");
    // Docker's name for its default means wharf's.
    assert_eq!(run(&["--security-opt", "apparmor=docker-default"], CURRENT).ok().trimmed(), "wharf-default (enforce)");
    // The host's /proc knobs and the kernel's memory stay out of reach of a root container.
    let out = run(&["--security-opt", "seccomp=unconfined"], "cat /proc/kcore >/dev/null 2>&1; echo kcore=$?");
    assert_eq!(out.ok().trimmed(), "kcore=1", "{out}");

    // An exec'd process is confined as its container is.
    d.docker(&["run", "-d", "--name", "web", &img, "sleep", "300"]).ok();
    assert_eq!(d.docker(&["exec", "web", "sh", "-c", CURRENT]).ok().trimmed(), "wharf-default (enforce)");
    assert_eq!(inspect_profile(&d, "web"), "wharf-default");
    d.docker(&["rm", "-f", "web"]).ok();
}

#[test]
fn a_named_profile_applies_and_one_not_loaded_is_refused() {
    let d = Daemon::start();
    let img = d.pull("library/busybox:latest");
    if !host_has_apparmor() {
        // Nothing to load the profile into: dockerd ignores the option here, and so does wharf.
        d.docker(&["run", "--rm", "--security-opt", "apparmor=wharf-e2e-missing", &img, "true"]).ok();
        return;
    }
    let name = format!("wharf-e2e-{}", std::process::id());
    let file = d.dir.join("profile");
    // Everything allowed but writes under /tmp: shows that this profile, not the default, rules.
    std::fs::write(
        &file,
        format!("profile {name} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  capability,\n  network,\n  deny /tmp/** w,\n}}\n"),
    )
    .unwrap();
    let load = |flag: &str| {
        let mut c = Command::new("apparmor_parser");
        c.arg(flag).arg(&file);
        run_cmd(c, Duration::from_secs(60))
    };
    load("-Kr").ok();
    let opt = format!("apparmor={name}");
    let out = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        &img,
        "sh",
        "-c",
        "cat /proc/self/attr/current; touch /tmp/x 2>&1; echo touch=$?",
    ]);
    let removed = load("-R");
    out.ok().mentions(&[&format!("{name} (enforce)"), "permission denied", "touch=1"]);
    removed.ok();
    // Once unloaded, asking for it is an error that names it, and no container is left.
    d.docker(&["run", "--name", "gone", "--security-opt", &opt, &img, "true"]).fails().mentions(&[&name, "not loaded"]);
    let state = d.docker(&["ps", "-a", "--filter", "name=gone", "--format", "{{.Status}}"]);
    assert!(!state.ok().trimmed().starts_with("Up"), "{state}");
}
