//! `build`'s flags for the classic builder beyond the basics, through both CLIs, each checked by
//! its effect: the resource flags land in the cgroups of the RUN steps (a step records what it
//! sees there into the image), `--cgroup-parent` places those cgroups, `--iidfile` holds the
//! built image's ID as the docker CLI writes it, `--compress` builds the same image from a
//! gzipped context, `--platform` (and `DOCKER_DEFAULT_PLATFORM`) takes the host's and refuses
//! another, and `--security-opt` is refused as dockerd refuses it on Linux.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::build::{base, build, write, CgroupTree};
use crate::harness::{run_cmd, Cli, Daemon, Output, TempDir};

/// A build with an extra environment variable for the client.
fn build_env(d: &Daemon, cli: Cli, dir: &Path, env: (&str, &str), args: &[&str]) -> Output {
    let mut cmd = d.command(cli, &[]);
    cmd.arg("build").args(args).arg(dir).env(env.0, env.1);
    if cli == Cli::Docker {
        cmd.env("DOCKER_BUILDKIT", "0");
    }
    run_cmd(cmd, Duration::from_secs(180))
}

/// The step records its cgroup limits (v1 and hybrid: the v1 controllers' files; pure v2:
/// the unified ones) and its cgroup paths.
const RECORD: &str = r#"c=/sys/fs/cgroup; if [ -f $c/memory/memory.limit_in_bytes ]; then for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes cpu/cpu.cfs_period_us cpu/cpu.cfs_quota_us cpu/cpu.shares cpuset/cpuset.cpus cpuset/cpuset.mems; do cat $c/$f 2>/dev/null || echo none; done > /limits; else for f in memory.max memory.swap.max cpu.max cpu.weight cpuset.cpus cpuset.mems; do cat $c/$f 2>/dev/null || echo none; done > /limits; fi; cat /proc/self/cgroup > /cgroup"#;

fn host_platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("linux/{arch}")
}

