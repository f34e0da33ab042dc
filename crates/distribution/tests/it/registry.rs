//! Pulling from a real `docker-registry`: single-platform images, indexes, digests, mirrors,
//! blobs, errors.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use wharf_distribution::{DistributionError, RegistryClient, RegistryConfig};
use wharf_types::oci::{self, Descriptor, Platform};
use wharf_types::{Digest, ErrorKind, ImageRef};

use crate::harness::{descriptor, push_blob, push_manifest, Registry};

struct Image {
    config: Descriptor,
    config_raw: Vec<u8>,
    layer: Descriptor,
    layer_raw: Vec<u8>,
    manifest_raw: Vec<u8>,
}

/// Pushes config + one layer + manifest (by digest, and by `tag` when given).
fn push_image(reg: &Registry, repo: &str, tag: Option<&str>, arch: &str, media_type: &str) -> Image {
    let base = reg.base();
    let layer_raw: Vec<u8> = format!("layer bytes for {arch} ").repeat(100).into_bytes();
    let layer = push_blob(&base, repo, oci::MEDIA_OCI_LAYER_GZIP, &layer_raw);
    let config_raw = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer_raw).to_string()]},
    }))
    .unwrap();
    let config_mt =
        if media_type == oci::MEDIA_DOCKER_MANIFEST { oci::MEDIA_DOCKER_CONFIG } else { oci::MEDIA_OCI_CONFIG };
    let config = push_blob(&base, repo, config_mt, &config_raw);
    let manifest_raw = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config,
        "layers": [layer],
    }))
    .unwrap();
    push_manifest(&base, repo, &Digest::of(&manifest_raw).to_string(), media_type, &manifest_raw);
    if let Some(tag) = tag {
        push_manifest(&base, repo, tag, media_type, &manifest_raw);
    }
    Image { config, config_raw, layer, layer_raw, manifest_raw }
}

