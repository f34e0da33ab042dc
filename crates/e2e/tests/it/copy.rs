//! `cp`: files and directories both ways for running and stopped containers, `dir/.`, tars on
//! stdin and stdout, named volumes, `-a` ownership, read-only rootfs, missing paths, and the
//! escapes: symlinks to `/` and `../../..` inside the container, `..` and symlinked parents in
//! an uploaded tar; the host's files stay untouched and nothing stays mounted; a start waits for
//! a copy into the stopped container.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{run_cmd, unique, Cli, Daemon, Output, TempDir};

/// A client command with its stdin or stdout redirected to `file` (`redirect` is `<` or `>`).
fn redirected(d: &Daemon, cli: Cli, args: &[&str], redirect: &str, file: &Path) -> Output {
    let inner = d.command(cli, args);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("f=$1; shift; exec \"$@\" {redirect} \"$f\""))
        .arg("sh")
        .arg(file)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    run_cmd(cmd, Duration::from_secs(60))
}

/// Writes a tar with python's tarfile: `entries` is Python code calling `f(name, data)`,
/// `sym(name, target)`, `d(name)`, `hl(name, target)`.
fn make_tar(path: &Path, entries: &str) {
    let script = format!(
        "import tarfile, io, sys\n\
         t = tarfile.open(sys.argv[1], 'w', format=tarfile.GNU_FORMAT)\n\
         def f(name, data=b'x', uid=0, gid=0):\n    ti = tarfile.TarInfo(name); ti.size = len(data); ti.uid = uid; ti.gid = gid; ti.mode = 0o644; t.addfile(ti, io.BytesIO(data))\n\
         def sym(name, target):\n    ti = tarfile.TarInfo(name); ti.type = tarfile.SYMTYPE; ti.linkname = target; t.addfile(ti)\n\
         def d(name):\n    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)\n\
         def hl(name, target):\n    ti = tarfile.TarInfo(name); ti.type = tarfile.LNKTYPE; ti.linkname = target; t.addfile(ti)\n\
         {entries}\n\
         t.close()\n"
    );
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).arg(path);
    run_cmd(c, Duration::from_secs(30)).ok();
}

