//! `run` in the foreground: output, exit codes, entrypoint and cmd, env, workdir, user,
//! hostname, networks, and the image kinds (zstd, uncompressed, multi-arch).

use std::collections::BTreeSet;

use crate::harness::{registry, Cli, Daemon};

fn run_echo_hello(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "echo", "hello"]);
    out.ok();
    assert_eq!(out.stdout, "hello\n", "{out}");
    // --rm leaves nothing behind.
    let ps = d.cli(cli, &["ps", "-aq"]);
    ps.ok();
    assert_eq!(ps.trimmed(), "", "{ps}");
}
both!(run_echo_hello);

fn run_pulls_missing_image(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    let out = d.cli(cli, &["run", "--rm", &image, "echo", "pulled-on-demand"]);
    out.ok();
    assert!(out.stdout.contains("pulled-on-demand"), "{out}");
}
both!(run_pulls_missing_image);

fn exit_codes_pass_through(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["run", "--rm", &image, "sh", "-c", "exit 3"]).code_is(3);
    d.cli(cli, &["run", "--rm", &image, "false"]).code_is(1);
    d.cli(cli, &["run", "--rm", &image, "/no/such/command"]).code_is(127);
    // A file that is not executable: 126, as docker.
    d.cli(cli, &["run", "--rm", &image, "/etc/passwd"]).code_is(126);
    // The container's stderr reaches ours.
    let out = d.cli(cli, &["run", "--rm", &image, "sh", "-c", "echo to-stderr >&2"]);
    out.ok();
    assert!(out.stderr.contains("to-stderr"), "{out}");
}
both!(exit_codes_pass_through);

fn stdin_is_empty_without_i(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    // Without -i the container's stdin is empty: cat ends at once.
    d.cli(cli, &["run", "--rm", &image, "cat"]).ok();
}
both!(stdin_is_empty_without_i);

fn entrypoint_and_cmd(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("test/entrypoint:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image]);
    assert_eq!(out.ok().stdout, "ep default\n", "{out}");
    let out = d.cli(cli, &["run", "--rm", &image, "x", "y"]);
    assert_eq!(out.ok().stdout, "ep x y\n", "{out}");
    // --entrypoint resets the image's Cmd, as docker does.
    let out = d.cli(cli, &["run", "--rm", "--entrypoint", "echo", &image]);
    assert_eq!(out.ok().stdout, "\n", "{out}");
    let out = d.cli(cli, &["run", "--rm", "--entrypoint", "echo", &image, "z"]);
    assert_eq!(out.ok().stdout, "z\n", "{out}");
    // The default Cmd of busybox is sh, which exits at once on empty stdin.
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["run", "--rm", &bb]).ok();
}
both!(entrypoint_and_cmd);

