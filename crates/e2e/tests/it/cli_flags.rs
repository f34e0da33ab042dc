//! The `wharf` CLI against the `docker` CLI on this machine: every command docker's help lists
//! (recursively, through the management commands) must exist in `wharf`, with every flag and
//! the same short forms, unless it is on the short, reasoned list of [`GAPS`]. No daemon: only
//! `--help` is asked.
//!
//! Docker's help is Cobra's: section headers start in column 0 and end with ':'; in a
//! `...Commands:` section each command is `  NAME  description` (a `*` after a plugin's name);
//! in an options section a flag line is `  -x, --name type  description` or
//! `      --name type  description`, and wrapped descriptions are indented further. clap prints
//! its flags in the same two shapes (descriptions on the next lines, indented 10), so one
//! parser reads both.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::harness::{bin, run_cmd, TempDir};

/// Why a docker flag or command is not in `wharf`.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// Swarm mode (wharfd is never a swarm manager; the commands answer as against a
    /// non-swarm daemon, their flags have nothing to configure).
    Swarm,
    /// Only meaningful on Windows containers.
    Windows,
    /// Docker CLI plugins and their management.
    Plugin,
    /// Docker's experimental features (checkpoints need CRIU).
    Experimental,
    /// Docker Content Trust (Notary): wharf has no trust server client.
    Trust,
    /// Not done yet, with what is missing: the to-do list (empty since issue 21's last flags
    /// landed; a flag a newer docker adds goes here until wharf has it).
    #[allow(dead_code)]
    Pending(&'static str),
}

/// A gap: `flag` (or the whole command, `"*"`) of each command path in `on` (`|`-separated).
/// A whole-command gap covers that command's subcommands too.
struct Gap {
    on: &'static str,
    flag: &'static str,
    why: Why,
}

const fn gap(on: &'static str, flag: &'static str, why: Why) -> Gap {
    Gap { on, flag, why }
}

/// The commands that take `run`'s container flags.
const CREATE: &str = "run|create|container run|container create";
const BUILD: &str = "build|builder build|image build";

const GAPS: &[Gap] = &[
    // Swarm: the commands and every flag of theirs.
    gap("service|stack|node|secret|config|swarm", "*", Why::Swarm),
    gap("volume create|volume update", "availability", Why::Swarm),
    gap("volume create", "group", Why::Swarm),
    gap("volume create", "limit-bytes", Why::Swarm),
    gap("volume create", "required-bytes", Why::Swarm),
    gap("volume create", "scope", Why::Swarm),
    gap("volume create", "secret", Why::Swarm),
    gap("volume create", "sharing", Why::Swarm),
    gap("volume create", "topology-preferred", Why::Swarm),
    gap("volume create", "topology-required", Why::Swarm),
    gap("volume create", "type", Why::Swarm),
    gap("volume ls", "cluster", Why::Swarm),
    gap("volume update", "*", Why::Swarm),
    gap("network create", "ingress", Why::Swarm),
    gap("network create", "scope", Why::Swarm),
    gap("network create", "config-only", Why::Swarm),
    gap("network create", "config-from", Why::Swarm),
    gap("network inspect", "verbose", Why::Swarm),
    // Windows containers.
    gap(CREATE, "isolation", Why::Windows),
    gap(BUILD, "isolation", Why::Windows),
    gap("checkpoint", "*", Why::Experimental),
    gap("plugin", "*", Why::Plugin),
    gap("trust", "*", Why::Trust),
    gap(CREATE, "disable-content-trust", Why::Trust),
    gap("pull|image pull|push|image push", "disable-content-trust", Why::Trust),
    gap(BUILD, "disable-content-trust", Why::Trust),
    // Docker's experimental features.
    gap("images|image ls", "tree", Why::Experimental),
    gap("start|container start", "checkpoint", Why::Experimental),
    gap("start|container start", "checkpoint-dir", Why::Experimental),
    // Not done yet: the to-do list of issue 21's CLI half.
    gap(BUILD, "squash", Why::Experimental),
];

