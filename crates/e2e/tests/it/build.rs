//! `docker build` (the classic builder, `DOCKER_BUILDKIT=0`) and `wharf build` against wharfd:
//! every built image is checked by running it and by inspecting its config; the cache is
//! checked by rebuilding, touching and changing files; failures name what failed and tag
//! nothing.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::harness::{registry, run_cmd, Cli, Daemon, Output, RegistryOptions, TempDir, TestRegistry};

/// Runs a build of `dir` through the CLI.
pub(crate) fn build(d: &Daemon, cli: Cli, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = d.command(cli, &[]);
    cmd.arg("build").args(args).arg(dir);
    if cli == Cli::Docker {
        cmd.env("DOCKER_BUILDKIT", "0");
    }
    run_cmd(cmd, Duration::from_secs(180))
}

/// Writes `text` to `dir/name`, making the directories on the way.
pub(crate) fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(p, text).expect("write");
}

/// The base image of the build tests, in the test registry.
pub(crate) fn base() -> String {
    registry().image("library/busybox:latest")
}

const APP_DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
FROM BASE
ARG GREETING=hello
ENV APP=/app \
    MODE=test
WORKDIR $APP
COPY greet.txt ./
COPY dir/ sub/
RUN echo "$GREETING from run" > run.txt && cat greet.txt
RUN <<EOF
echo heredoc-ran > /app/heredoc.txt
EOF
LABEL org.example.kind="demo app" org.example.v=1
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD ["true"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/run.txt /app/heredoc.txt /app/sub/inner.txt"]
"#;

fn app_context(dir: &Path) {
    write(dir, "Dockerfile", &APP_DOCKERFILE.replace("BASE", &base()));
    write(dir, "greet.txt", "greetings\n");
    write(dir, "dir/inner.txt", "inner\n");
    write(dir, "dir/skip.log", "not copied\n");
    write(dir, "ignored.bin", "x");
    write(dir, ".dockerignore", "# comment\n*.bin\n**/*.log\n");
}

fn image_id(out: &Output) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no 'Successfully built' line:\n{out}"))
        .trim()
        .to_string()
}

fn build_run_and_inspect(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-ctx");
    app_context(&ctx.0);
    let out = build(&d, cli, &ctx.0, &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    out.ok();
    out.mentions(&["Step 1/", "FROM ", "Running in ", "greetings", "Successfully tagged app:1"]);
    let id = image_id(&out);

    let run = d.cli(cli, &["run", "--rm", "app:1"]);
    run.ok();
    assert_eq!(run.trimmed(), "hi from run\nheredoc-ran\ninner", "{run}");
    let ls = d.cli(cli, &["run", "--rm", "--entrypoint", "ls", "app:1", "/app", "/app/sub"]);
    ls.ok();
    assert!(!ls.stdout.contains("skip.log") && !ls.stdout.contains("ignored.bin"), ".dockerignore not applied:\n{ls}");

    let info = d.inspect(cli, "app:1");
    let c = &info["Config"];
    assert_eq!(c["WorkingDir"], "/app", "{c}");
    let env: Vec<String> =
        c["Env"].as_array().expect("Env").iter().map(|v| v.as_str().unwrap_or("").to_string()).collect();
    assert!(env.contains(&"APP=/app".to_string()) && env.contains(&"MODE=test".to_string()), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("GREETING")), "a build arg was kept in the image: {env:?}");
    assert_eq!(c["Labels"]["org.example.kind"], "demo app", "{c}");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some(), "{c}");
    assert!(c["Volumes"].get("/data").is_some(), "{c}");
    assert_eq!(c["StopSignal"], "SIGINT", "{c}");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]), "{c}");
    assert_eq!(c["Cmd"], serde_json::json!(["cat /app/run.txt /app/heredoc.txt /app/sub/inner.txt"]), "{c}");
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]), "{c}");
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64, "{c}");

    let history = d.cli(cli, &["history", "--no-trunc", "app:1"]);
    history.ok();
    history.mentions(&["from run", "WORKDIR /app", "EXPOSE"]);

    // A rebuild is all cache and gives the same image.
    let again = build(&d, cli, &ctx.0, &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    again.ok();
    assert!(!again.stdout.contains("Running in"), "a step ran again:\n{again}");
    assert_eq!(image_id(&again), id, "the cached rebuild made another image");

    // Touching a file keeps the cache; changing a byte busts it from that COPY on.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    fs::File::options().write(true).open(ctx.0.join("greet.txt")).expect("open").set_modified(later).expect("touch");
    let touched = build(&d, cli, &ctx.0, &["-t", "app:1", "--build-arg", "GREETING=hi"]);
    touched.ok();
    assert_eq!(image_id(&touched), id, "touching a file busted the cache:\n{touched}");
    write(&ctx.0, "greet.txt", "changed\n");
    let changed = build(&d, cli, &ctx.0, &["-t", "app:2", "--build-arg", "GREETING=hi"]);
    changed.ok();
    changed.mentions(&["Running in", "changed", "Cache miss: file /app/greet.txt changed"]);
    let other_arg = build(&d, cli, &ctx.0, &["-t", "app:2", "--build-arg", "GREETING=hey"]);
    other_arg.ok();
    other_arg.mentions(&["Cache miss: build arg GREETING changed (was \"hi\", now \"hey\")"]);
    assert_ne!(image_id(&changed), id);
    // --no-cache runs everything.
    let fresh = build(&d, cli, &ctx.0, &["--no-cache", "-t", "app:3", "--build-arg", "GREETING=hi"]);
    fresh.ok();
    assert!(!fresh.stdout.contains("Using cache"), "{fresh}");
}
both!(build_run_and_inspect);

fn failing_run_names_the_command_and_tags_nothing(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-fail");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN echo before\nRUN exit 3\n", base()));
    let out = build(&d, cli, &ctx.0, &["-t", "broken:1"]);
    out.fails().mentions(&["The command '/bin/sh -c exit 3' returned a non-zero code: 3"]);
    assert!(!d.cli(cli, &["image", "inspect", "broken:1"]).success(), "a failed build was tagged");

    write(&ctx.0, "Dockerfile", &format!("FROM {}\nCOPY missing.txt /\n", base()));
    let out = build(&d, cli, &ctx.0, &["-t", "broken:2"]);
    out.fails().mentions(&["missing.txt"]);

    write(&ctx.0, "Dockerfile", &format!("FROM {}\nFORM x\n", base()));
    let out = build(&d, cli, &ctx.0, &["-t", "broken:3"]);
    out.fails().mentions(&["line 2", "FORM"]);
}
both!(failing_run_names_the_command_and_tags_nothing);

const STAGES_DOCKERFILE: &str = r#"FROM BASE AS builder
RUN mkdir /out && echo built > /out/artifact
FROM BASE AS unused
RUN exit 9
FROM scratch AS files
COPY --from=builder /out/artifact /artifact
FROM BASE
COPY --from=files /artifact /final/artifact
COPY --from=0 /out/ /copy0/
CMD ["cat", "/final/artifact", "/copy0/artifact"]
"#;

fn multi_stage_and_target(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-stages");
    write(&ctx.0, "Dockerfile", &STAGES_DOCKERFILE.replace("BASE", &base()));
    let out = build(&d, cli, &ctx.0, &["-t", "multi:1"]);
    out.ok();
    let run = d.cli(cli, &["run", "--rm", "multi:1"]);
    run.ok();
    assert_eq!(run.trimmed(), "built\nbuilt", "{run}");

    let out = build(&d, cli, &ctx.0, &["--target", "builder", "-t", "multi:builder"]);
    out.ok();
    let run = d.cli(cli, &["run", "--rm", "multi:builder", "cat", "/out/artifact"]);
    run.ok();
    assert_eq!(run.trimmed(), "built");
    let out = build(&d, cli, &ctx.0, &["--target", "nosuch"]);
    out.fails().mentions(&["nosuch"]);
}
both!(multi_stage_and_target);

