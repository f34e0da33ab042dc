//! Pulls that go wrong on the wire, and pulls that share their downloads.
//!
//! A registry that drops the connection in the middle of a blob: the pull asks for the rest
//! with a Range request (or takes the whole body again from a registry that ignores ranges);
//! one that keeps dropping it fails the pull, keeps the bytes for a later resume, and leaves
//! nothing else behind. A daemon killed with -9, or a client that goes away, mid-pull: the next
//! pull asks only for the rest. Two pulls at once (wharf and docker CLI) of the same image, or
//! of images sharing layers, fetch each layer once.
//!
//! The faults come from a small TCP proxy in front of the real registry (the registry itself
//! stays real): it can cut blob responses after some bytes, strip Range headers, or slow blob
//! responses down, and it logs every blob GET.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::harness::{bin, list_dir, mounts_under, registry, wait_for, Cli, Daemon};

#[derive(Clone, Copy)]
enum Fault {
    /// Close both sides after this many bytes of every blob response (headers included).
    CutBlobAfter(u64),
    /// Cut the first blob response longer than this many bytes, once.
    CutOnceAfter(u64),
    /// As `CutOnceAfter`, and the registry never sees a Range header (it answers 200).
    CutOnceIgnoringRange(u64),
    /// Send blob responses at about this many bytes per second.
    Throttle(u64),
}

/// One blob GET the proxy relayed.
#[derive(Clone, Debug)]
struct BlobGet {
    /// `sha256:...`
    digest: String,
    /// The request's Range header, as the client sent it.
    range: Option<String>,
    status: u16,
    /// Body bytes relayed to the client.
    body_bytes: u64,
}

#[derive(Default)]
struct ProxyState {
    /// While true, the fault applies; false makes the proxy a plain relay.
    active: AtomicBool,
    /// Bytes of blob responses sent so far.
    blob_bytes: AtomicU64,
    /// Whether a `CutOnce*` fault has fired.
    cut_done: AtomicBool,
    gets: Mutex<Vec<BlobGet>>,
    stop: AtomicBool,
}

struct FaultyProxy {
    addr: String,
    state: Arc<ProxyState>,
}

