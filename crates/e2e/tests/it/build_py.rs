//! docker-py (`docker` 7.1.0 from PyPI, in a venv this test binary makes once) against wharfd's
//! `POST /build`: `images.build` with a path, with a file object, with `buildargs`, `target`,
//! `labels` and `nocache`, and the `BuildError` a failing RUN raises. `build_py.py` runs one
//! build and prints what docker-py returned as JSON; every image is then run and inspected
//! through the docker CLI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{run_cmd, unique, Cli, Daemon, TempDir};

/// The docker-py release the tests install (API 1.44 by default, negotiates down).
const DOCKER_PY_VERSION: &str = "7.1.0";

/// The venv's python, made on first use: once per test binary (a `OnceLock`), and shared by
/// later runs (under cargo's `CARGO_TARGET_TMPDIR`). A venv is made in a directory of its own
/// and renamed into place, so concurrent runs never see a half-made one.
pub fn venv_python() -> PathBuf {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match VENV.get_or_init(make_venv) {
        Ok(p) => p.clone(),
        Err(e) => panic!("cannot make the docker-py venv: {e}"),
    }
}

/// Whether `python` imports the pinned docker-py.
fn has_docker_py(python: &Path) -> bool {
    let mut cmd = Command::new(python);
    cmd.args(["-c", &format!("import docker, sys; sys.exit(docker.__version__ != {DOCKER_PY_VERSION:?})")]);
    run_cmd(cmd, Duration::from_secs(60)).success()
}

fn make_venv() -> Result<PathBuf, String> {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = root.join(format!("e2e-venv-docker-py-{DOCKER_PY_VERSION}"));
    let python = dir.join("bin/python");
    if has_docker_py(&python) {
        return Ok(python);
    }
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let fresh = root.join(unique("e2e-venv-new"));
    let made = (|| {
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv"]).arg(&fresh);
        let out = run_cmd(cmd, Duration::from_secs(120));
        if !out.success() {
            return Err(format!("python3 -m venv failed (Debian: apt-get install python3-venv):\n{out}"));
        }
        let mut cmd = Command::new(fresh.join("bin/python"));
        cmd.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("docker=={DOCKER_PY_VERSION}"));
        let out = run_cmd(cmd, Duration::from_secs(300));
        if !out.success() {
            return Err(format!("pip install docker=={DOCKER_PY_VERSION} failed:\n{out}"));
        }
        if !has_docker_py(&fresh.join("bin/python")) {
            return Err(format!("the new venv {} does not import docker {DOCKER_PY_VERSION}", fresh.display()));
        }
        Ok(())
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&fresh);
        return Err(e);
    }
    // A venv finds itself from its python's path (pyvenv.cfg beside bin/), so it may move.
    if fs::rename(&fresh, &dir).is_err() {
        if has_docker_py(&python) {
            // Another run put its venv in place first.
            let _ = fs::remove_dir_all(&fresh);
            return Ok(python);
        }
        // A broken venv (an old one, or a moved base python): out of the way, then ours.
        let trash = root.join(unique("e2e-venv-old"));
        let _ = fs::rename(&dir, &trash);
        let _ = fs::remove_dir_all(&trash);
        fs::rename(&fresh, &dir).map_err(|e| format!("rename {} to {}: {e}", fresh.display(), dir.display()))?;
    }
    Ok(python)
}

/// Runs one `images.build(**spec)` through build_py.py against `d`; returns its JSON.
#[track_caller]
fn docker_py_build(d: &Daemon, spec: Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/build_py.py");
    let mut cmd = Command::new(venv_python());
    cmd.arg(script)
        .arg(spec.to_string())
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", &d.docker_config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    let out = run_cmd(cmd, Duration::from_secs(200));
    assert!(out.success(), "build_py.py failed:\n{out}\n--- wharfd log ---\n{}", log_tail(d));
    out.json()
}