fn env_workdir_user_hostname(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    let wd = registry().image("test/workdir:latest");
    d.cli(cli, &["pull", &bb]).ok();
    d.cli(cli, &["pull", &wd]).ok();

    let out = d.cli(cli, &["run", "--rm", "-e", "FOO=bar", "--env", "EMPTY=", &bb, "env"]);
    out.ok();
    let env: BTreeSet<&str> = out.stdout.lines().collect();
    for want in ["FOO=bar", "EMPTY=", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"]
    {
        assert!(env.contains(want), "env lacks {want}:\n{out}");
    }
    assert!(env.iter().any(|l| l.starts_with("HOSTNAME=")), "{out}");

    let out = d.cli(cli, &["run", "--rm", "-w", "/tmp", &bb, "pwd"]);
    assert_eq!(out.ok().stdout, "/tmp\n", "{out}");
    // A missing working directory is created, as docker does.
    let out = d.cli(cli, &["run", "--rm", "-w", "/made/by/run", &bb, "pwd"]);
    assert_eq!(out.ok().stdout, "/made/by/run\n", "{out}");

    let out = d.cli(cli, &["run", "--rm", "-u", "app", &bb, "id", "-u"]);
    assert_eq!(out.ok().stdout, "1000\n", "{out}");
    let out = d.cli(cli, &["run", "--rm", "-u", "1000:1000", &bb, "id"]);
    out.ok().mentions(&["uid=1000", "gid=1000"]);
    let out = d.cli(cli, &["run", "--rm", "-u", "nosuchuser", &bb, "id"]);
    out.fails().mentions(&["nosuchuser"]);

    let out = d.cli(cli, &["run", "--rm", "--hostname", "myhost", &bb, "hostname"]);
    assert_eq!(out.ok().stdout, "myhost\n", "{out}");

    // The image's WorkingDir, User and Env apply; -e overrides image env.
    let out = d.cli(cli, &["run", "--rm", &wd, "sh", "-c", "pwd; id -u; echo $FROM_IMAGE"]);
    assert_eq!(out.ok().stdout, "/data\n1000\nyes\n", "{out}");
    let out = d.cli(cli, &["run", "--rm", "-e", "FROM_IMAGE=no", &wd, "sh", "-c", "echo $FROM_IMAGE"]);
    assert_eq!(out.ok().stdout, "no\n", "{out}");
}
both!(env_workdir_user_hostname);

fn interfaces(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn network_none_and_host(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();

    let out = d.cli(cli, &["run", "--rm", "--network", "none", &bb, "cat", "/proc/net/dev"]);
    out.ok();
    let ifs = interfaces(&out.stdout);
    assert_eq!(ifs, BTreeSet::from(["lo".to_string()]), "{out}");

    let host = interfaces(&std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev"));
    let out = d.cli(cli, &["run", "--rm", "--network", "host", &bb, "cat", "/proc/net/dev"]);
    out.ok();
    let seen = interfaces(&out.stdout);
    // Other tests add and remove veths and bridges meanwhile: compare the host's interfaces
    // that were there before and are still there after.
    let after = interfaces(&std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev"));
    for i in host.intersection(&after).filter(|i| !i.starts_with("veth") && !i.starts_with("wh")) {
        assert!(seen.contains(i), "--network host does not see {i}:\n{out}");
    }
}
both!(network_none_and_host);

#[test]
fn zstd_and_uncompressed_images_run() {
    let d = Daemon::start();
    for name in ["test/zstd:latest", "test/plain:latest"] {
        let image = d.pull(name);
        let out = d.wharf(&["run", "--rm", &image, "echo", name]);
        assert_eq!(out.ok().stdout, format!("{name}\n"), "{out}");
    }
}

#[test]
fn multiarch_picks_the_host_platform() {
    let reg = registry();
    let d = Daemon::start();
    let image = d.pull("test/multiarch:latest");
    let arch = reg.summary["arch"].as_str().expect("arch");
    let out = d.wharf(&["run", "--rm", &image, "sh", "-c", "echo $WHARF_ARCH"]);
    assert_eq!(out.ok().stdout, format!("{arch}\n"), "{out}");
    let info = d.inspect(Cli::Wharf, &image);
    assert_eq!(info["Architecture"], arch, "{info}");
    assert_eq!(info["Os"], "linux", "{info}");
}

#[test]
fn multiarch_through_docker() {
    let reg = registry();
    let d = Daemon::start();
    let image = reg.image("test/multiarch:latest");
    d.docker(&["pull", &image]).ok();
    let arch = reg.summary["arch"].as_str().expect("arch");
    let out = d.docker(&["run", "--rm", &image, "sh", "-c", "echo $WHARF_ARCH"]);
    assert_eq!(out.ok().stdout, format!("{arch}\n"), "{out}");
}

/// At debug level wharfd logs, per start, when each phase ended (bench/start-latency.sh takes
/// its medians from these lines): every phase, each after the ones it waits for.
#[test]
fn start_phases_are_logged_in_causal_order() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.wharf(&["pull", &image]).ok();
    let id = d.wharf(&["run", "-d", &image, "true"]).ok().trimmed().to_string();
    d.wharf(&["wait", &id]).ok();
    let log = d.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("container {id}: start phases (ms):")))
        .unwrap_or_else(|| panic!("no start phases for {id} in the log:\n{log}"));
    let stamps: Vec<(&str, f64)> = line
        .split("start phases (ms):")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|c| (c[0], c[1].trim_start_matches('+').parse::<f64>().expect(line)))
        .collect();
    let at = |name: &str| stamps.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} in {line}")).1;
    // `shim-spawned` (wharfd's spawn returned) and `shim` (the shim's main began) race: the new
    // process may run before its parent hears that the exec succeeded.
    assert!(at("spec") <= at("shim-spawned") && at("shim-spawned") <= at("handshake"), "{line}");
    // Likewise the init's first stamp and its parent's return from clone.
    assert!(at("spawn") <= at("clone") && at("clone") <= at("go"), "{line}");
    let chain = ["network", "spec", "shim", "spawn", "child", "rootfs", "process", "go", "exec", "handshake", "record"];
    for pair in chain.windows(2) {
        assert!(at(pair[0]) <= at(pair[1]), "{} after {}: {line}", pair[0], pair[1]);
    }
    // The cgroup is made after the clone and joined by a write to cgroup.procs, or on pure v2
    // made before it, the init born in it (CLONE_INTO_CGROUP): then there is no join.
    assert!(at("spawn") <= at("cgroup-made") && at("cgroup-made") <= at("go"), "{line}");
    let joined = stamps.iter().find(|(n, _)| *n == "cgroup-joined").map(|(_, t)| *t);
    if crate::cgroup_v2::host_is_pure_v2() {
        assert!(joined.is_none() && at("cgroup-made") <= at("clone"), "born in its cgroup: {line}");
    } else {
        let joined = joined.unwrap_or_else(|| panic!("cgroup-joined in {line}"));
        assert!(at("clone") <= at("cgroup-made") && at("cgroup-made") <= joined, "{line}");
        assert!(joined <= at("go"), "the init waits for its cgroups: {line}");
    }
    assert!(at("record") > 0.0 && at("record") < 60_000.0, "{line}");
}