impl FaultyProxy {
    fn start(upstream: &str, fault: Fault) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        listener.set_nonblocking(true).expect("nonblocking listener");
        let state = Arc::new(ProxyState::default());
        state.active.store(true, Ordering::Relaxed);
        let s = state.clone();
        let upstream = upstream.to_string();
        thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (s, up) = (s.clone(), upstream.clone());
                        thread::spawn(move || relay(client, &up, fault, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultyProxy { addr, state }
    }

    fn set_active(&self, on: bool) {
        self.state.active.store(on, Ordering::Relaxed);
    }

    fn blob_bytes(&self) -> u64 {
        self.state.blob_bytes.load(Ordering::Relaxed)
    }

    /// The GETs of one blob, in the order they came.
    fn gets_of(&self, digest: &str) -> Vec<BlobGet> {
        self.state.gets.lock().expect("proxy log").iter().filter(|g| g.digest == digest).cloned().collect()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

/// Relays one connection: the request head is read whole to see whether it asks for a blob.
fn relay(mut client: TcpStream, upstream: &str, fault: Fault, st: &ProxyState) {
    let _ = client.set_nonblocking(false);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            // A TLS handshake (a client trying HTTPS first, as with any loopback registry):
            // refused at once, as the plain-HTTP registry behind would.
            Ok(1) if head.is_empty() && byte[0] == 0x16 => return,
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or("").to_string();
    let blob_digest = request_line
        .strip_prefix("GET ")
        .and_then(|rest| rest.split_once("/blobs/"))
        .map(|(_, d)| d.split_whitespace().next().unwrap_or("").to_string());
    let is_blob = blob_digest.is_some();
    let range = text
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("range")).map(|(_, v)| v.trim()))
        .map(str::to_string);
    let active = st.active.load(Ordering::Relaxed);
    // One request per connection: the registry is told to close after its answer, and says so
    // to the client, so that every request comes through here (a keep-alive client would
    // otherwise send its next request on this connection, past the proxy's eyes).
    let strip_range = is_blob && active && matches!(fault, Fault::CutOnceIgnoringRange(_));
    let kept: Vec<&str> = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !(l.starts_with("connection:") || (strip_range && l.starts_with("range:")))
        })
        .collect();
    head = format!("{}\r\nConnection: close\r\n\r\n", kept.join("\r\n")).into_bytes();
    let entry = blob_digest.map(|digest| {
        let mut gets = st.gets.lock().expect("proxy log");
        gets.push(BlobGet { digest, range: range.clone(), status: 0, body_bytes: 0 });
        gets.len() - 1
    });

    let Ok(mut server) = TcpStream::connect(upstream) else { return };
    if server.write_all(&head).is_err() {
        return;
    }
    // Anything the client sends after the head (request bodies) goes up as it comes.
    if let (Ok(mut c), Ok(mut s)) = (client.try_clone(), server.try_clone()) {
        thread::spawn(move || {
            let _ = std::io::copy(&mut c, &mut s);
            let _ = s.shutdown(Shutdown::Write);
        });
    }
    let mut buf = [0u8; 16 * 1024];
    let mut sent: u64 = 0;
    let mut head_len: Option<u64> = None;
    let mut response_start = Vec::new();
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if head_len.is_none() {
            response_start.extend_from_slice(&buf[..n]);
            if let Some(end) = response_start.windows(4).position(|w| w == b"\r\n\r\n") {
                head_len = Some(end as u64 + 4);
                let status = String::from_utf8_lossy(&response_start)
                    .split_whitespace()
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if let Some(i) = entry {
                    st.gets.lock().expect("proxy log")[i].status = status;
                }
            }
        }
        let mut chunk = &buf[..n];
        let mut cut = false;
        if is_blob && active {
            match fault {
                Fault::CutBlobAfter(limit) => {
                    if sent + n as u64 > limit {
                        chunk = &buf[..(limit - sent.min(limit)) as usize];
                        cut = true;
                    }
                }
                Fault::CutOnceAfter(limit) | Fault::CutOnceIgnoringRange(limit) => {
                    if sent + n as u64 > limit && !st.cut_done.swap(true, Ordering::Relaxed) {
                        chunk = &buf[..(limit - sent.min(limit)) as usize];
                        cut = true;
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
        let before = sent;
        sent += chunk.len() as u64;
        if is_blob {
            st.blob_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if let (Some(i), Some(h)) = (entry, head_len) {
                st.gets.lock().expect("proxy log")[i].body_bytes += sent.saturating_sub(h.max(before));
            }
        }
        if cut {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// A proxy with `fault` in front of the shared registry, a daemon, and busybox's name through
/// the proxy.
fn busybox_through(fault: Fault) -> (FaultyProxy, Daemon, String) {
    let proxy = FaultyProxy::start(&registry().addr, fault);
    let d = Daemon::start();
    let image = format!("{}/library/busybox:latest", proxy.addr);
    (proxy, d, image)
}

/// The busybox image's one layer: its digest and compressed size.
fn busybox_layer() -> (String, u64) {
    let layer = &registry().info("library/busybox:latest")["layers"][0];
    (layer["digest"].as_str().expect("layer digest").to_string(), layer["size"].as_u64().expect("layer size"))
}

/// The partial downloads kept for a resume, by name.
fn partials(d: &Daemon) -> Vec<String> {
    list_dir(&d.data_root.join("content/ingest"))
        .into_iter()
        .filter(|n| n.starts_with("partial-") && !n.contains(".ckpt"))
        .collect()
}

/// Nothing half-made: no unverified blob, no partial layer, no image record, no mount; in
/// `content/ingest` at most the partial downloads kept for resuming.
fn assert_nothing_partial(d: &Daemon, layers_before: &[String], context: &str) {
    let ingest: Vec<String> =
        list_dir(&d.data_root.join("content/ingest")).into_iter().filter(|n| !n.starts_with("partial-")).collect();
    assert!(ingest.is_empty(), "{context}: temp files left in content/ingest: {ingest:?}");
    let tmp = list_dir(&d.data_root.join("snapshots/tmp"));
    assert!(tmp.is_empty(), "{context}: partial layers left in snapshots/tmp: {tmp:?}");
    let layers = list_dir(&d.data_root.join("snapshots/layers"));
    assert_eq!(layers, layers_before, "{context}: layers changed");
    let mounts = mounts_under(&d.data_root);
    assert!(mounts.is_empty(), "{context}: mounts left: {mounts:?}");
    let images = d.wharf(&["images", "-q"]);
    assert_eq!(images.ok().trimmed(), "", "{context}: an image was recorded:\n{images}");
}

/// The offset a Range header asks from (`bytes=N-`).
fn range_start(range: &str) -> u64 {
    let n = range.strip_prefix("bytes=").and_then(|r| r.strip_suffix('-')).unwrap_or_else(|| {
        panic!("not an open-ended byte range: {range:?}");
    });
    n.parse().unwrap_or_else(|_| panic!("bad range start in {range:?}"))
}

#[test]
fn registry_dropping_the_connection_mid_blob_leaves_nothing_partial() {
    // The busybox layer is about 1 MB: every response is cut after 64 KiB, so the few ranged
    // retries cannot get it all.
    let (proxy, d, image) = busybox_through(Fault::CutBlobAfter(64 * 1024));
    let before = list_dir(&d.data_root.join("snapshots/layers"));
    let (layer, _) = busybox_layer();

    let out = d.wharf(&["pull", &image]);
    out.fails();
    let all = out.all().to_lowercase();
    assert!(
        ["unexpected end", "eof", "closed", "connection", "short", "truncated"].iter().any(|w| all.contains(w)),
        "the error does not say the transfer broke off:\n{out}"
    );
    assert_nothing_partial(&d, &before, "after the cut");
    let gets = proxy.gets_of(&layer);
    assert!((2..=8).contains(&gets.len()), "expected a few ranged retries, got {gets:#?}");
    for pair in gets.windows(2) {
        let want = pair[0].body_bytes + pair[0].range.as_deref().map(range_start).unwrap_or(0);
        assert_eq!(pair[1].range.as_deref().map(range_start), Some(want), "retries: {gets:#?}");
    }
    assert_eq!(partials(&d).len(), 1, "the received bytes are not kept for a resume");

    // The same pull, once the registry behaves, asks only for the rest, completes and runs.
    proxy.set_active(false);
    let received: u64 = gets.iter().map(|g| g.body_bytes).sum();
    d.wharf(&["pull", &image]).ok();
    let last = proxy.gets_of(&layer).pop().expect("a GET after the failure");
    assert_eq!(last.range.as_deref().map(range_start), Some(received), "{last:?}");
    assert_eq!(last.status, 206);
    assert!(partials(&d).is_empty(), "partial download left after the pull completed");
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

#[test]
fn a_cut_blob_is_resumed_with_a_range_request() {
    let (proxy, d, image) = busybox_through(Fault::CutOnceAfter(300_000));
    let (layer, size) = busybox_layer();

    d.wharf(&["pull", &image]).ok();
    let gets = proxy.gets_of(&layer);
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert_eq!(gets[0].range, None);
    assert!(gets[0].body_bytes > 0 && gets[0].body_bytes < size, "{gets:#?}");
    assert_eq!(gets[1].range.as_deref(), Some(&format!("bytes={}-", gets[0].body_bytes)[..]), "{gets:#?}");
    assert_eq!(gets[1].status, 206);
    let served: u64 = gets.iter().map(|g| g.body_bytes).sum();
    assert_eq!(served, size, "bytes served for the layer: {gets:#?}");
    assert!(list_dir(&d.data_root.join("content/ingest")).is_empty());
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

#[test]
fn a_registry_ignoring_range_still_completes_the_pull() {
    let (proxy, d, image) = busybox_through(Fault::CutOnceIgnoringRange(300_000));
    let (layer, size) = busybox_layer();

    d.wharf(&["pull", &image]).ok();
    let gets = proxy.gets_of(&layer);
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(gets[1].range.is_some(), "the retry did not ask for a range: {gets:#?}");
    assert_eq!(gets[1].status, 200, "the registry saw a Range header: {gets:#?}");
    assert_eq!(gets[1].body_bytes, size);
    assert!(list_dir(&d.data_root.join("content/ingest")).is_empty());
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

#[test]
fn daemon_killed_during_a_pull_recovers_and_the_pull_completes() {
    // About 1 MB at 200 kB/s: the pull is in flight for several seconds.
    let (proxy, mut d, image) = busybox_through(Fault::Throttle(200_000));
    let before = list_dir(&d.data_root.join("snapshots/layers"));
    let (layer, size) = busybox_layer();

    let mut puller = Command::new(bin("wharf"))
        .args(["-H", &d.host(), "pull", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wharf pull");
    let started = wait_for(Duration::from_secs(20), || proxy.blob_bytes() > 400_000);
    assert!(started, "the pull never got going");
    d.kill9();
    let status = puller.wait().expect("wait for wharf pull");
    assert!(!status.success(), "wharf pull succeeded although its daemon was killed");

    d.restart();
    assert_nothing_partial(&d, &before, "after kill -9 and restart");
    assert_eq!(partials(&d).len(), 1, "the received bytes are not kept for a resume");

    proxy.set_active(false);
    d.wharf(&["pull", &image]).ok();
    let gets = proxy.gets_of(&layer);
    let last = gets.last().expect("GETs of the layer");
    let resumed_at = last.range.as_deref().map(range_start).unwrap_or(0);
    assert!(resumed_at > 0, "the pull after the restart asked for the whole layer again: {gets:#?}");
    assert_eq!(last.status, 206);
    assert_eq!(resumed_at + last.body_bytes, size, "{gets:#?}");
    assert!(list_dir(&d.data_root.join("content/ingest")).is_empty());
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

/// A pull through `cli`, started and left running.
fn spawn_pull(d: &Daemon, cli: Cli, image: &str) -> Child {
    d.command(cli, &["pull", image])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cli:?} pull: {e}"))
}

/// Waits for a pull started by `spawn_pull`; returns its output, asserting success.
fn finish_pull(child: Child, what: &str) -> String {
    let out = child.wait_with_output().expect("wait for pull");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

fn image_id(d: &Daemon, image: &str) -> String {
    let out = d.wharf(&["image", "inspect", "--format", "{{.Id}}", image]);
    out.ok().trimmed().to_string()
}

#[test]
fn concurrent_pulls_of_the_same_image_download_each_layer_once() {
    let reg = registry();
    let proxy = FaultyProxy::start(&reg.addr, Fault::Throttle(1_000_000));
    let d = Daemon::start();
    let image = format!("{}/test/layers:latest", proxy.addr);

    let a = spawn_pull(&d, Cli::Wharf, &image);
    let b = spawn_pull(&d, Cli::Docker, &image);
    finish_pull(a, "wharf pull");
    let docker_out = finish_pull(b, "docker pull");
    for layer in reg.info("test/layers:latest")["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let gets = proxy.gets_of(digest);
        assert_eq!(gets.len(), 1, "layer {digest} was fetched {} times: {gets:#?}", gets.len());
    }
    assert!(docker_out.contains(&reg.manifest_digest("test/layers:latest")), "{docker_out}");
    let id = image_id(&d, &image);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.wharf(&["images", "-q", "--no-trunc"]).ok().trimmed(), id);
    let out = d.wharf(&["run", "--rm", &image, "cat", "/data/new/file"]);
    assert_eq!(out.ok().trimmed(), "new", "{out}");
}

#[test]
fn concurrent_pulls_of_images_sharing_a_base_download_it_once() {
    let reg = registry();
    let proxy = FaultyProxy::start(&reg.addr, Fault::Throttle(1_000_000));
    let d = Daemon::start();
    let layers = format!("{}/test/layers:latest", proxy.addr);
    let workdir = format!("{}/test/workdir:latest", proxy.addr);

    let a = spawn_pull(&d, Cli::Docker, &layers);
    let b = spawn_pull(&d, Cli::Wharf, &workdir);
    finish_pull(a, "docker pull test/layers");
    finish_pull(b, "wharf pull test/workdir");
    let (base, _) = busybox_layer();
    assert_eq!(proxy.gets_of(&base).len(), 1, "the shared base layer: {:#?}", proxy.gets_of(&base));
    for name in ["test/layers:latest", "test/workdir:latest"] {
        for layer in reg.info(name)["layers"].as_array().expect("layers") {
            let digest = layer["digest"].as_str().expect("digest");
            assert_eq!(proxy.gets_of(digest).len(), 1, "{name}: layer {digest}");
        }
    }
    let out = d.wharf(&["run", "--rm", "-w", "/", &workdir, "ls", "-d", "/data"]);
    assert_eq!(out.ok().trimmed(), "/data", "{out}");
    let out = d.wharf(&["run", "--rm", &layers, "cat", "/data/b.txt"]);
    assert_eq!(out.ok().trimmed(), "b2", "{out}");
}

#[test]
fn a_shared_download_outlives_the_client_that_started_it() {
    // About 1 MB at 150 kB/s: several seconds in flight.
    let (proxy, d, image) = busybox_through(Fault::Throttle(150_000));
    let (layer, size) = busybox_layer();

    let mut first = spawn_pull(&d, Cli::Wharf, &image);
    assert!(wait_for(Duration::from_secs(20), || proxy.blob_bytes() > 100_000), "the pull never got going");
    let second = spawn_pull(&d, Cli::Docker, &image);
    // Let the second pull join the transfer, then take the first one's client away.
    thread::sleep(Duration::from_millis(1500));
    let _ = first.kill();
    let _ = first.wait();
    let out = finish_pull(second, "docker pull");
    assert!(out.contains("Downloaded newer image"), "{out}");
    let gets = proxy.gets_of(&layer);
    assert_eq!(gets.len(), 1, "the layer was fetched again: {gets:#?}");
    assert_eq!(gets[0].body_bytes, size);
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

#[test]
fn a_pull_whose_client_goes_away_stops_and_a_later_one_resumes() {
    let (proxy, d, image) = busybox_through(Fault::Throttle(150_000));
    let before = list_dir(&d.data_root.join("snapshots/layers"));
    let (layer, size) = busybox_layer();

    let mut puller = spawn_pull(&d, Cli::Wharf, &image);
    assert!(wait_for(Duration::from_secs(20), || proxy.blob_bytes() > 300_000), "the pull never got going");
    let _ = puller.kill();
    let _ = puller.wait();
    // The download stops: the proxy sees no more bytes go out.
    let mut last = proxy.blob_bytes();
    let stopped = wait_for(Duration::from_secs(10), || {
        thread::sleep(Duration::from_millis(500));
        let now = proxy.blob_bytes();
        let still = now == last;
        last = now;
        still
    });
    assert!(stopped, "the download went on without a client");
    assert!(proxy.blob_bytes() < size, "the whole layer was downloaded anyway");
    assert!(
        wait_for(Duration::from_secs(5), || list_dir(&d.data_root.join("snapshots/tmp")).is_empty()),
        "the unpack did not stop"
    );
    assert_nothing_partial(&d, &before, "after the client went away");
    assert_eq!(partials(&d).len(), 1, "the received bytes are not kept for a resume");

    proxy.set_active(false);
    d.wharf(&["pull", &image]).ok();
    let gets = proxy.gets_of(&layer);
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(gets[1].range.as_deref().map(range_start).unwrap_or(0) > 0, "{gets:#?}");
    let out = d.wharf(&["run", "--rm", &image, "echo", "whole"]);
    assert_eq!(out.ok().trimmed(), "whole", "{out}");
}

#[test]
fn image_prune_removes_partial_downloads() {
    let (_proxy, d, image) = busybox_through(Fault::CutBlobAfter(64 * 1024));
    d.wharf(&["pull", &image]).fails();
    assert_eq!(partials(&d).len(), 1);
    let out = d.docker(&["image", "prune", "-f"]);
    out.ok();
    assert!(partials(&d).is_empty(), "prune left partial downloads: {:?}", partials(&d));
    assert!(out.all().contains("Total reclaimed space"), "{out}");
}