/// A raw API request with an optional body; returns (status, headers and body as text).
fn api(d: &Daemon, method: &str, target: &str, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(&d.sock).expect("connect to the daemon");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("set timeout");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send request");
    s.write_all(body).expect("send body");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

fn exec_out(d: &Daemon, cli: Cli, c: &str, script: &str) -> String {
    let out = d.cli(cli, &["exec", c, "sh", "-c", script]);
    out.ok();
    out.stdout.trim().to_string()
}

fn cp_running_both_ways(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp");
    d.cli(cli, &["run", "-d", "--name", &c, &busybox, "sleep", "600"]).ok();
    let tmp = TempDir::new("cp");
    let t = |p: &str| tmp.0.join(p).to_string_lossy().into_owned();

    // Host → container: a file into a dir, a file to a new name, a dir, a dir's contents.
    fs::write(t("f.txt"), "file content\n").unwrap();
    fs::create_dir_all(t("dir/sub")).unwrap();
    fs::write(t("dir/a"), "a\n").unwrap();
    fs::write(t("dir/sub/b"), "b\n").unwrap();
    d.cli(cli, &["cp", &t("f.txt"), &format!("{c}:/tmp/")]).ok();
    d.cli(cli, &["cp", &t("f.txt"), &format!("{c}:/tmp/renamed")]).ok();
    d.cli(cli, &["cp", &t("dir"), &format!("{c}:/tmp/")]).ok();
    d.cli(cli, &["cp", &format!("{}/.", t("dir")), &format!("{c}:/tmp/contents")]).ok();
    assert_eq!(
        exec_out(
            &d,
            cli,
            &c,
            "cat /tmp/f.txt /tmp/renamed /tmp/dir/a /tmp/dir/sub/b /tmp/contents/a /tmp/contents/sub/b"
        ),
        "file content\nfile content\na\nb\na\nb"
    );
    // Without -a, what lands is owned by the container's root.
    assert_eq!(exec_out(&d, cli, &c, "stat -c %u:%g /tmp/f.txt /tmp/dir/sub/b"), "0:0\n0:0");
    // A file to a missing directory (trailing slash) is refused.
    d.cli(cli, &["cp", &t("f.txt"), &format!("{c}:/nodir/")]).fails();

    // Container → host: a file, a dir, a dir's contents into a new and into an existing dir.
    let hostname = exec_out(&d, cli, &c, "cat /etc/hostname");
    d.cli(cli, &["cp", &format!("{c}:/etc/hostname"), &t("hostname")]).ok();
    assert_eq!(fs::read_to_string(t("hostname")).unwrap().trim(), hostname);
    d.cli(cli, &["cp", &format!("{c}:/tmp/dir"), &t("back")]).ok();
    assert_eq!(fs::read_to_string(t("back/sub/b")).unwrap(), "b\n");
    fs::create_dir(t("into")).unwrap();
    d.cli(cli, &["cp", &format!("{c}:/tmp/dir"), &t("into")]).ok();
    assert_eq!(fs::read_to_string(t("into/dir/a")).unwrap(), "a\n");
    d.cli(cli, &["cp", &format!("{c}:/tmp/dir/."), &t("into")]).ok();
    assert_eq!(fs::read_to_string(t("into/sub/b")).unwrap(), "b\n");
    d.cli(cli, &["cp", &format!("{c}:/etc/."), &t("etc2")]).ok();
    assert!(Path::new(&t("etc2/passwd")).is_file());

    // A symlink is copied as a symlink, or with -L as what it points to.
    exec_out(&d, cli, &c, "ln -s /tmp/f.txt /tmp/link");
    d.cli(cli, &["cp", &format!("{c}:/tmp/link"), &t("link-raw")]).ok();
    assert_eq!(fs::read_link(t("link-raw")).unwrap(), Path::new("/tmp/f.txt"));
    d.cli(cli, &["cp", "-L", &format!("{c}:/tmp/link"), &t("link-followed")]).ok();
    assert_eq!(fs::read_to_string(t("link-followed")).unwrap(), "file content\n");

    // Tars on stdout and stdin.
    let out = redirected(&d, cli, &["cp", &format!("{c}:/tmp/dir"), "-"], ">", Path::new(&t("out.tar")));
    out.ok();
    let mut list = Command::new("tar");
    list.arg("tf").arg(t("out.tar"));
    let names = run_cmd(list, Duration::from_secs(30));
    names.ok();
    let mut names: Vec<&str> = names.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["dir/", "dir/a", "dir/sub/", "dir/sub/b"]);
    make_tar(Path::new(&t("in.tar")), "f('from-stdin/x', b'stdin\\n')");
    redirected(&d, cli, &["cp", "-", &format!("{c}:/tmp")], "<", Path::new(&t("in.tar"))).ok();
    assert_eq!(exec_out(&d, cli, &c, "cat /tmp/from-stdin/x"), "stdin");

    // A missing path is a 404 naming the path; so is an unknown container.
    d.cli(cli, &["cp", &format!("{c}:/no/such/file"), &t("x")]).fails().mentions(&["/no/such/file"]);
    d.cli(cli, &["cp", &t("f.txt"), "no-such-container:/tmp/x"]).fails().mentions(&["no-such-container"]);
    d.cli(cli, &["cp", "no-such-container:/etc", &t("x")]).fails().mentions(&["no-such-container"]);

    // The events Docker emits for both directions.
    let until =
        format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1);
    let ev = d.cli(cli, &["events", "--since", "0", "--until", &until, "--filter", &format!("container={c}")]);
    ev.ok().mentions(&["archive-path", "extract-to-dir"]);
    d.cli(cli, &["rm", "-f", &c]).ok();
}
both!(cp_running_both_ways);

