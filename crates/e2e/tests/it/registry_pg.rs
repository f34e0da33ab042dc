//! wharf-registry with its index in PostgreSQL: each test starts a private cluster (Debian's
//! server binaries, through `scripts/pg-test-cluster`, on a free loopback port and a socket in
//! its own directory) and drives one or two registry processes against it: skopeo both ways,
//! the protocol by hand, listings, referrers, two replicas sharing the database and the data
//! dir, GC under the database's lock, start-up errors and a database restart.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{bin, registry, run_cmd, Output, TempDir};
use crate::registry_server::{
    catalog_pages, digest, image_manifest, pages, skopeo, Server, ADMIN_PW, OCI_EMPTY, OCI_MANIFEST,
};

/// `LOCK_GC` of crates/registry/src/pg/meta.rs: the first key of the GC's advisory lock.
const GC_LOCK_KEY: i64 = 0x7768_6147;

pub(crate) struct Postgres {
    dir: TempDir,
    port: u16,
}

fn cluster_script(args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster")).args(args);
    run_cmd(cmd, Duration::from_secs(120))
}

impl Postgres {
    pub(crate) fn start() -> Postgres {
        let dir = TempDir::new("wharf-e2e-pg");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let pg = Postgres { dir, port };
        cluster_script(&["start", pg.dir.0.to_str().expect("utf-8 path"), &port.to_string()]).ok();
        pg
    }

    /// Over TCP, with a SCRAM-SHA-256 login.
    pub(crate) fn url(&self) -> String {
        format!("postgres://wharf:wharf@127.0.0.1:{}/postgres", self.port)
    }

    /// Over the unix socket in the cluster's directory (trust).
    fn socket_url(&self) -> String {
        format!("postgres://wharf@/postgres?host={}&port={}", self.dir.0.display(), self.port)
    }

    fn psql_cmd(&self, sql: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-h"]).arg(&self.dir.0).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "wharf",
            "-d",
            "postgres",
            "-c",
            sql,
        ]);
        cmd
    }

    pub(crate) fn psql(&self, sql: &str) -> String {
        let out = run_cmd(self.psql_cmd(sql), Duration::from_secs(30));
        out.ok().trimmed().to_string()
    }

    fn restart(&self) {
        cluster_script(&["restart", self.dir.0.to_str().expect("utf-8 path")]).ok();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let out = cluster_script(&["stop", self.dir.0.to_str().expect("utf-8 path")]);
        if !out.success() {
            eprintln!("stopping the test's PostgreSQL: {out}");
        }
    }
}

/// `wharf-registry serve ARGS` that is expected to stop by itself (a refused start).
fn serve_once(args: &[&str]) -> Output {
    let dir = TempDir::new("wharf-e2e-pg-serve");
    let mut cmd = Command::new(bin("wharf-registry"));
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"]).arg(dir.0.join("data")).args(args);
    run_cmd(cmd, Duration::from_secs(60))
}

#[test]
fn pg_skopeo_listings_and_referrers() {
    let pg = Postgres::start();
    let reg = Server::start_with(&["--database-url", &pg.url()]);
    assert!(reg.log_text().contains(&format!("index in postgres://wharf@127.0.0.1:{}/postgres", pg.port)));
    assert!(!reg.log_text().contains("wharf:wharf"), "the password is not logged");

    // skopeo both ways, a single image and a multi-arch index.
    crate::registry_server::skopeo_round_trip(&reg);
    assert_eq!(pg.psql("SELECT string_agg(name, ',' ORDER BY name) FROM repos"), "copied/busybox,copied/multiarch");

    // Tags and catalog, paged through Link.
    let (_, m) = reg.push_image("paged/repo", "t0", b"layer");
    for t in ["t4", "t2", "t3", "t1"] {
        assert_eq!(reg.put_manifest("paged/repo", t, OCI_MANIFEST, &m).status, 201);
    }
    let pages = pages(&reg, "/v2/paged/repo/tags/list?n=2", "tags");
    assert_eq!(pages, vec![json!(["t0", "t1"]), json!(["t2", "t3"]), json!(["t4"])]);
    for repo in ["cat/c", "cat/a", "cat/b", "cat/a/deeper", "cat/a-b", "cat/a.b"] {
        reg.push_blob(repo, b"x");
    }
    let seen = catalog_pages(&reg, "/v2/_catalog?n=3");
    // Byte order, as the spec's lexical order: `-` < `.` < `/`.
    assert_eq!(
        seen,
        [
            "cat/a",
            "cat/a-b",
            "cat/a.b",
            "cat/a/deeper",
            "cat/b",
            "cat/c",
            "copied/busybox",
            "copied/multiarch",
            "paged/repo"
        ]
    );

    // Referrers, with the artifactType filter; a deleted referrer is gone from the list.
    let (subject, subject_body) = reg.push_image("refs/repo", "v1", b"image layer");
    let empty = reg.push_blob("refs/repo", b"{}");
    let artifact = |kind: &str| {
        json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": OCI_EMPTY, "digest": empty, "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_body.len()}
        })
        .to_string()
        .into_bytes()
    };
    let (sig, sbom) = (artifact("application/vnd.example.sig"), artifact("application/vnd.example.sbom"));
    for a in [&sig, &sbom] {
        let r = reg.put_manifest("refs/repo", &digest(a), OCI_MANIFEST, a);
        assert_eq!((r.status, r.header("OCI-Subject")), (201, Some(subject.as_str())), "{r}");
    }
    let listed = reg.get(&format!("/v2/refs/repo/referrers/{subject}")).json();
    assert_eq!(listed["manifests"].as_array().map(Vec::len), Some(2), "{listed}");
    let sigs = reg.get(&format!("/v2/refs/repo/referrers/{subject}?artifactType=application/vnd.example.sig")).json();
    assert_eq!(sigs["manifests"][0]["digest"], json!(digest(&sig)), "{sigs}");
    assert_eq!(reg.req("DELETE", &format!("/v2/refs/repo/manifests/{}", digest(&sig)), &[], b"").status, 202);
    let listed = reg.get(&format!("/v2/refs/repo/referrers/{subject}")).json();
    assert_eq!(listed["manifests"].as_array().map(Vec::len), Some(1), "{listed}");
}

