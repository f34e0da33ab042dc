//! Bad images and bad references: a clear error, a non-zero exit, and nothing half-made left
//! in the data root.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::{find_named, list_dir, mounts_under, registry, Daemon, Output};

fn snapshot_entries(d: &Daemon) -> BTreeSet<String> {
    list_dir(&d.data_root.join("snapshots")).into_iter().collect()
}

/// Pulls a bad image after busybox (which shares its base layer) and checks the aftermath.
fn pull_fails_cleanly(name: &str, any_of: &[&str]) -> (Daemon, Output) {
    let d = Daemon::start();
    d.pull("library/busybox:latest");
    let before = snapshot_entries(&d);
    let image = registry().image(name);
    let out = d.wharf(&["pull", &image]);
    out.fails();
    let all = out.all().to_lowercase();
    assert!(
        any_of.iter().any(|n| all.contains(&n.to_lowercase())),
        "the error does not name the problem (any of {any_of:?}):\n{out}"
    );
    assert_eq!(snapshot_entries(&d), before, "snapshots changed by a failed pull:\n{out}");
    let ingest = list_dir(&d.data_root.join("content/ingest"));
    assert!(ingest.is_empty(), "partial downloads left in content/ingest: {ingest:?}");
    let mounts = mounts_under(&d.data_root);
    assert!(mounts.is_empty(), "mounts left after a failed pull: {mounts:?}");
    let images = d.wharf(&["images"]);
    assert!(!images.ok().stdout.contains(name.split(':').next().unwrap_or(name)), "{images}");
    // And a run of it fails the same way, with docker's exit code for daemon errors.
    d.wharf(&["run", "--rm", &image, "true"]).code_is(125);
    (d, out)
}

#[test]
fn layer_with_dotdot_entry_is_refused() {
    let (d, _) = pull_fails_cleanly("bad/escape:latest", &["..", "escape", "outside"]);
    let evil = find_named(d.dir.parent().unwrap_or(Path::new("/tmp")), "wharf-e2e-evil");
    assert!(evil.is_empty(), "a layer wrote outside its root: {evil:?}");
}

#[test]
fn layer_writing_through_a_symlink_is_refused() {
    let (_d, _) = pull_fails_cleanly("bad/symlink:latest", &["symlink", "link", "escape", "outside"]);
    assert!(!Path::new("/etc/wharf-e2e-pwned").exists(), "a layer wrote /etc/wharf-e2e-pwned on the host");
}

#[test]
fn blob_with_wrong_digest_is_refused() {
    let reg = registry();
    let layer = reg.info("bad/digest:latest")["layers"][1]["digest"].as_str().expect("layer digest").to_string();
    let (_d, out) = pull_fails_cleanly("bad/digest:latest", &["digest"]);
    out.mentions(&[&layer["sha256:".len().."sha256:".len() + 12]]);
}

#[test]
fn manifest_that_is_not_json_is_refused() {
    // distribution 2.8 itself cannot parse it and answers 500.
    let _ = pull_fails_cleanly("bad/notjson:latest", &["manifest", "500"]);
}

#[test]
fn config_that_is_not_json_is_refused() {
    let _ = pull_fails_cleanly("bad/configjson:latest", &["config"]);
}

#[test]
fn malformed_reference_exits_125() {
    let d = Daemon::start();
    d.wharf(&["pull", "Bad:Ref"]).code_is(125).mentions(&["invalid reference format"]);
    d.wharf(&["run", "--rm", "library/Busybox", "true"]).code_is(125).mentions(&["invalid reference format"]);
    // The docker CLI may refuse it before asking the daemon: only the failure matters.
    d.docker(&["pull", "Bad:Ref"]).fails();
}

#[test]
fn unknown_image_is_an_error() {
    let d = Daemon::start();
    let image = registry().image("no/such-image:latest");
    d.wharf(&["pull", &image]).fails().mentions(&["no/such-image"]);
    d.wharf(&["run", "--rm", &image, "true"]).code_is(125).mentions(&["no/such-image"]);
    d.docker(&["pull", &image]).fails().mentions(&["no/such-image"]);
    // Nothing local by that name either.
    d.wharf(&["inspect", &image]).fails().mentions(&["No such"]);
    d.wharf(&["rmi", &image]).fails().mentions(&["No such image"]);
}

#[test]
fn unreachable_registry_is_an_error() {
    let d = Daemon::start();
    // Port 9 (discard) on loopback: nothing listens there.
    let out = d.wharf(&["pull", "127.0.0.1:9/library/busybox:latest"]);
    out.fails().mentions(&["127.0.0.1:9"]);
    // The pull is named once, not once by the daemon and again by the CLI.
    assert_eq!(out.stderr.matches("pull 127.0.0.1:9/library/busybox").count(), 1, "{}", out.stderr);
    let out = d.wharf(&["pull", &registry().image("no/such-image:latest")]);
    assert_eq!(out.stderr.matches("pull ").count(), 1, "{}", out.stderr);
}
