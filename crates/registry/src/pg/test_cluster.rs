//! A private PostgreSQL cluster for this crate's tests (`scripts/pg-test-cluster`), stopped
//! and removed when dropped. A machine without PostgreSQL's server binaries fails the test
//! that asks for one: it is never skipped in silence.

use std::path::PathBuf;
use std::process::Command;

use super::wire::ConnConfig;

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/pg-test-cluster")
}

fn run(args: &[&str]) {
    let out = Command::new("bash").arg(script()).args(args).output().expect("run scripts/pg-test-cluster");
    assert!(
        out.status.success(),
        "pg-test-cluster {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!("wharf-registry-pg-{}", crate::store::random_hex(8).unwrap()));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Cluster { dir, port };
        run(&["start", c.dir.to_str().unwrap(), &port.to_string()]);
        c
    }

    /// The superuser over TCP (SCRAM-SHA-256).
    pub fn tcp(&self, dbname: &str) -> ConnConfig {
        ConnConfig::parse(&format!("postgres://wharf:wharf@127.0.0.1:{}/{dbname}", self.port)).unwrap()
    }

    /// The superuser over the unix socket (trust).
    pub fn socket(&self, dbname: &str) -> ConnConfig {
        ConnConfig::parse(&format!("postgres://wharf@/{dbname}?host={}&port={}", self.dir.display(), self.port))
            .unwrap()
    }

    pub fn restart(&self) {
        run(&["restart", self.dir.to_str().unwrap()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        run(&["stop", self.dir.to_str().unwrap()]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