fn build_flags(cli: Cli) {
    let d = Daemon::start();
    let image = base();
    d.cli(cli, &["pull", "-q", &image]).ok();
    let tree = CgroupTree(format!("{}-build-flags", d.cgroup_parent));
    let parent = format!("{}/steps", tree.0);
    let ctx = TempDir::new("build-flags");
    write(&ctx.0, "Dockerfile", &format!("FROM {image}\nCOPY data.txt /data.txt\nRUN {RECORD}\n"));
    write(&ctx.0, "data.txt", "context data\n");
    let files = TempDir::new("build-flags-out");
    let iid = files.0.join("iid");
    let iid_s = iid.to_str().unwrap();

    // The resource flags reach the RUN step's cgroups, under --cgroup-parent.
    let args = [
        "--no-cache",
        "-m",
        "96m",
        "--memory-swap",
        "192m",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "-c",
        "512",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--cgroup-parent",
        &parent,
        "--iidfile",
        iid_s,
        "-t",
        "flags:limited",
    ];
    build(&d, cli, &ctx.0, &args).ok();
    let limits = d.cli(cli, &["run", "--rm", "flags:limited", "cat", "/limits"]).ok().stdout.clone();
    let limits: Vec<&str> = limits.lines().collect();
    if crate::cgroup_v2::host_is_pure_v2() {
        // runc's conversion of 512 shares to a weight: 1 + (512 - 2) * 9999 / 262142.
        assert_eq!(limits, ["100663296", "100663296", "25000 50000", "20", "0", "0"], "{limits:?}");
    } else {
        let swap =
            if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() { "201326592" } else { "none" };
        assert_eq!(limits, ["100663296", swap, "50000", "25000", "512", "0", "0"], "{limits:?}");
        let recorded = d.cli(cli, &["run", "--rm", "flags:limited", "cat", "/cgroup"]).ok().stdout.clone();
        let memory = recorded.lines().find(|l| l.split(':').nth(1) == Some("memory")).unwrap_or_default();
        let path = memory.splitn(3, ':').nth(2).unwrap_or_default();
        let step = path.strip_prefix(&format!("{parent}/")).unwrap_or_default();
        assert!(
            step.len() == 64 && step.bytes().all(|b| b.is_ascii_hexdigit()),
            "the step's cgroup is not <parent>/<id>:\n{recorded}"
        );
    }
    crate::harness::wait_for(Duration::from_secs(10), || tree.children(&parent).is_empty());
    assert!(tree.children(&parent).is_empty(), "a step's cgroup was left: {:?}", tree.children(&parent));

    // --iidfile: the image ID, without a newline.
    let id = d.cli(cli, &["inspect", "-f", "{{.Id}}", "flags:limited"]).ok().trimmed().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(fs::read_to_string(&iid).unwrap(), id);
    // Without flags, the same Dockerfile gets the default limits (and the cache is not used).
    build(&d, cli, &ctx.0, &["--no-cache", "-t", "flags:plain"]).ok();
    let limits = d.cli(cli, &["run", "--rm", "flags:plain", "cat", "/limits"]).ok().stdout.clone();
    assert!(!limits.contains("100663296"), "the limit stayed without -m:\n{limits}");

    // With -q, the file holds what the daemon printed: the ID and its newline (the docker CLI's
    // buffer), and the CLI prints the same.
    let out = build(&d, cli, &ctx.0, &["-q", "--iidfile", iid_s, "-t", "flags:quiet"]);
    out.ok();
    let quiet_id = d.cli(cli, &["inspect", "-f", "{{.Id}}", "flags:quiet"]).ok().trimmed().to_string();
    assert_eq!(out.stdout, format!("{quiet_id}\n"));
    assert_eq!(fs::read_to_string(&iid).unwrap(), format!("{quiet_id}\n"));

    // A failed build leaves no ID file behind, not even the one that was there.
    let bad = TempDir::new("build-flags-bad");
    write(&bad.0, "Dockerfile", &format!("FROM {image}\nRUN false\n"));
    fs::write(&iid, "stale").unwrap();
    build(&d, cli, &bad.0, &["--iidfile", iid_s]).fails();
    assert!(!iid.exists(), "the ID file of a failed build is left");

    // --compress: the context goes gzipped, and the same files make the same image (each
    // step from the cache of the uncompressed build just made: the COPY's content matches).
    build(&d, cli, &ctx.0, &["--compress", "--iidfile", iid_s, "-t", "flags:compressed"]).ok();
    let compressed = fs::read_to_string(&iid).unwrap();
    let plain = d.cli(cli, &["inspect", "-f", "{{.Id}}", "flags:plain"]).ok().trimmed().to_string();
    assert_eq!(compressed, plain, "--compress built another image");
    let data = d.cli(cli, &["run", "--rm", "flags:compressed", "cat", "/data.txt"]);
    assert_eq!(data.ok().stdout, "context data\n");
    // A changed file through a compressed context: a new image with the new content.
    write(&ctx.0, "data.txt", "changed data\n");
    build(&d, cli, &ctx.0, &["--compress", "-t", "flags:compressed2"]).ok();
    let data = d.cli(cli, &["run", "--rm", "flags:compressed2", "cat", "/data.txt"]);
    assert_eq!(data.ok().stdout, "changed data\n");

    // --platform: the host's builds; another is refused, from the flag or from
    // DOCKER_DEFAULT_PLATFORM, and nothing is tagged.
    let host = host_platform();
    build(&d, cli, &ctx.0, &["--platform", &host, "-t", "flags:platform"]).ok();
    build(&d, cli, &ctx.0, &["--platform", "linux/s390x", "-t", "flags:foreign"])
        .fails()
        .mentions(&["linux/s390x", "not supported"]);
    build_env(&d, cli, &ctx.0, ("DOCKER_DEFAULT_PLATFORM", "linux/s390x"), &["-t", "flags:foreign"])
        .fails()
        .mentions(&["linux/s390x", "not supported"]);
    d.cli(cli, &["inspect", "flags:foreign"]).fails();

    // --security-opt: dockerd's classic builder takes none on Linux.
    build(&d, cli, &ctx.0, &["--security-opt", "seccomp=unconfined", "-t", "flags:secopt"])
        .fails()
        .mentions(&["does not support setting security options on build"]);
    d.cli(cli, &["inspect", "flags:secopt"]).fails();
}
both!(build_flags);

