//! wharf-registry, the registry server, driven by real clients on loopback: `wharf push/pull`
//! and the docker CLI through a wharfd, skopeo both ways, oras-py (an artifact with a subject,
//! its referrers), and the distribution protocol by hand over a plain TCP socket (uploads,
//! mounts, manifests, listings, referrers, deletes, errors, restarts, time-outs), then `gc` and
//! `scrub` on its data dir.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{bin, free_port, registry, run_cmd, Cli, Daemon, Output, TempDir};

// ---------------------------------------------------------------------------------------------
// A wharf-registry of one test

pub(crate) struct Server {
    pub(crate) addr: String,
    pub(crate) data: PathBuf,
    dir: TempDir,
    extra: Vec<String>,
    child: Option<Child>,
    /// An `Authorization` value sent with every request that does not bring its own.
    pub(crate) authz: Option<String>,
}

impl Server {
    pub(crate) fn start() -> Server {
        Server::start_with(&[])
    }

    /// `wharf-registry serve` on a free loopback port with its own data dir, plus `extra` flags.
    pub(crate) fn start_with(extra: &[&str]) -> Server {
        Server::start_at(&format!("127.0.0.1:{}", free_port()), extra)
    }

    /// Like `start_with`, on a data dir of the caller's (two servers may share one).
    pub(crate) fn start_sharing(data: &Path, extra: &[&str]) -> Server {
        Server::start_on(&format!("127.0.0.1:{}", free_port()), Some(data), extra)
    }

    fn start_at(addr: &str, extra: &[&str]) -> Server {
        Server::start_on(addr, None, extra)
    }

    fn start_on(addr: &str, data: Option<&Path>, extra: &[&str]) -> Server {
        let dir = TempDir::new("wharf-e2e-wharf-registry");
        let mut s = Server {
            addr: addr.to_string(),
            authz: None,
            data: data.map(Path::to_path_buf).unwrap_or_else(|| dir.0.join("data")),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        s.spawn();
        s
    }

    fn log_path(&self) -> PathBuf {
        self.dir.0.join("registry.log")
    }

    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub(crate) fn spawn(&mut self) {
        let log = fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("registry log");
        let mut cmd = Command::new(bin("wharf-registry"));
        cmd.args(["serve", "--addr", &self.addr, "--data-dir"])
            .arg(&self.data)
            .args(["--log-level", "debug"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("spawn wharf-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("wharf-registry exited ({status}); log:\n{}", self.log_text());
            }
            // With auth `/v2/` is a 401, over TLS a plain request gets nothing: the log says
            // when it listens.
            if TcpStream::connect(&self.addr).is_ok() && self.log_text().contains("wharf-registry listening on") {
                break;
            }
            assert!(Instant::now() < deadline, "wharf-registry did not answer /v2/; log:\n{}", self.log_text());
            thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// `kill -9`, as a crash would.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub(crate) fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }

    pub(crate) fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut headers = headers.to_vec();
        if let Some(a) = &self.authz {
            if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
                headers.push(("Authorization", a));
            }
        }
        http(&self.addr, method, path, &headers, body)
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }

    /// `wharf-registry SUBCOMMAND --data-dir DATA ARGS` (gc, scrub).
    pub(crate) fn tool(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("wharf-registry"));
        cmd.arg(args[0]).arg("--data-dir").arg(&self.data).args(&args[1..]);
        run_cmd(cmd, Duration::from_secs(60))
    }

    /// Files under the data dir's `sub` (e.g. `uploads`), recursively.
    fn files_under(&self, sub: &str) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            let Ok(rd) = fs::read_dir(p) else { return };
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data.join(sub), &mut out);
        out
    }

    pub(crate) fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.data.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// Pushes `data` into `repo` with one POST; asserts 201; returns the digest.
    pub(crate) fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = digest(data);
        let r = self.req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"), &[], data);
        assert_eq!(r.status, 201, "monolithic push of {d} to {repo}: {r}");
        d
    }

    pub(crate) fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.req("PUT", &format!("/v2/{repo}/manifests/{reference}"), &[("Content-Type", media_type)], body)
    }

    /// Pushes a one-layer image (OCI) into `repo` as `tag`; returns (manifest digest, body).
    pub(crate) fn push_image(&self, repo: &str, tag: &str, layer: &[u8]) -> (String, Vec<u8>) {
        let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let (c, l) = (self.push_blob(repo, config), self.push_blob(repo, layer));
        let m = image_manifest(&c, config.len(), &l, layer.len());
        let r = self.put_manifest(repo, tag, OCI_MANIFEST, &m);
        assert_eq!(r.status, 201, "{r}");
        (digest(&m), m)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

pub(crate) fn digest(data: &[u8]) -> String {
    // sha256sum is everywhere; the e2e crate keeps its dependencies few.
    let mut child =
        Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn sha256sum");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("sha256sum");
    writer.join().expect("writer").expect("write to sha256sum");
    let text = String::from_utf8_lossy(&out.stdout);
    format!("sha256:{}", text.split_whitespace().next().unwrap_or_default())
}

pub(crate) fn image_manifest(config: &str, config_size: usize, layer: &str, layer_size: usize) -> Vec<u8> {
    json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config, "size": config_size },
        "layers": [{ "mediaType": OCI_LAYER, "digest": layer, "size": layer_size }]
    })
    .to_string()
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP

pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self}"))
    }

    /// The first error code of a spec error body, after checking the body has the spec's form.
    pub(crate) fn code(&self) -> String {
        let v = self.json();
        let e = &v["errors"][0];
        assert!(e["code"].is_string() && e["message"].is_string(), "not the spec's error form: {self}");
        assert_eq!(self.header("Content-Type"), Some("application/json"), "{self}");
        e["code"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts the status and the spec error code.
    #[track_caller]
    pub(crate) fn fails(&self, status: u16, code: &str) {
        assert_eq!((self.status, self.code().as_str()), (status, code), "{self}");
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "HTTP {}", self.status)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        write!(f, "\n{}", String::from_utf8_lossy(&self.body[..self.body.len().min(2000)]))
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
pub(crate) fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let raw = http_raw(addr, method, path, headers, body);
    parse_response(&raw)
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP response: {:?}", String::from_utf8_lossy(&raw)))
}

/// The bytes a server sent back, whatever they are (nothing, when it cut the connection).
pub(crate) fn http_raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "PUT" | "POST" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write request head");
    // A server may answer before the body is in (a 413); its answer is still read.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    raw
}

pub(crate) fn parse_response(raw: &[u8]) -> Option<Resp> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Some(Resp { status, headers, body: raw[end + 4..].to_vec() })
}

/// `</v2/...?n=2&last=x>; rel="next"` → `/v2/...?n=2&last=x`.
pub(crate) fn next_link(r: &Resp) -> Option<String> {
    let link = r.header("Link")?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(link.split('>').next()?.trim_start_matches('<').to_string())
}

/// Follows `Link` from `first` to the last page; each page's `key` (`tags`, `repositories`).
pub(crate) fn pages(reg: &Server, first: &str, key: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(path) = next {
        let r = reg.get(&path);
        assert_eq!(r.status, 200, "{r}");
        pages.push(r.json()[key].clone());
        next = next_link(&r);
        assert!(pages.len() < 10, "Link never ends");
    }
    pages
}

/// The repositories of every `_catalog` page from `first`, in order.
pub(crate) fn catalog_pages(reg: &Server, first: &str) -> Vec<String> {
    let pages = pages(reg, first, "repositories");
    pages
        .iter()
        .flat_map(|p| p.as_array().cloned().unwrap_or_default())
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Real clients

fn push_pull_through_wharfd(cli: Cli) {
    let reg = Server::start();
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("library/busybox:1");
    d.cli(cli, &["tag", &src, &target]).ok();
    d.cli(cli, &["push", &target]).ok().mentions(&["1: digest: sha256:"]);
    // Again: every blob is there.
    d.cli(cli, &["push", &target]).ok().mentions(&["Layer already exists"]);
    // Another repository: the layers are mounted, not sent again.
    let other = reg.image("other/box:2");
    d.cli(cli, &["tag", &src, &other]).ok();
    d.cli(cli, &["push", &other]).ok().mentions(&["Mounted from library/busybox"]);
    let log = reg.log_text();
    assert!(log.contains("mount=sha256") || log.contains("POST /v2/other/box/blobs/uploads/"), "{log}");

    // Pulled back into a daemon that has nothing, it runs.
    d.cli(cli, &["rmi", &target, &other]).ok();
    let fresh = Daemon::start();
    fresh.cli(cli, &["pull", &target]).ok();
    let out = fresh.cli(cli, &["run", "--rm", &target, "echo", "from wharf-registry"]);
    assert_eq!(out.ok().trimmed(), "from wharf-registry", "{out}");
    let digests = fresh.inspect(cli, &target)["RepoDigests"].to_string();
    assert!(digests.contains("library/busybox@sha256:"), "{digests}");
    let tags = reg.get("/v2/library/busybox/tags/list").json();
    assert_eq!(tags["tags"], json!(["1"]));
}
both!(push_pull_through_wharfd);

pub(crate) fn skopeo(args: &[&str]) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(args);
    run_cmd(cmd, Duration::from_secs(180))
}