/// The help text of `program ARGS --help`, run with an empty CLI config so that no user's
/// settings or contexts change it.
fn help(program: &str, path: &[&str], config: &TempDir) -> (bool, String) {
    let mut cmd = Command::new(program);
    cmd.args(path).arg("--help");
    cmd.env("DOCKER_CONFIG", &config.0).env_remove("DOCKER_HOST").env_remove("DOCKER_CONTEXT");
    let out = run_cmd(cmd, Duration::from_secs(30));
    (out.success(), format!("{}{}", out.stdout, out.stderr))
}

/// What one help text lists: flags (long name → short letter) and subcommands.
#[derive(Debug, Default)]
struct Help {
    flags: BTreeMap<String, Option<char>>,
    commands: Vec<String>,
    /// Commands marked `*`: CLI plugins (compose, buildx), not the docker CLI's own.
    plugins: BTreeSet<String>,
}

fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut in_commands = false;
    for line in text.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            in_commands = line.trim_end().ends_with("Commands:");
            continue;
        }
        if let Some((long, short)) = flag_line(line) {
            help.flags.insert(long, short);
            continue;
        }
        if in_commands {
            if let Some(rest) = line.strip_prefix("  ") {
                let word = rest.split_whitespace().next().unwrap_or("");
                let name = word.trim_end_matches('*');
                if !rest.starts_with(' ')
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !name.is_empty()
                {
                    if word.ends_with('*') {
                        help.plugins.insert(name.to_string());
                    }
                    help.commands.push(name.to_string());
                }
            }
        }
    }
    help
}

/// `  -x, --name ...` or `      --name ...` → (name, Some('x') or None).
fn flag_line(line: &str) -> Option<(String, Option<char>)> {
    let (short, rest) = if let Some(rest) = line.strip_prefix("      --") {
        (None, rest)
    } else {
        let rest = line.strip_prefix("  -")?;
        let mut chars = rest.chars();
        let c = chars.next()?;
        let rest = chars.as_str().strip_prefix(", --")?;
        (Some(c), rest)
    };
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    if name.is_empty() {
        return None;
    }
    Some((name, short))
}

#[test]
fn flag_lines_are_parsed_from_both_shapes() {
    assert_eq!(flag_line("  -a, --attach list    Attach to STDIN"), Some(("attach".into(), Some('a'))));
    assert_eq!(flag_line("      --cidfile string   Write the container ID"), Some(("cidfile".into(), None)));
    assert_eq!(flag_line("  -d, --detach"), Some(("detach".into(), Some('d'))));
    assert_eq!(flag_line("      --tlskey <TLSKEY>"), Some(("tlskey".into(), None)));
    // A wrapped description, even one that starts with a dash, is not a flag.
    assert_eq!(flag_line("                                         --memory-swap"), None);
    assert_eq!(flag_line("          -1 for unlimited"), None);
    let h = parse_help(
        "Usage:  docker [OPTIONS] COMMAND\n\nManagement Commands:\n  buildx*     Docker Buildx\n  container   Manage containers\n\nOptions:\n  -D, --debug              Enable debug mode\n      --tls                Use TLS; implied\n                           by --tlsverify\n",
    );
    assert_eq!(h.commands, ["buildx", "container"]);
    assert!(h.plugins.contains("buildx"));
    assert_eq!(h.flags.len(), 2);
}

/// The gap covering `flag` of the command `path`, by index in [`GAPS`].
fn find_gap(path: &str, flag: &str) -> Option<usize> {
    GAPS.iter().position(|g| {
        g.on.split('|').any(|on| {
            if g.flag == "*" {
                path == on || path.starts_with(&format!("{on} "))
            } else {
                path == on && g.flag == flag
            }
        })
    })
}