/// The same builds against a private dockerd (classic builder) and wharfd through the docker
/// CLI: the same exit codes, the same refusal of `--security-opt`, ID files of the same shape
/// (no newline; with `-q` the ID and its newline, as printed), and the same limits recorded
/// by the RUN step.
#[test]
fn build_flags_match_dockerd() {
    let d = Daemon::start();
    let image = base();
    d.docker(&["pull", "-q", &image]).ok();
    let docker = crate::dockerd::Dockerd::start(&[&crate::harness::registry().addr])
        .unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let ctx = TempDir::new("build-flags-dockerd");
    write(&ctx.0, "Dockerfile", &format!("FROM {image}\nRUN {RECORD}\n"));
    let files = TempDir::new("build-flags-dockerd-out");
    let run = |mut cmd: std::process::Command, args: &[&str]| {
        cmd.arg("build").args(args).arg(&ctx.0).env("DOCKER_BUILDKIT", "0");
        run_cmd(cmd, Duration::from_secs(180))
    };
    let both = |args: &[&str]| (run(d.command(Cli::Docker, &[]), args), run(docker.command(&[]), args));
    let error_line = |o: &Output| {
        o.stderr.lines().find(|l| l.contains("Error response from daemon")).unwrap_or_default().to_string()
    };

    let (ours, theirs) = both(&["--security-opt", "seccomp=unconfined"]);
    assert_eq!(ours.code, theirs.code, "wharf: {ours}\ndockerd: {theirs}");
    assert_eq!(error_line(&ours), error_line(&theirs), "wharf: {ours}\ndockerd: {theirs}");

    for quiet in [false, true] {
        let (a, b) = (files.0.join(format!("ours-{quiet}")), files.0.join(format!("theirs-{quiet}")));
        let mut args = vec!["--no-cache", "-m", "96m", "--cpuset-cpus", "0", "-c", "512"];
        if quiet {
            args.push("-q");
        }
        let (a_s, b_s) = (a.to_str().unwrap().to_string(), b.to_str().unwrap().to_string());
        let (mut with_a, mut with_b) = (args.clone(), args.clone());
        with_a.extend(["--iidfile", a_s.as_str()]);
        with_b.extend(["--iidfile", b_s.as_str()]);
        let ours = run(d.command(Cli::Docker, &[]), &with_a);
        let theirs = run(docker.command(&[]), &with_b);
        assert_eq!(ours.code, theirs.code, "wharf: {ours}\ndockerd: {theirs}");
        ours.ok();
        let shape = |p: &Path| {
            let text = fs::read_to_string(p).unwrap();
            let hex = text.trim_end_matches('\n').strip_prefix("sha256:").unwrap_or_default().to_string();
            assert!(hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()), "{text:?}");
            (text.ends_with('\n'), text)
        };
        let ((nl_a, id_a), (nl_b, id_b)) = (shape(&a), shape(&b));
        assert_eq!(nl_a, nl_b, "newline at the end: wharf {id_a:?}, dockerd {id_b:?}");
        assert_eq!(nl_a, quiet);
        let limits = |cli_out: Output| cli_out.ok().stdout.clone();
        let ours = limits(d.docker(&["run", "--rm", id_a.trim(), "cat", "/limits"]));
        let theirs = limits(docker.cli(&["run", "--rm", id_b.trim(), "cat", "/limits"]));
        assert_eq!(ours, theirs, "the RUN step's limits");
    }
}