const MOUNTS_DOCKERFILE: &str = r#"FROM BASE
RUN --mount=type=cache,target=/cache,id=counter sh -c 'echo x >> /cache/count; wc -l < /cache/count > /seen'
RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cat /mnt/data.txt > /copied
RUN --mount=type=bind,target=/ctx,rw sh -c 'rm /ctx/data.txt && ls /ctx > /ctx-listing'
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/f && cat /scratch/f > /tmpfs-ok'
RUN --network=none sh -c 'ip -o link | grep -c . > /links || echo none > /links'
"#;

/// `RUN --mount` (cache kept across builds, even `--no-cache` ones, and out of the image; bind
/// of the context, read-only, and rw as a throw-away copy; tmpfs) and `--network=none`.
fn run_mounts(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-mounts");
    write(&ctx.0, "Dockerfile", &MOUNTS_DOCKERFILE.replace("BASE", &base()));
    write(&ctx.0, "data.txt", "from-the-context\n");
    build(&d, cli, &ctx.0, &["-t", "mounts:1"]).ok();
    build(&d, cli, &ctx.0, &["--no-cache", "-t", "mounts:2"]).ok();
    let cat = |tag: &str, path: &str| {
        let out = d.cli(cli, &["run", "--rm", tag, "cat", path]);
        out.ok();
        out.trimmed().to_string()
    };
    assert_eq!(cat("mounts:1", "/seen"), "1");
    assert_eq!(cat("mounts:2", "/seen"), "2", "the cache mount did not survive to the next build");
    assert_eq!(cat("mounts:2", "/copied"), "from-the-context");
    assert_eq!(cat("mounts:2", "/tmpfs-ok"), "t");
    assert!(cat("mounts:2", "/ctx-listing").contains("Dockerfile"));
    // Neither the mounts' content nor their mount points (made only to mount on, as BuildKit
    // removes its stubs) are in the image.
    let cache = d.cli(cli, &["run", "--rm", "mounts:2", "ls", "-A", "/cache", "/scratch", "/mnt"]);
    assert!(!cache.all().contains("count") && !cache.all().contains("data.txt"), "{cache}");
    assert!(cache.stderr.contains("/cache: No such file"), "an empty mount point was left in the image: {cache}");
    // Only loopback with --network=none.
    assert_eq!(cat("mounts:2", "/links"), "1");
    // A rw bind's changes go nowhere: the context still has its file for the next build.
    assert!(ctx.0.join("data.txt").exists());
    // `builder prune -a` empties the cache mounts too.
    d.cli(cli, &["builder", "prune", "-a", "-f"]).ok();
    build(&d, cli, &ctx.0, &["-t", "mounts:4"]).ok();
    assert_eq!(cat("mounts:4", "/seen"), "1", "builder prune -a kept the cache mount's content");

    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n", base()));
    build(&d, cli, &ctx.0, &["-t", "mounts:3"]).fails().mentions(&["type=secret"]);
}
both!(run_mounts);

const BIND_FROM_DOCKERFILE: &str = r#"FROM BASE AS stage
RUN mkdir -p /out/sub && echo staged > /out/sub/f && ln -s sub/f /out/link && ln /out/sub/f /out/hard && chmod 0750 /out/sub
FROM BASE
RUN --mount=type=bind,from=stage,target=/st sh -c 'cat /st/out/link /st/out/hard > /seen && stat -c %a /st/out/sub >> /seen'
"#;

/// `RUN --mount=type=bind,from=`: the stage's file system, unpacked by the one extraction loop,
/// with its symlinks, hard links and modes.
#[test]
fn run_mount_bind_from_a_stage() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-bind-from");
    write(&ctx.0, "Dockerfile", &BIND_FROM_DOCKERFILE.replace("BASE", &base()));
    build(&d, Cli::Wharf, &ctx.0, &["-t", "bind-from:1"]).ok();
    let out = d.cli(Cli::Wharf, &["run", "--rm", "bind-from:1", "cat", "/seen"]);
    out.ok();
    assert_eq!(out.stdout, "staged\nstaged\n750\n");
}

const PARALLEL_DOCKERFILE: &str = r#"FROM BASE AS a
RUN cut -d' ' -f1 /proc/uptime > /a.start && sleep 2 && cut -d' ' -f1 /proc/uptime > /a.end
FROM BASE AS b
RUN cut -d' ' -f1 /proc/uptime > /b.start && sleep 2 && cut -d' ' -f1 /proc/uptime > /b.end
FROM BASE AS c
RUN cut -d' ' -f1 /proc/uptime > /c.start && sleep 2 && cut -d' ' -f1 /proc/uptime > /c.end
FROM BASE
COPY --from=a /a.start /a.end /t/
COPY --from=b /b.start /b.end /t/
COPY --from=c /c.start /c.end /t/
CMD ["sh", "-c", "cd /t && cat a.start a.end b.start b.end c.start c.end"]
"#;

/// Independent stages run at the same time: the host's uptime, read at the start and end of
/// each stage's step, shows their runs overlapping. Their output still reads one stage after
/// the other, with the step numbers in order.
#[test]
fn independent_stages_run_in_parallel() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-parallel");
    write(&ctx.0, "Dockerfile", &PARALLEL_DOCKERFILE.replace("BASE", &base()));
    let out = build(&d, Cli::Docker, &ctx.0, &["-t", "parallel:1"]);
    out.ok();
    let run = d.docker(&["run", "--rm", "parallel:1"]);
    run.ok();
    let t: Vec<f64> = run.stdout.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    assert_eq!(t.len(), 6, "{run}");
    let (starts, ends) = ([t[0], t[2], t[4]], [t[1], t[3], t[5]]);
    let last_start = starts.iter().cloned().fold(f64::MIN, f64::max);
    let first_end = ends.iter().cloned().fold(f64::MAX, f64::min);
    assert!(last_start < first_end, "the stages ran one after the other: starts {starts:?}, ends {ends:?}");
    let steps: Vec<usize> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Step ").and_then(|r| r.split('/').next()).and_then(|n| n.parse().ok()))
        .collect();
    assert_eq!(steps, (1..=steps.len()).collect::<Vec<_>>(), "steps out of order:\n{out}");
}

/// A build's intermediate images are hidden from `images` (shown with `-a`), its cache shows in
/// `system df` and the API's `BuildCache`, and `builder prune` forgets it (the next build runs
/// its steps again) without touching the tagged image.
fn cache_in_df_and_prune(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-df");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN echo one > /one\nENV A=1\nRUN echo two > /two\n", base()));
    build(&d, cli, &ctx.0, &["-t", "cached:1"]).ok();
    let images = d.cli(cli, &["images", "-q"]);
    images.ok();
    let all = d.cli(cli, &["images", "-aq"]);
    all.ok();
    assert!(
        all.stdout.lines().count() > images.stdout.lines().count(),
        "images -a should list the intermediate images that images hides:\n{images}\n{all}"
    );
    assert!(!images.stdout.is_empty());
    let df: serde_json::Value = serde_json::from_str(
        &crate::harness::http_unix(&d.sock, "GET", "/system/df")
            .and_then(|r| r.split("\r\n\r\n").nth(1).map(str::to_string))
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let cache = df["BuildCache"].as_array().cloned().unwrap_or_default();
    assert_eq!(cache.len(), 3, "three steps cached: {df}");
    assert!(cache.iter().any(|c| c["Size"].as_u64().unwrap_or(0) > 0), "{df}");
    let out = d.cli(cli, &["system", "df"]);
    out.ok();
    let row = out.stdout.lines().find(|l| l.starts_with("Build Cache")).unwrap_or_default().to_string();
    assert!(row.split_whitespace().nth(2) == Some("3"), "system df: {out}");

    // The tagged image builds on every step: a plain prune keeps them, -a forgets them.
    d.cli(cli, &["builder", "prune", "-f"]).ok();
    let again = build(&d, cli, &ctx.0, &["-t", "cached:1"]);
    again.ok();
    assert!(!again.stdout.contains("Running in"), "a plain prune dropped cache a tagged image uses:\n{again}");
    d.cli(cli, &["builder", "prune", "-a", "-f"]).ok();
    let fresh = build(&d, cli, &ctx.0, &["-t", "cached:1"]);
    fresh.ok();
    assert!(fresh.stdout.contains("Running in"), "builder prune -a kept the cache:\n{fresh}");
    d.cli(cli, &["run", "--rm", "cached:1", "cat", "/one", "/two"]).ok();
}
both!(cache_in_df_and_prune);

