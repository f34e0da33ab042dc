//! `run`/`create --use-api-socket` through the wharf CLI: the daemon's socket is mounted at
//! /var/run/docker.sock (a client inside talks to the daemon through it) and the caller's
//! credentials are in /run/secrets/docker/config.json, with DOCKER_CONFIG pointing there.
//!
//! The docker CLI is left out: it mounts `/var/run/docker.sock` whatever daemon it talks
//! to, which is not the test daemon's socket.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::harness::{bin, registry, Daemon, TempDir};

/// The host's directory of the C library and the dynamic loader in it, so that the host's
/// `wharf` binary runs inside a busybox container.
fn host_libs() -> (PathBuf, String) {
    let dir = PathBuf::from(format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH));
    let loader = fs::read_dir(&dir)
        .expect("read the host's lib dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("ld-linux"))
        .expect("the host's dynamic loader");
    (dir, loader)
}

#[test]
fn use_api_socket() {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.wharf(&["pull", "-q", &image]).ok();

    // The caller's config: one registry's user and password.
    let config = TempDir::new("api-socket-config");
    // base64 of alice:s3cret
    let auth = "YWxpY2U6czNjcmV0";
    fs::write(config.0.join("config.json"), format!(r#"{{"auths":{{"reg.example:5000":{{"auth":"{auth}"}}}}}}"#))
        .unwrap();
    let env = [("DOCKER_CONFIG", config.0.as_path())];

    // Inside: the mounted socket is the daemon's (same inode), and the host's wharf CLI run
    // there lists the container itself through it (`ps -a`: the container may run before the
    // daemon has recorded it as running).
    let (libs, loader) = host_libs();
    let wharf = bin("wharf");
    let libs_mount = format!("{}:/hostlib:ro", libs.display());
    let wharf_mount = format!("{}:/wharf:ro", wharf.display());
    let script = format!(
        "stat -c '%F %i' /var/run/docker.sock; echo \"env=$DOCKER_CONFIG\"; stat -c '%a %u' /run/secrets/docker/config.json; \
         /hostlib/{loader} --library-path /hostlib /wharf -H unix:///var/run/docker.sock ps -a --format '{{{{.Names}}}}'; \
         cat /run/secrets/docker/config.json"
    );
    let out = d.wharf_env(
        &env,
        &[
            "run",
            "--rm",
            "--name",
            "inside",
            "--use-api-socket",
            "-v",
            &libs_mount,
            "-v",
            &wharf_mount,
            &image,
            "sh",
            "-c",
            &script,
        ],
    );
    out.ok();
    let ino = fs::metadata(&d.sock).unwrap().ino();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some(format!("socket {ino}").as_str()), "{out}");
    assert_eq!(lines.next(), Some("env=/run/secrets/docker"), "{out}");
    assert_eq!(lines.next(), Some("600 0"), "{out}");
    assert_eq!(lines.next(), Some("inside"), "the daemon was not reached through the socket:\n{out}");
    let rest: String = lines.collect::<Vec<_>>().join("\n");
    let written: serde_json::Value = serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{e}: {rest}"));
    assert_eq!(written, serde_json::json!({"auths": {"reg.example:5000": {"auth": auth}}}));
    // Tab-indented, as the docker CLI saves a config file.
    assert!(rest.starts_with("{\n\t\"auths\": {\n\t\t\"reg.example:5000\""), "{rest}");

    // create: the container has the socket's bind mount.
    let id = d.wharf_env(&env, &["create", "--use-api-socket", &image]).ok().trimmed().to_string();
    let info = d.inspect(crate::harness::Cli::Wharf, &id);
    let mounts = info["Mounts"].as_array().cloned().unwrap_or_default();
    let sock = fs::canonicalize(&d.sock).unwrap();
    assert!(
        mounts.iter().any(|m| m["Type"] == "bind"
            && m["Destination"] == "/var/run/docker.sock"
            && Path::new(m["Source"].as_str().unwrap_or("")) == sock),
        "{info}"
    );
    assert!(info["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "DOCKER_CONFIG=/run/secrets/docker"));
    d.wharf(&["rm", &id]).ok();

    // The caller's own DOCKER_CONFIG for the container: no credentials are written.
    let script = "echo \"env=$DOCKER_CONFIG\"; test -e /run/secrets/docker/config.json && echo written; test -S /var/run/docker.sock && echo socket; true";
    let out = d
        .wharf_env(&env, &["run", "--rm", "--use-api-socket", "-e", "DOCKER_CONFIG=/mine", &image, "sh", "-c", script]);
    assert_eq!(out.ok().stdout, "env=/mine\nsocket\n");

    // No credentials: the socket only.
    let empty = TempDir::new("api-socket-empty");
    let out = d.wharf_env(
        &[("DOCKER_CONFIG", empty.0.as_path())],
        &["run", "--rm", "--use-api-socket", &image, "sh", "-c", script],
    );
    assert_eq!(out.ok().stdout, "env=\nsocket\n");

    // Without the flag: neither.
    let out = d.wharf_env(&env, &["run", "--rm", &image, "sh", "-c", script]);
    assert_eq!(out.ok().stdout, "env=\n");
}
