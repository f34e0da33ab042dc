//! Harbor's proxy-cache projects in wharf-registry (`serve --auth`): a registry endpoint made
//! through `/api/v2.0/registries`, a project tied to it, and pulls through that project with
//! the docker CLI (through wharfd) and the raw protocol. The upstream is a second
//! wharf-registry the test starts, then stops, then replaces by a local listener that answers
//! 429 or never answers: the cache keeps serving what it has, and says why when it has not.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::Daemon;
use crate::registry_server::{auth_server, digest, http, Resp, Server, ADMIN_PW, OCI_INDEX, OCI_MANIFEST};

fn admin_authz() -> String {
    format!("Basic {}", crate::registry_auth::base64(format!("admin:{ADMIN_PW}").as_bytes()))
}

fn admin_api(reg: &Server, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let authz = admin_authz();
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("Authorization", authz.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    http(&reg.addr, method, &format!("/api/v2.0{path}"), &headers, text.as_bytes())
}

/// A loopback listener standing in for a misbehaving upstream: `429` answers every request
/// with 429, `stall` takes connections and never answers. Stopped on drop.
struct BadUpstream {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl BadUpstream {
    fn start(mode: &'static str) -> BadUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a bad upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        if mode == "429" {
                            conn.set_nonblocking(false).ok();
                            conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                            let mut buf = [0u8; 4096];
                            let _ = conn.read(&mut buf);
                            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
                            let _ = write!(
                                conn,
                                "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
                                 Retry-After: 3600\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        } else {
                            held.push(conn);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        BadUpstream { addr, stop, thread: Some(thread) }
    }
}

impl Drop for BadUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

/// The artifacts the cache's REST API lists for `repo` of project `cache`.
fn cached_artifacts(cache: &Server, repo: &str) -> Vec<Value> {
    let path = format!("/projects/cache/repositories/{}/artifacts", repo.replace('/', "%252F"));
    let r = admin_api(cache, "GET", &path, None);
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{r}");
    r.json().as_array().cloned().unwrap_or_default()
}

fn set_upstream_url(cache: &Server, id: u64, url: &str) {
    let r = admin_api(cache, "PUT", &format!("/registries/{id}"), Some(&json!({ "url": url })));
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn harbor_proxy_cache_pulls_through_and_serves_when_the_upstream_is_down_slow_or_refusing() {
    let mut upstream = Server::start();
    let cache = auth_server(&[]);

    // The endpoint and the project, as a Harbor admin makes them.
    let endpoint = json!({
        "name": "upstream", "type": "docker-registry", "url": format!("http://{}", upstream.addr),
        "description": "the test's upstream", "insecure": true,
        "credential": { "type": "basic", "access_key": "", "access_secret": "" },
    });
    let r = admin_api(&cache, "POST", "/registries", Some(&endpoint));
    assert_eq!(r.status, 201, "{r}");
    let id: u64 = r.header("Location").and_then(|l| l.rsplit('/').next()).and_then(|v| v.parse().ok()).expect("id");
    assert_eq!(admin_api(&cache, "POST", "/registries", Some(&endpoint)).status, 409, "one endpoint per name");
    let bad = json!({ "name": "x", "type": "quay-ish", "url": "http://127.0.0.1:1" });
    let r = admin_api(&cache, "POST", "/registries", Some(&bad));
    assert!(r.status == 400 && r.to_string().contains("quay-ish"), "{r}");
    let r = admin_api(&cache, "POST", "/registries/ping", Some(&json!({ "id": id })));
    assert_eq!(r.status, 200, "{r}");
    let r = admin_api(&cache, "GET", &format!("/registries/{id}"), None);
    assert_eq!((r.status, r.json()["type"].as_str()), (200, Some("docker-registry")), "{r}");
    let body = json!({ "project_name": "cache", "registry_id": id, "metadata": { "public": "true" } });
    let r = admin_api(&cache, "POST", "/projects", Some(&body));
    assert_eq!(r.status, 201, "{r}");
    let r = admin_api(&cache, "GET", "/projects/cache", None);
    assert_eq!(r.json()["registry_id"].as_u64(), Some(id), "{r}");
    let r = admin_api(&cache, "POST", "/projects", Some(&json!({ "project_name": "x", "registry_id": 999 })));
    assert_eq!(r.status, 400, "an unknown registry_id: {r}");

    // The raw protocol: a manifest and its blobs come from the upstream, and once the client
    // has them all the artifact is in the cache's index.
    let layer = format!("proxy layer {:?}", Instant::now()).into_bytes();
    let (m1, _) = upstream.push_image("lib/app", "1", &layer);
    let authz = admin_authz();
    let accept = [("Accept", OCI_MANIFEST), ("Authorization", authz.as_str())];
    let r = http(&cache.addr, "GET", "/v2/cache/lib/app/manifests/1", &accept, b"");
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(m1.as_str())), "{r}");
    let manifest = r.json();
    for d in std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap().iter()) {
        let want = d["digest"].as_str().unwrap();
        let b = http(&cache.addr, "GET", &format!("/v2/cache/lib/app/blobs/{want}"), &accept[1..], b"");
        assert_eq!(b.status, 200, "{b}");
        assert_eq!(digest(&b.body), want);
    }
    let arts = cached_artifacts(&cache, "lib/app");
    assert_eq!(arts.len(), 1, "cached as soon as its blobs were: {arts:?}");
    assert_eq!(arts[0]["digest"].as_str(), Some(m1.as_str()));

    // Pushes and deletes into a proxy cache are refused.
    let r = http(&cache.addr, "POST", "/v2/cache/lib/app/blobs/uploads/", &[("Authorization", &authz)], b"");
    assert!(r.status == 403 && r.to_string().contains("proxy cache"), "{r}");
    let r =
        http(&cache.addr, "DELETE", &format!("/v2/cache/lib/app/manifests/{m1}"), &[("Authorization", &authz)], b"");
    assert_eq!(r.status, 403, "{r}");

    // The docker CLI through wharfd: busybox pushed to the upstream, pulled through the cache.
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let up_ref = upstream.image("library/busybox:latest");
    d.docker(&["tag", &src, &up_ref]).ok();
    d.docker(&["push", &up_ref]).ok();
    let through = cache.image("cache/library/busybox:latest");
    let first = Daemon::start();
    first.docker(&["pull", &through]).ok();
    let out = first.docker(&["run", "--rm", &through, "echo", "through the cache"]);
    assert_eq!(out.ok().trimmed(), "through the cache", "{out}");
    assert_eq!(cached_artifacts(&cache, "library/busybox").len(), 1);

    // Upstream down: a fresh daemon still pulls what is cached; what is not is a clear error.
    upstream.kill9();
    let down = Daemon::start();
    down.docker(&["pull", &through]).ok();
    let r = http(&cache.addr, "GET", "/v2/cache/lib/app/manifests/1", &accept, b"");
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(m1.as_str())), "{r}");
    down.docker(&["pull", &cache.image("cache/lib/never:1")]).fails().mentions(&["upstream registry upstream failed"]);

    // Upstream refusing with 429, then one that never answers: the cache answers anyway.
    let refusing = BadUpstream::start("429");
    set_upstream_url(&cache, id, &format!("http://{}", refusing.addr));
    let r = admin_api(&cache, "POST", "/registries/ping", Some(&json!({ "id": id })));
    assert_eq!(r.status, 400, "a 429 upstream does not ping: {r}");
    Daemon::start().docker(&["pull", &through]).ok();
    let stalled = BadUpstream::start("stall");
    set_upstream_url(&cache, id, &format!("http://{}", stalled.addr));
    Daemon::start().docker(&["pull", &through]).ok();
    drop((refusing, stalled));

    // Back up with the tag moved: the cache follows the upstream.
    upstream.restart();
    set_upstream_url(&cache, id, &format!("http://{}", upstream.addr));
    let (m2, _) = upstream.push_image("lib/app", "1", b"a newer layer");
    assert_ne!(m1, m2);
    let r = http(&cache.addr, "GET", "/v2/cache/lib/app/manifests/1", &accept, b"");
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(m2.as_str())), "{r}");
    // An upstream that says "no such tag" is a 404, not the stale copy.
    let r = http(&cache.addr, "GET", "/v2/cache/lib/app/manifests/2", &accept, b"");
    assert_eq!(r.status, 404, "{r}");

    // A client that pulled only the manifest (it had the layers) still gets it cached: the
    // registry fetches the blobs itself after its grace period.
    let (m3, _) = upstream.push_image("lib/lazy", "1", b"nobody pulls this layer");
    let r = http(&cache.addr, "GET", "/v2/cache/lib/lazy/manifests/1", &accept, b"");
    assert_eq!(r.status, 200, "{r}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while cached_artifacts(&cache, "lib/lazy").is_empty() {
        assert!(Instant::now() < deadline, "lib/lazy was never filled; log:\n{}", cache.log_text());
        thread::sleep(Duration::from_millis(500));
    }
    upstream.kill9();
    let r = http(&cache.addr, "GET", &format!("/v2/cache/lib/lazy/manifests/{m3}"), &accept, b"");
    assert_eq!(r.status, 200, "{r}");

    // An endpoint a project uses cannot be deleted; a non-admin cannot see endpoints.
    let r = admin_api(&cache, "DELETE", &format!("/registries/{id}"), None);
    assert!(r.status == 412 && r.to_string().contains("cache"), "{r}");
    let r = http(&cache.addr, "GET", "/api/v2.0/registries", &[], b"");
    assert_eq!(r.status, 401, "{r}");
    // The OpenAPI document lists what is served, these endpoints included, to anyone.
    let r = http(&cache.addr, "GET", "/api/v2.0/openapi.json", &[], b"");
    assert_eq!(r.status, 200, "{r}");
    assert!(r.json()["paths"]["/registries/{id}"]["delete"].is_object(), "{r}");
}