/// A small HTTP server on loopback for the downloads a build makes: each path is served with
/// a fixed `Last-Modified`; it stops when dropped.
struct FileServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `Last-Modified` of every file served: 2021-01-02 03:04:05 UTC.
const SERVED_MTIME: u64 = 1_609_556_645;

impl FileServer {
    fn start<P: Into<String>>(files: Vec<(P, Vec<u8>)>) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        let files: Vec<(String, Vec<u8>)> = files.into_iter().map(|(p, b)| (p.into(), b)).collect();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            while !flag.load(std::sync::atomic::Ordering::SeqCst) && std::time::Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nonblocking(false);
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                // A static server: the query (git's `?service=`) does not matter.
                let target = line.split_whitespace().nth(1).unwrap_or("/");
                let path = target.split_once('?').map_or(target, |(p, _)| p).to_string();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let mut out = stream;
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let _ = write!(
                            out,
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sat, 02 Jan 2021 03:04:05 GMT\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = out.write_all(body);
                    }
                    None => {
                        let _ = write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                }
            }
        });
        FileServer { port, stop, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A gzip tar of `files` (path, content), made with the tar and gzip tools of the host.
fn tar_gz(dir: &Path, files: &[(&str, &str)]) -> Vec<u8> {
    let src = dir.join("tar-src");
    for (p, text) in files {
        write(&src, p, text);
    }
    let out = dir.join("archive.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .args(files.iter().map(|(p, _)| *p))
        .status()
        .expect("tar");
    assert!(status.success());
    let _ = fs::remove_dir_all(&src);
    fs::read(&out).expect("read archive")
}

/// ADD of a URL (a file of mode 0600 with the server's Last-Modified as mtime, named after the
/// URL in a directory, not unpacked), `--checksum`, ADD of a local .tar.gz (unpacked), and a
/// build from `remote=` URLs: a Dockerfile alone and a tarball context.
fn add_urls_archives_and_remote_contexts(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-add");
    let archive = tar_gz(&ctx.0, &[("a/one.txt", "one\n"), ("two.txt", "two\n")]);
    let payload = b"downloaded\n".to_vec();
    let digest = format!("sha256:{}", sha256_hex(&payload));
    let context_tar = {
        let c = ctx.0.join("remote-ctx");
        write(&c, "Dockerfile", &format!("FROM {}\nCOPY hello.txt /\nCMD [\"cat\", \"/hello.txt\"]\n", base()));
        write(&c, "hello.txt", "from a remote context\n");
        let out = ctx.0.join("remote.tar");
        assert!(std::process::Command::new("tar")
            .arg("-cf")
            .arg(&out)
            .arg("-C")
            .arg(&c)
            .args(["Dockerfile", "hello.txt"])
            .status()
            .expect("tar")
            .success());
        let _ = fs::remove_dir_all(&c);
        fs::read(&out).expect("read")
    };
    let remote_dockerfile =
        format!("FROM {}\nRUN echo remote-dockerfile > /r\nCMD [\"cat\", \"/r\"]\n", base()).into_bytes();
    let server = FileServer::start(vec![
        ("/files/data.txt", payload.clone()),
        ("/files/archive.tar.gz", archive.clone()),
        ("/Dockerfile", remote_dockerfile),
        ("/context.tar", context_tar),
    ]);
    fs::write(ctx.0.join("local.tar.gz"), &archive).expect("write archive");
    write(
        &ctx.0,
        "Dockerfile",
        &format!(
            "FROM {b}\nADD {u} /dl/\nADD --checksum={digest} {u} /checked.txt\nADD {a} /remote-archive/\nADD local.tar.gz /unpacked/\n",
            b = base(),
            u = server.url("/files/data.txt"),
            a = server.url("/files/archive.tar.gz"),
        ),
    );
    build(&d, cli, &ctx.0, &["-t", "add:1"]).ok();
    let stat = d.cli(
        cli,
        &[
            "run",
            "--rm",
            "add:1",
            "stat",
            "-c",
            "%n %a %Y",
            "/dl/data.txt",
            "/checked.txt",
            "/remote-archive/archive.tar.gz",
        ],
    );
    stat.ok();
    for line in stat.stdout.lines() {
        assert!(line.ends_with(&format!(" 600 {SERVED_MTIME}")), "a download's mode or mtime is not Docker's: {line}");
    }
    assert_eq!(stat.stdout.lines().count(), 3, "{stat}");
    let cat = d.cli(cli, &["run", "--rm", "add:1", "cat", "/dl/data.txt", "/unpacked/a/one.txt", "/unpacked/two.txt"]);
    cat.ok();
    assert_eq!(cat.trimmed(), "downloaded\none\ntwo");

    write(
        &ctx.0,
        "Dockerfile",
        &format!("FROM {}\nADD --checksum=sha256:{} {} /x\n", base(), "0".repeat(64), server.url("/files/data.txt")),
    );
    build(&d, cli, &ctx.0, &["-t", "add:2"]).fails().mentions(&["digest mismatch"]);
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nADD {} /x\n", base(), server.url("/missing")));
    build(&d, cli, &ctx.0, &["-t", "add:3"]).fails().mentions(&["404"]);

    // Remote contexts.
    let mut cmd = d.command(cli, &["build", "-t", "remote:1", &server.url("/Dockerfile")]);
    cmd.env("DOCKER_BUILDKIT", "0");
    run_cmd(cmd, Duration::from_secs(120)).ok();
    let out = d.cli(cli, &["run", "--rm", "remote:1"]);
    out.ok();
    assert_eq!(out.trimmed(), "remote-dockerfile");
    let mut cmd = d.command(cli, &["build", "-t", "remote:2", &server.url("/context.tar")]);
    cmd.env("DOCKER_BUILDKIT", "0");
    run_cmd(cmd, Duration::from_secs(120)).ok();
    let out = d.cli(cli, &["run", "--rm", "remote:2"]);
    out.ok();
    assert_eq!(out.trimmed(), "from a remote context");
}
both!(add_urls_archives_and_remote_contexts);

fn sha256_hex(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(data).expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

/// Spawns a build through the docker CLI without waiting for it.
pub(crate) fn spawn_build(d: &Daemon, dir: &Path, tag: &str) -> std::process::Child {
    let mut cmd = d.command(Cli::Docker, &["build", "-t", tag]);
    cmd.arg(dir).env("DOCKER_BUILDKIT", "0");
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    cmd.spawn().expect("spawn docker build")
}

/// Waits until the container of the build step whose command contains `needle` runs.
#[track_caller]
pub(crate) fn wait_for_step_container(d: &Daemon, needle: &str) {
    assert!(
        crate::harness::wait_for(Duration::from_secs(60), || {
            d.wharf(&["ps", "--no-trunc", "--format", "{{.Command}}"]).stdout.contains(needle)
        }),
        "the build's RUN {needle:?} never started"
    );
}

/// `kill -9` of wharfd in the middle of a RUN, then a restart: no half-made image or tag, no
/// step container (and so no mount or cgroup: the harness checks), no cache entry that points
/// at nothing; the same build then succeeds.
#[test]
fn a_daemon_killed_during_a_build_leaves_nothing_half_made() {
    let mut d = Daemon::start();
    let ctx = TempDir::new("build-kill");
    write(
        &ctx.0,
        "Dockerfile",
        &format!("FROM {}\nRUN echo first > /first\nRUN sleep 30 && echo done > /done\n", base()),
    );
    let mut client = spawn_build(&d, &ctx.0, "killed:1");
    wait_for_step_container(&d, "sleep 30");
    d.kill9();
    let _ = client.kill();
    let _ = client.wait();
    d.restart();
    assert_eq!(d.wharf(&["ps", "-aq"]).trimmed(), "", "a build container outlived the crash");
    assert!(!d.wharf(&["image", "inspect", "killed:1"]).success(), "a build cut by a crash was tagged");
    let df = crate::harness::http_unix(&d.sock, "GET", "/system/df").unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(df.split("\r\n\r\n").nth(1).unwrap_or("{}")).unwrap_or_default();
    for entry in body["BuildCache"].as_array().into_iter().flatten() {
        assert!(entry["Description"].as_str().is_some_and(|s| !s.contains("sleep 30")), "{entry}");
    }
    // Shorter this time: the same Dockerfile but for the sleep.
    write(
        &ctx.0,
        "Dockerfile",
        &format!("FROM {}\nRUN echo first > /first\nRUN sleep 1 && echo done > /done\n", base()),
    );
    let out = build(&d, Cli::Docker, &ctx.0, &["-t", "killed:1"]);
    out.ok();
    assert!(out.stdout.contains("Using cache"), "the step finished before the crash was not cached:\n{out}");
    d.docker(&["run", "--rm", "killed:1", "cat", "/first", "/done"]).ok();
}

/// A client that goes away cancels its build: the step's container is stopped and removed
/// at once, not when its command ends.
#[test]
fn a_client_that_disconnects_cancels_the_build() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-cancel");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN sleep 300\n", base()));
    let mut client = spawn_build(&d, &ctx.0, "cancelled:1");
    wait_for_step_container(&d, "sleep 300");
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        crate::harness::wait_for(Duration::from_secs(20), || d.wharf(&["ps", "-aq"]).stdout.trim().is_empty()),
        "the step's container outlived its client: {}",
        d.wharf(&["ps", "-a"])
    );
    assert!(!d.wharf(&["image", "inspect", "cancelled:1"]).success());
}

