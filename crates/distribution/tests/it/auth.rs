//! The authentication dance against scripted servers: bearer tokens (anonymous, basic,
//! refresh token), Basic, refused credentials, and the token cache; and what such a server can
//! get wrong on purpose: digests, sizes, oversized manifests.

use std::sync::atomic::Ordering;
use std::time::Duration;

use wharf_distribution::{AuthConfig, RegistryClient, RegistryConfig};
use wharf_types::oci::{self, Platform};
use wharf_types::{Digest, ErrorKind, ImageRef};

use crate::harness::{scripted, Reply, SeenRequest};

fn manifest() -> Vec<u8> {
    let d = Digest::of(b"cfg");
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::MEDIA_OCI_MANIFEST,
        "config": {"mediaType": oci::MEDIA_OCI_CONFIG, "digest": d.to_string(), "size": 3},
        "layers": [],
    }))
    .unwrap()
}

fn ok_manifest() -> Reply {
    (200, vec![("Content-Type".into(), oci::MEDIA_OCI_MANIFEST.into())], manifest())
}

fn client() -> RegistryClient {
    RegistryClient::with_timeouts(RegistryConfig::default(), Duration::from_secs(2), Duration::from_secs(5)).unwrap()
}

fn creds(user: &str, pass: &str) -> AuthConfig {
    AuthConfig { username: Some(user.into()), password: Some(pass.into()), ..AuthConfig::default() }
}

fn platform() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