#[test]
fn pg_two_replicas_share_one_index() {
    let pg = Postgres::start();
    // One over TCP (SCRAM), one over the unix socket; one data dir for both.
    let a = Server::start_with(&["--database-url", &pg.url()]);
    let b = Server::start_sharing(&a.data, &["--database-url", &pg.socket_url()]);

    // Pushed through one, served by the other.
    let (md, m) = a.push_image("shared/repo", "v1", b"a layer pushed to a");
    assert_eq!(b.get("/v2/shared/repo/manifests/v1").body, m);
    assert_eq!(
        b.get(&format!("/v2/shared/repo/blobs/{}", digest(b"a layer pushed to a"))).body,
        b"a layer pushed to a"
    );
    assert_eq!(b.get("/v2/shared/repo/tags/list").json()["tags"], json!(["v1"]));
    assert_eq!(b.get("/v2/_catalog").json()["repositories"], json!(["shared/repo"]));

    // An upload started on one, continued and finished on the other.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let post = a.req("POST", "/v2/shared/repo/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    let r = a.req("PATCH", &loc, &[("Content-Range", "0-99999")], &data[..100_000]);
    assert_eq!(r.status, 202, "{r}");
    let status = b.get(&loc);
    assert_eq!((status.status, status.header("Range")), (204, Some("0-99999")), "{status}");
    let r = b.req("PATCH", &loc, &[("Content-Range", "100000-299999")], &data[100_000..]);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-299999")), "{r}");
    let d = digest(&data);
    let put = b.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    assert!(a.get(&format!("/v2/shared/repo/blobs/{d}")).body == data);

    // A mount on one of a blob the other received; a delete on one is seen by the other.
    let r = b.req("POST", &format!("/v2/other/repo/blobs/uploads/?mount={d}&from=shared/repo"), &[], b"");
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(a.get(&format!("/v2/other/repo/blobs/{d}")).status, 200);
    assert_eq!(b.req("DELETE", &format!("/v2/shared/repo/manifests/{md}"), &[], b"").status, 202);
    a.get("/v2/shared/repo/manifests/v1").fails(404, "MANIFEST_UNKNOWN");

    // skopeo: copied into one, read back from the other.
    let fixtures = registry();
    let from = format!("docker://{}", fixtures.image("library/busybox:latest"));
    let (to_a, from_b) =
        (format!("docker://{}", a.image("copied/busybox:1")), format!("docker://{}", b.image("copied/busybox:1")));
    skopeo(&["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", &from, &to_a]).ok();
    let theirs = skopeo(&["inspect", "--raw", "--tls-verify=false", &from]);
    let ours = skopeo(&["inspect", "--raw", "--tls-verify=false", &from_b]);
    assert_eq!(ours.ok().stdout, theirs.ok().stdout);
    let tmp = TempDir::new("wharf-e2e-pg-layout");
    let oci = format!("oci:{}:x", tmp.0.join("busybox").display());
    skopeo(&["copy", "--quiet", "--src-tls-verify=false", &from_b, &oci]).ok();
}

/// Holds the GC's advisory lock from a session of its own until dropped.
pub(crate) struct HeldGcLock<'a> {
    pg: &'a Postgres,
    child: Child,
}