/// Two builds of the same context at once both succeed and share their steps: each step is
/// made once (the one that comes second waits for it and takes it from the cache), so both
/// get the same image.
#[test]
fn two_builds_of_one_context_at_once() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-twice");
    write(
        &ctx.0,
        "Dockerfile",
        &format!("FROM {}\nCOPY f /f\nRUN sleep 1 && cat /f > /g && date +%s%N > /made\n", base()),
    );
    write(&ctx.0, "f", "shared\n");
    let (outs, made) = std::thread::scope(|scope| {
        let a = scope.spawn(|| build(&d, Cli::Docker, &ctx.0, &["-t", "twice:a"]));
        let b = scope.spawn(|| build(&d, Cli::Docker, &ctx.0, &["-t", "twice:b"]));
        let outs = [a.join().expect("build a"), b.join().expect("build b")];
        (outs, Vec::new())
    });
    for out in &outs {
        out.ok();
    }
    let shown = format!("{}\n{}", outs[0], outs[1]);
    let mut made = made;
    for tag in ["twice:a", "twice:b"] {
        let out = d.docker(&["run", "--rm", tag, "cat", "/g", "/made"]);
        out.ok();
        assert!(out.trimmed().starts_with("shared\n"), "{out}");
        made.push(out.trimmed().to_string());
    }
    assert_eq!(made[0], made[1], "the RUN step ran once for each build:\n{shown}");
    let id = |tag: &str| d.docker(&["image", "inspect", "-f", "{{.Id}}", tag]).ok().trimmed().to_string();
    assert_eq!(id("twice:a"), id("twice:b"));
}

/// A context whose tar reaches outside it is refused with a 400 that says so, and nothing of
/// it is left.
#[test]
fn a_context_entry_outside_the_context_is_refused() {
    let d = Daemon::start();
    let mut data = Vec::new();
    {
        let mut t = tar_builder(&mut data);
        let mut h = tar_header(b"FROM scratch\n".len() as u64);
        t.append_data(&mut h, "Dockerfile", &b"FROM scratch\n"[..]).expect("append");
        // The tar crate refuses to write `..` itself: put the name into the header by hand.
        let mut h = tar_header(4);
        h.as_old_mut().name[..13].copy_from_slice(b"../escape.txt");
        h.set_cksum();
        t.append(&h, &b"oops"[..]).expect("append");
        t.finish().expect("finish");
    }
    let sock = d.sock.clone();
    let reply = post_unix(&sock, "/build?t=bad:1", &data);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("outside the context"), "{reply}");
    let left: Vec<_> = fs::read_dir(d.data_root.join("build")).into_iter().flatten().flatten().collect();
    assert!(left.is_empty(), "the refused context left files: {left:?}");
}

fn tar_builder(out: &mut Vec<u8>) -> tar::Builder<&mut Vec<u8>> {
    tar::Builder::new(out)
}

fn tar_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

