//! wharf-registry scaled out: three replicas over one S3 bucket (a private SeaweedFS) and one
//! PostgreSQL index (a private cluster), each with a data dir of its own, behind a private
//! haproxy (Debian's) that deals requests out round-robin. A push by hand goes through the
//! load balancer in chunks that land on different replicas, one replica is killed with
//! `kill -9` in the middle of a chunk and the client's retry through the load balancer
//! finishes it; skopeo does the same with a multi-layer image; the images pull back byte for
//! byte; GC runs on one replica at a time; and a private dockerd logs in with token auth,
//! pushes and pulls through the load balancer.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::dockerd::Dockerd;
use crate::harness::{bin, free_port, registry, run_cmd, Output, TempDir};
use crate::registry_pg::{HeldGcLock, Postgres};
use crate::registry_s3::Weed;
use crate::registry_server::{digest, http, parse_response, skopeo, Resp, Server, ADMIN_PW, OCI_MANIFEST};

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {addr}"))
}

/// A private haproxy in front of `backends`: its own config and pid file in its temp dir, a
/// free loopback port, round-robin. No health checks: a request that finds a dead replica's
/// port closed is redispatched to another (`retries`, `option redispatch 1`), and a request
/// that was in flight on it fails to the client, whose retry goes to the others. The server
/// side closes after each response, so a replica holds a connection from haproxy only while it
/// serves a request (what `replica_serving` looks for). When a replica dies in the middle of
/// a request, haproxy closes the client's connection (`errorfile 502 /dev/null`) rather than
/// answer 502, as the replica's own death would have: registry clients (skopeo 1.9's
/// `--retry-times` among them) retry a reset connection, and take a 5xx as the registry's
/// final word.
struct Haproxy {
    child: Option<Child>,
    dir: TempDir,
    addr: String,
}

impl Haproxy {
    fn start(backends: &[&str]) -> Haproxy {
        let dir = TempDir::new("wharf-e2e-haproxy");
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cfg = format!(
            "global\n    maxconn 256\n    pidfile {pid}\n\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n    \
             retries 2\n    option redispatch 1\n    option http-server-close\n    http-reuse never\n    \
             errorfile 502 /dev/null\n\n\
             frontend registry\n    bind {addr}\n    default_backend replicas\n\n\
             backend replicas\n    balance roundrobin\n",
            pid = dir.0.join("haproxy.pid").display(),
        );
        for (i, b) in backends.iter().enumerate() {
            cfg.push_str(&format!("    server r{i} {b}\n"));
        }
        let config = dir.0.join("haproxy.cfg");
        fs::write(&config, cfg).expect("write haproxy.cfg");
        let mut check = Command::new("haproxy");
        check.arg("-c").arg("-f").arg(&config);
        let check = run_cmd(check, Duration::from_secs(30));
        assert!(check.success(), "haproxy (Debian's haproxy package) refused its config or is missing: {check}");
        let log = fs::File::create(dir.0.join("haproxy.log")).expect("haproxy log");
        // -W -db: master and worker in the foreground, the master the test's child (it writes
        // the pid file); it dies with the test, and takes its worker with it.
        let mut cmd = Command::new("haproxy");
        cmd.args(["-W", "-db", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn haproxy");
        let mut h = Haproxy { child: Some(child), dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&h.addr).is_err() || !h.dir.0.join("haproxy.pid").exists() {
            if let Some(Ok(Some(status))) = h.child.as_mut().map(|c| c.try_wait()) {
                panic!("haproxy exited ({status}): {}", h.log_text());
            }
            assert!(Instant::now() < deadline, "haproxy did not listen: {}", h.log_text());
            thread::sleep(Duration::from_millis(50));
        }
        h
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.dir.0.join("haproxy.log")).unwrap_or_default()
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        http(&self.addr, method, path, headers, body)
    }

    fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        // SIGTERM, not SIGKILL: the master stops its worker and waits for it.
        let pid = fs::read_to_string(self.dir.0.join("haproxy.pid")).ok().and_then(|p| p.trim().parse::<i32>().ok());
        match pid {
            // SAFETY: kill(2) on the haproxy master this test started.
            Some(pid) if pid == c.id() as i32 => unsafe {
                libc::kill(pid, libc::SIGTERM);
            },
            _ => {
                let _ = c.kill();
            }
        }
        let _ = c.wait();
    }
}