/// The venv's python with PyPI's oras (oras-py, a library: no CLI), made once by scripts/oras.
fn oras_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let got = PYTHON.get_or_init(|| crate::harness::install_with_script("oras", "oras"));
    match got {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// oras-py pushes an artifact whose `subject` is an image (its blob in chunks), lists the
/// image's referrers with and without a filter, and pulls the artifact back.
const ORAS_SCRIPT: &str = r#"
import json, os, sys
import oras.client, oras.oci

host, repo, subject, size, outdir = sys.argv[1:]
client = oras.client.OrasClient(hostname=host, insecure=True)
s = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json", digest=subject, size=int(size))
r = client.push(
    target=f"{host}/{repo}:sig",
    files=["signature.txt:application/vnd.example.signature"],
    manifest_config="config.json:application/vnd.example.sig.config+json",
    subject=s,
    do_chunked=True,
    chunk_size=7,
    quiet=True,
)
out = {"status": r.status_code, "oci_subject": r.headers.get("OCI-Subject")}
base = f"http://{host}/v2/{repo}/referrers/{subject}"
out["referrers"] = client.do_request(base).json()
filtered = client.do_request(base + "?artifactType=application/vnd.example.sig.config%2Bjson")
out["filtered"] = filtered.json()
out["filters_applied"] = filtered.headers.get("OCI-Filters-Applied")
other = client.do_request(base + "?artifactType=application/vnd.example.other")
out["other"] = other.json()
files = client.pull(target=f"{host}/{repo}:sig", outdir=outdir)
out["pulled"] = {os.path.relpath(f, outdir): open(f).read() for f in files}
print(json.dumps(out))
"#;

#[test]
fn oras_pushes_an_artifact_with_a_subject_and_lists_its_referrers() {
    let reg = Server::start();
    let (subject, body) = reg.push_image("oras/app", "v1", b"the image's layer");
    let dir = TempDir::new("wharf-e2e-oras");
    fs::write(dir.0.join("push.py"), ORAS_SCRIPT).expect("write push.py");
    fs::write(dir.0.join("signature.txt"), "signed by the e2e test\n").expect("write signature");
    fs::write(dir.0.join("config.json"), "{}").expect("write config");
    let pulled = dir.0.join("pulled");
    let mut cmd = Command::new(oras_python());
    cmd.arg("push.py").args([reg.addr.as_str(), "oras/app", &subject, &body.len().to_string()]).arg(&pulled);
    cmd.current_dir(&dir.0);
    let out = run_cmd(cmd, Duration::from_secs(120));
    let v = out.ok().json();
    assert_eq!((v["status"].as_u64(), v["oci_subject"].as_str()), (Some(201), Some(subject.as_str())), "{v}");
    let sig = reg.get("/v2/oras/app/manifests/sig");
    assert_eq!(sig.status, 200, "{sig}");
    let sig_digest = digest(&sig.body);
    let listed = v["referrers"]["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{v}");
    assert_eq!(listed[0]["digest"], json!(sig_digest));
    assert_eq!(listed[0]["artifactType"], "application/vnd.example.sig.config+json");
    assert_eq!(listed[0]["size"], json!(sig.body.len()));
    assert_eq!(v["filtered"]["manifests"][0]["digest"], json!(sig_digest), "{v}");
    assert_eq!(v["filters_applied"], "artifactType");
    assert_eq!(v["other"]["manifests"], json!([]));
    assert_eq!(v["pulled"]["signature.txt"], "signed by the e2e test\n", "{v}");
    // The blob came in chunks (7 bytes each): several PATCHes of one upload.
    assert!(reg.log_text().matches("PATCH /v2/oras/app/blobs/uploads/").count() >= 3, "{}", reg.log_text());
}

/// skopeo copies a single image and a multi-arch index from the test registry into `reg` (as
/// `copied/<name>`), their manifests byte for byte, and back out into OCI layouts.
pub(crate) fn skopeo_round_trip(reg: &Server) {
    let fixtures = registry();
    let tmp = TempDir::new("wharf-e2e-skopeo-wr");
    for (name, all) in [("library/busybox:latest", false), ("test/multiarch:latest", true)] {
        let dest = reg.image(&format!("copied/{}", name.rsplit('/').next().unwrap_or(name)));
        let mut args = vec!["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"];
        if all {
            args.push("--all");
        }
        let (from, to) = (format!("docker://{}", fixtures.image(name)), format!("docker://{dest}"));
        args.extend([from.as_str(), to.as_str()]);
        skopeo(&args).ok();

        let theirs = skopeo(&["inspect", "--raw", "--tls-verify=false", &from]);
        let ours = skopeo(&["inspect", "--raw", "--tls-verify=false", &to]);
        // A copy of the same format keeps the manifest byte for byte.
        assert_eq!(ours.ok().stdout, theirs.ok().stdout, "{name}");

        // And back out of wharf-registry into an OCI layout, verified by skopeo.
        let layout = tmp.0.join(name.replace(['/', ':'], "_"));
        let oci = format!("oci:{}:x", layout.display());
        let mut back = vec!["copy", "--quiet", "--src-tls-verify=false"];
        if all {
            back.push("--all");
        }
        back.extend([to.as_str(), oci.as_str()]);
        skopeo(&back).ok();
        assert!(layout.join("index.json").exists());
    }
}

#[test]
fn skopeo_copies_both_ways_and_inspects() {
    let reg = Server::start();
    skopeo_round_trip(&reg);
    for name in ["busybox:latest", "multiarch:latest"] {
        let info =
            skopeo(&["inspect", "--tls-verify=false", &format!("docker://{}", reg.image(&format!("copied/{name}")))]);
        let v = info.ok().json();
        assert!(v["Digest"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{info}");
    }
    let catalog = reg.get("/v2/_catalog").json();
    assert_eq!(catalog["repositories"], json!(["copied/busybox", "copied/multiarch"]));
}

// ---------------------------------------------------------------------------------------------
// The protocol by hand

#[test]
fn base_endpoint_and_error_form() {
    let reg = Server::start();
    let r = reg.get("/v2/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Distribution-Api-Version"), Some("registry/2.0"));
    let zero = format!("sha256:{}", "0".repeat(64));
    reg.get(&format!("/v2/nothing/here/blobs/{zero}")).fails(404, "BLOB_UNKNOWN");
    reg.get("/v2/nothing/here/manifests/latest").fails(404, "NAME_UNKNOWN");
    reg.get("/v2/nothing/here/tags/list").fails(404, "NAME_UNKNOWN");
    reg.push_blob("some/repo", b"x");
    reg.get("/v2/some/repo/manifests/latest").fails(404, "MANIFEST_UNKNOWN");
    reg.get(&format!("/v2/some/repo/manifests/{zero}")).fails(404, "MANIFEST_UNKNOWN");
    reg.get("/v2/some/repo/blobs/sha256:abc").fails(400, "DIGEST_INVALID");
    reg.get("/v2/some/repo/blobs/md5:abc").fails(400, "DIGEST_INVALID");
    reg.get("/v2/some/repo/blobs/uploads/0123456789abcdef0123456789abcdef").fails(404, "BLOB_UPLOAD_UNKNOWN");
    reg.get("/v2/some/repo/blobs/uploads/..%2f..%2fx").fails(404, "BLOB_UPLOAD_UNKNOWN");
    // No endpoint has that shape.
    reg.get("/v2/some/repo/blobs/uploads/../../x").fails(404, "UNSUPPORTED");
    reg.req("POST", "/v2/some/repo/tags/list", &[], b"").fails(405, "UNSUPPORTED");
    // The error body of every answer above was the spec's JSON form (checked by `fails`).
}

#[test]
fn bad_names_and_tags_are_refused() {
    let reg = Server::start();
    let (_, m) = reg.push_image("good/name", "v1", b"layer");
    for bad in
        ["..", "a/../b", "%2e%2e/b", "a/%2e%2e", "Library/busybox", "UPPER", "/abs", "a//b", "a..b", "-a", "a%2Fb"]
    {
        reg.get(&format!("/v2/{bad}/tags/list")).fails(400, "NAME_INVALID");
        reg.get(&format!("/v2/{bad}/manifests/v1")).fails(400, "NAME_INVALID");
        reg.req("POST", &format!("/v2/{bad}/blobs/uploads/"), &[], b"").fails(400, "NAME_INVALID");
        reg.put_manifest(bad, "v1", OCI_MANIFEST, &m).fails(400, "NAME_INVALID");
    }
    let long_name = format!("a/{}", "b".repeat(260));
    reg.get(&format!("/v2/{long_name}/tags/list")).fails(400, "NAME_INVALID");
    let tag128 = "t".repeat(128);
    let tag129 = "t".repeat(129);
    assert_eq!(reg.put_manifest("good/name", &tag128, OCI_MANIFEST, &m).status, 201);
    reg.put_manifest("good/name", &tag129, OCI_MANIFEST, &m).fails(400, "TAG_INVALID");
    reg.put_manifest("good/name", ".hidden", OCI_MANIFEST, &m).fails(400, "TAG_INVALID");
    reg.get(&format!("/v2/good/name/manifests/{tag129}")).fails(400, "TAG_INVALID");
    let tags = reg.get("/v2/good/name/tags/list").json();
    assert_eq!(tags["tags"], json!([tag128, "v1"]));
    // Nothing of the refused requests made a repository.
    assert_eq!(reg.get("/v2/_catalog").json()["repositories"], json!(["good/name"]));
}

#[test]
fn monolithic_uploads_and_blob_reads() {
    let reg = Server::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = reg.push_blob("mono/repo", &data);
    let head = reg.req("HEAD", &format!("/v2/mono/repo/blobs/{d}"), &[], b"");
    assert_eq!(head.status, 200, "{head}");
    assert_eq!(head.header("Content-Length"), Some("100000"));
    assert_eq!(head.header("Docker-Content-Digest"), Some(d.as_str()));
    assert!(head.body.is_empty());
    let get = reg.get(&format!("/v2/mono/repo/blobs/{d}"));
    assert_eq!((get.status, get.body == data), (200, true));

    let part = reg.req("GET", &format!("/v2/mono/repo/blobs/{d}"), &[("Range", "bytes=10-19")], b"");
    assert_eq!(part.status, 206, "{part}");
    assert_eq!(part.header("Content-Range"), Some("bytes 10-19/100000"));
    assert_eq!(part.body, data[10..20]);
    let tail = reg.req("GET", &format!("/v2/mono/repo/blobs/{d}"), &[("Range", "bytes=99990-")], b"");
    assert_eq!((tail.status, tail.body.as_slice()), (206, &data[99990..]));
    let past = reg.req("GET", &format!("/v2/mono/repo/blobs/{d}"), &[("Range", "bytes=100000-")], b"");
    past.fails(416, "RANGE_INVALID");
    assert_eq!(past.header("Content-Range"), Some("bytes */100000"));

    // POST, then the whole blob in the closing PUT.
    let post = reg.req("POST", "/v2/mono/other/blobs/uploads/", &[], b"");
    assert_eq!(post.status, 202, "{post}");
    let loc = post.header("Location").expect("Location").to_string();
    let blob = b"put in one go";
    let put = reg.req("PUT", &format!("{loc}?digest={}", digest(blob)), &[], blob);
    assert_eq!(put.status, 201, "{put}");
    assert_eq!(put.header("Location"), Some(format!("/v2/mono/other/blobs/{}", digest(blob)).as_str()));
    assert_eq!(reg.get(&format!("/v2/mono/other/blobs/{}", digest(blob))).body, blob);
    // A blob is readable only through the repositories that hold it.
    reg.get(&format!("/v2/mono/other/blobs/{d}")).fails(404, "BLOB_UNKNOWN");
    // Stored once.
    assert_eq!(reg.files_under("blobs").len(), 2);
    assert!(reg.files_under("uploads").is_empty());
}

#[test]
fn chunked_upload_with_out_of_order_chunk_and_status() {
    let reg = Server::start();
    let data: Vec<u8> = (0..30_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let post = reg.req("POST", "/v2/chunky/blobs/uploads/", &[], b"");
    assert_eq!((post.status, post.header("Range")), (202, Some("0-0")), "{post}");
    let loc = post.header("Location").expect("Location").to_string();
    let uuid = post.header("Docker-Upload-UUID").expect("uuid").to_string();
    assert!(loc.ends_with(&uuid), "{loc} {uuid}");

    let patch = |from: usize, to: usize| {
        let range = format!("{from}-{}", to - 1);
        reg.req(
            "PATCH",
            &loc,
            &[("Content-Range", &range), ("Content-Type", "application/octet-stream")],
            &data[from..to],
        )
    };
    let r = patch(0, 10_000);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-9999")), "{r}");
    // Out of order: 416 and where the upload stands.
    let r = patch(20_000, 30_000);
    r.fails(416, "RANGE_INVALID");
    assert_eq!(r.header("Range"), Some("0-9999"), "{r}");
    let status = reg.get(&loc);
    assert_eq!((status.status, status.header("Range")), (204, Some("0-9999")), "{status}");
    assert_eq!(status.header("Docker-Upload-UUID"), Some(uuid.as_str()));
    // A chunk whose range says more than its body holds is refused whole.
    let short = reg.req("PATCH", &loc, &[("Content-Range", "10000-10999")], &data[10_000..10_500]);
    short.fails(400, "SIZE_INVALID");
    assert_eq!(reg.get(&loc).header("Range"), Some("0-9999"));
    // A streamed PATCH (no Content-Range) appends.
    let r = reg.req("PATCH", &loc, &[], &data[10_000..20_000]);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-19999")), "{r}");
    let r = patch(20_000, 30_000);
    assert_eq!(r.status, 202, "{r}");
    let d = digest(&data);
    let put = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    assert_eq!(put.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(reg.get(&format!("/v2/chunky/blobs/{d}")).body, data);
    // The finished upload is gone.
    reg.get(&loc).fails(404, "BLOB_UPLOAD_UNKNOWN");
    assert!(reg.files_under("uploads").is_empty());

    // Cancel.
    let post = reg.req("POST", "/v2/chunky/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    assert_eq!(reg.req("PATCH", &loc, &[], b"abc").status, 202);
    assert_eq!(reg.req("DELETE", &loc, &[], b"").status, 204);
    reg.get(&loc).fails(404, "BLOB_UPLOAD_UNKNOWN");
    reg.req("PATCH", &loc, &[], b"abc").fails(404, "BLOB_UPLOAD_UNKNOWN");
    assert!(reg.files_under("uploads").is_empty());
    // An upload of one repository is unknown to another.
    let post = reg.req("POST", "/v2/chunky/blobs/uploads/", &[], b"");
    let uuid = post.header("Docker-Upload-UUID").expect("uuid").to_string();
    reg.get(&format!("/v2/elsewhere/blobs/uploads/{uuid}")).fails(404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn wrong_digest_leaves_nothing_behind() {
    let reg = Server::start();
    let data = b"the real content";
    let wrong = digest(b"something else");
    // Monolithic.
    reg.req("POST", &format!("/v2/wrong/blobs/uploads/?digest={wrong}"), &[], data).fails(400, "DIGEST_INVALID");
    // POST, PATCH, PUT.
    let post = reg.req("POST", "/v2/wrong/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    assert_eq!(reg.req("PATCH", &loc, &[], data).status, 202);
    reg.req("PUT", &format!("{loc}?digest={wrong}"), &[], b"").fails(400, "DIGEST_INVALID");
    reg.get(&loc).fails(404, "BLOB_UPLOAD_UNKNOWN");
    // A closing PUT without a digest, or with a malformed one.
    let post = reg.req("POST", "/v2/wrong/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    reg.req("PUT", &loc, &[], data).fails(400, "DIGEST_INVALID");
    reg.req("PUT", &format!("{loc}?digest=sha256:xyz"), &[], data).fails(400, "DIGEST_INVALID");
    assert_eq!(reg.req("DELETE", &loc, &[], b"").status, 204);
    for d in [digest(data), wrong] {
        reg.req("HEAD", &format!("/v2/wrong/blobs/{d}"), &[], b"");
        reg.get(&format!("/v2/wrong/blobs/{d}")).fails(404, "BLOB_UNKNOWN");
    }
    assert!(reg.files_under("blobs").is_empty(), "{:?}", reg.files_under("blobs"));
    assert!(reg.files_under("uploads").is_empty(), "{:?}", reg.files_under("uploads"));
}

#[test]
fn cross_repository_mounts() {
    let reg = Server::start();
    let d = reg.push_blob("mount/src", b"shared layer");
    let r = reg.req("POST", &format!("/v2/mount/dst/blobs/uploads/?mount={d}&from=mount/src"), &[], b"");
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.header("Location"), Some(format!("/v2/mount/dst/blobs/{d}").as_str()));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    assert_eq!(reg.get(&format!("/v2/mount/dst/blobs/{d}")).body, b"shared layer");
    // From a repository that does not hold it: a normal upload starts.
    let r = reg.req("POST", &format!("/v2/mount/third/blobs/uploads/?mount={d}&from=mount/none"), &[], b"");
    assert_eq!(r.status, 202, "{r}");
    assert!(r.header("Location").is_some_and(|l| l.starts_with("/v2/mount/third/blobs/uploads/")), "{r}");
    reg.get(&format!("/v2/mount/third/blobs/{d}")).fails(404, "BLOB_UNKNOWN");
    // Without `from`: mounted from wherever the registry has it.
    let r = reg.req("POST", &format!("/v2/mount/auto/blobs/uploads/?mount={d}"), &[], b"");
    assert_eq!(r.status, 201, "{r}");
    // An unknown blob: a normal upload.
    let unknown = digest(b"never pushed");
    let r = reg.req("POST", &format!("/v2/mount/auto/blobs/uploads/?mount={unknown}&from=mount/src"), &[], b"");
    assert_eq!(r.status, 202, "{r}");
    // Stored once for all four repositories.
    assert_eq!(reg.files_under("blobs").len(), 1);
}

#[test]
fn manifests_by_tag_and_digest() {
    let reg = Server::start();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"a layer".to_vec();
    let (c, l) = (digest(config), digest(&layer));
    let m = image_manifest(&c, config.len(), &l, layer.len());
    let md = digest(&m);

    // Blobs not pushed yet: refused, and nothing is left of the manifest.
    reg.push_blob("man/repo", b"unrelated");
    reg.put_manifest("man/repo", "v1", OCI_MANIFEST, &m).fails(400, "MANIFEST_BLOB_UNKNOWN");
    reg.push_blob("man/repo", config);
    let r = reg.put_manifest("man/repo", "v1", OCI_MANIFEST, &m);
    r.fails(400, "MANIFEST_BLOB_UNKNOWN");
    assert!(r.json()["errors"][0]["detail"].as_str().is_some_and(|d| d.contains(&l)), "{r}");
    reg.get(&format!("/v2/man/repo/manifests/{md}")).fails(404, "MANIFEST_UNKNOWN");
    assert!(!reg.blob_file(&md).exists());
    // A layer in another repository does not count.
    reg.push_blob("man/other", &layer);
    reg.put_manifest("man/repo", "v1", OCI_MANIFEST, &m).fails(400, "MANIFEST_BLOB_UNKNOWN");

    reg.push_blob("man/repo", &layer);
    let r = reg.put_manifest("man/repo", "v1", OCI_MANIFEST, &m);
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
    assert_eq!(r.header("Location"), Some(format!("/v2/man/repo/manifests/{md}").as_str()));
    for reference in ["v1", md.as_str()] {
        let g = reg.get(&format!("/v2/man/repo/manifests/{reference}"));
        assert_eq!(g.status, 200, "{g}");
        assert_eq!(g.body, m, "byte for byte");
        assert_eq!(g.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(g.header("Docker-Content-Digest"), Some(md.as_str()));
        let h = reg.req("HEAD", &format!("/v2/man/repo/manifests/{reference}"), &[], b"");
        assert_eq!((h.status, h.header("Content-Length")), (200, Some(m.len().to_string().as_str())), "{h}");
    }
    // By digest: the digest must be the body's.
    reg.put_manifest("man/repo", &digest(b"other"), OCI_MANIFEST, &m).fails(400, "DIGEST_INVALID");
    assert_eq!(reg.put_manifest("man/repo", &md, OCI_MANIFEST, &m).status, 201);
    // Docker schema2 with odd whitespace is stored as sent.
    let docker = format!(
        "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n  \
         \"config\": {{\"mediaType\": \"application/vnd.docker.container.image.v1+json\", \"digest\": \"{c}\", \"size\": {}}},\n  \
         \"layers\": [{{\"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\", \"digest\": \"{l}\", \"size\": {}}}]\n}}",
        config.len(),
        layer.len()
    );
    let dt = "application/vnd.docker.distribution.manifest.v2+json";
    assert_eq!(reg.put_manifest("man/repo", "docker", dt, docker.as_bytes()).status, 201);
    let g = reg.get("/v2/man/repo/manifests/docker");
    assert_eq!((g.body.as_slice(), g.header("Content-Type")), (docker.as_bytes(), Some(dt)));
    // Content-Type and mediaType disagree; not JSON; schema 1.
    reg.put_manifest("man/repo", "bad", OCI_INDEX, &m).fails(400, "MANIFEST_INVALID");
    reg.put_manifest("man/repo", "bad", OCI_MANIFEST, b"{not json").fails(400, "MANIFEST_INVALID");
    let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
    reg.put_manifest("man/repo", "bad", "application/vnd.docker.distribution.manifest.v1+prettyjws", s1)
        .fails(400, "MANIFEST_INVALID");

    // An index: its children must be in the repository.
    let missing_child = digest(b"no such manifest");
    let index = |children: &[(&str, usize)]| {
        let ms: Vec<Value> = children
            .iter()
            .map(|(d, s)| json!({"mediaType": OCI_MANIFEST, "digest": d, "size": s, "platform": {"architecture": "amd64", "os": "linux"}}))
            .collect();
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ms}).to_string().into_bytes()
    };
    reg.put_manifest("man/repo", "multi", OCI_INDEX, &index(&[(&md, m.len()), (&missing_child, 10)]))
        .fails(400, "MANIFEST_BLOB_UNKNOWN");
    let good = index(&[(&md, m.len())]);
    assert_eq!(reg.put_manifest("man/repo", "multi", OCI_INDEX, &good).status, 201);
    assert_eq!(reg.get("/v2/man/repo/manifests/multi").body, good);

    // Over 4 MiB: 413. Exactly at the limit is accepted as far as size goes.
    let mut big = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": c, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": l, "size": layer.len()}],
        "annotations": {"pad": ""}})
    .to_string();
    let pad = (4 << 20) - big.len();
    big = big.replace("\"pad\":\"\"", &format!("\"pad\":\"{}\"", "x".repeat(pad)));
    assert_eq!(big.len(), 4 << 20);
    assert_eq!(reg.put_manifest("man/repo", "big", OCI_MANIFEST, big.as_bytes()).status, 201);
    big.insert(big.len() - 2, 'x');
    let r = reg.put_manifest("man/repo", "toobig", OCI_MANIFEST, big.as_bytes());
    r.fails(413, "MANIFEST_INVALID");
}

#[test]
fn tag_list_and_catalog_paging() {
    let reg = Server::start();
    let (_, m) = reg.push_image("paged/repo", "t0", b"layer");
    for t in ["t4", "t2", "t3", "t1"] {
        assert_eq!(reg.put_manifest("paged/repo", t, OCI_MANIFEST, &m).status, 201);
    }
    let all = reg.get("/v2/paged/repo/tags/list");
    assert_eq!(all.json(), json!({"name": "paged/repo", "tags": ["t0", "t1", "t2", "t3", "t4"]}));
    assert!(all.header("Link").is_none());
    let pages = pages(&reg, "/v2/paged/repo/tags/list?n=2", "tags");
    assert_eq!(pages, vec![json!(["t0", "t1"]), json!(["t2", "t3"]), json!(["t4"])]);
    assert_eq!(reg.get("/v2/paged/repo/tags/list?n=10&last=t2").json()["tags"], json!(["t3", "t4"]));
    assert_eq!(reg.get("/v2/paged/repo/tags/list?n=0").json()["tags"], json!([]));
    reg.get("/v2/paged/repo/tags/list?n=-1").fails(400, "PAGINATION_NUMBER_INVALID");
    reg.get("/v2/paged/repo/tags/list?n=two").fails(400, "PAGINATION_NUMBER_INVALID");

    for repo in ["cat/c", "cat/a", "cat/b", "cat/a/deeper"] {
        reg.push_blob(repo, b"x");
    }
    let seen = catalog_pages(&reg, "/v2/_catalog?n=2");
    assert_eq!(seen, ["cat/a", "cat/a/deeper", "cat/b", "cat/c", "paged/repo"]);
    assert_eq!(reg.get("/v2/_catalog?last=cat/b").json()["repositories"], json!(["cat/c", "paged/repo"]));
}

#[test]
fn referrers_with_artifact_type_filter() {
    let reg = Server::start();
    let (subject, subject_body) = reg.push_image("refs/repo", "v1", b"image layer");
    let empty = reg.push_blob("refs/repo", b"{}");
    let sig_layer = reg.push_blob("refs/repo", b"signature");
    let artifact = |artifact_type: Option<&str>, config_type: &str, note: &str| {
        let mut v = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": sig_layer, "size": 9}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len()},
            "annotations": {"note": note}
        });
        if let Some(t) = artifact_type {
            v["artifactType"] = json!(t);
        }
        v.to_string().into_bytes()
    };
    let sig = artifact(Some("application/vnd.example.sig"), OCI_EMPTY, "sig");
    let sbom = artifact(Some("application/vnd.example.sbom+json"), OCI_EMPTY, "sbom");
    let from_config = artifact(None, "application/vnd.example.cfg+json", "cfg");
    let mut digests = Vec::new();
    for a in [&sig, &sbom, &from_config] {
        let d = digest(a);
        let r = reg.put_manifest("refs/repo", &d, OCI_MANIFEST, a);
        assert_eq!(r.status, 201, "{r}");
        assert_eq!(r.header("OCI-Subject"), Some(subject.as_str()), "{r}");
        digests.push(d);
    }
    let r = reg.get(&format!("/v2/refs/repo/referrers/{subject}"));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    assert!(r.header("OCI-Filters-Applied").is_none());
    let v = r.json();
    assert_eq!(v["mediaType"], OCI_INDEX);
    let listed = v["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 3, "{v}");
    let sig_entry = listed.iter().find(|d| d["digest"] == digests[0].as_str()).expect("the signature is listed");
    assert_eq!(sig_entry["artifactType"], "application/vnd.example.sig");
    assert_eq!(sig_entry["size"], sig.len());
    assert_eq!(sig_entry["annotations"]["note"], "sig");
    let cfg_entry = listed.iter().find(|d| d["digest"] == digests[2].as_str()).expect("listed");
    assert_eq!(cfg_entry["artifactType"], "application/vnd.example.cfg+json");

    let r = reg.get(&format!("/v2/refs/repo/referrers/{subject}?artifactType=application/vnd.example.sig"));
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"), "{r}");
    let ms = r.json()["manifests"].clone();
    assert_eq!((ms.as_array().map(Vec::len), ms[0]["digest"].clone()), (Some(1), json!(digests[0])));
    // Percent-encoded, with a `+`.
    let r = reg.get(&format!("/v2/refs/repo/referrers/{subject}?artifactType=application%2Fvnd.example.sbom%2Bjson"));
    assert_eq!(r.json()["manifests"][0]["digest"], json!(digests[1]), "{r}");
    // No referrers, or an unknown subject: an empty index.
    let none = reg.get(&format!("/v2/refs/repo/referrers/{}", digest(b"nothing")));
    assert_eq!((none.status, none.json()["manifests"].clone()), (200, json!([])));
    reg.get("/v2/refs/repo/referrers/latest").fails(400, "DIGEST_INVALID");
    // A deleted referrer is no longer listed.
    assert_eq!(reg.req("DELETE", &format!("/v2/refs/repo/manifests/{}", digests[0]), &[], b"").status, 202);
    let r = reg.get(&format!("/v2/refs/repo/referrers/{subject}"));
    assert_eq!(r.json()["manifests"].as_array().map(Vec::len), Some(2));
}

#[test]
fn deletes_of_tags_manifests_and_blobs() {
    let reg = Server::start();
    let (md, _) = reg.push_image("del/repo", "keep", b"layer one");
    let r = reg.put_manifest("del/repo", "gone", OCI_MANIFEST, &reg.get("/v2/del/repo/manifests/keep").body);
    assert_eq!(r.status, 201);
    // A tag: the manifest stays.
    assert_eq!(reg.req("DELETE", "/v2/del/repo/manifests/gone", &[], b"").status, 202);
    reg.get("/v2/del/repo/manifests/gone").fails(404, "MANIFEST_UNKNOWN");
    assert_eq!(reg.get("/v2/del/repo/manifests/keep").status, 200);
    reg.req("DELETE", "/v2/del/repo/manifests/gone", &[], b"").fails(404, "MANIFEST_UNKNOWN");
    // The manifest: its tags go with it.
    assert_eq!(reg.req("DELETE", &format!("/v2/del/repo/manifests/{md}"), &[], b"").status, 202);
    reg.get(&format!("/v2/del/repo/manifests/{md}")).fails(404, "MANIFEST_UNKNOWN");
    reg.get("/v2/del/repo/manifests/keep").fails(404, "MANIFEST_UNKNOWN");
    assert_eq!(reg.get("/v2/del/repo/tags/list").json()["tags"], json!([]));
    // A blob, from one repository only.
    let d = reg.push_blob("del/repo", b"blob to delete");
    reg.req("POST", &format!("/v2/del/other/blobs/uploads/?mount={d}&from=del/repo"), &[], b"");
    assert_eq!(reg.req("DELETE", &format!("/v2/del/repo/blobs/{d}"), &[], b"").status, 202);
    reg.get(&format!("/v2/del/repo/blobs/{d}")).fails(404, "BLOB_UNKNOWN");
    assert_eq!(reg.get(&format!("/v2/del/other/blobs/{d}")).body, b"blob to delete");
    reg.req("DELETE", &format!("/v2/del/repo/blobs/{d}"), &[], b"").fails(404, "BLOB_UNKNOWN");
}

#[test]
fn upload_resumes_after_a_restart() {
    let mut reg = Server::start();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let post = reg.req("POST", "/v2/resume/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    let r = reg.req("PATCH", &loc, &[("Content-Range", "0-1999999")], &data[..2_000_000]);
    assert_eq!(r.status, 202, "{r}");
    reg.restart(); // kill -9, start again on the same data dir and port
    let status = reg.get(&loc);
    assert_eq!((status.status, status.header("Range")), (204, Some("0-1999999")), "{status}");
    let r = reg.req("PATCH", &loc, &[("Content-Range", "2000000-2999999")], &data[2_000_000..]);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-2999999")), "{r}");
    let d = digest(&data);
    let put = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    assert!(reg.get(&format!("/v2/resume/blobs/{d}")).body == data);
    // Finished blobs and manifests survive a restart too.
    let (md, m) = reg.push_image("resume", "v1", b"layer");
    reg.restart();
    assert_eq!(reg.get("/v2/resume/manifests/v1").body, m);
    assert_eq!(reg.get(&format!("/v2/resume/manifests/{md}")).status, 200);
}

#[test]
fn slow_clients_time_out() {
    let reg = Server::start_with(&["--idle-timeout", "2s"]);
    let post = reg.req("POST", "/v2/slow/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    // A body that stops half way.
    let started = Instant::now();
    let mut s = TcpStream::connect(&reg.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(s, "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789").expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(10), "{waited:?}");
    assert!(raw.is_empty() || String::from_utf8_lossy(&raw).contains("BLOB_UPLOAD_INVALID"), "{:?}", raw);
    // What arrived is kept; the upload goes on.
    assert_eq!(reg.get(&loc).header("Range"), Some("0-9"));
    // A reader that never reads: given up after the idle time-out, not served for ever.
    let big: Vec<u8> = (0..32_000_000u32).map(|i| (i % 253) as u8).collect();
    let d = reg.push_blob("slow", &big);
    let mut s = TcpStream::connect(&reg.addr).expect("connect");
    write!(s, "GET /v2/slow/blobs/{d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
    thread::sleep(Duration::from_secs(6));
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(raw.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&raw[..raw.len().min(200)]));
    assert!(raw.len() < big.len(), "a stalled reader got the whole blob ({} bytes)", raw.len());
    // Headers that never end.
    let started = Instant::now();
    let mut s = TcpStream::connect(&reg.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    write!(s, "GET /v2/ HTTP/1.1\r\nHost: x\r\n").expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[test]
fn refuses_a_public_address_without_auth() {
    let dir = TempDir::new("wharf-e2e-wharf-registry-open");
    let mut cmd = Command::new(bin("wharf-registry"));
    cmd.args(["serve", "--addr", &format!("0.0.0.0:{}", free_port()), "--data-dir"]).arg(&dir.0);
    let out = run_cmd(cmd, Duration::from_secs(20));
    out.code_is(1).mentions(&["not a loopback address", "--open"]);
}

#[test]
fn gc_and_scrub() {
    let mut reg = Server::start();
    let (tagged, _) = reg.push_image("gc/repo", "v1", b"tagged layer");
    let config =
        reg.get("/v2/gc/repo/manifests/v1").json()["config"]["digest"].as_str().unwrap_or_default().to_string();
    let tagged_layer = digest(b"tagged layer");
    let loose = reg.push_blob("gc/repo", b"a blob no manifest names");
    let untagged_layer = reg.push_blob("gc/repo", b"untagged layer");
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let m = image_manifest(&config, cfg.len(), &untagged_layer, 14);
    let untagged = digest(&m);
    assert_eq!(reg.put_manifest("gc/repo", &untagged, OCI_MANIFEST, &m).status, 201);
    // An upload in progress.
    let post = reg.req("POST", "/v2/gc/repo/blobs/uploads/", &[], b"");
    let upload = post.header("Location").expect("Location").to_string();
    reg.req("PATCH", &upload, &[], b"partial");

    // The index is held by the server: gc says so.
    reg.tool(&["gc"]).fails().mentions(&["in use"]);
    reg.kill9();
    thread::sleep(Duration::from_millis(1100)); // grace 0s still spares what is from this very second
                                                // Within the grace period nothing goes.
    let out = reg.tool(&["gc"]);
    out.ok().mentions(&["deleted 0 untagged manifests, 0 blobs"]);
    let out = reg.tool(&["gc", "--grace", "0s", "--dry-run"]);
    out.ok().mentions(&["would delete", &format!("blob {loose}")]);
    assert!(reg.blob_file(&loose).exists(), "a dry run deleted");
    let out = reg.tool(&["gc", "--grace", "0s"]);
    out.ok().mentions(&[&format!("blob {loose}"), "1 blobs"]);
    assert!(!out.stdout.contains(&untagged_layer), "{out}");
    assert!(!reg.blob_file(&loose).exists());
    for kept in [&tagged, &config, &tagged_layer, &untagged, &untagged_layer] {
        assert!(reg.blob_file(kept).exists(), "{kept} was collected");
    }
    let out = reg.tool(&["gc", "--grace", "0s", "--delete-untagged"]);
    out.ok().mentions(&[&format!("manifest gc/repo@{untagged}"), &format!("blob {untagged_layer}")]);
    assert!(!reg.blob_file(&untagged_layer).exists() && !reg.blob_file(&untagged).exists());
    for kept in [&tagged, &config, &tagged_layer] {
        assert!(reg.blob_file(kept).exists(), "{kept} was collected");
    }
    reg.spawn();
    reg.get(&format!("/v2/gc/repo/blobs/{loose}")).fails(404, "BLOB_UNKNOWN");
    reg.get(&format!("/v2/gc/repo/manifests/{untagged}")).fails(404, "MANIFEST_UNKNOWN");
    assert_eq!(reg.get(&format!("/v2/gc/repo/blobs/{tagged_layer}")).body, b"tagged layer");
    // The upload in progress survived and can finish.
    assert_eq!(reg.get(&upload).header("Range"), Some("0-6"));
    let put = reg.req("PUT", &format!("{upload}?digest={}", digest(b"partial")), &[], b"");
    assert_eq!(put.status, 201, "{put}");

    // Scrub: clean, then a blob whose bytes rotted on disk.
    let out = reg.tool(&["scrub"]);
    out.ok().mentions(&["checked"]);
    let file = reg.blob_file(&tagged_layer);
    let mut bytes = fs::read(&file).expect("read blob");
    bytes[0] ^= 0xff;
    fs::write(&file, &bytes).expect("corrupt blob");
    // A reader never gets the whole of it: a short body, or (when the check fails before the
    // first bytes went out) no response at all.
    let raw = http_raw(&reg.addr, "GET", &format!("/v2/gc/repo/blobs/{tagged_layer}"), &[], b"");
    let whole = parse_response(&raw).is_some_and(|r| r.status == 200 && r.body.len() >= bytes.len());
    assert!(!whole, "a corrupted blob was served whole: {:?}", String::from_utf8_lossy(&raw));
    let out = reg.tool(&["scrub"]);
    out.code_is(1).mentions(&[&format!("corrupt {tagged_layer}")]);
    // The server holds the index: scrub checks the files and says it skipped the index.
    assert!(out.stderr.contains("not checking the index"), "{out}");
    // The same for a blob read in pieces (over 256 KiB, hashed on a thread of its own), its
    // last byte rotted: the last piece waits for the hash, and never goes out.
    let big: Vec<u8> = (0..3u32 << 18).map(|i| (i.wrapping_mul(7) % 251) as u8).collect();
    let big_digest = reg.push_blob("gc/repo", &big);
    let big_file = reg.blob_file(&big_digest);
    let mut rotted = fs::read(&big_file).expect("read blob");
    *rotted.last_mut().expect("bytes") ^= 0xff;
    fs::write(&big_file, &rotted).expect("corrupt blob");
    let raw = http_raw(&reg.addr, "GET", &format!("/v2/gc/repo/blobs/{big_digest}"), &[], b"");
    let whole = parse_response(&raw).is_some_and(|r| r.status == 200 && r.body.len() >= big.len());
    assert!(!whole, "a corrupted {}-byte blob was served whole ({} bytes came)", big.len(), raw.len());
    assert!(raw.len() < big.len(), "{} of {} bytes came", raw.len(), big.len());
    reg.kill9();
    fs::remove_file(&file).expect("remove blob");
    let out = reg.tool(&["scrub"]);
    out.code_is(1).mentions(&[&format!("missing {tagged_layer}")]);
}

/// A slow push through `push` while `gc` (the same server, or another on the same index)
/// collects every second: blobs first, the manifest seconds later. The blob nobody names goes
/// once past the grace period; what the manifest names stays.
pub(crate) fn online_gc_spares_a_slow_push(gc: &Server, push: &Server) {
    let loose = push.push_blob("ogc/repo", b"nobody names me");
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (c, l) = (push.push_blob("ogc/push", config), push.push_blob("ogc/push", b"slow layer"));
    thread::sleep(Duration::from_millis(2500));
    // The client checks the blobs are there (as docker push does), which the GC remembers:
    // past the grace period since their upload, they are still spared for the manifest.
    for d in [&c, &l] {
        assert_eq!(push.req("HEAD", &format!("/v2/ogc/push/blobs/{d}"), &[], b"").status, 200);
    }
    thread::sleep(Duration::from_millis(2500));
    let m = image_manifest(&c, config.len(), &l, 10);
    let r = push.put_manifest("ogc/push", "v1", OCI_MANIFEST, &m);
    assert_eq!(r.status, 201, "{r}\n{}", gc.log_text());
    let deadline = Instant::now() + Duration::from_secs(15);
    while push.get(&format!("/v2/ogc/repo/blobs/{loose}")).status != 404 {
        assert!(Instant::now() < deadline, "the online GC never took {loose}:\n{}", gc.log_text());
        thread::sleep(Duration::from_millis(200));
    }
    assert!(!gc.blob_file(&loose).exists());
    // What the manifest names stays, through more GC runs.
    thread::sleep(Duration::from_millis(4500));
    for d in [&c, &l] {
        assert_eq!(push.get(&format!("/v2/ogc/push/blobs/{d}")).status, 200, "{d}");
    }
    assert_eq!(gc.get("/v2/ogc/push/manifests/v1").body, m);
}

#[test]
fn online_gc_spares_a_push_in_progress() {
    let reg = Server::start_with(&["--gc-interval", "1s", "--gc-grace", "3s"]);
    online_gc_spares_a_slow_push(&reg, &reg);
    assert!(reg.log_text().contains("gc: deleted 0 untagged manifests, 1 blobs"), "{}", reg.log_text());
}

// ---------------------------------------------------------------------------------------------
// Authentication (Docker's registry token spec) and TLS

pub(crate) const ADMIN_PW: &str = "wharf-admin-pw";

pub(crate) fn auth_server(extra: &[&str]) -> Server {
    let mut args = vec!["--auth", "--admin-password", ADMIN_PW];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

fn b64url(data: &[u8]) -> String {
    crate::registry_auth::base64(data).trim_end_matches('=').replace('+', "-").replace('/', "_")
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", crate::registry_auth::base64(format!("{user}:{password}").as_bytes()))
}

/// An HS256 JWT of `claims` signed with `key` by openssl, as the registry would sign it.
fn sign_jwt(key: &str, claims: &Value) -> String {
    let input = format!("{}.{}", b64url(br#"{"alg":"HS256","typ":"JWT"}"#), b64url(claims.to_string().as_bytes()));
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt", &format!("key:{key}"), "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write to openssl");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success() && out.stdout.len() == 32, "openssl dgst: {out:?}");
    format!("{input}.{}", b64url(&out.stdout))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Server {
    fn token(&self, query: &str, authz: Option<&str>) -> Resp {
        let h: Vec<(&str, &str)> = authz.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        http(&self.addr, "GET", &format!("/token?{query}"), &h, b"")
    }

    /// A bearer `Authorization` value for `scope`, as admin.
    pub(crate) fn bearer(&self, scope: &str) -> String {
        let r = self.token(&format!("service=wharf-registry&scope={scope}"), Some(&basic("admin", ADMIN_PW)));
        assert_eq!(r.status, 200, "{r}");
        format!("Bearer {}", r.json()["token"].as_str().unwrap_or_default())
    }
}

#[test]
fn token_auth_by_hand() {
    let mut reg = auth_server(&[]);
    // Challenges: the base endpoint with no scope, a repository with what it needs.
    let r = reg.get("/v2/");
    r.fails(401, "UNAUTHORIZED");
    let challenge = format!("Bearer realm=\"http://{}/token\",service=\"wharf-registry\"", reg.addr);
    assert_eq!(r.header("WWW-Authenticate"), Some(challenge.as_str()), "{r}");
    let r = reg.get("/v2/a/b/tags/list");
    r.fails(401, "UNAUTHORIZED");
    assert_eq!(r.header("WWW-Authenticate"), Some(format!("{challenge},scope=\"repository:a/b:pull\"").as_str()));
    let r = reg.req("POST", "/v2/a/b/blobs/uploads/", &[], b"");
    r.fails(401, "UNAUTHORIZED");
    assert!(r.header("WWW-Authenticate").is_some_and(|c| c.ends_with("scope=\"repository:a/b:pull,push\"")), "{r}");
    reg.get("/v2/_catalog").fails(401, "UNAUTHORIZED");

    // The token endpoint: wrong password, unknown user and (anonymous pull off) nobody refused.
    let q = "service=wharf-registry&scope=repository:a/b:pull,push";
    reg.token(q, Some(&basic("admin", "wrong"))).fails(401, "UNAUTHORIZED");
    reg.token(q, Some(&basic("nobody", ADMIN_PW))).fails(401, "UNAUTHORIZED");
    reg.token(q, None).fails(401, "UNAUTHORIZED");
    reg.token("service=another&scope=repository:a/b:pull", Some(&basic("admin", ADMIN_PW))).fails(400, "DENIED");
    let t = reg.token(&format!("{q}&offline_token=true"), Some(&basic("admin", ADMIN_PW))).json();
    assert_eq!(t["token"], t["access_token"]);
    assert_eq!(t["expires_in"], 300);
    assert!(t["issued_at"].as_str().is_some_and(|s| s.ends_with('Z')), "{t}");
    let refresh = t["refresh_token"].as_str().unwrap_or_default().to_string();
    assert!(!refresh.is_empty(), "{t}");
    let ab = format!("Bearer {}", t["token"].as_str().unwrap_or_default());

    // A token for a/b pushes and pulls a/b, and nothing else.
    let data = b"authorized blob";
    let d = digest(data);
    let r = reg.req("POST", &format!("/v2/a/b/blobs/uploads/?digest={d}"), &[("Authorization", &ab)], data);
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(reg.req("GET", &format!("/v2/a/b/blobs/{d}"), &[("Authorization", &ab)], b"").body, data);
    let r = reg.req("GET", &format!("/v2/a/c/blobs/{d}"), &[("Authorization", &ab)], b"");
    r.fails(401, "UNAUTHORIZED");
    assert!(r.header("WWW-Authenticate").is_some_and(|c| c.contains("error=\"insufficient_scope\"")), "{r}");
    reg.req("GET", "/v2/_catalog", &[("Authorization", &ab)], b"").fails(401, "UNAUTHORIZED");
    // pull,push does not delete; a token asked for delete does.
    reg.req("DELETE", &format!("/v2/a/b/blobs/{d}"), &[("Authorization", &ab)], b"").fails(401, "UNAUTHORIZED");
    let pull_only = reg.bearer("repository:a/b:pull");
    reg.req("POST", "/v2/a/b/blobs/uploads/", &[("Authorization", &pull_only)], b"").fails(401, "UNAUTHORIZED");
    // A cross-repository mount needs pull on the source: without it, a plain upload starts.
    let push_c = reg.bearer("repository:a/c:pull,push");
    let r = reg.req("POST", &format!("/v2/a/c/blobs/uploads/?mount={d}&from=a/b"), &[("Authorization", &push_c)], b"");
    assert_eq!(r.status, 202, "{r}");
    let both = reg.bearer("repository:a/c:pull,push%20repository:a/b:pull");
    let r = reg.req("POST", &format!("/v2/a/c/blobs/uploads/?mount={d}&from=a/b"), &[("Authorization", &both)], b"");
    assert_eq!(r.status, 201, "{r}");

    // Basic credentials straight on /v2/; the catalog is the admin's.
    reg.authz = Some(basic("admin", ADMIN_PW));
    assert_eq!(reg.get("/v2/").status, 200);
    assert_eq!(reg.get("/v2/_catalog").json()["repositories"], json!(["a/b", "a/c"]));
    reg.authz = Some(basic("admin", "wrong"));
    reg.get("/v2/").fails(401, "UNAUTHORIZED");
    reg.authz = None;
    let del = reg.bearer("repository:a/b:delete");
    assert_eq!(reg.req("DELETE", &format!("/v2/a/b/blobs/{d}"), &[("Authorization", &del)], b"").status, 202);

    // Tokens made outside: signed with the registry's key they pass (so the forging below is
    // right), expired, for another audience, with another key or with a changed claim they fail.
    let key = fs::read_to_string(reg.data.join("token.key")).expect("token.key");
    let key = key.trim();
    let mode =
        fs::metadata(reg.data.join("token.key")).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
    assert_eq!(mode.ok().map(|m| m & 0o777), Some(0o600));
    let t = now_secs();
    let claims = |exp: u64, aud: &str, name: &str| {
        json!({"iss": "wharf-registry", "sub": "admin", "aud": aud, "exp": exp, "nbf": t - 10, "iat": t - 10,
               "jti": "x", "access": [{"type": "repository", "name": name, "actions": ["pull"]}],
               "wharf_use": "access"})
    };
    let path = format!("/v2/a/c/blobs/{d}");
    let with = |token: &str| reg.req("GET", &path, &[("Authorization", &format!("Bearer {token}"))], b"");
    assert_eq!(with(&sign_jwt(key, &claims(t + 300, "wharf-registry", "a/c"))).status, 200);
    with(&sign_jwt(key, &claims(t - 3600, "wharf-registry", "a/c"))).fails(401, "UNAUTHORIZED");
    with(&sign_jwt(key, &claims(t + 300, "elsewhere", "a/c"))).fails(401, "UNAUTHORIZED");
    with(&sign_jwt("not-the-key", &claims(t + 300, "wharf-registry", "a/c"))).fails(401, "UNAUTHORIZED");
    let good_b = sign_jwt(key, &claims(t + 300, "wharf-registry", "a/b"));
    let parts: Vec<&str> = good_b.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims(t + 300, "wharf-registry", "a/c").to_string().as_bytes()),
        parts[2]
    );
    with(&forged).fails(401, "UNAUTHORIZED");
    // The refresh token is no access token.
    with(&refresh).fails(401, "UNAUTHORIZED");

    // OAuth2 POST: the refresh grant and the password grant.
    let form = |body: &str| {
        http(&reg.addr, "POST", "/token", &[("Content-Type", "application/x-www-form-urlencoded")], body.as_bytes())
    };
    let r = form(&format!(
        "grant_type=refresh_token&service=wharf-registry&client_id=test&scope=repository:a/c:pull&refresh_token={refresh}"
    ));
    assert_eq!(r.status, 200, "{r}");
    let access = r.json()["access_token"].as_str().unwrap_or_default().to_string();
    assert_eq!(with(&access).status, 200);
    form("grant_type=refresh_token&service=wharf-registry&refresh_token=x.y.z").fails(401, "UNAUTHORIZED");
    form("grant_type=password&username=admin&password=wrong&scope=repository:a/c:pull").fails(401, "UNAUTHORIZED");
    let r = form(&format!(
        "grant_type=password&username=admin&password={ADMIN_PW}&scope=repository:a/c:pull&access_type=offline"
    ));
    assert_eq!(r.status, 200, "{r}");
    assert!(r.json()["refresh_token"].is_string(), "{r}");
    assert_eq!(with(r.json()["access_token"].as_str().unwrap_or_default()).status, 200);
}

#[test]
fn anonymous_pull_is_a_switch() {
    let mut reg = auth_server(&["--anonymous-pull"]);
    reg.authz = Some(basic("admin", ADMIN_PW));
    let (m, _) = reg.push_image("public/img", "v1", b"public layer");
    reg.authz = None;
    // No credentials at all: a token that may only pull.
    let r = reg.token("service=wharf-registry&scope=repository:public/img:pull,push", None);
    assert_eq!(r.status, 200, "{r}");
    assert!(r.json()["refresh_token"].is_null());
    let anon = format!("Bearer {}", r.json()["token"].as_str().unwrap_or_default());
    let r = reg.req("GET", "/v2/public/img/manifests/v1", &[("Authorization", &anon)], b"");
    assert_eq!((r.status, r.header("Docker-Content-Digest")), (200, Some(m.as_str())), "{r}");
    reg.req("POST", "/v2/public/img/blobs/uploads/", &[("Authorization", &anon)], b"").fails(401, "UNAUTHORIZED");
    // Without a token even a pull gets the challenge first, as clients expect.
    reg.get("/v2/public/img/manifests/v1").fails(401, "UNAUTHORIZED");
    // And skopeo reads it with no credentials.
    let out = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{}", reg.image("public/img:v1"))]);
    out.ok();

    // Off (the default), anonymous gets no token and skopeo needs credentials.
    let closed = auth_server(&[]);
    closed.token("service=wharf-registry&scope=repository:public/img:pull", None).fails(401, "UNAUTHORIZED");
}

#[test]
fn skopeo_with_creds() {
    let fixtures = registry();
    let reg = auth_server(&[]);
    let from = format!("docker://{}", fixtures.image("library/busybox:latest"));
    let to = format!("docker://{}", reg.image("sk/busybox:1"));
    let copy = ["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false"];
    let mut args = copy.to_vec();
    args.extend([from.as_str(), to.as_str()]);
    skopeo(&args).fails();
    let wrong = "admin:wrong".to_string();
    let right = format!("admin:{ADMIN_PW}");
    let mut args = copy.to_vec();
    args.extend(["--dest-creds", &wrong, from.as_str(), to.as_str()]);
    skopeo(&args).fails();
    let mut args = copy.to_vec();
    args.extend(["--dest-creds", &right, from.as_str(), to.as_str()]);
    skopeo(&args).ok();
    skopeo(&["inspect", "--raw", "--tls-verify=false", &to]).fails();
    let theirs = skopeo(&["inspect", "--raw", "--tls-verify=false", &from]);
    let ours = skopeo(&["inspect", "--raw", "--tls-verify=false", "--creds", &right, &to]);
    assert_eq!(ours.ok().stdout, theirs.ok().stdout);
}

#[test]
fn docker_login_push_pull_with_token_auth() {
    let reg = auth_server(&[]);
    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("private/busybox:1");
    d.docker(&["tag", &src, &target]).ok();
    d.docker(&["push", &target]).fails().mentions(&["unauthorized"]);
    d.docker(&["login", "-u", "admin", "-p", "wrong", &reg.addr]).fails();
    d.docker(&["login", "-u", "admin", "-p", ADMIN_PW, &reg.addr]).ok().mentions(&["Login Succeeded"]);
    d.docker(&["push", &target]).ok().mentions(&["1: digest: sha256:"]);
    d.docker(&["rmi", &target]).ok();
    d.docker(&["pull", &target]).ok();
    let out = d.docker(&["run", "--rm", &target, "echo", "pulled with a token"]);
    assert_eq!(out.ok().trimmed(), "pulled with a token", "{out}");
    // Another daemon and client, with no credentials: refused (anonymous pull is off).
    let fresh = Daemon::start();
    fresh.docker(&["pull", &target]).fails().mentions(&["unauthorized"]);
    let log = reg.log_text();
    assert!(log.contains("GET /token"), "{log}");
}

/// An address of a test's own on `lo` (`198.18.x.y/32`), removed on drop: not a loopback
/// address, so wharfd verifies TLS against `certs.d` instead of treating it as insecure.
struct LoAddr(String);

impl LoAddr {
    fn add(port: u16) -> LoAddr {
        let ip = format!("198.18.{}.{}", port >> 8, port & 0xff);
        let mut cmd = Command::new("ip");
        cmd.args(["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        let out = run_cmd(cmd, Duration::from_secs(10));
        assert!(out.success(), "ip addr add {ip}/32 dev lo:\n{out}");
        LoAddr(ip)
    }
}

impl Drop for LoAddr {
    fn drop(&mut self) {
        let mut cmd = Command::new("ip");
        cmd.args(["addr", "del", &format!("{}/32", self.0), "dev", "lo"]);
        let _ = run_cmd(cmd, Duration::from_secs(10));
    }
}

#[test]
fn tls_login_push_pull_through_wharfd() {
    use crate::harness::{openssl_ca, openssl_signed, CertsD, CERTS_D};
    let port = free_port();
    let ip = LoAddr::add(port);
    let addr = format!("{}:{port}", ip.0);
    let pki = TempDir::new("wharf-e2e-wharf-registry-pki");
    openssl_ca(&pki.0, "wharf-e2e-registry-ca");
    let san =
        format!("subjectAltName=IP:{},IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n", ip.0);
    openssl_signed(&pki.0, "server", &ip.0, &san);
    let (cert, key) = (pki.0.join("server.crt"), pki.0.join("server.key"));
    let (cert, key) = (cert.to_string_lossy().to_string(), key.to_string_lossy().to_string());

    // Not a loopback address: without auth it refuses, with auth (and TLS) it serves.
    let mut cmd = Command::new(bin("wharf-registry"));
    cmd.args(["serve", "--addr", &addr, "--data-dir"]).arg(pki.0.join("refused"));
    run_cmd(cmd, Duration::from_secs(20)).code_is(1).mentions(&["not a loopback address"]);
    let reg =
        Server::start_at(&addr, &["--auth", "--admin-password", ADMIN_PW, "--tls-cert", &cert, "--tls-key", &key]);

    let d = Daemon::start();
    let src = d.pull("library/busybox:latest");
    let target = reg.image("tls/busybox:1");
    d.docker(&["tag", &src, &target]).ok();
    // The CA is not trusted yet: a certificate error naming the registry.
    d.docker(&["login", "-u", "admin", "-p", ADMIN_PW, &addr]).fails().mentions(&["certificate"]);
    let dir = Path::new(CERTS_D).join(&addr);
    let _certs = CertsD(dir.clone());
    fs::create_dir_all(&dir).expect("create certs.d dir");
    fs::copy(pki.0.join("ca.crt"), dir.join("ca.crt")).expect("install ca.crt");
    // A daemon keeps a host's TLS settings once read: a fresh one sees the CA.
    let d = Daemon::start();
    d.pull("library/busybox:latest");
    d.docker(&["tag", &src, &target]).ok();
    d.docker(&["login", "-u", "admin", "-p", ADMIN_PW, &addr]).ok().mentions(&["Login Succeeded"]);
    d.docker(&["push", &target]).ok();
    d.docker(&["rmi", &target]).ok();
    d.docker(&["pull", &target]).ok();
    let out = d.docker(&["run", "--rm", &target, "echo", "over wharf-registry tls"]);
    assert_eq!(out.ok().trimmed(), "over wharf-registry tls", "{out}");
    // The realm the clients were sent to is https.
    let log = reg.log_text();
    assert!(log.contains("(https, token auth)") && log.contains("GET /token"), "{log}");
    // skopeo with the CA as its cert dir.
    let ca_dir = pki.0.join("ca-only");
    fs::create_dir_all(&ca_dir).expect("ca dir");
    fs::copy(pki.0.join("ca.crt"), ca_dir.join("ca.crt")).expect("copy ca");
    let ca_dir = ca_dir.to_string_lossy().to_string();
    let creds = format!("admin:{ADMIN_PW}");
    skopeo(&["inspect", "--cert-dir", &ca_dir, "--creds", &creds, &format!("docker://{target}")]).ok();
}