#[test]
fn every_docker_flag_is_in_wharf() {
    let config = TempDir::new("cli-flags");
    let wharf = bin("wharf");
    let wharf = wharf.to_str().unwrap();
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    let mut checked = 0;
    // Through docker's command tree: the root, its commands, their subcommands.
    let mut queue: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = queue.pop() {
        let args: Vec<&str> = path.iter().map(String::as_str).collect();
        let name = args.join(" ");
        let (ok, text) = help("docker", &args, &config);
        assert!(ok, "docker {name} --help failed:\n{text}");
        let docker = parse_help(&text);
        for c in &docker.commands {
            if !docker.plugins.contains(c) && path.len() < 2 {
                let mut sub = path.clone();
                sub.push(c.clone());
                queue.push(sub);
            }
        }
        if let Some(i) = find_gap(&name, "*") {
            used.insert(i);
            continue;
        }
        checked += 1;
        let (ok, text) = help(wharf, &args, &config);
        let ours = parse_help(&text);
        if !ok {
            problems.push(format!("wharf {name}: no such command ({})", text.lines().next().unwrap_or("")));
            continue;
        }
        for (flag, short) in &docker.flags {
            if let Some(i) = find_gap(&name, flag) {
                used.insert(i);
                if ours.flags.contains_key(flag) {
                    problems.push(format!("wharf {name} --{flag}: exists now; remove its entry from GAPS"));
                }
                continue;
            }
            match ours.flags.get(flag) {
                None => problems.push(format!("wharf {name}: no --{flag}")),
                Some(s) if s != short => problems.push(format!(
                    "wharf {name} --{flag}: short form {} where docker's is {}",
                    s.map_or("none".to_string(), |c| format!("-{c}")),
                    short.map_or("none".to_string(), |c| format!("-{c}")),
                )),
                Some(_) => {}
            }
        }
    }
    for (i, g) in GAPS.iter().enumerate() {
        if !used.contains(&i) {
            problems.push(format!("GAPS entry {:?} {:?} ({:?}) matches nothing docker has", g.on, g.flag, g.why));
        }
    }
    let pending = GAPS.iter().filter(|g| matches!(g.why, Why::Pending(_))).count();
    eprintln!("{checked} commands compared; {} gaps listed, {pending} of them pending:", GAPS.len());
    for g in GAPS {
        if let Why::Pending(what) = g.why {
            eprintln!("  {} {}: {what}", g.on, g.flag);
        }
    }
    assert!(checked > 90, "only {checked} commands were compared: is docker's help parsed?");
    assert!(problems.is_empty(), "{} differences from the docker CLI:\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The flags `run` and `create` gained for parity, each checked by its effect, through both CLIs.

use crate::harness::{registry, wait_for, Cli, Daemon};

fn run_flags(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", "-q", &image]).ok();
    let dir = TempDir::new("run-flags");

    // network create --ipam-driver: the one driver, default; any other is refused.
    d.cli(cli, &["network", "create", "--ipam-driver", "default", "ipam-net"]).ok();
    assert_eq!(d.cli(cli, &["network", "inspect", "-f", "{{.IPAM.Driver}}", "ipam-net"]).ok().trimmed(), "default");
    d.cli(cli, &["network", "create", "--ipam-driver", "infoblox", "ipam-net2"]).fails().mentions(&["infoblox"]);
    d.cli(cli, &["network", "rm", "ipam-net"]).ok();

    // --domainname: the container's NIS domain, and Config.Domainname.
    let out = d.cli(cli, &["run", "--rm", "--domainname", "example.org", &image, "cat", "/proc/sys/kernel/domainname"]);
    assert_eq!(out.ok().trimmed(), "example.org");

    // inspect --size (and ps --size): what the container wrote, and that plus its image.
    d.cli(cli, &["run", "--name", "sized", &image, "sh", "-c", "head -c 100000 /dev/zero > /blob"]).ok();
    let v = d.cli(cli, &["inspect", "--size", "sized"]).ok().json()[0].clone();
    let (rw, root) = (v["SizeRw"].as_i64().unwrap_or(0), v["SizeRootFs"].as_i64().unwrap_or(0));
    assert!((100_000..200_000).contains(&rw) && root > rw + 1_000_000, "SizeRw {rw}, SizeRootFs {root}");
    assert!(d.inspect(cli, "sized").get("SizeRw").is_none(), "sizes without --size");
    let ps = d.cli(cli, &["ps", "-a", "--size", "--filter", "name=sized", "--format", "{{.Size}}"]);
    assert!(ps.ok().trimmed().starts_with("100kB (virtual "), "{ps}");

    // --label-file, then -l over it.
    let labels = dir.0.join("labels");
    std::fs::write(&labels, "# the team's labels\n\n  team=core\ntier=web\nbare\n").unwrap();
    let labels = labels.to_str().unwrap();
    d.cli(cli, &["create", "--name", "labelled", "--label-file", labels, "-l", "tier=db", &image]).ok();
    let got = d.inspect(cli, "labelled")["Config"]["Labels"].clone();
    assert_eq!(got, serde_json::json!({"team": "core", "tier": "db"}));

    // --cidfile: written with the ID; an existing file refuses the create and is left alone.
    let cid = dir.0.join("cid");
    let cid_s = cid.to_str().unwrap();
    let id = d.cli(cli, &["create", "--cidfile", cid_s, &image]).ok().trimmed().to_string();
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    let out = d.cli(cli, &["run", "--cidfile", cid_s, &image, "true"]);
    out.code_is(125).mentions(&["container ID file found", cid_s]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id);
    // A failed create leaves no file behind.
    let cid2 = dir.0.join("cid2");
    d.cli(cli, &["create", "--cidfile", cid2.to_str().unwrap(), "--runtime", "nosuch", &image]).fails();
    assert!(!cid2.exists(), "the ID file of a failed create is left");

    // -a: only the streams named.
    let script = "echo to-out; echo to-err >&2";
    let out = d.cli(cli, &["run", "--rm", "-a", "stdout", &image, "sh", "-c", script]);
    out.ok();
    assert!(out.stdout.contains("to-out") && !out.all().contains("to-err"), "{out}");
    let out = d.cli(cli, &["run", "--rm", "-a", "STDERR", &image, "sh", "-c", script]);
    out.ok();
    assert!(out.stderr.contains("to-err") && !out.all().contains("to-out"), "{out}");
    d.cli(cli, &["run", "-a", "stdio", &image]).code_is(125).mentions(&["valid streams are STDIN, STDOUT and STDERR"]);
    d.cli(cli, &["run", "-d", "-a", "stdout", &image])
        .code_is(1)
        .mentions(&["conflicting options: cannot specify both --attach and --detach"]);

    // --runtime: wharfd's own runtime under both its names, and dockerd 20.10's refusal of a
    // name that is not configured.
    d.cli(cli, &["run", "--rm", "--runtime", "wharf", &image, "true"]).ok();
    d.cli(cli, &["run", "--rm", "--runtime", "runc", &image, "true"]).ok();
    d.cli(cli, &["run", "--rm", "--runtime", "kata", &image, "true"])
        .code_is(125)
        .mentions(&["Unknown runtime specified kata"]);

    // --volume-driver: the driver of -v's volumes; only local exists.
    d.cli(cli, &["create", "--name", "vd", "--volume-driver", "local", "-v", "vd-data:/data", &image]).ok();
    assert_eq!(d.inspect(cli, "vd")["HostConfig"]["VolumeDriver"], "local");
    d.cli(cli, &["run", "--rm", "--volume-driver", "flocker", "-v", "vd-other:/data", &image, "true"])
        .code_is(125)
        .mentions(&["flocker"]);
    let vols = d.cli(cli, &["volume", "ls", "-q"]).ok().stdout.clone();
    assert!(vols.contains("vd-data") && !vols.contains("vd-other"), "{vols}");

    // --annotation: in HostConfig and in the runtime's spec; wharf's own prefix is refused.
    let id = d.cli(cli, &["create", "--annotation", "org.example.owner=core", &image]).ok().trimmed().to_string();
    assert_eq!(d.inspect(cli, &id)["HostConfig"]["Annotations"], serde_json::json!({"org.example.owner": "core"}));
    d.cli(cli, &["start", &id]).ok();
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.data_root.join("containers").join(&id).join("config.json")).unwrap())
            .unwrap();
    assert_eq!(spec["annotations"]["org.example.owner"], "core", "{}", spec["annotations"]);
    d.cli(cli, &["create", "--annotation", "io.wharf.rootfs.overlay=lowerdir=/", &image])
        .code_is(1)
        .mentions(&["reserved"]);

    // --health-start-interval: probes come that often while starting, not at the (long) interval.
    d.cli(
        cli,
        &[
            "run",
            "-d",
            "--name",
            "quick",
            "--health-cmd",
            "true",
            "--health-interval",
            "1h",
            "--health-start-period",
            "1m",
            "--health-start-interval",
            "200ms",
            &image,
            "sleep",
            "60",
        ],
    )
    .ok();
    assert_eq!(d.inspect(cli, "quick")["Config"]["Healthcheck"]["StartInterval"], 200_000_000);
    let healthy =
        wait_for(Duration::from_secs(10), || d.inspect(cli, "quick")["State"]["Health"]["Status"] == "healthy");
    assert!(healthy, "not healthy within 10s: {}", d.inspect(cli, "quick")["State"]["Health"]);

    // --sig-proxy: a SIGTERM to the CLI reaches the container, unless --sig-proxy=false.
    let trap = "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.1; done";
    for (proxy, name) in [(true, "proxied"), (false, "unproxied")] {
        let mut args = vec!["run", "--name", name];
        if !proxy {
            args.push("--sig-proxy=false");
        }
        args.extend([image.as_str(), "sh", "-c", trap]);
        let mut cmd = d.command(cli, &args);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        if proxy {
            let status = wait_child(&mut child, Duration::from_secs(20));
            assert_eq!(status.code(), Some(3), "the CLI's status: {status:?}");
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
            assert!(rest.contains("got-term"), "{rest:?}");
        } else {
            // The container must not get it; what becomes of the CLI differs (wharf's dies of
            // it, docker's 28 waits for more signals), so it is killed here.
            std::thread::sleep(Duration::from_millis(1500));
            assert_eq!(d.inspect(cli, name)["State"]["Running"], true, "the container got the signal");
            let _ = child.kill();
            wait_child(&mut child, Duration::from_secs(20));
        }
    }
    d.cli(cli, &["rm", "-f", "unproxied", "quick"]).ok();
}
both!(run_flags);