fn cp_stopped_volume_and_owner(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp-stopped");
    let vol = unique("cpvol");
    d.cli(
        cli,
        &[
            "create",
            "--name",
            &c,
            "-v",
            &format!("{vol}:/data"),
            &busybox,
            "sh",
            "-c",
            "cat /etc/marker /data/in-volume; stat -c %u:%g /owned /not-owned",
        ],
    )
    .ok();
    let tmp = TempDir::new("cp-stopped");
    let t = |p: &str| tmp.0.join(p).to_string_lossy().into_owned();
    fs::write(t("marker"), "marker\n").unwrap();
    fs::write(t("in-volume"), "volume\n").unwrap();
    fs::write(t("owned"), "o\n").unwrap();
    fs::write(t("not-owned"), "n\n").unwrap();
    for f in ["owned", "not-owned"] {
        let mut chown = Command::new("chown");
        chown.arg("1234:5678").arg(t(f));
        run_cmd(chown, Duration::from_secs(10)).ok();
    }
    // Into a created (never started) container: its rootfs, its volume, with and without -a.
    d.cli(cli, &["cp", &t("marker"), &format!("{c}:/etc/")]).ok();
    d.cli(cli, &["cp", &t("in-volume"), &format!("{c}:/data/")]).ok();
    d.cli(cli, &["cp", "-a", &t("owned"), &format!("{c}:/")]).ok();
    d.cli(cli, &["cp", &t("not-owned"), &format!("{c}:/")]).ok();
    assert!(crate::harness::mounts_under(&d.data_root).is_empty(), "a copy left a mount on the host");
    let run = d.cli(cli, &["start", "-a", &c]);
    assert_eq!(run.ok().stdout.trim(), "marker\nvolume\n1234:5678\n0:0");
    // The file is in the named volume: another container sees it.
    let other = d.cli(cli, &["run", "--rm", "-v", &format!("{vol}:/v"), &busybox, "cat", "/v/in-volume"]);
    assert_eq!(other.ok().stdout.trim(), "volume");
    // Out of the exited container: a file from the rootfs and one from the volume.
    d.cli(cli, &["cp", &format!("{c}:/etc/marker"), &t("marker-back")]).ok();
    assert_eq!(fs::read_to_string(t("marker-back")).unwrap(), "marker\n");
    d.cli(cli, &["cp", &format!("{c}:/data/in-volume"), &t("volume-back")]).ok();
    assert_eq!(fs::read_to_string(t("volume-back")).unwrap(), "volume\n");
    assert!(crate::harness::mounts_under(&d.data_root).is_empty(), "a copy left a mount on the host");
    d.cli(cli, &["rm", "-v", &c]).ok();
    d.cli(cli, &["volume", "rm", &vol]).ok();
}
both!(cp_stopped_volume_and_owner);

fn cp_read_only_rootfs(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp-ro");
    d.cli(cli, &["run", "-d", "--read-only", "--name", &c, "-v", "/data", &busybox, "sleep", "600"]).ok();
    let tmp = TempDir::new("cp-ro");
    let f = tmp.0.join("f");
    fs::write(&f, "x").unwrap();
    let f = f.to_string_lossy().into_owned();
    d.cli(cli, &["cp", &f, &format!("{c}:/tmp/")]).fails().mentions(&["read-only"]);
    // A volume in it stays writable, as in Docker.
    d.cli(cli, &["cp", &f, &format!("{c}:/data/")]).ok();
    assert_eq!(exec_out(&d, cli, &c, "cat /data/f"), "x");
    // Reading is fine.
    d.cli(cli, &["cp", &format!("{c}:/etc/passwd"), &tmp.0.join("p").to_string_lossy()]).ok();
    d.cli(cli, &["rm", "-f", "-v", &c]).ok();
}
both!(cp_read_only_rootfs);

/// A tar whose entries go below the destination into a read-only bind (`/data` holds the
/// read-only `/data/ro`) is refused naming the volume, running and stopped, and the host
/// directory stays untouched.
fn cp_read_only_volume_below_destination(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp-rovol");
    let tmp = TempDir::new("cp-rovol");
    let host_ro = tmp.0.join("host-ro");
    fs::create_dir_all(&host_ro).unwrap();
    fs::create_dir_all(tmp.0.join("ro")).unwrap();
    fs::write(tmp.0.join("ro/x"), "x").unwrap();
    let bind = format!("{}:/data/ro:ro", host_ro.display());
    d.cli(cli, &["run", "-d", "--name", &c, "-v", &bind, &busybox, "sleep", "600"]).ok();
    let src = tmp.0.join("ro").to_string_lossy().into_owned();
    let dest = format!("{c}:/data/");
    d.cli(cli, &["cp", &src, &dest]).fails().mentions(&["mounted volume is marked read-only"]);
    d.cli(cli, &["stop", "-t", "0", &c]).ok();
    d.cli(cli, &["cp", &src, &dest]).fails().mentions(&["mounted volume is marked read-only"]);
    assert!(!host_ro.join("x").exists(), "a copy wrote into a read-only bind");
    assert!(crate::harness::mounts_under(&d.data_root).is_empty(), "a copy left a mount on the host");
    d.cli(cli, &["rm", "-f", &c]).ok();
}
both!(cp_read_only_volume_below_destination);

