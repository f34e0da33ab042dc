//! save/load: round trips of several images through a file and through stdout/stdin, the OCI
//! layout alone, the older docker-archive layout (as Docker 20.10 writes it), push after load,
//! bad archives refused with nothing left behind, and round trips with a real Docker engine
//! when one is installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{run_cmd, Cli, Daemon, Output, RegistryOptions, TempDir, TestRegistry};

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/archive_tool.py")
}

#[track_caller]
fn python(args: &[&str]) {
    let mut cmd = Command::new("python3");
    cmd.arg(tool()).args(args);
    run_cmd(cmd, std::time::Duration::from_secs(60)).ok();
}

fn sh(d: &Daemon, script: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).env("WHARF", crate::harness::bin("wharf")).env("HOST", d.host());
    run_cmd(cmd, std::time::Duration::from_secs(120))
}

/// Files under the directories where a load stages or stores things.
fn stored_files(d: &Daemon) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["content/blobs/sha256", "content/ingest", "snapshots/layers", "snapshots/tmp"] {
        let dir = d.data_root.join(sub);
        for name in crate::harness::list_dir(&dir) {
            out.push(format!("{sub}/{name}"));
        }
    }
    out.sort();
    out
}

fn save_load_round_trip(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let layers = d.pull("test/layers:latest");
    d.cli(cli, &["tag", &busybox, "saved/box:one"]).ok();
    let tmp = TempDir::new("save");
    let file = tmp.0.join("images.tar");
    let file_s = file.to_str().unwrap_or_default();
    d.cli(cli, &["save", "-o", file_s, "saved/box:one", &layers]).ok();
    assert_eq!(crate::harness::list_dir(&tmp.0), vec!["images.tar".to_string()]);
    let listing = run_cmd(
        {
            let mut c = Command::new("tar");
            c.arg("tf").arg(&file);
            c
        },
        std::time::Duration::from_secs(30),
    );
    listing.ok().mentions(&["manifest.json", "index.json", "oci-layout", "blobs/sha256/"]);

    let fresh = Daemon::start();
    let out = fresh.cli(cli, &["load", "-i", file_s]);
    out.ok().mentions(&["Loaded image: saved/box:one", "Loaded image: "]);
    let run = fresh.cli(cli, &["run", "--rm", "saved/box:one", "echo", "loaded"]);
    assert_eq!(run.ok().trimmed(), "loaded");
    fresh.cli(cli, &["run", "--rm", &layers, "true"]).ok();
    // Same ids on both sides.
    let id = |d: &Daemon, n: &str| d.inspect(cli, n)["Id"].as_str().unwrap_or_default().to_string();
    assert_eq!(id(&d, "saved/box:one"), id(&fresh, "saved/box:one"));
    assert_eq!(id(&d, &layers), id(&fresh, &layers));

    // Loading the same archive again changes nothing and stores nothing more.
    let before = stored_files(&fresh);
    fresh.cli(cli, &["load", "-i", file_s]).ok();
    assert_eq!(before, stored_files(&fresh));

    // The loaded image pushes (its layer blobs and descriptors were recorded).
    let reg = TestRegistry::start(RegistryOptions::default());
    let target = reg.image("loaded/box:1");
    fresh.cli(cli, &["tag", "saved/box:one", &target]).ok();
    fresh.cli(cli, &["push", &target]).ok();
    let third = Daemon::start();
    third.cli(cli, &["pull", &target]).ok();
    assert_eq!(third.cli(cli, &["run", "--rm", &target, "echo", "pushed"]).ok().trimmed(), "pushed");
}
both!(save_load_round_trip);

#[test]
fn save_to_stdout_load_from_stdin() {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let fresh = Daemon::start();
    let script = format!("\"$WHARF\" -H \"$HOST\" save {busybox} | \"$WHARF\" -H {} load", fresh.host());
    sh(&d, &script).ok().mentions(&["Loaded image: "]);
    assert_eq!(fresh.wharf(&["run", "--rm", &busybox, "echo", "piped"]).ok().trimmed(), "piped");
    // Without a name, or with an unknown one: an error before any byte.
    let tmp = TempDir::new("nosave");
    let file = tmp.0.join("x.tar");
    let file = file.to_str().unwrap_or_default();
    d.wharf(&["save", "-o", file, "nosuch:image"]).fails().mentions(&["No such image: nosuch:image"]);
    d.docker(&["save", "-o", file, "nosuch:image"]).fails().mentions(&["No such image"]);
    assert!(crate::harness::list_dir(&tmp.0).is_empty(), "a failed save left a file");
}