impl<'a> HeldGcLock<'a> {
    pub(crate) fn take(pg: &'a Postgres) -> HeldGcLock<'a> {
        let mut cmd = pg.psql_cmd(&format!("SELECT pg_advisory_lock({GC_LOCK_KEY}, 0); SELECT pg_sleep(120)"));
        cmd.env("PGAPPNAME", "wharf-e2e-gc-lock").stdout(Stdio::null()).stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn psql");
        let held = HeldGcLock { pg, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        let query = format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = {GC_LOCK_KEY} AND granted"
        );
        while pg.psql(&query) != "1" {
            assert!(Instant::now() < deadline, "psql never took the GC lock");
            thread::sleep(Duration::from_millis(50));
        }
        held
    }
}

impl Drop for HeldGcLock<'_> {
    fn drop(&mut self) {
        // pg_sleep does not notice its client leave: end the session from the server side.
        let _ = run_cmd(
            self.pg.psql_cmd(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'wharf-e2e-gc-lock'",
            ),
            Duration::from_secs(30),
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn pg_gc_runs_one_at_a_time_beside_the_servers() {
    let pg = Postgres::start();
    let url = pg.url();
    let reg = Server::start_with(&["--database-url", &url]);
    let (tagged, _) = reg.push_image("gc/repo", "v1", b"tagged layer");
    let tagged_layer = digest(b"tagged layer");
    let loose = reg.push_blob("gc/repo", b"a blob no manifest names");
    thread::sleep(Duration::from_millis(1100)); // grace 0s still spares what is from this very second

    {
        let _held = HeldGcLock::take(&pg);
        let out = reg.tool(&["gc", "--database-url", &url, "--grace", "0s"]);
        out.fails().mentions(&["another garbage collection is running"]);
        assert!(reg.blob_file(&loose).exists());
    }
    // With the PostgreSQL index, gc runs while the server serves.
    let out = reg.tool(&["gc", "--database-url", &url, "--grace", "0s"]);
    out.ok().mentions(&[&format!("blob {loose}"), "1 blobs"]);
    assert!(!reg.blob_file(&loose).exists());
    reg.get(&format!("/v2/gc/repo/blobs/{loose}")).fails(404, "BLOB_UNKNOWN");
    for kept in [&tagged, &tagged_layer] {
        assert!(reg.blob_file(kept).exists(), "{kept} was collected");
    }
    assert_eq!(reg.get(&format!("/v2/gc/repo/blobs/{tagged_layer}")).body, b"tagged layer");
    reg.tool(&["scrub", "--database-url", &url]).ok().mentions(&["checked"]);
}

/// The replica that runs the online GC is not the one that serves the push: the push's
/// HEADs reach GC through the database, and the manifest finds its blobs.
#[test]
fn pg_online_gc_on_one_replica_spares_a_push_on_another() {
    let pg = Postgres::start();
    let gc = Server::start_with(&["--database-url", &pg.url(), "--gc-interval", "1s", "--gc-grace", "3s"]);
    let push = Server::start_sharing(&gc.data, &["--database-url", &pg.url()]);
    crate::registry_server::online_gc_spares_a_slow_push(&gc, &push);
}

#[test]
fn pg_start_errors_name_the_database() {
    let pg = Postgres::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let out = serve_once(&["--database-url", &format!("postgres://wharf:secret@127.0.0.1:{closed}/postgres")]);
    out.fails().mentions(&[&format!("postgres://wharf@127.0.0.1:{closed}/postgres"), "Connection refused"]);
    assert!(!out.all().contains("secret"), "{out}");
    let out = serve_once(&["--database-url", &format!("postgres://wharf:wrong@127.0.0.1:{}/postgres", pg.port)]);
    out.fails().mentions(&["password authentication failed", "28P01"]);
    let out = serve_once(&["--database-url", &format!("postgres://wharf:wharf@127.0.0.1:{}/nodb", pg.port)]);
    out.fails().mentions(&["database \"nodb\" does not exist"]);
    let out = serve_once(&["--database-url", "postgres://h/d?sslmode=require"]);
    out.fails().mentions(&["sslmode \"require\" is not supported"]);

    // The config file's database: section, and the environment variable.
    let dir = TempDir::new("wharf-e2e-pg-config");
    let config = dir.0.join("registry.yaml");
    std::fs::write(&config, format!("database:\n  postgres: '{}'\n  pool_size: 2\n", pg.socket_url()))
        .expect("write config");
    let reg = Server::start_with(&["--config", config.to_str().expect("utf-8 path")]);
    reg.push_image("from/config", "v1", b"layer");
    assert_eq!(pg.psql("SELECT tag FROM tags"), "v1");
    let mut cmd = Command::new(bin("wharf-registry"));
    cmd.args(["scrub", "--data-dir"]).arg(&reg.data).env("WHARF_REGISTRY_DATABASE_URL", pg.url());
    run_cmd(cmd, Duration::from_secs(60)).ok().mentions(&["checked 3 blobs"]);
}

#[test]
fn pg_registry_rides_out_a_database_restart() {
    let pg = Postgres::start();
    let reg = Server::start_with(&["--database-url", &pg.url()]);
    let (_, m) = reg.push_image("restart/repo", "v1", b"before");
    pg.restart();
    // The pooled connections died with the server; requests open new ones.
    assert_eq!(reg.get("/v2/restart/repo/manifests/v1").body, m);
    reg.push_image("restart/repo", "v2", b"after");
    assert_eq!(reg.get("/v2/restart/repo/tags/list").json()["tags"], json!(["v1", "v2"]));
}

/// Three replicas on one database and data dir; the one a push is streaming into dies
/// (`kill -9`) in the middle of a chunk, and the client finishes the push through the others
/// from where the upload stands, as it would retrying through a load balancer.
#[test]
fn pg_a_replica_killed_mid_push_leaves_the_push_to_the_others() {
    let pg = Postgres::start();
    let mut a = Server::start_with(&["--database-url", &pg.url()]);
    let b = Server::start_sharing(&a.data, &["--database-url", &pg.url()]);
    let c = Server::start_sharing(&a.data, &["--database-url", &pg.socket_url()]);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 23) as u8).collect();
    let d = digest(&data);

    let post = a.req("POST", "/v2/killed/push/blobs/uploads/", &[], b"");
    let loc = post.header("Location").expect("Location").to_string();
    // A streamed PATCH that announces everything and sends most of it before its server
    // dies, once what reached its disk stopped growing.
    let mut s = std::net::TcpStream::connect(&a.addr).expect("connect");
    let head = format!("PATCH {loc} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n", a.addr, data.len());
    std::io::Write::write_all(&mut s, head.as_bytes()).expect("write head");
    std::io::Write::write_all(&mut s, &data[..2_200_000]).expect("write most of it");
    let uploads = a.data.join("uploads");
    let stored = || -> u64 {
        std::fs::read_dir(&uploads)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::metadata(e.path().join("data")).ok())
            .map(|m| m.len())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = 0;
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = stored();
        if now > 0 && now == last {
            break;
        }
        last = now;
        assert!(Instant::now() < deadline, "the replica never stored the upload's first bytes");
    }
    a.kill9();
    drop(s);
    let n = stored() as usize;

