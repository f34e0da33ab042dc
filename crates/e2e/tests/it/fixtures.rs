//! The fixtures themselves, checked without wharf: the registry serves what make_images.py
//! says it pushed, and skopeo (an independent client) agrees, or refuses the bad ones.

use std::time::Duration;

use crate::harness::{registry, run_cmd, TempDir};

fn skopeo_copy(image: &str, dest: &std::path::Path) -> crate::harness::Output {
    std::fs::create_dir_all(dest).expect("create skopeo destination");
    let mut cmd = std::process::Command::new("skopeo");
    cmd.args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{image}"))
        .arg(format!("oci:{}:x", dest.display()));
    run_cmd(cmd, Duration::from_secs(120))
}

fn read_blob_path(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn registry_serves_good_images_and_skopeo_agrees() {
    let reg = registry();
    let tmp = TempDir::new("wharf-e2e-skopeo");
    let dir = &tmp.0;
    for name in [
        "library/busybox:latest",
        "test/layers:latest",
        "test/entrypoint:latest",
        "test/workdir:latest",
        "test/zstd:latest",
        "test/plain:latest",
        "test/multiarch:latest",
    ] {
        let dest = dir.join(name.replace(['/', ':'], "_"));
        skopeo_copy(&reg.image(name), &dest).ok();
        // skopeo may rewrite the manifest and config (schema2 to OCI, compression), but the
        // uncompressed layers, the diff ids, stay what make_images.py pushed.
        let info = reg.info(name);
        let info = if name.starts_with("test/multiarch") {
            &info["platforms"][reg.summary["arch"].as_str().unwrap_or_default()]
        } else {
            info
        };
        let want: Vec<&str> = info["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["diff_id"].as_str().unwrap_or_default())
            .collect();
        let read_blob = |digest: &str| -> serde_json::Value {
            let path = dest.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {}: {e}", path.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let index = read_blob_path(&dest.join("index.json"));
        let manifest = read_blob(index["manifests"][0]["digest"].as_str().unwrap_or_default());
        let config = read_blob(manifest["config"]["digest"].as_str().unwrap_or_default());
        let got: Vec<&str> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap_or_default()).collect())
            .unwrap_or_default();
        assert_eq!(got, want, "{name}: diff ids");
    }
}

#[test]
fn registry_serves_bad_images_that_skopeo_refuses() {
    let reg = registry();
    let tmp = TempDir::new("wharf-e2e-skopeo-bad");
    let dir = &tmp.0;
    for (name, needle) in
        [("bad/digest:latest", "digest"), ("bad/notjson:latest", "500"), ("bad/configjson:latest", "invalid character")]
    {
        let out = skopeo_copy(&reg.image(name), &dir.join(name.replace(['/', ':'], "_")));
        out.fails().mentions(&[needle]);
    }
}