/// POSTs `body` on the daemon's socket and returns the raw answer.
fn post_unix(sock: &Path, path: &str, body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("write");
    s.write_all(body).expect("write body");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The RUN settings a build takes (`--add-host`, `--shm-size`, `--ulimit`), `FROM --platform` of
/// the host (another is refused by name), and a base image from a registry that wants
/// credentials, which the CLI's config provides (`X-Registry-Config`).
fn build_parameters_and_private_bases(cli: Cli) {
    let reg = crate::harness::TestRegistry::start(crate::harness::RegistryOptions {
        only: vec!["library/busybox".into()],
        htpasswd: Some(("builder".into(), "s3cret".into())),
        ..Default::default()
    });
    let d = Daemon::start();
    let home = TempDir::new("build-home");
    let config_dir = match cli {
        Cli::Wharf => home.0.join(".docker"),
        Cli::Docker => d.docker_config.clone(),
    };
    fs::create_dir_all(&config_dir).expect("config dir");
    let auth = {
        use std::io::Write;
        let mut child = std::process::Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("base64");
        child.stdin.take().expect("stdin").write_all(b"builder:s3cret").expect("write");
        String::from_utf8_lossy(&child.wait_with_output().expect("base64").stdout).trim().to_string()
    };
    fs::write(config_dir.join("config.json"), format!(r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#, reg.addr))
        .expect("config.json");
    let ctx = TempDir::new("build-params");
    write(
        &ctx.0,
        "Dockerfile",
        &format!(
            "FROM --platform=$BUILDPLATFORM {}\nRUN grep -q 'bhost' /etc/hosts && df -k /dev/shm | tail -1 > /shm && ulimit -n > /nofile\n",
            reg.image("library/busybox:latest")
        ),
    );
    let args = ["--add-host", "bhost:10.1.2.3", "--shm-size", "32m", "--ulimit", "nofile=1234:1234", "-t", "params:1"];
    let out = match cli {
        Cli::Wharf => {
            let mut cmd = std::process::Command::new(crate::harness::bin("wharf"));
            cmd.env_remove("DOCKER_CONFIG")
                .env("HOME", &home.0)
                .arg("-H")
                .arg(d.host())
                .arg("build")
                .args(args)
                .arg(&ctx.0);
            run_cmd(cmd, Duration::from_secs(120))
        }
        Cli::Docker => build(&d, cli, &ctx.0, &args),
    };
    out.ok();
    let shm = d.cli(cli, &["run", "--rm", "params:1", "cat", "/shm", "/nofile"]);
    shm.ok();
    assert!(shm.stdout.contains("32768"), "--shm-size did not reach RUN: {shm}");
    assert!(shm.stdout.lines().last() == Some("1234"), "--ulimit did not reach RUN: {shm}");

    write(&ctx.0, "Dockerfile", "FROM --platform=linux/s390x scratch\nCOPY Dockerfile /\n");
    build(&d, cli, &ctx.0, &["-t", "params:2"]).fails().mentions(&["--platform=linux/s390x is not supported"]);
}
both!(build_parameters_and_private_bases);

/// A context sent on standard input (`build -`) compressed with bzip2 or xz, and ADD of local
/// archives of both compressions (unpacked as gzip ones are).
fn compressed_contexts_and_archives(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-compressed");
    let src = ctx.0.join("src");
    write(&src, "inner/a.txt", "from-bzip2-and-xz\n");
    for (flag, name) in [("-cjf", "inner.tar.bz2"), ("-cJf", "inner.tar.xz")] {
        assert!(std::process::Command::new("tar")
            .arg(flag)
            .arg(ctx.0.join(name))
            .arg("-C")
            .arg(&src)
            .arg("inner")
            .status()
            .expect("tar")
            .success());
    }
    let context = ctx.0.join("context");
    write(
        &context,
        "Dockerfile",
        &format!("FROM {}\nADD inner.tar.bz2 /bz/\nADD inner.tar.xz /xz/\nCOPY note.txt /\n", base()),
    );
    write(&context, "note.txt", "the context itself came compressed\n");
    for name in ["inner.tar.bz2", "inner.tar.xz"] {
        fs::copy(ctx.0.join(name), context.join(name)).expect("copy archive");
    }
    for (flag, tag) in [("-cjf", "compressed:bz2"), ("-cJf", "compressed:xz")] {
        let archive = ctx.0.join(format!("context-{tag}"));
        assert!(std::process::Command::new("tar")
            .arg(flag)
            .arg(&archive)
            .arg("-C")
            .arg(&context)
            .args(["Dockerfile", "note.txt", "inner.tar.bz2", "inner.tar.xz"])
            .status()
            .expect("tar")
            .success());
        let mut cmd = d.command(cli, &["build", "-t", tag, "-"]);
        cmd.env("DOCKER_BUILDKIT", "0");
        let file = fs::File::open(&archive).expect("open context");
        let out = cmd.stdin(file).output().expect("build");
        assert!(
            out.status.success(),
            "build {tag}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cat = d.cli(cli, &["run", "--rm", tag, "cat", "/bz/inner/a.txt", "/xz/inner/a.txt", "/note.txt"]);
        cat.ok();
        assert_eq!(cat.trimmed(), "from-bzip2-and-xz\nfrom-bzip2-and-xz\nthe context itself came compressed");
    }
}
both!(compressed_contexts_and_archives);

/// `--cache-from`: with its own cache pruned, the daemon rebuilds a Dockerfile from the steps
/// of an image built from it before (the way CI reuses a pulled image), running none, and
/// gets the same image.
fn cache_from_an_image(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-cachefrom");
    write(
        &ctx.0,
        "Dockerfile",
        &format!("FROM {}\nENV A=1\nCOPY f /f\nRUN cat /f > /g && echo ran\nCMD [\"cat\", \"/g\"]\n", base()),
    );
    write(&ctx.0, "f", "cached content\n");
    let first = build(&d, cli, &ctx.0, &["-t", "cachesrc:1"]);
    first.ok();
    d.cli(cli, &["builder", "prune", "-a", "-f"]).ok();
    let again = build(&d, cli, &ctx.0, &["--cache-from", "cachesrc:1", "-t", "cachesrc:2"]);
    again.ok();
    assert!(!again.stdout.contains("Running in"), "a step ran despite --cache-from:\n{again}");
    again.mentions(&["Using cache (from cachesrc:1)"]);
    assert_eq!(image_id(&again), image_id(&first), "the image rebuilt from --cache-from differs");
    let run = d.cli(cli, &["run", "--rm", "cachesrc:2"]);
    run.ok();
    assert_eq!(run.trimmed(), "cached content");
    // Another file: the COPY and everything after it run.
    write(&ctx.0, "f", "new content\n");
    let changed = build(&d, cli, &ctx.0, &["--cache-from", "cachesrc:1", "-t", "cachesrc:3"]);
    changed.ok();
    changed.mentions(&["Running in", "ran"]);
}
both!(cache_from_an_image);

/// Found by review: a context whose directory is replaced by a symlink later in the tar is
/// refused (a bind mount of it would have written through the link on the host); a bind mount's
/// source resolves its symlinks inside the context, never on the host; an ADD archive whose
/// entries go through a symlink of the image follows it (as Docker) instead of hiding it; a
/// RUN with a bind mount of the context runs again when those files change.
#[test]
fn review_context_symlinks_binds_and_archives() {
    let d = Daemon::start();
    // A directory, a file in it, then the same name as a symlink to /etc.
    let mut data = Vec::new();
    {
        let mut t = tar_builder(&mut data);
        let df = b"FROM scratch\nCOPY a /a\n";
        let mut h = tar_header(df.len() as u64);
        t.append_data(&mut h, "Dockerfile", &df[..]).expect("append");
        let mut h = tar::Header::new_old();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_cksum();
        t.append_data(&mut h, "a/", &b""[..]).expect("append");
        let mut h = tar_header(4);
        t.append_data(&mut h, "a/passwd", &b"oops"[..]).expect("append");
        let mut h = tar::Header::new_old();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        t.append_link(&mut h, "a", "/etc").expect("append");
        t.finish().expect("finish");
    }
    let reply = post_unix(&d.sock, "/build?t=evil:1", &data);
    assert!(reply.starts_with("HTTP/1.1 400") && reply.contains("replaces a directory"), "{reply}");

    let ctx = TempDir::new("build-review");
    std::os::unix::fs::symlink("/", ctx.0.join("h")).expect("symlink");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nRUN --mount=type=bind,source=h/etc,target=/e ls /e\n", base()));
    build(&d, Cli::Docker, &ctx.0, &["-t", "evil:2"]).fails().mentions(&["not found"]);

    // The image has /mbin -> /usr/local/merged; the archive holds mbin/foo.
    let archive = tar_gz(&ctx.0, &[("mbin/foo", "through the link\n")]);
    fs::write(ctx.0.join("mbin.tar.gz"), archive).expect("archive");
    fs::remove_file(ctx.0.join("h")).expect("rm symlink");
    write(
        &ctx.0,
        "Dockerfile",
        &format!(
            "FROM {}\nRUN mkdir -p /usr/local/merged && echo kept > /usr/local/merged/old && ln -s /usr/local/merged /mbin\nADD mbin.tar.gz /\n",
            base()
        ),
    );
    build(&d, Cli::Docker, &ctx.0, &["-t", "merged:1"]).ok();
    let out = d.docker(&["run", "--rm", "merged:1", "sh", "-c", "readlink /mbin; cat /usr/local/merged/foo /mbin/old"]);
    out.ok();
    assert_eq!(out.trimmed(), "/usr/local/merged\nthrough the link\nkept", "{out}");

    write(
        &ctx.0,
        "Dockerfile",
        &format!("FROM {}\nRUN --mount=type=bind,source=in.txt,target=/in cat /in > /out\n", base()),
    );
    write(&ctx.0, "in.txt", "one\n");
    build(&d, Cli::Docker, &ctx.0, &["-t", "bind:1"]).ok();
    write(&ctx.0, "in.txt", "two\n");
    build(&d, Cli::Docker, &ctx.0, &["-t", "bind:2"]).ok();
    let out = d.docker(&["run", "--rm", "bind:2", "cat", "/out"]);
    out.ok();
    assert_eq!(out.trimmed(), "two", "a RUN with a bind mount was served from the cache after its files changed");
}

/// A copy whose selection implies a directory without an entry for it (a `.dockerignore`
/// exception under an excluded directory) leaves that directory of the image as it was, as
/// extracting the copy would.
fn copy_keeps_implied_directories_of_the_image(cli: Cli) {
    let d = Daemon::start();
    let ctx = TempDir::new("build-implied");
    write(
        &ctx.0,
        "Dockerfile",
        &format!(
            "FROM {}\nRUN mkdir -p /app/dir && chown 1234:1234 /app/dir && chmod 700 /app/dir\nCOPY . /app/\n",
            base()
        ),
    );
    write(&ctx.0, ".dockerignore", "dir\n!dir/keep\n");
    write(&ctx.0, "dir/keep", "kept\n");
    write(&ctx.0, "dir/other", "left out\n");
    build(&d, cli, &ctx.0, &["-t", "implied:1"]).ok();
    let out = d.cli(
        cli,
        &["run", "--rm", "implied:1", "sh", "-c", "stat -c '%u:%g %a' /app/dir; cat /app/dir/keep; ls /app/dir"],
    );
    out.ok();
    assert_eq!(out.trimmed(), "1234:1234 700\nkept\nkeep", "{out}");
}
both!(copy_keeps_implied_directories_of_the_image);

/// `--cpuset-cpus` for `docker run` (inspect shows it, the container's cpuset cgroup holds it,
/// a CPU the host lacks is dockerd's error) and for a build's RUN (`cpusetcpus`).
#[test]
fn cpuset_cpus_for_run_and_build() {
    let d = Daemon::start();
    let image = base();
    d.docker(&["pull", &image]).ok();
    let out = d.docker(&["run", "-d", "--name", "pinned", "--cpuset-cpus", "0", &image, "sleep", "600"]);
    out.ok();
    let id = out.trimmed().to_string();
    let info = d.inspect(Cli::Docker, "pinned");
    assert_eq!(info["HostConfig"]["CpusetCpus"], "0", "{info}");
    let dirs = crate::harness::cgroup_dirs(&format!("{}/{id}", d.cgroup_parent));
    let cpus: Vec<String> = dirs
        .iter()
        .filter_map(|dir| fs::read_to_string(dir.join("cpuset.cpus")).ok())
        .map(|s| s.trim().to_string())
        .collect();
    assert!(cpus.iter().any(|c| c == "0"), "no cpuset of the container holds 0: {cpus:?} in {dirs:?}");
    d.docker(&["rm", "-f", "pinned"]).ok();
    d.docker(&["run", "--rm", "--cpuset-cpus", "4096", &image, "true"])
        .fails()
        .mentions(&["Requested CPUs are not available - requested 4096"]);

    let ctx = TempDir::new("build-cpuset");
    write(&ctx.0, "Dockerfile", &format!("FROM {image}\nRUN cat /proc/self/status | grep Cpus_allowed_list > /cpus\n"));
    build(&d, Cli::Docker, &ctx.0, &["--cpuset-cpus", "0", "-t", "cpuset:1"]).ok();
    let out = d.docker(&["run", "--rm", "cpuset:1", "cat", "/cpus"]);
    out.ok();
    assert!(out.trimmed().ends_with("\t0") || out.trimmed().ends_with(" 0"), "RUN was not pinned: {out}");
}

/// A cgroup tree a test made with `--cgroup-parent`: removed at the end, whatever happened.
pub(crate) struct CgroupTree(pub(crate) String);

impl CgroupTree {
    /// The cgroups below the tree in any hierarchy (a container's would be a leak).
    pub(crate) fn children(&self, of: &str) -> Vec<std::path::PathBuf> {
        crate::harness::cgroup_dirs(of)
            .into_iter()
            .flat_map(|dir| fs::read_dir(dir).into_iter().flatten().flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    }
}

impl Drop for CgroupTree {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            for e in fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove(&e.path());
                }
            }
            let _ = fs::remove_dir(dir);
        }
        for dir in crate::harness::cgroup_dirs(&self.0) {
            remove(&dir);
        }
    }
}

/// The pid of `pid`'s parent, from /proc.
fn parent_of(pid: i64) -> i32 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()).expect("ppid")
}