    // The client asks another replica where the upload stands and sends the rest there.
    let status = b.get(&loc);
    let range = format!("0-{}", n - 1);
    assert_eq!((status.status, status.header("Range")), (204, Some(range.as_str())), "{status}");
    let rest = format!("{n}-{}", data.len() - 1);
    let r = b.req("PATCH", &loc, &[("Content-Range", &rest)], &data[n..]);
    assert_eq!((r.status, r.header("Range")), (202, Some("0-2999999")), "{r}");
    let put = c.req("PUT", &format!("{loc}?digest={d}"), &[], b"");
    assert_eq!(put.status, 201, "{put}");
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = c.push_blob("killed/push", config);
    let m = image_manifest(&cd, config.len(), &d, data.len());
    assert_eq!(b.put_manifest("killed/push", "v1", OCI_MANIFEST, &m).status, 201);
    assert_eq!(c.get("/v2/killed/push/manifests/v1").body, m);
    assert!(b.get(&format!("/v2/killed/push/blobs/{d}")).body == data);
    // No lock is left behind by the dead replica or the finished push.
    assert_eq!(pg.psql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), "0");
}

/// With auth on, the replicas share the admin user and the token key (both in the database):
/// a token one issued is good on the other.
#[test]
fn pg_a_token_from_one_replica_is_good_on_another() {
    let pg = Postgres::start();
    let mut a = Server::start_with(&["--auth", "--admin-password", ADMIN_PW, "--database-url", &pg.url()]);
    let mut b = Server::start_sharing(&a.data, &["--auth", "--database-url", &pg.url()]);
    assert!(a.log_text().contains("created user admin"), "{}", a.log_text());
    assert!(!b.log_text().contains("created user admin"), "the second found the admin made: {}", b.log_text());
    assert_eq!(b.get("/v2/auth/repo/tags/list").status, 401);
    b.authz = Some(a.bearer("repository:auth/repo:pull,push"));
    let (_, m) = b.push_image("auth/repo", "v1", b"pushed with a token from a");
    a.authz = Some(b.bearer("repository:auth/repo:pull"));
    assert_eq!(a.get("/v2/auth/repo/manifests/v1").body, m);
    a.req("PUT", "/v2/auth/repo/manifests/v2", &[("Content-Type", OCI_MANIFEST)], &m).fails(401, "UNAUTHORIZED");
}