/// Three replicas over one bucket prefix and one database, and haproxy in front.
struct Cluster {
    lb: Haproxy,
    replicas: Vec<Server>,
    url: String,
    config: PathBuf,
    // Fields drop in this order: haproxy and the replicas before the database and the bucket.
    _config_dir: TempDir,
    pg: Postgres,
    weed: Weed,
}

impl Cluster {
    fn start(prefix: &str) -> Cluster {
        Cluster::start_with(prefix, &[])
    }

    /// With `extra` flags on every replica.
    fn start_with(prefix: &str, extra: &[&str]) -> Cluster {
        let weed = Weed::start();
        let pg = Postgres::start();
        let config_dir = TempDir::new("wharf-e2e-scale-config");
        let config = weed.registry_config(
            &config_dir.0,
            prefix,
            Some((crate::registry_s3::ACCESS_KEY, crate::registry_s3::SECRET_KEY)),
        );
        let url = pg.url();
        let mut args = vec!["--config", config.to_str().expect("utf-8 path"), "--database-url", &url];
        args.extend_from_slice(extra);
        // Each with a data dir of its own: nothing of the registry is shared but the bucket
        // and the database.
        let replicas: Vec<Server> = (0..3).map(|_| Server::start_with(&args)).collect();
        let addrs: Vec<&str> = replicas.iter().map(|r| r.addr.as_str()).collect();
        let lb = Haproxy::start(&addrs);
        Cluster { lb, replicas, url, config, _config_dir: config_dir, pg, weed }
    }

    /// `wharf-registry gc` as run on replica `i`'s machine: its data dir, config and database.
    fn gc_cmd(&self, i: usize, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("wharf-registry"));
        cmd.arg("gc")
            .arg("--data-dir")
            .arg(&self.replicas[i].data)
            .arg("--config")
            .arg(&self.config)
            .args(["--database-url", &self.url])
            .args(args);
        cmd
    }

    fn gc(&self, i: usize, args: &[&str]) -> Output {
        run_cmd(self.gc_cmd(i, args), Duration::from_secs(60))
    }

    /// How many requests replica `i` logged whose line contains `needle`.
    fn served(&self, i: usize, needle: &str) -> usize {
        self.replicas[i].log_text().lines().filter(|l| l.contains(needle)).count()
    }

    /// A replica holding a connection from haproxy three polls in a row (20 ms apart): one in
    /// the middle of a request (a blob's body), not one answering a quick one.
    fn replica_serving(&self, context: &dyn Fn() -> String) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ports: Vec<u16> = self.replicas.iter().map(|r| port_of(&r.addr)).collect();
        let mut busy_for = vec![0; ports.len()];
        loop {
            for (i, port) in ports.iter().enumerate() {
                busy_for[i] = if established_to(*port) > 0 { busy_for[i] + 1 } else { 0 };
                if busy_for[i] >= 3 {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no replica served a request for long: {}", context());
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Established TCP connections whose local port is `port` (accepted by its listener), from
/// /proc/net/tcp.
fn established_to(port: u16) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(1).and_then(|a| a.rsplit(':').next()).and_then(|p| u16::from_str_radix(p, 16).ok());
            local == Some(port) && f.get(3) == Some(&"01")
        })
        .count()
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32).map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8).collect()
}

fn patch(lb: &Haproxy, loc: &str, from: usize, chunk: &[u8]) -> Resp {
    let range = format!("{from}-{}", from + chunk.len() - 1);
    lb.req("PATCH", loc, &[("Content-Range", &range), ("Content-Type", "application/octet-stream")], chunk)
}

/// Where an upload stands, asked through the load balancer: the next offset.
fn offset(lb: &Haproxy, loc: &str) -> usize {
    let r = lb.req("GET", loc, &[], b"");
    assert_eq!(r.status, 204, "upload status: {r}");
    let end = r.header("Range").and_then(|range| range.rsplit('-').next()).and_then(|e| e.parse::<usize>().ok());
    end.unwrap_or_else(|| panic!("no Range in the upload status: {r}")) + 1
}

