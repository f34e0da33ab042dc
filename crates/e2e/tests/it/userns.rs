//! `userns-remap`: containers' root is an unprivileged host range from /etc/subuid and
//! /etc/subgid; image layers are shared (idmapped, not copied); exec lands in the same user
//! namespace; `--userns=host` opts out; Docker's refusals of `--privileged`, `--net=host`
//! and `--pid=host`. Each test adds its own user and ranges and removes them afterwards.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::harness::{find_named, http_unix, registry, unique, wait_for, Cli, Daemon, DaemonOptions, TempDir};

/// /etc/passwd, /etc/group, /etc/subuid and /etc/subgid are shared by every test of this
/// process. They are edited directly (no useradd/userdel, which leave backup files behind),
/// under the harness's `ETC_LOCK`.
static N: AtomicU32 = AtomicU32::new(0);
const ETC_FILES: [&str; 4] = ["/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid"];

/// A user and group with one 65536-id range in /etc/subuid and /etc/subgid, all removed on drop.
struct RemapUser {
    name: String,
    base: u32,
}

fn append_line(path: &str, line: &str) {
    let mut text = std::fs::read_to_string(path).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

impl RemapUser {
    fn new() -> RemapUser {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let name = format!("wh-userns-{pid}-{n}");
        let base = 3_000_000 + (pid % 1000) * 400_000 + n * 65536;
        let _g = crate::harness::ETC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // A free id below 65534 for both the user and its group.
        let taken = |path: &str, id: u32| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .any(|l| l.split(':').nth(2) == Some(&id.to_string()))
        };
        let id = (60000 + (pid % 1000) * 5 + n..65000)
            .find(|&id| !taken("/etc/passwd", id) && !taken("/etc/group", id))
            .unwrap();
        append_line("/etc/passwd", &format!("{name}:x:{id}:{id}::/nonexistent:/bin/false"));
        append_line("/etc/group", &format!("{name}:x:{id}:"));
        append_line("/etc/subuid", &format!("{name}:{base}:65536"));
        append_line("/etc/subgid", &format!("{name}:{base}:65536"));
        RemapUser { name, base }
    }

    fn daemon(&self) -> Daemon {
        Daemon::start_with(DaemonOptions {
            config_json: Some(format!(r#"{{"userns-remap": "{}"}}"#, self.name)),
            ..Default::default()
        })
    }
}

impl Drop for RemapUser {
    fn drop(&mut self) {
        let _g = crate::harness::ETC_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let prefix = format!("{}:", self.name);
        for f in ETC_FILES {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let kept: String = text.lines().filter(|l| !l.starts_with(&prefix)).map(|l| format!("{l}\n")).collect();
            let _ = std::fs::write(f, kept);
        }
    }
}

fn status_field(pid: i64, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_default().trim().to_string()
}

fn ns_link(pid: i64, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).map(|p| p.display().to_string()).unwrap_or_default()
}

fn remapped_root(cli: Cli) {
    let user = RemapUser::new();
    let d = user.daemon();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let base = user.base.to_string();

    // Inside: uid 0, the mapping, the image's files owned by root, its own interfaces in /sys.
    let out = d.cli(cli, &["run", "--rm", &image, "sh", "-c", "ls /sys/class/net | tr '\\n' ' '; touch /sys/x"]);
    assert_eq!(out.stdout.trim(), "eth0 lo", "{out}");
    assert!(out.all().contains("Read-only file system"), "{out}");
    let out =
        d.cli(cli, &["run", "--rm", &image, "sh", "-c", "id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox"]);
    let text = out.ok().stdout.clone();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], ["0"], "{out}");
    assert_eq!(lines[1], ["0", base.as_str(), "65536"], "{out}");
    assert_eq!(lines[2], ["0:0"], "{out}");

    // From the host: the process runs as the remapped uid, its new files belong to it.
    let script = "echo x > /newfile; stat -c %i /bin/busybox; sleep 300";
    let id1 =
        d.cli(cli, &["run", "-d", "--name", "c1", "-m", "64m", &image, "sh", "-c", script]).ok().trimmed().to_string();
    let id2 = d.cli(cli, &["run", "-d", "--name", "c2", &image, "sh", "-c", script]).ok().trimmed().to_string();
    let pid1 = d.inspect(cli, "c1")["State"]["Pid"].as_i64().unwrap_or(0);
    let pid2 = d.inspect(cli, "c2")["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid1 > 0 && pid2 > 0);
    let uid_line = status_field(pid1, "Uid");
    assert_eq!(uid_line.split_whitespace().next(), Some(base.as_str()), "Uid: {uid_line}");
    assert_eq!(status_field(pid1, "Gid").split_whitespace().next(), Some(base.as_str()));
    let upper = d.data_root.join("snapshots/containers").join(&id1).join("upper/newfile");
    assert!(wait_for(Duration::from_secs(10), || upper.exists()), "{} missing", upper.display());
    let meta = std::fs::metadata(&upper).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (user.base, user.base));
    assert_ne!(ns_link(pid1, "user"), ns_link(std::process::id() as i64, "user"));

    // No copy per container: both see the very inode of the one unpacked layer, still host root's.
    let layer_files: Vec<PathBuf> = find_named(&d.data_root.join("snapshots/layers"), "busybox")
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("/bin/busybox"))
        .collect();
    assert_eq!(layer_files.len(), 1, "{layer_files:?}");
    let layer = std::fs::metadata(&layer_files[0]).unwrap();
    assert_eq!(layer.uid(), 0, "the layer is not chowned");
    for id in [&id1, &id2] {
        let logs = || d.cli(cli, &["logs", id]).stdout.trim().to_string();
        assert!(wait_for(Duration::from_secs(10), || !logs().is_empty()));
        assert_eq!(logs(), layer.ino().to_string(), "container {id} sees a copy of the layer");
    }

    // exec joins the container's user namespace.
    let out = d.cli(cli, &["exec", "c1", "sh", "-c", "id -u; readlink /proc/self/ns/user; echo e > /exec-file"]);
    let text = out.ok().stdout.clone();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["0", ns_link(pid1, "user").as_str()], "{out}");
    let exec_file = d.data_root.join("snapshots/containers").join(&id1).join("upper/exec-file");
    assert_eq!(std::fs::metadata(&exec_file).map(|m| m.uid()).ok(), Some(user.base));

    // Limits and stats still work: the cgroup is the host's, as before.
    d.cli(cli, &["stats", "--no-stream", "c1"]).ok();
    let limits: Vec<String> = crate::harness::cgroup_dirs(&d.cgroup_parent)
        .into_iter()
        .flat_map(|p| [p.join(&id1).join("memory.limit_in_bytes"), p.join(&id1).join("memory.max")])
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(limits, ["67108864"], "the memory limit of a remapped container");

    // A named volume is writable by the container's root and owned by the remapped root.
    let vol = unique("uvol");
    d.cli(cli, &["volume", "create", &vol]).ok();
    let out = d.cli(
        cli,
        &["run", "--rm", "-v", &format!("{vol}:/data"), &image, "sh", "-c", "echo hi > /data/f; cat /data/f"],
    );
    assert_eq!(out.ok().trimmed(), "hi");
    let f = d.data_root.join("volumes").join(&vol).join("_data/f");
    assert_eq!(std::fs::metadata(&f).map(|m| m.uid()).ok(), Some(user.base));

    // --userns=host: the host's mapping, recorded in inspect.
    let out = d.cli(cli, &["run", "--name", "hostns", "--userns=host", &image, "cat", "/proc/self/uid_map"]);
    let words: Vec<String> = out.ok().stdout.split_whitespace().map(str::to_string).collect();
    assert_eq!(words, ["0", "0", "4294967295"], "{out}");
    assert_eq!(d.inspect(cli, "hostns")["HostConfig"]["UsernsMode"], "host");
    assert_eq!(d.inspect(cli, "c1")["HostConfig"]["UsernsMode"], "");

    // Docker's refusals, and the way out.
    d.cli(cli, &["run", "--rm", "--privileged", &image, "true"])
        .fails()
        .mentions(&["privileged mode is incompatible with user namespaces"]);
    d.cli(cli, &["run", "--rm", "--net=host", &image, "true"])
        .fails()
        .mentions(&["cannot share the host's network namespace when user namespaces are enabled"]);
    d.cli(cli, &["run", "--rm", "--pid=host", &image, "true"])
        .fails()
        .mentions(&["cannot share the host PID namespace when user namespaces are enabled"]);
    d.cli(cli, &["run", "--rm", "--privileged", "--userns=host", &image, "true"]).ok();
    d.cli(cli, &["run", "--rm", "--userns=private", &image, "true"]).fails().mentions(&["invalid USER mode"]);

    let info = http_unix(&d.sock, "GET", "/info").unwrap_or_default();
    let security = info.split(r#""SecurityOptions":["#).nth(1).and_then(|r| r.split(']').next()).unwrap_or_default();
    assert!(security.contains(r#""name=userns""#), "{info}");
}
both!(remapped_root);

#[test]
fn unknown_remap_user_is_refused_at_start() {
    let name = format!("wh-nosuch-{}", std::process::id());
    let err = Daemon::try_start(DaemonOptions {
        config_json: Some(format!(r#"{{"userns-remap": "{name}"}}"#)),
        ..Default::default()
    })
    .err()
    .map(|e| e.log)
    .unwrap_or_default();
    assert!(err.contains(&format!("user \"{name}\" has no entry")), "{err}");
}

#[test]
fn remapped_rootfs_layers_are_not_visible_on_the_host() {
    let user = RemapUser::new();
    let d = user.daemon();
    let image = d.pull("library/busybox:latest");
    let id = d.wharf(&["run", "-d", &image, "sleep", "300"]).ok().trimmed().to_string();
    assert!(d.wharf(&["inspect", &id]).ok().json()[0]["State"]["Running"] == true);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!mounts.contains(&d.data_root.display().to_string()), "a mount under the data root on the host");
}

/// Whiteouts, opaque dirs, hard links, setuid bits and owners of a multi-layer image come out
/// in a remapped container as in any other.
fn remapped_layers_apply_in_order(cli: Cli) {
    let user = RemapUser::new();
    let d = user.daemon();
    let image = registry().image("test/layers:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["run", "--rm", &image, "sh", "-c", crate::layers::SCRIPT]);
    out.ok();
    assert_eq!(out.stdout, crate::layers::EXPECTED, "{out}");
}
both!(remapped_layers_apply_in_order);

#[test]
fn remapped_volume_from_image_groups_and_tty() {
    let user = RemapUser::new();
    let d = user.daemon();
    let image = d.pull("library/busybox:latest");
    // A fresh volume over /etc is filled from the image with the container's ids.
    let vol = unique("etcvol");
    let out = d.wharf(&[
        "run",
        "--rm",
        "-v",
        &format!("{vol}:/etc"),
        &image,
        "sh",
        "-c",
        "stat -c %u:%g /etc/passwd; touch /etc/x",
    ]);
    assert_eq!(out.ok().trimmed(), "0:0");
    let passwd = d.data_root.join("volumes").join(&vol).join("_data/passwd");
    assert_eq!(std::fs::metadata(&passwd).map(|m| m.uid()).ok(), Some(user.base));
    // A bind mount whose host path the remapped root could not walk (a 0700 parent).
    let private = crate::harness::TempDir::new("userns-private");
    std::fs::create_dir_all(private.0.join("shared")).unwrap();
    std::fs::write(private.0.join("shared/f"), "from the host\n").unwrap();
    std::fs::set_permissions(&private.0, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let bind = format!("{}:/data:ro", private.0.join("shared").display());
    assert_eq!(d.wharf(&["run", "--rm", "-v", &bind, &image, "cat", "/data/f"]).ok().trimmed(), "from the host");
    // setgroups is allowed in the container's namespace.
    let out = d.wharf(&["run", "--rm", "--group-add", "10", "--user", "1000:1000", &image, "id", "-G"]);
    assert_eq!(out.ok().trimmed(), "1000 10");
    // A terminal opened in the container's devpts, for run and exec.
    let out = d.wharf(&["run", "-t", "--name", "tty", &image, "sh", "-c", "test -t 0 && stat -c %u /proc/self/fd/0"]);
    assert_eq!(out.ok().trimmed(), "0");
    d.wharf(&["run", "-d", "--name", "long", &image, "sleep", "300"]).ok();
    let out = d.wharf(&["exec", "-t", "long", "sh", "-c", "test -t 1 && id -u"]);
    assert_eq!(out.ok().trimmed(), "0");
}

/// Sharing another remapped container's ipc or pid namespace shares its user namespace (as
/// Docker); net sysctls, --ipc=host and renamed devices still work; commit and export record
/// the ids the container saw, and its opaque dirs.
fn remapped_sharing_commit_and_export(cli: Cli) {
    let user = RemapUser::new();
    let d = user.daemon();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["run", "-d", "--name", "first", &image, "sleep", "300"]).ok();
    let pid = d.inspect(cli, "first")["State"]["Pid"].as_i64().unwrap_or(0);
    let script = "readlink /proc/self/ns/user; readlink /proc/self/ns/ipc";
    let out = d.cli(cli, &["run", "--rm", "--ipc=container:first", &image, "sh", "-c", script]);
    assert_eq!(out.ok().stdout, format!("{}\n{}\n", ns_link(pid, "user"), ns_link(pid, "ipc")));
    let out = d.cli(cli, &["run", "--rm", "--pid=container:first", &image, "sh", "-c", "ps -o comm | grep -c sleep"]);
    assert_eq!(out.ok().trimmed(), "1");
    let out = d.cli(
        cli,
        &["run", "--rm", "--sysctl", "net.ipv4.ip_forward=1", &image, "cat", "/proc/sys/net/ipv4/ip_forward"],
    );
    assert_eq!(out.ok().trimmed(), "1");
    d.cli(cli, &["run", "--rm", "--ipc=host", &image, "true"]).ok();
    let out = d.cli(
        cli,
        &["run", "--rm", "--device", "/dev/null:/dev/mynull", &image, "sh", "-c", "echo x > /dev/mynull && echo ok"],
    );
    assert_eq!(out.ok().trimmed(), "ok");

    let script = "mkdir /newdir && echo x > /newdir/f && rm -rf /var && mkdir /var && touch /var/new";
    d.cli(cli, &["run", "--name", "changed", &image, "sh", "-c", script]).ok();
    d.cli(cli, &["commit", "changed", "committed:1"]).ok();
    let out =
        d.cli(cli, &["run", "--rm", "--userns=host", "committed:1", "sh", "-c", "stat -c %u:%g /newdir/f; ls /var"]);
    assert_eq!(out.ok().stdout, "0:0\nnew\n");
    let tar = d.dir.join("changed.tar");
    d.cli(cli, &["export", "-o", tar.to_str().unwrap_or_default(), "changed"]).ok();
    let listing = Command::new("tar").args(["--numeric-owner", "-tvf"]).arg(&tar).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let line = |name: &str| listing.lines().find(|l| l.ends_with(name)).unwrap_or_default().to_string();
    assert!(line(" newdir/f").contains(" 0/0 "), "{listing}");
    assert!(line(" var/new").contains(" 0/0 "), "{listing}");
    assert!(
        !listing.lines().any(|l| l.contains(" var/") && !l.ends_with(" var/") && !l.ends_with(" var/new")),
        "{listing}"
    );
}
both!(remapped_sharing_commit_and_export);

#[test]
fn remapped_container_outlives_a_daemon_kill() {
    let user = RemapUser::new();
    let mut d = user.daemon();
    let image = d.pull("library/busybox:latest");
    d.wharf(&["run", "-d", "--name", "lives", &image, "sleep", "300"]).ok();
    d.kill9();
    d.restart();
    let out = d.wharf(&["exec", "lives", "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let words: Vec<String> = out.ok().stdout.split_whitespace().map(str::to_string).collect();
    assert_eq!(words, ["0", "0", &user.base.to_string(), "65536"], "{out}");
    d.wharf(&["stop", "-t", "1", "lives"]).ok();
}

/// `cp` into and out of a running remapped container: the file lands in the upper dir owned by
/// the remapped root (the container sees it as root's), and comes back out with its content;
/// a copy into the stopped container is refused, naming userns-remap; one into a container
/// that never ran is made as it would be in the running one.
fn remapped_cp(cli: Cli) {
    let user = RemapUser::new();
    let d = user.daemon();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let c = unique("cpremap");
    let id = d.cli(cli, &["run", "-d", "--name", &c, &image, "sleep", "300"]).ok().trimmed().to_string();
    let tmp = TempDir::new("cpremap");
    let src = tmp.0.join("in.txt");
    std::fs::write(&src, "remapped copy\n").unwrap();
    let src_s = src.to_string_lossy().into_owned();
    d.cli(cli, &["cp", &src_s, &format!("{c}:/copied")]).ok();

    let upper = d.data_root.join("snapshots/containers").join(&id).join("upper/copied");
    let meta = std::fs::metadata(&upper).unwrap_or_else(|e| panic!("{}: {e}", upper.display()));
    assert_eq!((meta.uid(), meta.gid()), (user.base, user.base), "host owner of {}", upper.display());
    let out = d.cli(cli, &["exec", &c, "stat", "-c", "%u:%g", "/copied"]);
    assert_eq!(out.ok().trimmed(), "0:0", "{out}");

    let back = tmp.0.join("out.txt");
    d.cli(cli, &["cp", &format!("{c}:/copied"), &back.to_string_lossy()]).ok();
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "remapped copy\n");
    // The archive carries the ids the container sees (0), not the host's remapped ones.
    let out = d.cli(cli, &["cp", &format!("{c}:/copied"), "-"]);
    let header = out.ok().stdout.as_bytes();
    assert!(header.len() >= 512, "{out}");
    let tar_id = |field: &[u8]| {
        let text = String::from_utf8_lossy(field);
        u64::from_str_radix(text.trim_matches(|ch: char| ch == '\0' || ch == ' '), 8).ok()
    };
    assert_eq!((tar_id(&header[108..116]), tar_id(&header[116..124])), (Some(0), Some(0)), "{out}");

    d.cli(cli, &["stop", "-t", "0", &c]).ok();
    let out = d.cli(cli, &["cp", &src_s, &format!("{c}:/again")]);
    out.fails().mentions(&["userns-remap", "start it first"]);
    assert!(!d.data_root.join("snapshots/containers").join(&id).join("upper/again").exists());
    d.cli(cli, &["rm", "-f", &c]).ok();

    // Into one that never ran: written with the image's ids, then shifted to the container's,
    // a copied-up directory (/etc) included.
    let fresh = unique("cpremap-new");
    d.cli(cli, &["create", "--name", &fresh, &image, "stat", "-c", "%u:%g %n", "/etc", "/etc/new"]).ok();
    d.cli(cli, &["cp", &src_s, &format!("{fresh}:/etc/new")]).ok();
    let out = d.cli(cli, &["start", "-a", &fresh]);
    assert_eq!(out.ok().trimmed(), "0:0 /etc\n0:0 /etc/new", "{out}");
    d.cli(cli, &["rm", "-f", &fresh]).ok();
}
both!(remapped_cp);

/// A build on a daemon with userns-remap: RUN runs remapped, WORKDIR and COPY write their layers
/// with the ids the image means (root's is 0, not the remapped host id), and the image runs.
#[test]
fn a_build_under_userns_remap() {
    let user = RemapUser::new();
    let d = user.daemon();
    let ctx = crate::harness::TempDir::new("userns-build");
    std::fs::write(
        ctx.0.join("Dockerfile"),
        format!(
            "FROM {}\nWORKDIR /app/work\nCOPY f.txt ./\nRUN id -u > /uid && cat f.txt > copied && stat -c '%u' /app/work/f.txt > /owner\nCMD [\"cat\", \"/uid\", \"/app/work/copied\", \"/owner\"]\n",
            crate::harness::registry().image("library/busybox:latest")
        ),
    )
    .unwrap();
    std::fs::write(ctx.0.join("f.txt"), "remapped build\n").unwrap();
    let mut cmd = d.command(Cli::Docker, &["build", "-t", "remapped:1"]);
    cmd.arg(&ctx.0).env("DOCKER_BUILDKIT", "0");
    crate::harness::run_cmd(cmd, std::time::Duration::from_secs(120)).ok();
    let out = d.docker(&["run", "--rm", "remapped:1"]);
    out.ok();
    assert_eq!(out.trimmed(), "0\nremapped build\n0", "{out}");
}

/// On a remapped daemon, the copies that go through a created, never started container: a
/// COPY whose destination is below a symlink of the image (followed, as Docker follows it),
/// an ADD of a local archive (unpacked with its owners) and a COPY --from into a directory of
/// the image owned by another user. The files have the ids the image means, and a second
/// COPY on top of them keeps theirs.
#[test]
fn a_build_under_userns_remap_extracts_archives_and_follows_symlinks() {
    let user = RemapUser::new();
    let d = user.daemon();
    let ctx = crate::harness::TempDir::new("userns-build-extract");
    let src = ctx.0.join("src");
    std::fs::create_dir_all(src.join("pkg")).unwrap();
    std::fs::write(src.join("pkg/file"), "from the archive\n").unwrap();
    std::fs::set_permissions(src.join("pkg/file"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut tar = std::process::Command::new("tar");
    tar.args(["--numeric-owner", "--owner=1234", "--group=5678", "-czf"])
        .arg(ctx.0.join("a.tar.gz"))
        .arg("-C")
        .arg(&src)
        .arg("pkg");
    crate::harness::run_cmd(tar, std::time::Duration::from_secs(30)).ok();
    std::fs::remove_dir_all(&src).unwrap();
    std::fs::write(ctx.0.join("f.txt"), "through the link\n").unwrap();
    std::fs::write(
        ctx.0.join("Dockerfile"),
        format!(
            "FROM {}\n\
             RUN mkdir /real && ln -s /real /link && chown 7:8 /real && mkdir -m 0750 /opt && chown 9:10 /opt\n\
             COPY f.txt /link/\n\
             ADD a.tar.gz /opt/\n\
             COPY f.txt /opt/pkg/\n\
             RUN stat -c '%u:%g %a %n' /real /real/f.txt /opt /opt/pkg /opt/pkg/file /opt/pkg/f.txt > /owners && \
                 cat /real/f.txt /opt/pkg/file >> /owners\n\
             CMD [\"cat\", \"/owners\"]\n",
            crate::harness::registry().image("library/busybox:latest")
        ),
    )
    .unwrap();
    let mut cmd = d.command(Cli::Docker, &["build", "-t", "remapped-extract:1"]);
    cmd.arg(&ctx.0).env("DOCKER_BUILDKIT", "0");
    crate::harness::run_cmd(cmd, std::time::Duration::from_secs(120)).ok();
    let out = d.docker(&["run", "--rm", "remapped-extract:1"]);
    out.ok();
    assert_eq!(
        out.trimmed(),
        "7:8 755 /real\n0:0 644 /real/f.txt\n9:10 750 /opt\n1234:5678 755 /opt/pkg\n1234:5678 4755 /opt/pkg/file\n\
         0:0 644 /opt/pkg/f.txt\nthrough the link\nfrom the archive",
        "{out}"
    );
}

/// Another OCI runtime cannot run a remapped container (its layers reach the remapped root
/// only through wharf's own runtime): refused at create, naming both; `--userns host` runs.
#[test]
fn another_runtime_is_refused_under_userns_remap() {
    let u = RemapUser::new();
    let d = Daemon::start_with(DaemonOptions {
        config_json: Some(format!(
            r#"{{"userns-remap": "{}", "runtimes": {{"debrunc": {{"path": "/usr/sbin/runc"}}}}}}"#,
            u.name
        )),
        ..Default::default()
    });
    let image = d.pull("library/busybox:latest");
    d.docker(&["create", "--runtime", "debrunc", &image, "true"]).fails().mentions(&["\"debrunc\"", "userns-remap"]);
    let out = d.docker(&["run", "--rm", "--userns", "host", "--runtime", "debrunc", &image, "id", "-u"]);
    assert_eq!(out.ok().trimmed(), "0");
}
