//! image prune, system df and system prune: images used by containers (running or stopped)
//! are kept, dangling ones go, `-a` takes every unused one; `system df` agrees with `images`
//! and `ps -a`; concurrent pulls and removals sharing the busybox layer leave the stores with
//! exactly what the remaining images need.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{http_unix, list_dir, registry, Cli, Daemon};

fn sha256_hex(data: &str) -> String {
    let mut c = Command::new("sha256sum");
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn sha256sum");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("sha256sum stdin");
        stdin.write_all(data.as_bytes()).expect("write to sha256sum");
    }
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn hex(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).to_string()
}

/// The blobs and layer directories (hex) that the fixture images `names` need.
fn needed(names: &[&str]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut blobs = BTreeSet::new();
    let mut chains = BTreeSet::new();
    for name in names {
        let info = registry().info(name);
        blobs.insert(hex(info["manifest_digest"].as_str().unwrap_or_default()));
        blobs.insert(hex(info["config_digest"].as_str().unwrap_or_default()));
        let mut chain = String::new();
        for l in info["layers"].as_array().into_iter().flatten() {
            blobs.insert(hex(l["digest"].as_str().unwrap_or_default()));
            let diff = l["diff_id"].as_str().unwrap_or_default();
            chain = if chain.is_empty() {
                diff.to_string()
            } else {
                format!("sha256:{}", sha256_hex(&format!("{chain} {diff}")))
            };
            chains.insert(hex(&chain));
        }
    }
    (blobs, chains)
}

/// Asserts that the content store and the layer directories hold exactly what `names` need.
#[track_caller]
fn assert_stores_hold(d: &Daemon, names: &[&str]) {
    let (blobs, chains) = needed(names);
    let have_blobs: BTreeSet<String> = list_dir(&d.data_root.join("content/blobs/sha256")).into_iter().collect();
    let have_chains: BTreeSet<String> = list_dir(&d.data_root.join("snapshots/layers")).into_iter().collect();
    assert_eq!(have_blobs, blobs, "content/blobs for {names:?}");
    assert_eq!(have_chains, chains, "snapshots/layers for {names:?}");
    assert!(list_dir(&d.data_root.join("content/ingest")).is_empty(), "ingest left behind");
}

fn df_json(d: &Daemon) -> Value {
    let raw = http_unix(&d.sock, "GET", "/v1.45/system/df").unwrap_or_default();
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    // The body may be chunked: take the JSON object between the first '{' and the last '}'.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map(|i| i + 1).unwrap_or(body.len());
    serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("system/df: {e}: {raw}"))
}

