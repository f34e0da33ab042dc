//! Test fixtures: a real registry process, pushing images into it, and a scripted HTTP server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wharf_http::{Body, Request, Url};
use wharf_types::oci::Descriptor;
use wharf_types::Digest;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("wharf-dist-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `docker-registry serve` process with filesystem storage in a temp dir; killed on drop.
pub struct Registry {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = temp_dir("registry");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reg = Registry { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "registry did not start on port {port}");
            thread::sleep(Duration::from_millis(20));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One plain-HTTP request; returns status, Location header and body.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Option<String>, Vec<u8>) {
    let url = Url::parse(url).unwrap();
    let stream: Box<dyn wharf_http::Stream> = Box::new(TcpStream::connect((url.host.as_str(), url.port)).unwrap());
    let mut req = Request::new(method, &url.target);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if !body.is_empty() {
        req = req.body(Body::Bytes(body));
    }
    let resp = wharf_http::send(stream, &url.host_header(), req).unwrap();
    let status = resp.status;
    let location = resp.header("Location").map(|l| url.join(l).unwrap().to_string());
    (status, location, resp.read_body(1 << 20).unwrap())
}

/// Pushes a blob with a monolithic upload (POST, then PUT ?digest=).
pub fn push_blob(base: &str, repo: &str, media_type: &str, data: &[u8]) -> Descriptor {
    let digest = Digest::of(data);
    let (status, location, body) = http("POST", &format!("{base}/v2/{repo}/blobs/uploads/"), &[], Vec::new());
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let location = location.unwrap();
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{sep}digest={digest}");
    let (status, _, body) = http("PUT", &put, &[("Content-Type", "application/octet-stream")], data.to_vec());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    descriptor(media_type, data)
}

pub fn descriptor(media_type: &str, data: &[u8]) -> Descriptor {
    serde_json::from_value(serde_json::json!({
        "mediaType": media_type,
        "digest": Digest::of(data).to_string(),
        "size": data.len(),
    }))
    .unwrap()
}

pub fn push_manifest(base: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    let (status, _, resp) = http("PUT", &url, &[("Content-Type", media_type)], body.to_vec());
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&resp));
}

/// A scripted HTTP server: every connection gets one request, answered by `handler` with
/// (status, headers, body). Counts requests.
pub struct Scripted {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
}

pub struct SeenRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

pub fn scripted(handler: impl Fn(&SeenRequest, u16) -> Reply + Send + Sync + 'static) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let counter = hits.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let handler = handler.clone();
            let counter = counter.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let target = parts.next().unwrap_or("").to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    let h = h.trim_end();
                    if h.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let len = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                reader.read_exact(&mut body).unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let seen = SeenRequest { method, target, headers, body };
                let (status, headers, body) = handler(&seen, port);
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                let mut conn = conn;
                let _ = conn.write_all(out.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    Scripted { port, hits }
}