fn client(mirrors: Vec<String>) -> RegistryClient {
    let cfg = RegistryConfig { mirrors, user_agent: "wharf-test".to_string(), ..RegistryConfig::default() };
    RegistryClient::with_timeouts(cfg, Duration::from_secs(2), Duration::from_secs(5)).unwrap()
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

#[test]
fn resolve_and_fetch_a_single_platform_image() {
    let reg = Registry::start();
    let img = push_image(&reg, "single/app", Some("1"), "amd64", oci::MEDIA_DOCKER_MANIFEST);
    let c = client(Vec::new());
    let r = ImageRef::parse(&format!("{}/single/app:1", reg.host())).unwrap();

    let res = c.resolve(&r, &amd64(), None).unwrap();
    assert_eq!(res.digest, Digest::of(&img.manifest_raw));
    assert_eq!(res.manifest_digest, res.digest);
    assert_eq!(res.manifest_raw, img.manifest_raw);
    assert_eq!(res.media_type, oci::MEDIA_DOCKER_MANIFEST);
    assert!(res.index.is_none());
    assert!(!res.endpoint.mirror);
    assert_eq!(res.endpoint.base.origin(), reg.base());
    assert_eq!(res.manifest.layers, vec![img.layer.clone()]);

    let config = c.fetch_blob(&r, &res.endpoint, &res.manifest.config, 1 << 20, None).unwrap();
    assert_eq!(config, img.config_raw);

    let mut all = Vec::new();
    c.open_blob(&r, &res.endpoint, &img.layer, 0, None).unwrap().read_to_end(&mut all).unwrap();
    assert_eq!(all, img.layer_raw);
    let mut tail = Vec::new();
    c.open_blob(&r, &res.endpoint, &img.layer, 100, None).unwrap().read_to_end(&mut tail).unwrap();
    assert_eq!(tail, img.layer_raw[100..]);

    // By digest, the same manifest.
    let by_digest = r.with_digest(res.digest.clone());
    assert_eq!(c.resolve(&by_digest, &amd64(), None).unwrap().manifest_raw, img.manifest_raw);
    let _ = img.config;
}

#[test]
fn resolve_an_index_per_platform() {
    let reg = Registry::start();
    let a = push_image(&reg, "multi", None, "amd64", oci::MEDIA_OCI_MANIFEST);
    let b = push_image(&reg, "multi", None, "arm64", oci::MEDIA_OCI_MANIFEST);
    let mut da = descriptor(oci::MEDIA_OCI_MANIFEST, &a.manifest_raw);
    da.platform = Some(amd64());
    let mut db = descriptor(oci::MEDIA_OCI_MANIFEST, &b.manifest_raw);
    db.platform = Some(Platform::parse("linux/arm64/v8").unwrap());
    let index_raw = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_OCI_INDEX,
        "manifests": [da, db],
    }))
    .unwrap();
    push_manifest(&reg.base(), "multi", "latest", oci::MEDIA_OCI_INDEX, &index_raw);

    let c = client(Vec::new());
    let r = ImageRef::parse(&format!("{}/multi", reg.host())).unwrap();
    let index_digest = Digest::of(&index_raw);

    let res = c.resolve(&r, &amd64(), None).unwrap();
    assert_eq!(res.digest, index_digest);
    assert_eq!(res.manifest_digest, Digest::of(&a.manifest_raw));
    assert_eq!(res.media_type, oci::MEDIA_OCI_MANIFEST);
    assert_eq!(res.index, Some((index_digest.clone(), index_raw.clone())));

    let res = c.resolve(&r, &Platform::parse("linux/arm64").unwrap(), None).unwrap();
    assert_eq!(res.manifest_digest, Digest::of(&b.manifest_raw));
    let config = c.fetch_blob(&r, &res.endpoint, &res.manifest.config, 1 << 20, None).unwrap();
    assert_eq!(config, b.config_raw);

    let err = c.resolve(&r, &Platform::parse("linux/s390x").unwrap(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let msg = err.to_string();
    assert!(msg.contains("linux/s390x") && msg.contains("linux/amd64, linux/arm64/v8"), "{msg}");
}

#[test]
fn missing_things_are_not_found_with_clear_messages() {
    let reg = Registry::start();
    let img = push_image(&reg, "present", Some("1"), "amd64", oci::MEDIA_OCI_MANIFEST);
    let c = client(Vec::new());

    let r = ImageRef::parse(&format!("{}/nosuch:1", reg.host())).unwrap();
    let err = c.resolve(&r, &amd64(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let msg = err.to_string();
    // distribution 2.8 answers MANIFEST_UNKNOWN (not NAME_UNKNOWN) for a repository it never saw.
    assert_eq!(msg, format!("pull {}/nosuch:1: manifest unknown", reg.host()));

    let r = ImageRef::parse(&format!("{}/present:2", reg.host())).unwrap();
    let err = c.resolve(&r, &amd64(), None).unwrap_err();
    assert_eq!(err.to_string(), format!("pull {}/present:2: manifest unknown", reg.host()));

    let r = ImageRef::parse(&format!("{}/present:1", reg.host())).unwrap();
    let res = c.resolve(&r, &amd64(), None).unwrap();
    let mut missing = img.layer.clone();
    missing.digest = Digest::of(b"nothing");
    let err = c.open_blob(&r, &res.endpoint, &missing, 0, None).err().unwrap();
    assert!(matches!(err, DistributionError::BlobUnknown { .. }), "{err}");

    // A descriptor whose size lies is caught, and so is a limit below the size.
    let mut wrong_size = img.config.clone();
    wrong_size.size -= 1;
    let err = c.fetch_blob(&r, &res.endpoint, &wrong_size, 1 << 20, None).unwrap_err();
    assert!(matches!(err, DistributionError::SizeMismatch { .. }), "{err}");
    let err = c.fetch_blob(&r, &res.endpoint, &img.config, 10, None).unwrap_err();
    assert!(matches!(err, DistributionError::TooLarge { .. }), "{err}");
}

#[test]
fn mirrors_serve_any_registry_and_fall_back() {
    let reg = Registry::start();
    let img = push_image(&reg, "team/app", Some("v1"), "amd64", oci::MEDIA_OCI_MANIFEST);
    // A dead mirror first, then the registry as a mirror for a registry that does not exist.
    let dead = format!("http://127.0.0.1:{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let c = client(vec![dead, reg.base()]);
    let r = ImageRef::parse("nosuch.invalid:5000/team/app:v1").unwrap();
    let res = c.resolve(&r, &amd64(), None).unwrap();
    assert!(res.endpoint.mirror);
    assert_eq!(res.digest, Digest::of(&img.manifest_raw));
    let config = c.fetch_blob(&r, &res.endpoint, &res.manifest.config, 1 << 20, None).unwrap();
    assert_eq!(config, img.config_raw);

    // The origin of a loopback registry is tried after a mirror that lacks the image.
    let other = Registry::start();
    let c = client(vec![other.base()]);
    let r = ImageRef::parse(&format!("{}/team/app:v1", reg.host())).unwrap();
    let res = c.resolve(&r, &amd64(), None).unwrap();
    assert!(!res.endpoint.mirror);
    assert_eq!(res.endpoint.base.origin(), reg.base());
}

#[test]
fn a_hanging_registry_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cfg = RegistryConfig::default();
    let c = RegistryClient::with_timeouts(cfg, Duration::from_secs(1), Duration::from_millis(300)).unwrap();
    let r = ImageRef::parse(&format!("127.0.0.1:{port}/x:1")).unwrap();
    let start = Instant::now();
    let err = c.resolve(&r, &amd64(), None).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    drop(listener);
}