/// A registry and token server in one: `/token` hands out `tok-<user>` for `alice:pw` (or
/// `tok-anon` without credentials when `anonymous`), `/v2/` wants `Bearer tok-*`.
fn bearer_server(anonymous: bool) -> crate::harness::Scripted {
    scripted(move |req: &SeenRequest, port| {
        if req.target.starts_with("/token") {
            if req.method == "POST" {
                let form = String::from_utf8_lossy(&req.body).to_string();
                return if form.contains("grant_type=refresh_token") && form.contains("refresh_token=r3fresh") {
                    (200, vec![], br#"{"access_token":"tok-refresh","expires_in":300}"#.to_vec())
                } else {
                    (400, vec![], b"bad form".to_vec())
                };
            }
            assert!(req.target.contains("service=test-registry"), "{}", req.target);
            assert!(req.target.contains("scope=repository%3Aproj%2Fapp%3Apull"), "{}", req.target);
            return match req.header("Authorization") {
                Some("Basic YWxpY2U6cHc=") => (200, vec![], br#"{"token":"tok-alice","expires_in":300}"#.to_vec()),
                None if anonymous => (200, vec![], br#"{"token":"tok-anon"}"#.to_vec()),
                _ => (401, vec![], br#"{"details":"incorrect username or password"}"#.to_vec()),
            };
        }
        match req.header("Authorization") {
            Some(a) if a.starts_with("Bearer tok-") => ok_manifest(),
            _ => {
                let challenge = format!(
                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="test-registry",scope="repository:proj/app:pull""#
                );
                (
                    401,
                    vec![("WWW-Authenticate".into(), challenge)],
                    br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
                )
            }
        }
    })
}

#[test]
fn anonymous_bearer_token_is_fetched_and_cached() {
    let srv = bearer_server(true);
    let c = client();
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:1", srv.port)).unwrap();
    let res = c.resolve(&r, &platform(), None).unwrap();
    assert_eq!(res.digest, Digest::of(&manifest()));
    // manifest (401), token, manifest again
    assert_eq!(srv.hits.load(Ordering::SeqCst), 3);
    c.resolve(&r, &platform(), None).unwrap();
    // The cached token goes along at once.
    assert_eq!(srv.hits.load(Ordering::SeqCst), 4);
}

#[test]
fn basic_credentials_get_a_bearer_token() {
    let srv = bearer_server(false);
    let c = client();
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:1", srv.port)).unwrap();
    c.resolve(&r, &platform(), Some(&creds("alice", "pw"))).unwrap();

    let c = client();
    let err = c.resolve(&r, &platform(), Some(&creds("alice", "wrong"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{}", srv.port)) && msg.contains("incorrect username"), "{msg}");

    let err = client().resolve(&r, &platform(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
}

#[test]
fn identity_token_is_exchanged_with_a_form_post() {
    let srv = bearer_server(false);
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:1", srv.port)).unwrap();
    let auth = AuthConfig { identitytoken: Some("r3fresh".into()), ..AuthConfig::default() };
    client().resolve(&r, &platform(), Some(&auth)).unwrap();
}

#[test]
fn basic_challenge_sends_credentials_and_remembers_them() {
    let srv = scripted(|req: &SeenRequest, _| match req.header("Authorization") {
        Some("Basic YWxpY2U6cHc=") => ok_manifest(),
        _ => (401, vec![("WWW-Authenticate".into(), r#"Basic realm="reg""#.into())], Vec::new()),
    });
    let c = client();
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:1", srv.port)).unwrap();
    let auth = AuthConfig { auth: Some("YWxpY2U6cHc=".into()), ..AuthConfig::default() };
    c.resolve(&r, &platform(), Some(&auth)).unwrap();
    assert_eq!(srv.hits.load(Ordering::SeqCst), 2);
    c.resolve(&r, &platform(), Some(&auth)).unwrap();
    assert_eq!(srv.hits.load(Ordering::SeqCst), 3);

    let err = client().resolve(&r, &platform(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
}

#[test]
fn redirects_do_not_carry_credentials_to_another_host() {
    // The "other host" is the same server reached as localhost instead of 127.0.0.1.
    let srv = scripted(|req: &SeenRequest, port| {
        if req.target.starts_with("/cdn/") {
            assert_eq!(req.header("Authorization"), None, "credentials leaked to the redirect target");
            return (200, vec![], b"cfg".to_vec());
        }
        match req.header("Authorization") {
            Some("Basic YWxpY2U6cHc=") if req.target.contains("/blobs/") => {
                (307, vec![("Location".into(), format!("http://localhost:{port}/cdn/blob"))], Vec::new())
            }
            Some("Basic YWxpY2U6cHc=") => ok_manifest(),
            _ => (401, vec![("WWW-Authenticate".into(), r#"Basic realm="reg""#.into())], Vec::new()),
        }
    });
    let c = client();
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:1", srv.port)).unwrap();
    let auth = creds("alice", "pw");
    let res = c.resolve(&r, &platform(), Some(&auth)).unwrap();
    let cfg = c.fetch_blob(&r, &res.endpoint, &res.manifest.config, 1024, Some(&auth)).unwrap();
    assert_eq!(cfg, b"cfg");
}

#[test]
fn not_json_and_schema1_manifests_are_refused() {
    let srv = scripted(|req: &SeenRequest, _| {
        if req.target.ends_with("/notjson") {
            (200, vec![("Content-Type".into(), "text/html".into())], b"<html>".to_vec())
        } else {
            let mt = "application/vnd.docker.distribution.manifest.v1+prettyjws";
            (200, vec![("Content-Type".into(), mt.into())], br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec())
        }
    });
    let c = client();
    for (tag, want) in [("notjson", "not valid JSON"), ("old", "schema 1")] {
        let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:{tag}", srv.port)).unwrap();
        let err = c.resolve(&r, &platform(), None).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn a_digest_mismatch_is_caught() {
    let srv = scripted(|_: &SeenRequest, _| ok_manifest());
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app@{}", srv.port, Digest::of(b"other"))).unwrap();
    let err = client().resolve(&r, &platform(), None).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

#[test]
fn a_manifest_over_the_size_limit_is_refused() {
    // A registry answering with a "manifest" larger than 4 MiB: refused while reading, by size.
    let srv = scripted(|_: &SeenRequest, _| {
        let body = vec![b' '; oci::MAX_MANIFEST_SIZE as usize + 1024];
        (200, vec![("Content-Type".into(), oci::MEDIA_OCI_MANIFEST.into())], body)
    });
    let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:big", srv.port)).unwrap();
    let err = client().resolve(&r, &platform(), None).unwrap_err();
    assert!(err.to_string().contains("manifest is larger than"), "{err}");
}

#[test]
fn a_blob_of_the_wrong_size_is_refused() {
    // The descriptor says 3 bytes; the registry sends more (then fewer): both refused by size,
    // before any digest is trusted.
    for body in [b"cfg and more".to_vec(), b"cf".to_vec()] {
        let sent = body.clone();
        let srv = scripted(
            move |req: &SeenRequest, _| {
                if req.target.contains("/blobs/") {
                    (200, vec![], sent.clone())
                } else {
                    ok_manifest()
                }
            },
        );
        let r = ImageRef::parse(&format!("127.0.0.1:{}/proj/app:1", srv.port)).unwrap();
        let c = client();
        let resolved = c.resolve(&r, &platform(), None).unwrap();
        let desc = resolved.manifest.config.clone();
        let err = c.fetch_blob(&r, &resolved.endpoint, &desc, 1 << 20, None).unwrap_err();
        assert!(err.to_string().contains("size mismatch"), "{} bytes sent: {err}", body.len());
    }
}