/// A build that must succeed: returns build_py.py's JSON (id, tags, labels, config, log).
#[track_caller]
fn built(d: &Daemon, spec: Value) -> Value {
    let v = docker_py_build(d, spec.clone());
    assert_eq!(v["ok"], true, "images.build({spec}) did not build:\n{v:#}\n--- wharfd log ---\n{}", log_tail(d));
    let id = v["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("sha256:") && id.len() == 71, "docker-py's image id is not a sha256 id: {v:#}");
    v
}

fn log_tail(d: &Daemon) -> String {
    let log = d.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(80)..].join("\n")
}

use crate::build::{base, write};

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// The text docker-py saw in the build's `stream` lines.
fn stream(v: &Value) -> &str {
    v["stream"].as_str().unwrap_or_default()
}

#[test]
fn docker_py_build_path_with_tag() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-py-path");
    write(
        &ctx.0,
        "Dockerfile",
        &format!(
            "FROM {}\nWORKDIR /app\nCOPY greet.txt dir/ ./\nRUN cat greet.txt && echo ran > run.txt\n\
             ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"cat /app/greet.txt /app/inner.txt /app/run.txt\"]\n",
            base()
        ),
    );
    write(&ctx.0, "greet.txt", "greetings\n");
    write(&ctx.0, "dir/inner.txt", "inner\n");
    write(&ctx.0, "dir/skip.log", "not sent\n");
    write(&ctx.0, ".dockerignore", "**/*.log\n");
    let v = built(&d, json!({ "path": path_str(&ctx.0), "tag": "pyapp:1", "rm": true }));
    assert_eq!(v["tags"], json!(["pyapp:1"]), "{v:#}");
    for want in ["Step 1/", "Running in ", "greetings", "Successfully built ", "Successfully tagged pyapp:1"] {
        assert!(stream(&v).contains(want), "the build's stream lacks {want:?}:\n{v:#}");
    }

    let run = d.docker(&["run", "--rm", "pyapp:1"]);
    run.ok();
    assert_eq!(run.trimmed(), "greetings\ninner\nran", "{run}");
    let ls = d.docker(&["run", "--rm", "--entrypoint", "ls", "pyapp:1", "-a", "/app"]);
    ls.ok();
    assert!(!ls.stdout.contains("skip.log"), ".dockerignore not applied:\n{ls}");

    let info = d.inspect(Cli::Docker, "pyapp:1");
    assert_eq!(info["Id"], v["id"], "docker-py and inspect disagree on the id");
    let c = &info["Config"];
    assert_eq!(c["WorkingDir"], "/app", "{c}");
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c"]), "{c}");
    assert_eq!(c["Cmd"], json!(["cat /app/greet.txt /app/inner.txt /app/run.txt"]), "{c}");
    assert_eq!(v["config"]["Cmd"], c["Cmd"], "docker-py's Image.attrs differ from inspect's: {v:#}");
    // rm=True: no intermediate container is left.
    let ps = d.docker(&["ps", "-aq"]);
    ps.ok();
    assert_eq!(ps.trimmed(), "", "the build left containers:\n{ps}");
}

#[test]
fn docker_py_build_fileobj_without_context() {
    let d = Daemon::start();
    let dockerfile = format!(
        "FROM {}\nENV FROM_FILEOBJ=yes\nRUN echo made-from-fileobj > /made\nCMD [\"cat\", \"/made\"]\n",
        base()
    );
    let v = built(&d, json!({ "dockerfile_text": dockerfile, "tag": "pyfileobj:1" }));
    assert_eq!(v["tags"], json!(["pyfileobj:1"]), "{v:#}");
    let run = d.docker(&["run", "--rm", "pyfileobj:1"]);
    run.ok();
    assert_eq!(run.trimmed(), "made-from-fileobj", "{run}");
    let info = d.inspect(Cli::Docker, "pyfileobj:1");
    let env = info["Config"]["Env"].to_string();
    assert!(env.contains("FROM_FILEOBJ=yes"), "{info:#}");
    assert_eq!(info["Config"]["Cmd"], json!(["cat", "/made"]), "{info:#}");
}