/// A push through the load balancer whose chunks land on every replica; a second layer's
/// upload loses its replica to `kill -9` in the middle of a chunk, and the client, as a
/// registry client retrying a failed request does, asks through the load balancer where the
/// upload stands and sends the rest. The image pulls back byte for byte through the load
/// balancer (by hand and with skopeo), and GC runs on one replica at a time.
#[test]
fn scale_three_replicas_behind_haproxy_survive_a_kill_mid_push() {
    let mut cl = Cluster::start("scale");
    let lb_v2 = cl.lb.req("GET", "/v2/", &[], b"");
    assert_eq!(lb_v2.status, 200, "{lb_v2}\n{}", cl.lb.log_text());
    let repo = "scale/app";

    // Layer one: POST and six chunked PATCHes, each through the load balancer.
    let one = pattern(6 * 1_000_000, 1);
    let post = cl.lb.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(post.status, 202, "{post}");
    let loc = post.header("Location").expect("Location").to_string();
    let id = loc.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
    for (i, chunk) in one.chunks(1_000_000).enumerate() {
        let r = patch(&cl.lb, &loc, i * 1_000_000, chunk);
        assert_eq!(
            (r.status, r.header("Range")),
            (202, Some(format!("0-{}", (i + 1) * 1_000_000 - 1).as_str())),
            "{r}"
        );
    }
    // Every replica, asked directly, says where the upload stands, though each wrote only
    // some of its chunks.
    for r in &cl.replicas {
        let status = r.get(&loc);
        assert_eq!((status.status, status.header("Range")), (204, Some("0-5999999")), "{}: {status}", r.addr);
    }
    let one_digest = digest(&one);
    let put = cl.lb.req("PUT", &format!("{loc}?digest={one_digest}"), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    // Round-robin: the upload's requests were served by every replica, so each continued
    // an upload another had started.
    let patches: Vec<usize> = (0..3).map(|i| cl.served(i, &format!("PATCH /v2/{repo}/blobs/uploads/{id}"))).collect();
    assert!(patches.iter().all(|&n| n >= 1), "PATCHes per replica: {patches:?}");
    assert_eq!(patches.iter().sum::<usize>(), 6, "{patches:?}");

    // Layer two: the first chunk goes in, the second streams into a replica that dies.
    let two = pattern(5_000_000, 2);
    let post = cl.lb.req("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"");
    assert_eq!(post.status, 202, "{post}");
    let loc = post.header("Location").expect("Location").to_string();
    assert_eq!(patch(&cl.lb, &loc, 0, &two[..1_000_000]).status, 202);
    let mut s = TcpStream::connect(&cl.lb.addr).expect("connect to haproxy");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("read timeout");
    let head = format!(
        "PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Range: 1000000-4999999\r\nContent-Length: 4000000\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        cl.lb.addr
    );
    s.write_all(head.as_bytes()).expect("write PATCH head");
    s.write_all(&two[1_000_000..3_000_000]).expect("write half the chunk");
    let victim = cl.replica_serving(&|| "the PATCH never reached a replica".to_string());
    cl.replicas[victim].kill9();
    // The rest of the body may or may not get in; the client learns the request failed.
    let _ = s.write_all(&two[3_000_000..]);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    drop(s);
    if let Some(r) = parse_response(&raw) {
        assert!(r.status >= 500, "a PATCH whose replica died mid-body did not fail: {r}");
    }

    // The client's retry: ask where the upload stands, send the rest, close, all through
    // the load balancer (which sends nothing more to the dead replica's closed port).
    let at = offset(&cl.lb, &loc);
    assert!((1_000_000..=3_000_000).contains(&at), "the upload stands at {at}");
    let r = patch(&cl.lb, &loc, at, &two[at..]);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-4999999")), "{r}");
    let two_digest = digest(&two);
    let put = cl.lb.req("PUT", &format!("{loc}?digest={two_digest}"), &[], b"");
    assert_eq!(put.status, 201, "{put}");

    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = digest(config);
    let r = cl.lb.req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={cd}"), &[], config);
    assert_eq!(r.status, 201, "{r}");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": one_digest, "size": one.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": two_digest, "size": two.len()},
        ],
    })
    .to_string()
    .into_bytes();
    let r = cl.lb.req("PUT", &format!("/v2/{repo}/manifests/v1"), &[("Content-Type", OCI_MANIFEST)], &manifest);
    assert_eq!(r.status, 201, "{r}");

    // Pulled back through the load balancer, by every live replica in turn.
    for _ in 0..3 {
        let m = cl.lb.req("GET", &format!("/v2/{repo}/manifests/v1"), &[("Accept", OCI_MANIFEST)], b"");
        assert_eq!((m.status, m.body.as_slice()), (200, manifest.as_slice()));
        assert!(cl.lb.req("GET", &format!("/v2/{repo}/blobs/{one_digest}"), &[], b"").body == one);
        assert!(cl.lb.req("GET", &format!("/v2/{repo}/blobs/{two_digest}"), &[], b"").body == two);
    }
    // And with skopeo, into an OCI layout whose blobs are the pushed bytes (skopeo would
    // compress uncompressed layers for the layout without --preserve-digests).
    let out = TempDir::new("wharf-e2e-scale-pull");
    let layout = out.0.join("app");
    skopeo(&[
        "copy",
        "--quiet",
        "--retry-times",
        "3",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{}", cl.lb.image(&format!("{repo}:v1"))),
        &format!("oci:{}:v1", layout.display()),
    ])
    .ok();
    for (d, data) in [(&one_digest, &one), (&two_digest, &two)] {
        let file = layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
        let pulled = fs::read(&file).unwrap_or_else(|e| {
            let names: Vec<_> = fs::read_dir(layout.join("blobs/sha256"))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name())
                .collect();
            panic!("{}: {e}; the layout holds {names:?}", file.display())
        });
        assert!(pulled == **data, "{d}");
    }
    // No upload is left in the bucket, none in the index.
    assert_eq!(cl.weed.files("scale/uploads"), vec![]);
    assert_eq!(cl.pg.psql("SELECT count(*) FROM uploads"), "0");

    // GC: while one collection holds the database's lock, another replica's is refused; then
    // the three replicas' collections race and exactly one of them deletes the loose blob.
    let live: Vec<usize> = (0..3).filter(|&i| i != victim).collect();
    let loose = pattern(1000, 3);
    let ld = digest(&loose);
    assert_eq!(cl.lb.req("POST", &format!("/v2/loose/blob/blobs/uploads/?digest={ld}"), &[], &loose).status, 201);
    assert_eq!(cl.lb.req("DELETE", &format!("/v2/loose/blob/blobs/{ld}"), &[], b"").status, 202);
    thread::sleep(Duration::from_millis(1100)); // grace 0s still spares what is from this very second
    {
        let _held = HeldGcLock::take(&cl.pg);
        cl.gc(live[0], &["--grace", "0s"]).fails().mentions(&["another garbage collection is running"]);
    }
    let racing: Vec<Child> = (0..3)
        .map(|i| {
            let mut cmd = cl.gc_cmd(i, &["--grace", "0s"]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            cmd.spawn().expect("spawn gc")
        })
        .collect();
    let mut deleted = 0;
    for c in racing {
        let out = c.wait_with_output().expect("gc output");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            deleted += text.matches(&format!("blob {ld}")).count();
        } else {
            assert!(text.contains("another garbage collection is running"), "gc failed: {text}");
        }
    }
    assert_eq!(deleted, 1, "the loose blob is deleted once");
    let mut cmd = Command::new(bin("wharf-registry"));
    cmd.arg("scrub").arg("--data-dir").arg(&cl.replicas[live[1]].data).arg("--config").arg(&cl.config);
    cmd.args(["--database-url", &cl.url]);
    run_cmd(cmd, Duration::from_secs(60)).ok().mentions(&["checked"]);
    // The image is whole after GC, through the load balancer.
    for d in [&one_digest, &two_digest, &cd] {
        assert_eq!(cl.lb.req("HEAD", &format!("/v2/{repo}/blobs/{d}"), &[], b"").status, 200, "{d}");
    }
    assert_eq!(cl.lb.req("HEAD", &format!("/v2/loose/blob/blobs/{ld}"), &[], b"").status, 404);
    // Nothing the dead replica held stays locked.
    assert_eq!(cl.pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), "0");
    // A push of a fixture image with skopeo, through the load balancer, reads back the same.
    let fixtures = registry();
    let (from, to) = (
        format!("docker://{}", fixtures.image("test/layers:latest")),
        format!("docker://{}", cl.lb.image("copied/layers:latest")),
    );
    skopeo(&["copy", "--quiet", "--retry-times", "3", "--src-tls-verify=false", "--dest-tls-verify=false", &from, &to])
        .ok();
    let theirs = skopeo(&["inspect", "--raw", "--tls-verify=false", &from]);
    let ours = skopeo(&["inspect", "--raw", "--tls-verify=false", &to]);
    assert_eq!(ours.ok().stdout, theirs.ok().stdout);
}

