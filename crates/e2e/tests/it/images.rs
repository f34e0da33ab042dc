//! Image commands: pull (progress and digest), images, tag, rmi, and rmi of an image in use.

use crate::harness::{http_unix, registry, Cli, Daemon};

fn pull_prints_progress_and_digest(cli: Cli) {
    let reg = registry();
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");
    let out = d.cli(cli, &["pull", &image]);
    out.ok();
    let digest = reg.manifest_digest("library/busybox:latest");
    out.mentions(&[&format!("Digest: {digest}"), "Status:"]);
    // One progress line per layer, named by the layer digest's short hex, as docker prints.
    for layer in reg.info("library/busybox:latest")["layers"].as_array().expect("layers") {
        let hex = layer["digest"].as_str().expect("digest");
        let short = &hex["sha256:".len().."sha256:".len() + 12];
        out.mentions(&[&format!("{short}: Pull complete")]);
    }

    // A second pull finds everything present.
    d.cli(cli, &["pull", &image]).ok().mentions(&["Image is up to date"]);
}
both!(pull_prints_progress_and_digest);

fn images_lists_pulled_image(cli: Cli) {
    let reg = registry();
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["images"]);
    out.ok();
    let repo = reg.image("library/busybox");
    assert!(
        out.stdout.lines().any(|l| l.starts_with(&repo) && l.split_whitespace().nth(1) == Some("latest")),
        "images does not list {repo} latest:\n{out}"
    );
    // `images -q` prints the short image id: the config digest's first 12 hex digits.
    let config = reg.info("library/busybox:latest")["config_digest"]
        .as_str()
        .expect("config digest")
        .trim_start_matches("sha256:")
        .to_string();
    let q = d.cli(cli, &["images", "-q"]);
    q.ok();
    assert!(q.stdout.lines().any(|l| l.trim() == &config[..12]), "images -q does not print {}:\n{q}", &config[..12]);
}
both!(images_lists_pulled_image);

fn tag_and_rmi(cli: Cli) {
    let reg = registry();
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let tagged = reg.image("e2e/tagged:v1");
    d.cli(cli, &["tag", &image, &tagged]).ok();
    let out = d.cli(cli, &["images"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with(&reg.image("e2e/tagged")) && l.split_whitespace().nth(1) == Some("v1")),
        "images does not list the new tag:\n{out}"
    );
    // The tag runs like the original.
    d.cli(cli, &["run", "--rm", &tagged, "echo", "via-tag"]).ok().mentions(&["via-tag"]);

    d.cli(cli, &["rmi", &tagged]).ok().mentions(&[&format!("Untagged: {tagged}")]);
    let out = d.cli(cli, &["images"]);
    assert!(!out.stdout.contains(&reg.image("e2e/tagged")), "untagged image still listed:\n{out}");
    assert!(out.stdout.contains(&reg.image("library/busybox")), "{out}");

    d.cli(cli, &["rmi", &image]).ok().mentions(&["Untagged:", "Deleted:"]);
    let out = d.cli(cli, &["images", "-q"]);
    out.ok();
    assert_eq!(out.trimmed(), "", "images left after rmi:\n{out}");
    // The content and the snapshots went with it.
    d.cli(cli, &["rmi", &image]).fails().mentions(&["No such image"]);
}
both!(tag_and_rmi);

fn rmi_of_image_in_use_names_the_container(cli: Cli) {
    let reg = registry();
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let out = d.cli(cli, &["create", "--name", "user-of-image", &image, "true"]);
    out.ok();
    let id = out.trimmed().to_string();
    assert_eq!(id.len(), 64, "create should print the full id:\n{out}");

    let out = d.cli(cli, &["rmi", &image]);
    out.fails().mentions(&[&id[..12]]);

    // The API says 409 Conflict.
    let path = format!("/images/{image}");
    let resp = http_unix(&d.sock, "DELETE", &path).expect("DELETE /images answered");
    assert!(resp.starts_with("HTTP/1.1 409"), "DELETE {path} should be 409:\n{resp}");
    // The image is still there and still runs.
    d.cli(cli, &["run", "--rm", &image, "true"]).ok();
}
both!(rmi_of_image_in_use_names_the_container);

/// busybox, test/zstd and test/plain share one config (other layer compression): one image
/// id, as in Docker, which then carries every name and repo digest it was pulled by; dropping
/// one name leaves the image whole under the others.
fn one_config_under_several_names(cli: Cli) {
    let reg = registry();
    let d = Daemon::start();
    let names = ["library/busybox:latest", "test/zstd:latest", "test/plain:latest"];
    for (i, name) in names.iter().enumerate() {
        let out = d.cli(cli, &["pull", &reg.image(name)]);
        out.ok();
        if i > 0 {
            // The same diff ids: the unpacked layer is already there.
            out.mentions(&["Already exists"]);
        }
    }
    let ids: Vec<String> =
        names.iter().map(|n| d.inspect(cli, &reg.image(n))["Id"].as_str().unwrap_or_default().to_string()).collect();
    assert!(ids.iter().all(|id| *id == ids[0] && id.starts_with("sha256:")), "ids differ: {ids:?}");

    let has_all = |d: &Daemon, names: &[&str]| {
        let v = d.inspect(cli, &reg.image("library/busybox:latest"));
        let list = |key: &str| -> Vec<String> {
            v[key].as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_string)).collect()
        };
        let (tags, digests) = (list("RepoTags"), list("RepoDigests"));
        for n in names {
            let tag = reg.image(n);
            assert!(tags.contains(&tag), "RepoTags lack {tag}: {tags:?}");
            let repo = tag.trim_end_matches(":latest");
            let digest = format!("{repo}@{}", reg.manifest_digest(n));
            assert!(digests.contains(&digest), "RepoDigests lack {digest}: {digests:?}");
        }
        (tags, digests)
    };
    let (tags, digests) = has_all(&d, &names);
    assert_eq!((tags.len(), digests.len()), (3, 3), "{tags:?} {digests:?}");

    let out = d.cli(cli, &["rmi", &reg.image("test/zstd:latest")]);
    out.ok().mentions(&["Untagged:"]);
    assert!(!out.all().contains("Deleted:"), "rmi of one name deleted the image:\n{out}");
    let (tags, digests) = has_all(&d, &["library/busybox:latest", "test/plain:latest"]);
    assert_eq!((tags.len(), digests.len()), (2, 2), "{tags:?} {digests:?}");
    d.cli(cli, &["run", "--rm", &reg.image("test/plain:latest"), "echo", "still-here"]).ok().mentions(&["still-here"]);

    // What is left pushes and pulls back whole.
    let pushed = reg.image(&format!("{}:v1", crate::harness::unique("e2e/samecfg")));
    d.cli(cli, &["tag", &reg.image("library/busybox:latest"), &pushed]).ok();
    d.cli(cli, &["push", &pushed]).ok();
    let fresh = Daemon::start();
    fresh.cli(cli, &["pull", &pushed]).ok();
    fresh.cli(cli, &["run", "--rm", &pushed, "echo", "pushed-back"]).ok().mentions(&["pushed-back"]);
}
both!(one_config_under_several_names);