fn cp_symlink_escapes(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp-esc");
    d.cli(cli, &["run", "-d", "--name", &c, "--hostname", "inside-host", &busybox, "sleep", "600"]).ok();
    exec_out(&d, cli, &c, "ln -s / /escape && ln -s ../../../../etc /up && echo inside > /etc/only-inside");
    let tmp = TempDir::new("cp-esc");
    let t = |p: &str| tmp.0.join(p).to_string_lossy().into_owned();

    // Reading through a symlink to / gives the container's files, not the host's.
    d.cli(cli, &["cp", &format!("{c}:/escape/etc/hostname"), &t("hostname")]).ok();
    assert_eq!(fs::read_to_string(t("hostname")).unwrap().trim(), "inside-host");
    d.cli(cli, &["cp", &format!("{c}:/up/only-inside"), &t("only")]).ok();
    assert_eq!(fs::read_to_string(t("only")).unwrap(), "inside\n");
    d.cli(cli, &["cp", &format!("{c}:/escape/../../../etc/only-inside"), &t("only2")]).ok();

    // Writing through ../../../../etc lands in the container's /etc, never the host's.
    let marker = unique("wharf-cp-marker");
    fs::write(t(&marker), "m\n").unwrap();
    d.cli(cli, &["cp", &t(&marker), &format!("{c}:/up/")]).ok();
    d.cli(cli, &["cp", &t(&marker), &format!("{c}:/escape/tmp/")]).ok();
    assert!(!Path::new("/etc").join(&marker).exists(), "cp wrote into the host's /etc");
    assert!(!Path::new("/tmp").join(&marker).exists(), "cp wrote into the host's /tmp");
    assert_eq!(exec_out(&d, cli, &c, &format!("cat /etc/{marker} /tmp/{marker}")), "m\nm");

    // The same against the stopped container.
    d.cli(cli, &["stop", "-t", "0", &c]).ok();
    let marker2 = unique("wharf-cp-marker");
    fs::write(t(&marker2), "m2\n").unwrap();
    d.cli(cli, &["cp", &t(&marker2), &format!("{c}:/up/")]).ok();
    assert!(!Path::new("/etc").join(&marker2).exists(), "cp wrote into the host's /etc");
    d.cli(cli, &["cp", &format!("{c}:/escape/etc/{marker2}"), &t("m2-back")]).ok();
    assert_eq!(fs::read_to_string(t("m2-back")).unwrap(), "m2\n");
    d.cli(cli, &["cp", &format!("{c}:/escape/etc/passwd"), &t("passwd")]).ok();
    assert!(fs::read_to_string(t("passwd")).unwrap().starts_with("root:x:0:0"));
    assert!(crate::harness::mounts_under(&d.data_root).is_empty(), "a copy left a mount on the host");
    d.cli(cli, &["rm", "-f", &c]).ok();
}
both!(cp_symlink_escapes);

