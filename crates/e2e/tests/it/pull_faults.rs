//! Pulls that go wrong on the wire: a registry that drops the connection in the middle of a
//! blob, and a daemon killed with -9 while a pull is in flight. Both leave nothing partial, and
//! the same pull done again completes.
//!
//! The faults come from a small TCP proxy in front of the real registry (the registry itself
//! stays real): it can cut a blob response after some bytes, or slow blob responses down.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::harness::{bin, list_dir, mounts_under, registry, wait_for, Daemon};

#[derive(Clone, Copy)]
enum Fault {
    /// Close both sides after this many bytes of a blob response (headers included).
    CutBlobAfter(u64),
    /// Send blob responses at about this many bytes per second.
    Throttle(u64),
}

struct FaultyProxy {
    addr: String,
    /// While true, the fault applies; false makes the proxy a plain relay.
    active: Arc<AtomicBool>,
    /// Bytes of blob responses sent so far.
    blob_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl FaultyProxy {
    fn start(upstream: &str, fault: Fault) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        listener.set_nonblocking(true).expect("nonblocking listener");
        let active = Arc::new(AtomicBool::new(true));
        let blob_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b, s) = (active.clone(), blob_bytes.clone(), stop.clone());
        let upstream = upstream.to_string();
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (a, b, up) = (a.clone(), b.clone(), upstream.clone());
                        thread::spawn(move || relay(client, &up, fault, &a, &b));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyProxy { addr, active, blob_bytes, stop }
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Relays one connection: the request head is read whole to see whether it asks for a blob.
fn relay(mut client: TcpStream, upstream: &str, fault: Fault, active: &AtomicBool, blob_bytes: &AtomicU64) {
    let _ = client.set_nonblocking(false);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    if server.write_all(&head).is_err() {
        return;
    }
    let is_blob = head.starts_with(b"GET ")
        && String::from_utf8_lossy(&head).lines().next().is_some_and(|l| l.contains("/blobs/sha256:"));
    // Anything the client sends after the head (request bodies) goes up as it comes.
    if let (Ok(mut c), Ok(mut s)) = (client.try_clone(), server.try_clone()) {
        thread::spawn(move || {
            let _ = std::io::copy(&mut c, &mut s);
            let _ = s.shutdown(Shutdown::Write);
        });
    }
    let mut buf = [0u8; 16 * 1024];
    let mut sent: u64 = 0;
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        if is_blob && active.load(Ordering::Relaxed) {
            match fault {
                Fault::CutBlobAfter(limit) => {
                    if sent + n as u64 > limit {
                        chunk = &buf[..(limit - sent.min(limit)) as usize];
                        let _ = client.write_all(chunk);
                        break;
                    }
                }
                Fault::Throttle(rate) => {
                    thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
                }
            }
        }
        if client.write_all(chunk).is_err() {
            break;
        }
        sent += n as u64;
        if is_blob {
            blob_bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// Nothing half-made: no partial blob, no partial layer, no image record, no mount.
fn assert_nothing_partial(d: &Daemon, layers_before: &[String], context: &str) {
    let ingest = list_dir(&d.data_root.join("content/ingest"));
    assert!(ingest.is_empty(), "{context}: partial downloads left in content/ingest: {ingest:?}");
    let tmp = list_dir(&d.data_root.join("snapshots/tmp"));
    assert!(tmp.is_empty(), "{context}: partial layers left in snapshots/tmp: {tmp:?}");
    let layers = list_dir(&d.data_root.join("snapshots/layers"));
    assert_eq!(layers, layers_before, "{context}: layers changed");
    let mounts = mounts_under(&d.data_root);
    assert!(mounts.is_empty(), "{context}: mounts left: {mounts:?}");
}

#[test]
fn registry_dropping_the_connection_mid_blob_leaves_nothing_partial() {
    let reg = registry();
    // The busybox layer is about 1 MB: cut it after 64 KiB.
    let proxy = FaultyProxy::start(&reg.addr, Fault::CutBlobAfter(64 * 1024));
    let d = Daemon::start();
    let image = format!("{}/library/busybox:latest", proxy.addr);
    let before = list_dir(&d.data_root.join("snapshots/layers"));

    let out = d.wharf(&["pull", &image]);
    out.fails();
    let all = out.all().to_lowercase();
    assert!(
        ["unexpected end", "eof", "closed", "connection", "short", "truncated"].iter().any(|w| all.contains(w)),
        "the error does not say the transfer broke off:\n{out}"
    );
    assert_nothing_partial(&d, &before, "after the cut");
    let images = d.wharf(&["images", "-q"]);
    assert_eq!(images.ok().trimmed(), "", "an image was recorded from a broken pull:\n{images}");

    // The same pull, once the registry behaves, completes and runs.
    proxy.active.store(false, Ordering::Relaxed);
    d.wharf(&["pull", &image]).ok();
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

#[test]
fn daemon_killed_during_a_pull_recovers_and_the_pull_completes() {
    let reg = registry();
    // About 1 MB at 200 kB/s: the pull is in flight for several seconds.
    let proxy = FaultyProxy::start(&reg.addr, Fault::Throttle(200_000));
    let mut d = Daemon::start();
    let image = format!("{}/library/busybox:latest", proxy.addr);
    let before = list_dir(&d.data_root.join("snapshots/layers"));

    let mut puller = Command::new(bin("wharf"))
        .args(["-H", &d.host(), "pull", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wharf pull");
    let started = wait_for(Duration::from_secs(20), || proxy.blob_bytes.load(Ordering::Relaxed) > 100_000);
    assert!(started, "the pull never got going");
    d.kill9();
    let status = puller.wait().expect("wait for wharf pull");
    assert!(!status.success(), "wharf pull succeeded although its daemon was killed");

    d.restart();
    assert_nothing_partial(&d, &before, "after kill -9 and restart");
    let images = d.wharf(&["images", "-q"]);
    assert_eq!(images.ok().trimmed(), "", "an image was recorded from an interrupted pull:\n{images}");

    proxy.active.store(false, Ordering::Relaxed);
    d.wharf(&["pull", &image]).ok();
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}