#[track_caller]
fn assert_cgroup_is(cgroup_file: &str, want: &str) {
    assert!(!cgroup_file.trim().is_empty(), "no cgroup lines");
    for line in cgroup_file.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        assert_eq!(path, want, "not in its own cgroup parent:\n{cgroup_file}");
    }
}

/// `--cgroup-parent` for `docker run` and for a build's RUN (`cgroupparent`), as dockerd: the
/// container's cgroup is `<parent>/<id>` in every hierarchy, inspect shows the parent, stats
/// and top find it, and stop, a container left by a daemon and its shim killed together, and
/// a `kill -9` of the daemon in the middle of a build leave nothing under the parent.
#[test]
fn cgroup_parent_for_run_and_build() {
    let mut d = Daemon::start();
    let tree = CgroupTree(format!("{}-own", d.cgroup_parent));
    let parent = format!("{}/sub", tree.0);
    let image = base();
    d.docker(&["pull", &image]).ok();

    let out = d.docker(&["run", "-d", "--name", "parented", "--cgroup-parent", &parent, &image, "sleep", "600"]);
    let id = out.ok().trimmed().to_string();
    let info = d.inspect(Cli::Docker, "parented");
    assert_eq!(info["HostConfig"]["CgroupParent"], parent.as_str(), "{info}");
    let pid = info["State"]["Pid"].as_i64().expect("pid");
    assert_cgroup_is(&fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup"), &format!("{parent}/{id}"));
    assert!(crate::harness::cgroup_dirs(&format!("{}/{id}", d.cgroup_parent)).is_empty(), "also under the daemon's");
    d.docker(&["top", "parented"]).ok().mentions(&["sleep 600"]);
    let pids = d.docker(&["stats", "--no-stream", "--format", "{{.PIDs}}", "parented"]);
    assert_eq!(pids.ok().trimmed(), "1", "{pids}");
    d.docker(&["stop", "-t", "1", "parented"]).ok();
    // The shim removes the cgroup as it exits, a moment after the exit is recorded.
    crate::harness::wait_for(Duration::from_secs(10), || tree.children(&parent).is_empty());
    assert!(tree.children(&parent).is_empty(), "stop left a cgroup: {:?}", tree.children(&parent));

    // The daemon and the shim die together: the next start kills what is left in the cgroup.
    d.docker(&["start", "parented"]).ok();
    let pid = d.inspect(Cli::Docker, "parented")["State"]["Pid"].as_i64().expect("pid");
    let shim = parent_of(pid);
    d.kill9();
    // SAFETY: kill has no memory preconditions; the pid is the container's shim.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
    d.restart();
    assert!(!crate::harness::pid_alive(pid), "the init of a container whose shim died outlived the restart");
    crate::harness::wait_for(Duration::from_secs(10), || tree.children(&parent).is_empty());
    assert!(tree.children(&parent).is_empty(), "recovery left a cgroup: {:?}", tree.children(&parent));
    d.docker(&["rm", "parented"]).ok();

    let ctx = TempDir::new("build-cgroup-parent");
    write(&ctx.0, "Dockerfile", &format!("FROM {image}\nRUN cat /proc/self/cgroup > /cgroup\n"));
    build(&d, Cli::Docker, &ctx.0, &["--cgroup-parent", &parent, "-t", "parented:1"]).ok();
    let out = d.docker(&["run", "--rm", "parented:1", "cat", "/cgroup"]);
    let recorded = out.ok().stdout.clone();
    if crate::cgroup_v2::host_is_pure_v2() {
        // A step's cgroup namespace is private on v2 (dockerd's default there too): it sees its
        // own cgroup as the root. Where that cgroup is, the next step checks from the host.
        assert_eq!(recorded, "0::/\n");
    } else {
        let step =
            recorded.lines().next().and_then(|l| l.rsplit_once('/')).map(|(_, id)| id.to_string()).unwrap_or_default();
        assert!(step.len() == 64 && step.bytes().all(|b| b.is_ascii_hexdigit()), "no container id in:\n{recorded}");
        assert_cgroup_is(&recorded, &format!("{parent}/{step}"));
    }

    // `kill -9` of the daemon while a RUN runs under the parent: nothing stays there.
    write(&ctx.0, "Dockerfile", &format!("FROM {image}\nRUN sleep 30\n"));
    let mut cmd = d.command(Cli::Docker, &["build", "--cgroup-parent", &parent, "-t", "parented:2"]);
    cmd.arg(&ctx.0).env("DOCKER_BUILDKIT", "0");
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut client = cmd.spawn().expect("spawn docker build");
    wait_for_step_container(&d, "sleep 30");
    assert!(!tree.children(&parent).is_empty(), "the RUN step has no cgroup under the parent");
    d.kill9();
    let _ = client.kill();
    let _ = client.wait();
    d.restart();
    assert_eq!(d.wharf(&["ps", "-aq"]).trimmed(), "", "a build container outlived the crash");
    crate::harness::wait_for(Duration::from_secs(10), || tree.children(&parent).is_empty());
    assert!(tree.children(&parent).is_empty(), "a crashed build left a cgroup: {:?}", tree.children(&parent));
    let left = crate::harness::leaked_processes(&[], &parent);
    assert!(left.is_empty(), "processes left under the parent: {left:?}");

    // The wharf CLI's --cgroup-parent does the same.
    let out = d.wharf(&["run", "-d", "--name", "wharf-parented", "--cgroup-parent", &parent, &image, "sleep", "600"]);
    let id = out.ok().trimmed().to_string();
    let info = d.inspect(Cli::Wharf, "wharf-parented");
    assert_eq!(info["HostConfig"]["CgroupParent"], parent.as_str(), "{info}");
    let pid = info["State"]["Pid"].as_i64().expect("pid");
    assert_cgroup_is(&fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup"), &format!("{parent}/{id}"));
    d.wharf(&["rm", "-f", "wharf-parented"]).ok();
    crate::harness::wait_for(Duration::from_secs(10), || tree.children(&parent).is_empty());
}

/// A build's scratch directories, once the daemon has had a moment to remove them (it does
/// so after the client has its answer).
fn scratch_left(d: &Daemon) -> Vec<std::path::PathBuf> {
    let list = || -> Vec<std::path::PathBuf> {
        fs::read_dir(d.data_root.join("build")).into_iter().flatten().flatten().map(|e| e.path()).collect()
    };
    crate::harness::wait_for(Duration::from_secs(10), || list().is_empty());
    list()
}

/// What a refused build may not leave: files in the build's scratch, containers, new images.
#[track_caller]
fn assert_nothing_left(d: &Daemon, images_before: &str, what: &str) {
    let left = scratch_left(d);
    assert!(left.is_empty(), "{what} left files: {left:?}");
    assert_eq!(d.docker(&["ps", "-aq"]).trimmed(), "", "{what} left a container");
    assert_eq!(d.docker(&["images", "-aq"]).trimmed(), images_before, "{what} left an image");
}

/// A daemon that allows 1 MiB (`--max-build-context 1m`): a context over it, and an ADD of an
/// archive that unpacks past it, fail with a message saying so and leave nothing; a context
/// under it builds.
#[test]
fn contexts_and_archives_over_the_daemons_limit_are_refused() {
    let d = Daemon::start_with(crate::harness::DaemonOptions {
        extra_args: vec!["--max-build-context".into(), "1m".into()],
        ..Default::default()
    });
    d.docker(&["pull", &base()]).ok();
    let before = d.docker(&["images", "-aq"]).trimmed().to_string();

    let ctx = TempDir::new("build-limit");
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nCOPY big.bin /\n", base()));
    write(&ctx.0, "big.bin", &"x".repeat(1536 << 10));
    build(&d, Cli::Docker, &ctx.0, &["-t", "limit:1"])
        .fails()
        .mentions(&["build context is larger than the 1048576 bytes this daemon allows"]);
    assert_nothing_left(&d, &before, "a context over the limit");

    let ctx = TempDir::new("build-limit-add");
    let archive = tar_gz(&ctx.0, &[("zeros.txt", &"0".repeat(3 << 20))]);
    fs::write(ctx.0.join("zeros.tar.gz"), &archive).expect("write archive");
    assert!(archive.len() < 1 << 20, "the archive itself must fit: {} bytes", archive.len());
    write(&ctx.0, "Dockerfile", &format!("FROM {}\nADD zeros.tar.gz /z/\n", base()));
    build(&d, Cli::Docker, &ctx.0, &["-t", "limit:2"])
        .fails()
        .mentions(&["ADD of an archive to /z: it unpacks to more than the 1048576 bytes this daemon allows"]);
    assert_nothing_left(&d, &before, "an archive over the limit");

    write(&ctx.0, "Dockerfile", &format!("FROM {}\nCOPY Dockerfile /\n", base()));
    build(&d, Cli::Docker, &ctx.0, &["-t", "limit:3"]).ok();
}

/// git with no configuration of the host's, as the tests' repositories are made.
fn git(dir: &Path, args: &[&str]) {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "user.name=wharf", "-c", "user.email=wharf@example.com", "-c", "protocol.file.allow=always"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    run_cmd(cmd, Duration::from_secs(60)).ok();
}

/// Every file below `dir/rel`, by its path from `dir`, as `/rel/...`.
fn files_below(dir: &Path, rel: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for e in fs::read_dir(dir.join(rel.trim_start_matches('/'))).expect("read_dir").flatten() {
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        if e.file_type().expect("type").is_dir() {
            files_below(dir, &name, out);
        } else {
            out.push((name, fs::read(e.path()).expect("read")));
        }
    }
}

/// Git contexts as dockerd takes them: a repository served over (dumb) HTTP on loopback,
/// cloned by the daemon for `wharf build URL#ref:dir` (`remote=`) and by the docker CLI itself
/// for `docker build`; the ref and the directory pick the context, `master` when none is
/// given. A directory outside the checkout, a ref that reads as an option, and a submodule on
/// the daemon's own file system are refused.
#[test]
fn git_contexts() {
    let d = Daemon::start();
    let tmp = TempDir::new("build-git");
    let work = tmp.0.join("work");
    fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "master"]);
    write(&work, "sub/Dockerfile", &format!("FROM {}\nCOPY hello.txt /\nCMD [\"cat\", \"/hello.txt\"]\n", base()));
    write(&work, "sub/hello.txt", "from master\n");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "master"]);
    git(&work, &["checkout", "-q", "-b", "feature"]);
    write(&work, "sub/hello.txt", "from the feature branch\n");
    git(&work, &["commit", "-q", "-am", "feature"]);
    // A submodule that is a repository of this host, by its path.
    let host_repo = tmp.0.join("host-repo");
    fs::create_dir_all(&host_repo).expect("mkdir");
    git(&host_repo, &["init", "-q", "-b", "master"]);
    write(&host_repo, "private.txt", "the host's\n");
    git(&host_repo, &["add", "-A"]);
    git(&host_repo, &["commit", "-q", "-m", "private"]);
    git(&work, &["checkout", "-q", "-b", "local-submodule", "master"]);
    git(&work, &["submodule", "add", "-q", &host_repo.to_string_lossy(), "sub/private"]);
    git(&work, &["commit", "-q", "-m", "submodule"]);
    git(&work, &["checkout", "-q", "master"]);
    let bare = tmp.0.join("repo.git");
    git(&tmp.0, &["clone", "-q", "--bare", "work", "repo.git"]);
    git(&bare, &["update-server-info"]);
    let mut routes = Vec::new();
    files_below(&tmp.0, "/repo.git", &mut routes);
    let server = FileServer::start(routes);
    let url = server.url("/repo.git");

    let cat = |tag: &str| d.docker(&["run", "--rm", tag]).ok().trimmed().to_string();
    d.wharf(&["build", "-t", "git:1", &format!("{url}#feature:sub")]).ok();
    assert_eq!(cat("git:1"), "from the feature branch");
    d.wharf(&["build", "-t", "git:2", &format!("{url}#:sub")]).ok();
    assert_eq!(cat("git:2"), "from master");
    let mut cmd = d.command(Cli::Docker, &["build", "-t", "git:3", &format!("{url}#feature:sub")]);
    cmd.env("DOCKER_BUILDKIT", "0");
    run_cmd(cmd, Duration::from_secs(120)).ok();
    assert_eq!(cat("git:3"), "from the feature branch");

    d.wharf(&["build", &format!("{url}#master:missing")]).fails().mentions(&["not within git root"]);
    d.wharf(&["build", &format!("{url}#--upload-pack=touch:sub")]).fails().mentions(&["invalid git reference"]);
    d.wharf(&["build", &format!("{url}#local-submodule:sub")])
        .fails()
        .mentions(&["error initializing submodules", "transport 'file' not allowed"]);
    let left = scratch_left(&d);
    assert!(left.is_empty(), "a git context left files: {left:?}");
}