#[test]
fn load_oci_layout_and_legacy_archive() {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let tmp = TempDir::new("oci");
    let full = tmp.0.join("full.tar");
    let oci = tmp.0.join("oci.tar");
    let legacy = tmp.0.join("legacy.tar");
    d.wharf(&["save", "-o", full.to_str().unwrap_or_default(), &busybox]).ok();
    python(&["oci", full.to_str().unwrap_or_default(), oci.to_str().unwrap_or_default()]);
    python(&["legacy", legacy.to_str().unwrap_or_default()]);

    let fresh = Daemon::start();
    fresh.wharf(&["load", "-i", oci.to_str().unwrap_or_default()]).ok().mentions(&["Loaded image: "]);
    assert_eq!(fresh.wharf(&["run", "--rm", &busybox, "echo", "oci"]).ok().trimmed(), "oci");

    fresh.docker(&["load", "-i", legacy.to_str().unwrap_or_default()]).ok().mentions(&["Loaded image: legacy/box:1"]);
    let out = fresh.docker(&["run", "--rm", "legacy/box:1"]);
    assert_eq!(out.ok().trimmed(), "hello from a legacy archive");
    let layers = fresh.inspect(Cli::Docker, "legacy/box:1")["RootFS"]["Layers"].as_array().map(|a| a.len());
    assert_eq!(layers, Some(3));
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    let tmp = TempDir::new("bad");
    let legacy = tmp.0.join("legacy.tar");
    let legacy_s = legacy.to_str().unwrap_or_default();
    python(&["legacy", legacy_s]);
    let before = stored_files(&d);
    for (kind, message) in [
        ("truncated", "invalid archive"),
        ("escape", "points outside the archive"),
        ("missing", "is referenced but not in the archive"),
        ("duplicate", "appears twice"),
        ("lie", "invalid archive: layer"),
        ("huge", "does not fit in the space left"),
    ] {
        let bad = tmp.0.join(format!("{kind}.tar"));
        let bad_s = bad.to_str().unwrap_or_default();
        python(&["bad", kind, legacy_s, bad_s]);
        d.wharf(&["load", "-i", bad_s]).fails().mentions(&[message]);
        d.docker(&["load", "-i", bad_s]).fails().mentions(&[message]);
        assert_eq!(before, stored_files(&d), "{kind}: something was left behind");
        assert_eq!(d.wharf(&["images", "-q"]).ok().trimmed(), "", "{kind}: an image was recorded");
    }
    // As dockerd: a 200 whose JSON stream says what failed.
    let resp = crate::harness::http_unix(Path::new(d.host().trim_start_matches("unix://")), "POST", "/images/load")
        .unwrap_or_default();
    assert!(resp.starts_with("HTTP/1.1 200") && resp.contains(r#""errorDetail""#), "{resp}");
    // The good archive still loads.
    d.wharf(&["load", "-i", legacy_s]).ok().mentions(&["Loaded image: legacy/box:1"]);
}

#[test]
fn round_trip_with_docker_engine() {
    // The shared private dockerd (dockerd.rs): a test that needs one fails without it.
    let docker = crate::dockerd::Dockerd::start(&[]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let tmp = TempDir::new("dockerrt");
    let from_wharf = tmp.0.join("from-wharf.tar");
    let from_docker = tmp.0.join("from-docker.tar");
    d.wharf(&["tag", &busybox, "rt/wharf:1"]).ok();
    d.wharf(&["save", "-o", from_wharf.to_str().unwrap_or_default(), "rt/wharf:1"]).ok();
    docker.cli(&["load", "-i", from_wharf.to_str().unwrap_or_default()]).ok().mentions(&["rt/wharf:1"]);
    assert_eq!(
        docker.cli(&["run", "--rm", "--network=none", "rt/wharf:1", "echo", "in docker"]).ok().trimmed(),
        "in docker"
    );

    docker.cli(&["tag", "rt/wharf:1", "rt/docker:2"]).ok();
    docker.cli(&["save", "-o", from_docker.to_str().unwrap_or_default(), "rt/docker:2"]).ok();
    let fresh = Daemon::start();
    fresh.wharf(&["load", "-i", from_docker.to_str().unwrap_or_default()]).ok().mentions(&["rt/docker:2"]);
    assert_eq!(fresh.wharf(&["run", "--rm", "rt/docker:2", "echo", "in wharf"]).ok().trimmed(), "in wharf");
}