#[test]
fn docker_py_build_buildargs_used_by_run() {
    let d = Daemon::start();
    let dockerfile = format!(
        "FROM {}\nARG GREETING=default\nARG UNSET=unset-default\n\
         RUN echo \"$GREETING/$UNSET\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n",
        base()
    );
    let v = built(
        &d,
        json!({ "dockerfile_text": dockerfile, "tag": "pyargs:1", "buildargs": { "GREETING": "from-python" } }),
    );
    let run = d.docker(&["run", "--rm", "pyargs:1"]);
    run.ok();
    assert_eq!(run.trimmed(), "from-python/unset-default", "{run}");
    let info = d.inspect(Cli::Docker, "pyargs:1");
    let env = info["Config"]["Env"].to_string();
    assert!(!env.contains("GREETING"), "a build arg was kept in the image's Env: {env}");
    assert!(stream(&v).contains("Successfully tagged pyargs:1"), "{v:#}");

    // Another value busts the cache of the RUN that uses it.
    let v2 =
        built(&d, json!({ "dockerfile_text": dockerfile, "tag": "pyargs:2", "buildargs": { "GREETING": "again" } }));
    assert_ne!(v2["id"], v["id"], "another build arg gave the same image:\n{v2:#}");
    let run = d.docker(&["run", "--rm", "pyargs:2"]);
    run.ok();
    assert_eq!(run.trimmed(), "again/unset-default", "{run}");
}

const STAGES: &str = "FROM BASE AS builder\nRUN mkdir /out && echo built > /out/artifact\n\
                      FROM BASE AS broken\nRUN exit 9\n\
                      FROM BASE\nCOPY --from=builder /out/artifact /final\nCMD [\"cat\", \"/final\"]\n";

#[test]
fn docker_py_build_target_of_multi_stage() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-py-target");
    write(&ctx.0, "Dockerfile", &STAGES.replace("BASE", &base()));
    let v = built(&d, json!({ "path": path_str(&ctx.0), "tag": "pystages:builder", "target": "builder" }));
    assert!(!stream(&v).contains("exit 9"), "a stage after the target was built:\n{v:#}");
    let run = d.docker(&[
        "run",
        "--rm",
        "pystages:builder",
        "sh",
        "-c",
        "cat /out/artifact; test -e /final || echo no-final",
    ]);
    run.ok();
    assert_eq!(run.trimmed(), "built\nno-final", "{run}");

    // A target is a stage name, matched case-insensitively; an unknown one is an error.
    let v2 = built(&d, json!({ "path": path_str(&ctx.0), "tag": "pystages:b2", "target": "BUILDER" }));
    assert_eq!(v2["id"], v["id"], "the same target by another case gave another image:\n{v2:#}");
    assert!(v2["tags"].as_array().is_some_and(|t| t.contains(&json!("pystages:b2"))), "{v2:#}");
    let v = docker_py_build(&d, json!({ "path": path_str(&ctx.0), "tag": "pystages:none", "target": "nosuch" }));
    assert_eq!(v["ok"], false, "a build with an unknown target succeeded: {v:#}");
    assert!(v["error"].as_str().unwrap_or_default().contains("nosuch"), "{v:#}");
}

#[test]
fn docker_py_build_labels() {
    let d = Daemon::start();
    let dockerfile = format!("FROM {}\nLABEL org.example.file=from-dockerfile org.example.over=file\n", base());
    let labels = json!({ "org.example.api": "from api", "org.example.over": "api", "org.example.empty": "" });
    let v = built(&d, json!({ "dockerfile_text": dockerfile, "tag": "pylabels:1", "labels": labels }));
    let want = json!({
        "org.example.file": "from-dockerfile",
        "org.example.api": "from api",
        "org.example.over": "api",
        "org.example.empty": "",
    });
    for (k, val) in want.as_object().expect("object") {
        assert_eq!(&v["labels"][k], val, "docker-py's Image.labels[{k:?}]: {v:#}");
    }
    let info = d.inspect(Cli::Docker, "pylabels:1");
    for (k, val) in want.as_object().expect("object") {
        assert_eq!(&info["Config"]["Labels"][k], val, "inspect's Config.Labels[{k:?}]: {info:#}");
    }
    let run = d.docker(&["run", "--rm", "pylabels:1", "echo", "runs"]);
    run.ok();
    assert_eq!(run.trimmed(), "runs", "{run}");
}