/// The layers of `name` as `save` writes them: (media type, digest) from its OCI manifest.
fn saved_layers(d: &Daemon, name: &str, file: &Path) -> Vec<(String, String)> {
    d.wharf(&["save", "-o", file.to_str().unwrap_or_default(), name]).ok();
    let mut archive = tar::Archive::new(fs::File::open(file).expect("open the saved archive"));
    let mut files = std::collections::HashMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().to_string();
        if entry.size() < 1 << 20 {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
            files.insert(path, data);
        }
    }
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).expect("index.json");
    let digest = index["manifests"][0]["digest"].as_str().expect("manifest digest").replace("sha256:", "");
    let manifest: serde_json::Value =
        serde_json::from_slice(&files[&format!("blobs/sha256/{digest}")]).expect("manifest");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| (l["mediaType"].as_str().unwrap_or("").to_string(), l["digest"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn rootfs_layers(d: &Daemon, name: &str) -> Vec<String> {
    let info = d.inspect(Cli::Wharf, name);
    info["RootFS"]["Layers"]
        .as_array()
        .expect("RootFS.Layers")
        .iter()
        .map(|l| l.as_str().unwrap_or("").to_string())
        .collect()
}

/// Layers a build makes are stored uncompressed (the blob is the diff id) and applied as they
/// are written; the first push compresses them, once, and from then on the image names the
/// gzip blobs, so a second push finds them all in the registry and `save`, `history`, a pull
/// elsewhere and the GC see a consistent image before and after.
#[test]
fn built_layers_are_stored_plain_and_compressed_by_the_first_push() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-ctx");
    app_context(&ctx.0);
    build(&d, Cli::Wharf, &ctx.0, &["-t", "app:1"]).ok();
    let diff_ids = rootfs_layers(&d, "app:1");
    let base_layers = rootfs_layers(&d, &base()).len();
    assert_eq!(diff_ids.len(), base_layers + 5, "WORKDIR, COPY, COPY, RUN and RUN make a layer each: {diff_ids:?}");
    let blob = |digest: &str| d.data_root.join("content/blobs/sha256").join(digest.trim_start_matches("sha256:"));

    // Before a push: the built layers are plain tars named by their diff ids.
    let tmp = TempDir::new("save-built");
    let before = saved_layers(&d, "app:1", &tmp.0.join("before.tar"));
    assert_eq!(before.len(), diff_ids.len());
    for ((media, digest), diff_id) in before.iter().zip(&diff_ids).skip(base_layers) {
        assert_eq!((media.as_str(), digest), ("application/vnd.oci.image.layer.v1.tar", diff_id), "{before:?}");
        assert!(blob(digest).is_file(), "no blob {digest}");
    }
    // That archive loads and runs elsewhere.
    let fresh = Daemon::start();
    fresh.wharf(&["load", "-i", tmp.0.join("before.tar").to_str().unwrap_or_default()]).ok();
    assert_eq!(fresh.wharf(&["run", "--rm", "app:1"]).ok().trimmed(), "hello from run\nheredoc-ran\ninner");

    // The push sends gzip layers and the image names them from then on.
    let reg = TestRegistry::start(RegistryOptions::default());
    let target = reg.image("built/app:1");
    d.wharf(&["tag", "app:1", &target]).ok();
    d.wharf(&["push", &target]).ok().mentions(&["Pushed", "1: digest: sha256:"]);
    let manifest = run_cmd(
        {
            let mut c = std::process::Command::new("curl");
            c.args(["-fsS", "-H", "Accept: application/vnd.oci.image.manifest.v1+json"]);
            c.arg(format!("http://{}/v2/built/app/manifests/1", reg.addr));
            c
        },
        Duration::from_secs(30),
    );
    let manifest = manifest.ok().json();
    let pushed: Vec<String> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(pushed.iter().all(|m| m.ends_with("gzip")), "a layer was pushed uncompressed: {pushed:?}");
    let after = saved_layers(&d, "app:1", &tmp.0.join("after.tar"));
    for ((media, digest), diff_id) in after.iter().zip(&diff_ids).skip(base_layers) {
        assert_eq!(media, "application/vnd.oci.image.layer.v1.tar+gzip", "{after:?}");
        assert_ne!(digest, diff_id);
        assert!(blob(digest).is_file(), "no blob {digest}");
        // The plain copy went once nothing named it.
        assert!(!blob(diff_id).exists(), "the uncompressed blob {diff_id} stayed");
    }
    assert_eq!(rootfs_layers(&d, "app:1"), diff_ids, "the diff ids changed with the push");
    d.wharf(&["history", "--no-trunc", "app:1"]).ok().mentions(&["from run", "COPY dir:", "WORKDIR /app"]);
    // Compressed once: a second push (another tag) finds every layer there.
    let again = reg.image("built/app:2");
    d.wharf(&["tag", "app:1", &again]).ok();
    let out = d.wharf(&["push", &again]);
    out.ok().mentions(&["Layer already exists"]);
    assert!(!out.stdout.contains("Pushed"), "a layer was uploaded again:\n{out}");

    // What the registry holds pulls into another daemon with the same diff ids, and runs.
    let other = Daemon::start();
    other.wharf(&["pull", &target]).ok();
    assert_eq!(rootfs_layers(&other, &target), diff_ids);
    assert_eq!(other.wharf(&["run", "--rm", &target]).ok().trimmed(), "hello from run\nheredoc-ran\ninner");
    // The archive saved after the push loads too.
    fresh.wharf(&["rmi", "app:1"]).ok();
    fresh.wharf(&["load", "-i", tmp.0.join("after.tar").to_str().unwrap_or_default()]).ok();
    assert_eq!(rootfs_layers(&fresh, "app:1"), diff_ids);

    // Once no image names them, the GC takes the compressed blobs.
    d.wharf(&["rmi", "app:1", &target, &again]).ok();
    d.wharf(&["builder", "prune", "-af"]).ok();
    d.wharf(&["image", "prune", "-af"]).ok();
    for (_, digest) in after.iter().skip(base_layers) {
        assert!(!blob(digest).exists(), "the blob {digest} outlived every image naming it");
    }
}