/// A cache in front of `upstream`: endpoint `upstream`, public proxy project `cache`.
fn proxy_of(upstream: &Server) -> Server {
    let cache = auth_server(&[]);
    let endpoint = json!({ "name": "upstream", "type": "docker-registry", "url": format!("http://{}", upstream.addr) });
    let r = admin_api(&cache, "POST", "/registries", Some(&endpoint));
    assert_eq!(r.status, 201, "{r}");
    let id: u64 = r.header("Location").and_then(|l| l.rsplit('/').next()).and_then(|v| v.parse().ok()).expect("id");
    let body = json!({ "project_name": "cache", "registry_id": id, "metadata": { "public": "true" } });
    let r = admin_api(&cache, "POST", "/projects", Some(&body));
    assert_eq!(r.status, 201, "{r}");
    cache
}

#[test]
fn harbor_proxy_cache_keeps_a_whole_multi_platform_index() {
    let mut upstream = Server::start();
    let cache = proxy_of(&upstream);
    let (ma, a) = upstream.push_image("lib/multi", "amd64", b"the amd64 layer");
    let (mb, b) = upstream.push_image("lib/multi", "arm64", b"the arm64 layer");
    let entry = |d: &str, m: &[u8], arch: &str| json!({ "mediaType": OCI_MANIFEST, "digest": d, "size": m.len(), "platform": { "architecture": arch, "os": "linux" } });
    let index = json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [entry(&ma, &a, "amd64"), entry(&mb, &b, "arm64")],
    })
    .to_string()
    .into_bytes();
    let r = upstream.put_manifest("lib/multi", "multi", OCI_INDEX, &index);
    assert_eq!(r.status, 201, "{r}");
    let mi = digest(&index);

    // A client pulls the index and one platform, as docker does.
    let authz = admin_authz();
    let get = |path: &str| {
        let accept = format!("{OCI_INDEX}, {OCI_MANIFEST}");
        http(&cache.addr, "GET", path, &[("Accept", accept.as_str()), ("Authorization", authz.as_str())], b"")
    };
    let r = get("/v2/cache/lib/multi/manifests/multi");
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(mi.as_str())), "{r}");
    let r = get(&format!("/v2/cache/lib/multi/manifests/{ma}"));
    assert_eq!(r.status, 200, "{r}");
    let m = r.json();
    for d in [&m["config"], &m["layers"][0]] {
        let r = get(&format!("/v2/cache/lib/multi/blobs/{}", d["digest"].as_str().unwrap()));
        assert_eq!(r.status, 200, "{r}");
    }
    // The registry fetches the other platform itself, then indexes the index.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cached_artifacts(&cache, "lib/multi").iter().any(|a| a["digest"].as_str() == Some(mi.as_str())) {
        assert!(Instant::now() < deadline, "the index was never cached; log:\n{}", cache.log_text());
        thread::sleep(Duration::from_millis(500));
    }
    upstream.kill9();
    let r = get("/v2/cache/lib/multi/manifests/multi");
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(mi.as_str())), "{r}");
    let r = get(&format!("/v2/cache/lib/multi/manifests/{mb}"));
    assert_eq!(r.status, 200, "{r}");
    let layer = r.json()["layers"][0]["digest"].as_str().unwrap().to_string();
    let r = get(&format!("/v2/cache/lib/multi/blobs/{layer}"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"the arm64 layer"[..]), "{r}");
}