#[test]
fn docker_py_build_nocache() {
    let d = Daemon::start();
    let ctx = TempDir::new("build-py-nocache");
    write(
        &ctx.0,
        "Dockerfile",
        &format!(
            "FROM {}\nCOPY f.txt /f.txt\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nCMD [\"cat\", \"/stamp\"]\n",
            base()
        ),
    );
    write(&ctx.0, "f.txt", "f\n");
    let path = path_str(&ctx.0);
    let first = built(&d, json!({ "path": path, "tag": "pycache:1" }));
    let cached = built(&d, json!({ "path": path, "tag": "pycache:2" }));
    assert!(stream(&cached).contains("Using cache"), "the second build used no cache:\n{cached:#}");
    assert_eq!(cached["id"], first["id"], "a cached rebuild made another image:\n{cached:#}");

    let fresh = built(&d, json!({ "path": path, "tag": "pycache:3", "nocache": true }));
    assert!(!stream(&fresh).contains("Using cache"), "nocache=True used the cache:\n{fresh:#}");
    assert!(stream(&fresh).contains("Running in "), "{fresh:#}");
    assert_ne!(fresh["id"], first["id"], "nocache=True gave the cached image");
    let a = d.docker(&["run", "--rm", "pycache:1"]);
    let b = d.docker(&["run", "--rm", "pycache:3"]);
    a.ok();
    b.ok();
    assert_ne!(a.trimmed(), b.trimmed(), "the RUN did not run again under nocache=True");
    assert_eq!(d.inspect(Cli::Docker, "pycache:3")["Id"], fresh["id"]);
}

#[test]
fn docker_py_build_failing_run_raises_build_error() {
    let d = Daemon::start();
    let dockerfile = format!("FROM {}\nRUN echo before-the-failure\nRUN exit 3\n", base());
    let spec = json!({ "dockerfile_text": dockerfile, "tag": "pybroken:1", "rm": true, "forcerm": true });
    let v = docker_py_build(&d, spec);
    assert_eq!(v["ok"], false, "a failing RUN built an image: {v:#}");
    assert_eq!(v["error_type"], "BuildError", "{v:#}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(msg.contains("returned a non-zero code: 3"), "BuildError's message: {msg:?}\n{v:#}");
    assert!(msg.contains("exit 3"), "BuildError's message does not name the command: {msg:?}");
    assert!(stream(&v).contains("before-the-failure"), "the build log lacks the earlier step's output:\n{v:#}");
    let last = v["log"].as_array().and_then(|l| l.last()).cloned().unwrap_or_default();
    assert_eq!(last["errorDetail"]["message"], last["error"], "the last log line: {last}");
    assert!(!d.docker(&["image", "inspect", "pybroken:1"]).success(), "a failed build was tagged");
    let ps = d.docker(&["ps", "-aq"]);
    ps.ok();
    assert_eq!(ps.trimmed(), "", "forcerm=True left containers:\n{ps}");

    // rm=True without forcerm: as dockerd's classic builder, the failed step's container stays
    // (the successful step's went when it was committed).
    let spec = json!({ "dockerfile_text": dockerfile, "tag": "pybroken:2", "rm": true });
    let v = docker_py_build(&d, spec);
    assert_eq!(v["error_type"], "BuildError", "{v:#}");
    let ps = d.docker(&["ps", "-a", "--format", "{{.Status}}"]);
    ps.ok();
    let left: Vec<&str> = ps.stdout.lines().collect();
    assert!(
        left.len() == 1 && left[0].starts_with("Exited (3)"),
        "rm=True should leave the failed container only:\n{ps}"
    );
}