/// Waits for a child at most `limit`; kills it and fails the test past that.
#[track_caller]
fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the CLI did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// `search`: the registry's /v1/search through the daemon.

/// A registry search API on loopback: `/v1/search?q=&n=` answers three results whose names
/// contain the term (the query as it came is recorded); anything else is closed unanswered.
fn fake_search_api() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let Some(target) = head.strip_prefix("GET ").and_then(|r| r.split(' ').next()) else { continue };
            log.lock().unwrap().push(target.to_string());
            let term = target.split("q=").nth(1).and_then(|q| q.split('&').next()).unwrap_or("");
            let body = serde_json::json!({"num_results": 3, "query": term, "results": [
                {"name": format!("library/{term}"), "description": "The official image, with a description longer than forty-five characters", "star_count": 120, "is_official": true, "is_automated": false},
                {"name": format!("someone/{term}-tools"), "description": "tools", "star_count": 7, "is_official": false, "is_automated": true},
                {"name": format!("other/{term}"), "description": "", "star_count": 0, "is_official": false, "is_automated": false},
            ]})
            .to_string();
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, seen)
}

fn search(cli: Cli) {
    let d = Daemon::start();
    let (api, seen) = fake_search_api();
    let term = format!("{api}/busybox");
    let out = d.cli(cli, &["search", &term]);
    // As the docker CLI lays it out (the description cut to 45 characters).
    let want = "\
NAME                    DESCRIPTION                                     STARS     OFFICIAL
library/busybox         The official image, with a description longe…   120       [OK]
someone/busybox-tools   tools                                           7         \n\
other/busybox                                                           0         \n";
    assert_eq!(out.ok().stdout, want, "{out}");
    assert!(seen.lock().unwrap().iter().any(|t| t == "/v1/search?q=busybox&n=25"), "{:?}", seen.lock().unwrap());
    let names = |args: &[&str]| {
        let mut a = vec!["search", "--format", "{{.Name}} {{.StarCount}} {{.IsOfficial}}"];
        a.extend_from_slice(args);
        a.push(&term);
        d.cli(cli, &a).ok().stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&["--filter", "is-official=true"]), ["library/busybox 120 [OK]"]);
    assert_eq!(names(&["--filter", "stars=5"]), ["library/busybox 120 [OK]", "someone/busybox-tools 7 "]);
    assert_eq!(names(&["--limit", "2"]).len(), 2);
    assert!(seen.lock().unwrap().iter().any(|t| t == "/v1/search?q=busybox&n=2"));
    let long = d.cli(cli, &["search", "--no-trunc", "--format", "{{.Description}}", "--limit", "1", &term]);
    assert_eq!(long.ok().trimmed(), "The official image, with a description longer than forty-five characters");
    d.cli(cli, &["search", "--limit", "101", &term]).fails().mentions(&["limit 101 is outside the range of [1, 100]"]);
    d.cli(cli, &["search", "--filter", "color=red", &term]).fails().mentions(&["invalid filter 'color'"]);
}
both!(search);