/// The API directly: the stat header, 404s, and uploaded tars that try to leave the directory.
#[test]
fn cp_archive_api() {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp-api");
    d.wharf(&["run", "-d", "--name", &c, &busybox, "sleep", "600"]).ok();
    let target = |p: &str| format!("/v1.45/containers/{c}/archive?path={p}");

    let (status, text) = api(&d, "HEAD", &target("/etc"), b"");
    assert_eq!(status, 200, "{text}");
    let header = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("X-Docker-Container-Path-Stat: ")
                .or_else(|| l.strip_prefix("x-docker-container-path-stat: "))
        })
        .unwrap_or_else(|| panic!("no stat header: {text}"));
    let mut dec = Command::new("sh");
    dec.arg("-c").arg("echo \"$0\" | base64 -d").arg(header.trim());
    let json = run_cmd(dec, Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(json.ok().stdout.trim()).expect("stat JSON");
    assert_eq!(v["name"], "etc");
    assert_eq!(v["mode"].as_u64().unwrap_or(0) & (1 << 31), 1 << 31, "{v}");
    assert!(v["mtime"].as_str().unwrap_or("").contains('T'), "{v}");
    let (status, text) = api(&d, "HEAD", &target("/nope"), b"");
    assert_eq!(status, 404, "{text}");
    let (status, text) = api(&d, "GET", &target("/nope"), b"");
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("/nope"), "{text}");
    let (status, _) = api(&d, "HEAD", "/v1.45/containers/no-such/archive?path=/etc", b"");
    assert_eq!(status, 404);
    let (status, text) = api(&d, "PUT", &target("/etc/passwd"), b"");
    assert_eq!(status, 400, "{text}");
    let (status, text) = api(&d, "PUT", &target("/no/dir"), b"");
    assert_eq!(status, 404, "{text}");

    let tmp = TempDir::new("cp-api");
    let marker = unique("wharf-cp-escape");
    // `..` entries are refused.
    let tar = tmp.0.join("dotdot.tar");
    make_tar(&tar, &format!("f('../../../../{marker}')\nf('../../../../tmp/{marker}')"));
    let (status, text) = api(&d, "PUT", &target("/tmp"), &fs::read(&tar).unwrap());
    assert_eq!(status, 400, "{text}");
    // A symlink of the archive is never followed by its later entries.
    let tar = tmp.0.join("symlink.tar");
    make_tar(&tar, &format!("sym('link', '/')\nf('link/etc/{marker}')"));
    let (status, text) = api(&d, "PUT", &target("/tmp"), &fs::read(&tar).unwrap());
    assert_eq!(status, 400, "{text}");
    let tar = tmp.0.join("updir.tar");
    make_tar(&tar, &format!("sym('up', '../../../../../../etc')\nf('up/{marker}')"));
    let (status, text) = api(&d, "PUT", &target("/tmp"), &fs::read(&tar).unwrap());
    assert_eq!(status, 400, "{text}");
    // Absolute names are made relative to the destination.
    let tar = tmp.0.join("abs.tar");
    make_tar(&tar, &format!("f('/abs/{marker}', b'abs')"));
    let (status, text) = api(&d, "PUT", &target("/tmp"), &fs::read(&tar).unwrap());
    assert_eq!(status, 200, "{text}");
    let inside = d.wharf(&["exec", &c, "cat", &format!("/tmp/abs/{marker}")]);
    assert_eq!(inside.ok().stdout, "abs");
    // A gzip-compressed archive is accepted as the API documents.
    let mut gz = Command::new("sh");
    gz.arg("-c").arg("gzip -c \"$0\" > \"$0.gz\"").arg(tmp.0.join("abs.tar"));
    run_cmd(gz, Duration::from_secs(10)).ok();
    let (status, text) = api(&d, "PUT", &target("/home"), &fs::read(tmp.0.join("abs.tar.gz")).unwrap());
    assert_eq!(status, 200, "{text}");
    d.wharf(&["exec", &c, "test", "-f", &format!("/home/abs/{marker}")]).ok();
    // Hard links stay links; a directory never replaces a file when the client asks so.
    let tar = tmp.0.join("links.tar");
    make_tar(&tar, "d('links')\nf('links/one', b'1')\nhl('links/two', 'links/one')");
    let (status, text) = api(&d, "PUT", &target("/tmp"), &fs::read(&tar).unwrap());
    assert_eq!(status, 200, "{text}");
    let inodes = d.wharf(&["exec", &c, "stat", "-c", "%i %h", "/tmp/links/one", "/tmp/links/two"]);
    let lines: Vec<String> = inodes.ok().stdout.lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{inodes}");
    assert_eq!(lines[0], lines[1], "{inodes}");
    let tar = tmp.0.join("dir-over-file.tar");
    make_tar(&tar, "d('passwd')");
    let (status, text) =
        api(&d, "PUT", &format!("{}&noOverwriteDirNonDir=true", target("/etc")), &fs::read(&tar).unwrap());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("cannot overwrite non-directory"), "{text}");
    d.wharf(&["exec", &c, "test", "-f", "/etc/passwd"]).ok();
    for host in ["/", "/tmp", "/etc"] {
        assert!(!Path::new(host).join(&marker).exists(), "an upload reached the host's {host}");
    }
    let found = d.wharf(&["exec", &c, "sh", "-c", &format!("find / -xdev -name '{marker}' | sort")]);
    assert_eq!(found.ok().stdout.trim(), format!("/home/abs/{marker}\n/tmp/abs/{marker}"));
    d.wharf(&["rm", "-f", &c]).ok();
}

/// A copy into a stopped container holds its start back until the copy ends.
#[test]
fn cp_into_stopped_container_holds_start() {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let c = unique("cp-hold");
    d.wharf(&["create", "--name", &c, &busybox, "cat", "/late"]).ok();
    let tmp = TempDir::new("cp-hold");
    let tar = tmp.0.join("late.tar");
    make_tar(&tar, "f('late', b'late\\n')");
    let bytes = fs::read(&tar).unwrap();
    let mut s = UnixStream::connect(&d.sock).expect("connect to the daemon");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("set timeout");
    let head = format!(
        "PUT /v1.45/containers/{c}/archive?path=/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&bytes[..512]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let start = d.command(Cli::Wharf, &["start", "-a", &c]);
    let starting = std::thread::spawn(move || run_cmd(start, Duration::from_secs(60)));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!starting.is_finished(), "start did not wait for the copy in flight");
    s.write_all(&bytes[512..]).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let out = starting.join().expect("start thread");
    assert_eq!(out.ok().stdout, "late\n");
    d.wharf(&["rm", &c]).ok();
}