/// Token auth across replicas that share nothing but the bucket and the database: the signing
/// key is the database's, so a token one replica issued is good on the others; and a real
/// dockerd (Debian's, private) logs in, pushes and pulls through haproxy, its token requests
/// and registry requests dealt out round-robin.
#[test]
fn scale_docker_login_push_pull_through_haproxy_with_token_auth() {
    let cl = Cluster::start_with("auth", &["--auth", "--admin-password", ADMIN_PW]);
    let made: Vec<bool> = cl.replicas.iter().map(|r| r.log_text().contains("created user admin")).collect();
    assert_eq!(made.iter().filter(|&&m| m).count(), 1, "one replica makes the admin user: {made:?}");
    // By hand: a token from each replica works on every replica.
    for issuer in &cl.replicas {
        let token = issuer.bearer("repository:auth/hand:pull,push");
        for r in &cl.replicas {
            let got = r.req("GET", "/v2/auth/hand/tags/list", &[("Authorization", &token)], b"");
            assert_ne!(got.status, 401, "a token from {} refused by {}: {got}", issuer.addr, r.addr);
        }
    }
    let keys: Vec<bool> = cl.replicas.iter().map(|r| r.data.join("token.key").exists()).collect();
    assert_eq!(keys, vec![false; 3], "the key is in the database, not in a data dir");

    let fixtures = registry();
    let docker = Dockerd::start(&[&fixtures.addr, &cl.lb.addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    let src = fixtures.image("library/busybox:latest");
    docker.cli(&["pull", &src]).ok();
    let target = cl.lb.image("private/busybox:1");
    docker.cli(&["tag", &src, &target]).ok();
    docker.cli(&["push", &target]).fails().mentions(&["unauthorized"]);
    docker.cli(&["login", "-u", "admin", "-p", "wrong", &cl.lb.addr]).fails();
    docker.cli(&["login", "-u", "admin", "-p", ADMIN_PW, &cl.lb.addr]).ok().mentions(&["Login Succeeded"]);
    let pushed = docker.cli(&["push", &target]);
    pushed.ok().mentions(&["1: digest: sha256:"]);
    let pushed_digest = pushed
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {pushed}"))
        .to_string();
    docker.cli(&["rmi", &target, &src]).ok();
    docker.cli(&["pull", &target]).ok().mentions(&[&pushed_digest]);
    // Every replica served part of it, with tokens some other replica may have issued.
    let served: Vec<usize> = (0..3).map(|i| cl.served(i, " /v2/private/busybox/")).collect();
    assert!(served.iter().all(|&n| n > 0), "requests per replica: {served:?}");
    let m = cl.lb.req("GET", "/v2/private/busybox/manifests/1", &[], b"");
    assert_eq!(m.status, 401, "anonymous pull is off: {m}");
    docker.cli(&["rmi", &target]).ok();
}

/// An OCI layout in `dir` holding one image, tag `v1`, of `layers` uncompressed layers (not
/// real tars: no client here unpacks them); returns the manifest's bytes and the layers.
fn write_layout(dir: &std::path::Path, layers: &[Vec<u8>]) -> (Vec<u8>, Vec<String>) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("layout blobs dir");
    let put = |data: &[u8]| -> String {
        let d = digest(data);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), data).expect("write layout blob");
        d
    };
    let digests: Vec<String> = layers.iter().map(|l| put(l)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": digests},
    })
    .to_string();
    let cd = put(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": digests.iter().zip(layers).map(|(d, l)| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len(),
        })).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let md = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("write oci-layout");
    (manifest, digests)
}