fn lines(out: &crate::harness::Output) -> BTreeSet<String> {
    out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

fn prune_keeps_used(cli: Cli) {
    let d = Daemon::start();
    let busybox = d.pull("library/busybox:latest");
    let entry = d.pull("test/entrypoint:latest");
    let layers = d.pull("test/layers:latest");
    // Pulled by digest only: no tag, so dangling. (test/zstd would not do: its config, hence
    // its id, is busybox's.)
    let workdir = format!("{}@{}", registry().image("test/workdir"), registry().manifest_digest("test/workdir:latest"));
    d.wharf(&["pull", &workdir]).ok();

    d.cli(cli, &["run", "-d", "--name", "up", &busybox, "sleep", "600"]).ok();
    d.cli(cli, &["create", "--name", "idle", &entry]).ok();

    // Dangling only.
    let out = d.cli(cli, &["image", "prune", "-f"]);
    out.ok();
    assert!(out.stdout.contains("Total reclaimed space"), "{out}");
    d.cli(cli, &["image", "inspect", &workdir]).fails();
    for img in [&busybox, &entry, &layers] {
        d.cli(cli, &["image", "inspect", img]).ok();
    }
    assert_stores_hold(&d, &["library/busybox:latest", "test/entrypoint:latest", "test/layers:latest"]);

    // system df agrees with images and ps -a.
    let df = df_json(&d);
    let ids = lines(&d.cli(cli, &["images", "-q", "--no-trunc"]));
    let df_ids: BTreeSet<String> =
        df["Images"].as_array().into_iter().flatten().filter_map(|i| i["Id"].as_str().map(str::to_string)).collect();
    assert_eq!(df_ids, ids, "{df}");
    let cids = lines(&d.cli(cli, &["ps", "-aq", "--no-trunc"]));
    let df_cids: BTreeSet<String> = df["Containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(df_cids, cids, "{df}");
    let layers_size = df["LayersSize"].as_i64().unwrap_or(-1);
    for img in df["Images"].as_array().into_iter().flatten() {
        let used = img["Containers"].as_i64().unwrap_or(-1);
        let id = img["Id"].as_str().unwrap_or_default();
        let by_busybox = d.inspect(cli, &busybox)["Id"] == img["Id"];
        let by_entry = d.inspect(cli, &entry)["Id"] == img["Id"];
        assert_eq!(used, i64::from(by_busybox || by_entry), "containers of {id}: {df}");
        assert!(img["Size"].as_i64().unwrap_or(0) <= layers_size, "{df}");
        // Every image here shares the busybox layer with another.
        assert!(img["SharedSize"].as_i64().unwrap_or(0) > 0, "{df}");
    }
    let out = d.cli(cli, &["system", "df"]);
    out.ok().mentions(&["Images", "Containers", "Local Volumes"]);
    d.cli(cli, &["system", "df", "-v"]).ok();

    // Every unused image.
    d.cli(cli, &["image", "prune", "-a", "-f"]).ok();
    d.cli(cli, &["image", "inspect", &layers]).fails();
    for img in [&busybox, &entry] {
        d.cli(cli, &["image", "inspect", img]).ok();
    }
    assert_stores_hold(&d, &["library/busybox:latest", "test/entrypoint:latest"]);

    // system prune -a: the stopped container and then its image go; the running one stays.
    d.cli(cli, &["system", "prune", "-a", "-f"]).ok();
    d.cli(cli, &["inspect", "idle"]).fails();
    d.cli(cli, &["image", "inspect", &entry]).fails();
    d.cli(cli, &["image", "inspect", &busybox]).ok();
    assert_stores_hold(&d, &["library/busybox:latest"]);

    d.cli(cli, &["rm", "-f", "up"]).ok();
    d.cli(cli, &["system", "prune", "-a", "-f"]).ok();
    assert_stores_hold(&d, &[]);
}
both!(prune_keeps_used);

fn images_before_since(cli: Cli) {
    let d = Daemon::start();
    let first = d.pull("library/busybox:latest");
    let second = d.pull("test/entrypoint:latest");
    let third = d.pull("test/workdir:latest");
    let id = |img: &str| d.inspect(cli, img)["Id"].as_str().unwrap_or_default().to_string();
    let (a, b, c) = (id(&first), id(&second), id(&third));
    let q = |f: String| lines(&d.cli(cli, &["images", "-q", "--no-trunc", "--filter", &f]));
    // The fixture images share a creation time, so the order is the daemon's storing order.
    assert_eq!(q(format!("before={second}")), BTreeSet::from([a.clone()]));
    assert_eq!(q(format!("since={second}")), BTreeSet::from([c.clone()]));
    assert_eq!(q(format!("since={first}")), BTreeSet::from([b, c]));
    d.cli(cli, &["images", "--filter", "before=nosuch:image"]).fails();
}
both!(images_before_since);

/// Pulls and removals of images sharing the busybox layer, from several threads at once: no
/// command fails, every remaining image runs, and the stores hold exactly what they need.
#[test]
fn concurrent_pull_and_rmi() {
    let d = Daemon::start();
    // Distinct configs only: test/zstd and test/plain share busybox's config, hence its id.
    let names = ["test/entrypoint:latest", "test/workdir:latest", "test/layers:latest", "library/busybox:latest"];
    // Threads with an even index end on a pull, the others on a removal.
    let until = Instant::now() + Duration::from_secs(6);
    std::thread::scope(|s| {
        for (i, name) in names.iter().enumerate() {
            let d = &d;
            s.spawn(move || {
                let image = registry().image(name);
                let mut rounds = 0;
                while Instant::now() < until || rounds == 0 {
                    d.wharf(&["pull", &image]).ok();
                    d.wharf(&["rmi", &image]).ok();
                    rounds += 1;
                }
                if i % 2 == 0 {
                    d.wharf(&["pull", &image]).ok();
                }
            });
        }
    });
    let kept: Vec<&str> = names.iter().enumerate().filter(|(i, _)| i % 2 == 0).map(|(_, n)| *n).collect();
    for name in &kept {
        let out = d.wharf(&["run", "--rm", &registry().image(name), "/bin/busybox", "true"]);
        out.ok();
    }
    let listed = lines(&d.wharf(&["images", "-q"]));
    assert_eq!(listed.len(), kept.len(), "{listed:?}");
    assert_stores_hold(&d, &kept);
}