/// The test registry (`docker-registry`) has no search API: wharfd says what dockerd says.
#[test]
fn search_without_a_search_api_fails_as_on_dockerd() {
    let reg = registry();
    let dockerd = crate::dockerd::Dockerd::start(&[&reg.addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let d = Daemon::start();
    let term = format!("{}/busybox", reg.addr);
    let theirs = dockerd.cli(&["search", &term]);
    let ours = d.wharf(&["search", &term]);
    let message = |o: &crate::harness::Output| {
        let s = o.stderr.trim().to_string();
        s.strip_prefix("wharf: ").map(str::to_string).unwrap_or(s)
    };
    assert_eq!((ours.code, message(&ours)), (theirs.code, message(&theirs)), "docker:\n{theirs}\nwharf:\n{ours}");
}

/// `pull --all-tags`: every tag of a repository of the test's own registry comes down (through
/// its tag list), the CLI then names the repository alone; a tag with `-a` is the docker
/// CLI's usage error, and a repository the registry does not have fails.
fn pull_all_tags(cli: Cli) {
    use crate::harness::{RegistryOptions, TestRegistry};
    let reg = TestRegistry::start(RegistryOptions { only: vec!["library/busybox".into()], ..Default::default() });
    let d = Daemon::start();
    let bb = reg.image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let repo = reg.image("mine/multi");
    let tags = ["one", "three", "two"];
    for t in tags {
        d.cli(cli, &["tag", &bb, &format!("{repo}:{t}")]).ok();
    }
    d.cli(cli, &["push", "--all-tags", &repo]).ok();
    for t in tags {
        d.cli(cli, &["rmi", &format!("{repo}:{t}")]).ok();
    }
    let out = d.cli(cli, &["pull", "--all-tags", &repo]);
    out.ok();
    assert_eq!(out.stdout.trim().lines().last(), Some(repo.as_str()), "{out}");
    let ls = d.cli(cli, &["images", &repo, "--format", "{{.Tag}}"]);
    let mut got: Vec<&str> = ls.ok().stdout.lines().collect();
    got.sort();
    assert_eq!(got, tags, "{ls}");
    let out = d.cli(cli, &["image", "pull", "-a", &format!("{repo}:one")]);
    assert_eq!(out.code, 1, "{out}");
    out.mentions(&["tag can't be used with --all-tags/-a"]);
    d.cli(cli, &["pull", "-a", &reg.image("mine/none")]).fails().mentions(&["mine/none"]);
}
both!(pull_all_tags);

/// `--platform` of the per-platform image operations (API 1.46 to 1.50): against wharfd (API
/// 1.45) the docker CLI refuses it before any request, and so does wharf, with the same words
/// and status; the image is untouched.
fn platform_of_newer_apis_is_refused(cli: Cli) {
    let d = Daemon::start();
    let bb = d.pull("library/busybox:latest");
    let tmp = crate::harness::TempDir::new("platform");
    let tar = tmp.0.join("x.tar");
    let tar = tar.to_str().unwrap_or_default();
    let p = "linux/amd64";
    let cases: &[(&[&str], &str)] = &[
        (&["save", "--platform", p, "-o", tar, &bb], "1.48"),
        (&["load", "--platform", p, "-i", tar], "1.48"),
        (&["history", "--platform", p, &bb], "1.48"),
        (&["image", "inspect", "--platform", p, &bb], "1.49"),
        (&["rmi", "--platform", p, &bb], "1.50"),
        (&["image", "rm", "--platform", p, &bb], "1.50"),
        (&["push", "--platform", p, &bb], "1.46"),
    ];
    for (args, version) in cases {
        let out = d.cli(cli, args);
        assert_eq!(out.code, 1, "{out}");
        out.mentions(&[&format!(
            "\"--platform\" requires API version {version}, but the Docker daemon API version is 1.45"
        )]);
    }
    assert!(!std::path::Path::new(tar).exists(), "save wrote {tar}");
    d.cli(cli, &["image", "inspect", &bb]).ok();
}
both!(platform_of_newer_apis_is_refused);