/// skopeo pushes a multi-layer image through haproxy; a replica dies (`kill -9`) while it
/// serves one of the push's requests, and the client's retry through the load balancer
/// finishes the push: skopeo's own (`--retry-times`) when the broken connection shows as a
/// reset or an EOF, else, as skopeo 1.9's retry takes a broken pipe (the connection closed
/// while it still wrote the body) as final, the copy run once more, as a user or CI script
/// would. The image pulls back byte for byte.
#[test]
fn scale_skopeo_push_retries_through_haproxy_after_a_kill() {
    let mut cl = Cluster::start("skopeo");
    let tmp = TempDir::new("wharf-e2e-scale-skopeo");
    let layers: Vec<Vec<u8>> = (0..4).map(|i| pattern(16_000_000, 10 + i)).collect();
    let src = tmp.0.join("src");
    let (manifest, digests) = write_layout(&src, &layers);
    let dest = format!("docker://{}", cl.lb.image("pushed/big:v1"));
    let copy = |attempt: usize| {
        let mut push = Command::new("skopeo");
        push.args(["copy", "--retry-times", "5", "--preserve-digests", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", src.display()))
            .arg(&dest)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(tmp.0.join(format!("skopeo-{attempt}.log"))).expect("skopeo log"));
        push.spawn().expect("spawn skopeo")
    };
    let log = |attempt: usize| fs::read_to_string(tmp.0.join(format!("skopeo-{attempt}.log"))).unwrap_or_default();
    let mut child = copy(0);
    // A replica that has been serving one request for a while is in the middle of a blob.
    let victim = cl.replica_serving(&|| format!("skopeo's log:\n{}", log(0)));
    cl.replicas[victim].kill9();
    let mut attempt = 0;
    loop {
        let status = child.wait().expect("wait for skopeo");
        if status.success() {
            break;
        }
        assert!(attempt < 2, "skopeo copy failed {} times:\n{}\n{}", attempt + 1, log(attempt), cl.lb.log_text());
        attempt += 1;
        child = copy(attempt);
    }
    let retried = (0..=attempt).any(|a| log(a).to_lowercase().contains("retrying"));
    assert!(attempt > 0 || retried, "the kill did not break skopeo's push:\n{}", log(0));

    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert!(raw.ok().stdout.as_bytes() == manifest.as_slice(), "the manifest is stored byte for byte");
    let back = tmp.0.join("back");
    skopeo(&[
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:v1", back.display()),
    ])
    .ok();
    for (d, data) in digests.iter().zip(&layers) {
        let pulled = fs::read(back.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).expect("pulled layer");
        assert!(pulled == *data, "{d}");
    }
    // skopeo's retry started its uploads afresh: the one the dead replica was serving (and
    // any others the failed attempt dropped) are left, until a GC (here on another replica,
    // told to take any upload) removes them.
    let left: u32 = cl.pg.psql("SELECT count(*) FROM uploads").parse().expect("a count");
    assert!(left >= 1, "the killed upload is in the index until GC");
    thread::sleep(Duration::from_millis(1100));
    let live = (victim + 1) % 3;
    cl.gc(live, &["--upload-max-age", "0s"]).ok();
    assert_eq!(cl.pg.psql("SELECT count(*) FROM uploads"), "0");
    assert_eq!(cl.weed.files("skopeo/uploads"), vec![]);
    let again = skopeo(&["inspect", "--raw", "--tls-verify=false", &dest]);
    assert!(again.ok().stdout.as_bytes() == manifest.as_slice());
}
