//! The Kubernetes CRI of wharfd (`--cri-socket`), driven as kubelet drives a runtime (create
//! sandbox, pull, create, start, status loop, logs, exec, stop, remove) through a client made
//! from Kubernetes' own api.proto (`cri_client.py`, PyPI's container-runtime-interface-api in
//! a venv `scripts/cri-client` makes), with pod networking through Debian's real CNI plugins on
//! a bridge and subnet of the test's own.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{install_with_script, registry, unique, wait_for, Daemon, DaemonOptions, TempDir};

/// Where Debian's containernetworking-plugins installs the plugins.
const CNI_BIN: &str = "/usr/lib/cni";

/// One cri_client.py process: one JSON call a line.
pub(crate) struct CriClient {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl CriClient {
    pub(crate) fn start(sock: &Path) -> CriClient {
        let python = install_with_script("cri-client", "container-runtime-interface-api and grpcio")
            .unwrap_or_else(|e| panic!("{e}"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/cri_client.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(sock)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start cri_client.py");
        let stdin = child.stdin.take().expect("client stdin");
        let stdout = BufReader::new(child.stdout.take().expect("client stdout"));
        CriClient { child, stdin, stdout }
    }

    /// `Ok(response)` or `Err((code, details))`.
    fn call(&mut self, method: &str, request: Value) -> Result<Value, (String, String)> {
        let line = json!({ "method": method, "request": request }).to_string();
        writeln!(self.stdin, "{line}").expect("write to cri client");
        self.stdin.flush().expect("flush cri client");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read cri client");
        let v: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method}: bad answer {answer:?}: {e}"));
        match v.get("ok") {
            Some(ok) => Ok(ok.clone()),
            None => Err((
                v["error"]["code"].as_str().unwrap_or_default().to_string(),
                v["error"]["details"].as_str().unwrap_or_default().to_string(),
            )),
        }
    }

    /// Starts a server stream (GetContainerEvents) read later with `take`.
    fn start_stream(&mut self, method: &str) {
        let line = json!({ "method": method, "request": {}, "stream": "start" }).to_string();
        writeln!(self.stdin, "{line}").expect("write to cri client");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read cri client");
        assert!(answer.contains("\"ok\""), "{method}: {answer}");
    }

    /// The next `count` messages of the stream.
    #[track_caller]
    fn take(&mut self, count: usize) -> Vec<Value> {
        writeln!(self.stdin, "{}", json!({ "stream": "take", "count": count, "timeout": 30 })).expect("write");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read cri client");
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert!(v["error"].is_null(), "stream: {v}");
        v["ok"].as_array().unwrap().clone()
    }

    /// Drives a streaming URL with cri_client.py's WebSocket client (`req` as its docstring
    /// says, `stream` set to `url`).
    #[track_caller]
    fn stream(&mut self, url: &str, req: Value) -> Value {
        let v = self.stream_answer(url, req);
        assert!(v["error"].is_null(), "stream {url}: {v}");
        v["ok"].clone()
    }

    /// The client's whole answer for a WebSocket stream: `{"ok": …}` or `{"error": …}`.
    fn stream_answer(&mut self, url: &str, mut req: Value) -> Value {
        req["stream"] = json!(url);
        writeln!(self.stdin, "{req}").expect("write to cri client");
        self.stdin.flush().expect("flush cri client");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read cri client");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("stream: bad answer {answer:?}: {e}"))
    }

    /// Drives a streaming URL over SPDY/3.1 with cri_client.py's SPDY client (`req` as its
    /// docstring says, `spdy` set to `url`).
    #[track_caller]
    fn spdy(&mut self, url: &str, mut req: Value) -> Value {
        req["spdy"] = json!(url);
        writeln!(self.stdin, "{req}").expect("write to cri client");
        self.stdin.flush().expect("flush cri client");
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).expect("read cri client");
        let v: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("spdy: bad answer {answer:?}: {e}"));
        assert!(v["error"].is_null(), "spdy {url}: {v}");
        v["ok"].clone()
    }

    /// The URL an Exec, Attach or PortForward call answers.
    #[track_caller]
    fn url(&mut self, method: &str, request: Value) -> String {
        let url = self.ok(method, request)["url"].as_str().unwrap().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{method}: {url}");
        url
    }

    #[track_caller]
    pub(crate) fn ok(&mut self, method: &str, request: Value) -> Value {
        match self.call(method, request) {
            Ok(v) => v,
            Err((code, details)) => panic!("{method}: {code}: {details}"),
        }
    }

    /// RunPodSandbox, which must succeed: the sandbox's id.
    #[track_caller]
    pub(crate) fn run_pod(&mut self, pod: &Value) -> String {
        self.ok("RuntimeService/RunPodSandbox", json!({ "config": pod }))["pod_sandbox_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// CreateContainer in the sandbox `sid`, which must succeed: the container's id.
    #[track_caller]
    pub(crate) fn create_container(&mut self, sid: &str, cfg: &Value, pod: &Value) -> String {
        self.ok(
            "RuntimeService/CreateContainer",
            json!({ "pod_sandbox_id": sid, "config": cfg, "sandbox_config": pod }),
        )["container_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The error code of a call that must fail, with its details.
    #[track_caller]
    fn err(&mut self, method: &str, request: Value) -> (String, String) {
        match self.call(method, request) {
            Ok(v) => panic!("{method} succeeded where it must fail: {v}"),
            Err(e) => e,
        }
    }
}

impl Drop for CriClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A wharfd serving the CRI on a socket in `dir`, CNI config from `dir/net.d`.
fn cri_daemon(dir: &Path) -> (Daemon, PathBuf) {
    cri_daemon_with(dir, &[])
}

fn cri_daemon_with(dir: &Path, more: &[&str]) -> (Daemon, PathBuf) {
    let (opts, sock) = cri_daemon_options(dir, more);
    (Daemon::start_with(opts), sock)
}

/// The options of a wharfd serving the CRI on a socket in `dir` (returned too), CNI config
/// from `dir/net.d`, with `more` flags.
pub(crate) fn cri_daemon_options(dir: &Path, more: &[&str]) -> (DaemonOptions, PathBuf) {
    let sock = dir.join("cri.sock");
    let conf = dir.join("net.d");
    std::fs::create_dir_all(&conf).expect("create net.d");
    let opts = DaemonOptions {
        extra_args: vec![
            "--cri-socket".into(),
            sock.display().to_string(),
            "--cni-conf-dir".into(),
            conf.display().to_string(),
            "--cni-bin-dir".into(),
            CNI_BIN.into(),
        ]
        .into_iter()
        .chain(more.iter().map(|s| s.to_string()))
        .collect(),
        ..Default::default()
    };
    (opts, sock)
}

pub(crate) fn pod_config(name: &str, uid: &str, log_dir: &Path, host_network: bool) -> Value {
    json!({
        "metadata": { "name": name, "namespace": "default", "uid": uid, "attempt": 0 },
        "hostname": name,
        "log_directory": log_dir.display().to_string(),
        "labels": { "app": name, "io.kubernetes.pod.name": name },
        "annotations": { "note": "from the test" },
        "linux": { "security_context": { "namespace_options": {
            "network": if host_network { "NODE" } else { "POD" }, "pid": "CONTAINER", "ipc": "POD"
        } } },
    })
}

pub(crate) fn container_config(name: &str, image: &str, script: &str, log_path: &str) -> Value {
    json!({
        "metadata": { "name": name, "attempt": 0 },
        "image": { "image": image },
        "command": ["sh", "-c", script],
        "envs": [{ "key": "GREETING", "value": "hello" }],
        "labels": { "io.kubernetes.container.name": name },
        "log_path": log_path,
    })
}

/// Waits until the container's CRI state is `state`.
#[track_caller]
fn wait_state(c: &mut CriClient, id: &str, state: &str) -> Value {
    let mut last = Value::Null;
    let ok = wait_for(Duration::from_secs(30), || {
        last = c.ok("RuntimeService/ContainerStatus", json!({ "container_id": id }));
        last["status"]["state"] == state
    });
    assert!(ok, "container {id} never reached {state}: {last}");
    last
}

#[track_caller]
fn wait_log(path: &Path, needle: &str) -> String {
    let mut text = String::new();
    let ok = wait_for(Duration::from_secs(30), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle)
    });
    assert!(ok, "{} never held {needle:?}:\n{text}", path.display());
    text
}

/// Every line of a CRI log is `<RFC 3339 time> <stdout|stderr> <F|P> <text>`.
#[track_caller]
fn check_cri_format(text: &str) {
    for l in text.lines() {
        let f: Vec<&str> = l.splitn(4, ' ').collect();
        assert_eq!(f.len(), 4, "CRI log line {l:?}");
        assert!(wharf_types_like_time(f[0]), "time of {l:?}");
        assert!(f[1] == "stdout" || f[1] == "stderr", "stream of {l:?}");
        assert!(f[2] == "F" || f[2] == "P", "tag of {l:?}");
    }
}

fn wharf_types_like_time(t: &str) -> bool {
    // 2026-12-02T07:00:00.123456789Z
    let b = t.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && t.ends_with('Z')
}

#[test]
fn cri_pod_lifecycle_as_kubelet_drives_it() {
    let tmp = TempDir::new("wharf-e2e-cri");
    let (d, sock) = cri_daemon(&tmp.0);
    let mut c = CriClient::start(&sock);

    let v = c.ok("RuntimeService/Version", json!({ "version": "v1" }));
    assert_eq!(v["runtime_name"], "wharf");
    assert_eq!(v["runtime_api_version"], "v1");
    let st = c.ok("RuntimeService/Status", json!({}));
    let conds = st["status"]["conditions"].as_array().unwrap().clone();
    let cond = |t: &str| conds.iter().find(|x| x["type"] == t).cloned().unwrap_or_default();
    assert_eq!(cond("RuntimeReady")["status"], true);
    // No CNI configuration in the conf dir: the network is not ready, and says why.
    assert_eq!(cond("NetworkReady")["status"], false, "{st}");
    assert_eq!(cond("NetworkReady")["reason"], "NetworkPluginNotReady");
    assert_eq!(c.ok("RuntimeService/RuntimeConfig", json!({}))["linux"]["cgroup_driver"], "CGROUPFS");

    // The image: pulled through the CRI, seen by the Docker side, and back.
    let busybox = registry().image("library/busybox:latest");
    let (code, details) =
        c.err("ImageService/PullImage", json!({ "image": { "image": registry().image("library/nope:latest") } }));
    assert_ne!(code, "OK");
    assert!(details.contains("nope"), "{details}");
    let missing = c.ok("ImageService/ImageStatus", json!({ "image": { "image": busybox } }));
    assert!(missing["image"].is_null(), "{missing}");
    let image_ref = c.ok("ImageService/PullImage", json!({ "image": { "image": busybox } }))["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");
    let images = d.wharf(&["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}"]);
    assert!(images.ok().stdout.contains(&image_ref), "{}", images.stdout);
    let entry = d.pull("test/entrypoint:latest");
    let st = c.ok("ImageService/ImageStatus", json!({ "image": { "image": entry } }));
    assert!(
        st["image"]["repo_tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().ends_with("test/entrypoint:latest")),
        "{st}"
    );
    let listed = c.ok("ImageService/ListImages", json!({}));
    assert!(listed["images"].as_array().unwrap().iter().any(|i| i["id"] == image_ref), "{listed}");
    let fs = c.ok("ImageService/ImageFsInfo", json!({}));
    assert!(fs["image_filesystems"][0]["used_bytes"]["value"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{fs}");

    // The sandbox, on the host's network (CNI has its own test).
    let logs = tmp.0.join("pods/web");
    std::fs::create_dir_all(logs.join("app")).unwrap();
    let pod = pod_config("web", "uid-web-1", &logs, true);
    let sid = c.run_pod(&pod);
    let (code, _) = c.err("RuntimeService/RunPodSandbox", json!({ "config": pod }));
    assert_eq!(code, "ALREADY_EXISTS");
    let ps = c.ok("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid, "verbose": true }));
    assert_eq!(ps["status"]["state"], "SANDBOX_READY", "{ps}");
    assert_eq!(ps["status"]["metadata"]["name"], "web");
    assert_eq!(ps["status"]["labels"]["app"], "web");
    assert_eq!(ps["status"]["annotations"]["note"], "from the test");
    assert_eq!(ps["status"]["linux"]["namespaces"]["options"]["network"], "NODE");
    let list = |c: &mut CriClient, filter: Value| -> Vec<String> {
        c.ok("RuntimeService/ListPodSandbox", json!({ "filter": filter }))["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list(&mut c, json!({})), vec![sid.clone()]);
    assert_eq!(list(&mut c, json!({ "label_selector": { "app": "web" } })), vec![sid.clone()]);
    assert!(list(&mut c, json!({ "label_selector": { "app": "other" } })).is_empty());
    assert!(list(&mut c, json!({ "state": { "state": "SANDBOX_NOTREADY" } })).is_empty());
    assert_eq!(list(&mut c, json!({ "id": &sid[..12] })), vec![sid.clone()]);

    // kubelet's error cases around containers.
    let script = "echo $GREETING; echo oops >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done";
    let cfg = container_config("app", &image_ref, script, "app/0.log");
    let (code, details) = c.err(
        "RuntimeService/CreateContainer",
        json!({ "pod_sandbox_id": "0123456789ab", "config": cfg, "sandbox_config": pod }),
    );
    assert_eq!(code, "NOT_FOUND", "{details}");
    let bad_image =
        container_config("app", "sha256:0000000000000000000000000000000000000000000000000000000000000000", "true", "");
    let (code, _) = c.err(
        "RuntimeService/CreateContainer",
        json!({ "pod_sandbox_id": sid, "config": bad_image, "sandbox_config": pod }),
    );
    assert_eq!(code, "NOT_FOUND");

    let cid = c.create_container(&sid, &cfg, &pod);
    let (code, _) =
        c.err("RuntimeService/CreateContainer", json!({ "pod_sandbox_id": sid, "config": cfg, "sandbox_config": pod }));
    assert_eq!(code, "ALREADY_EXISTS");
    let created = wait_state(&mut c, &cid, "CONTAINER_CREATED");
    assert_eq!(created["status"]["metadata"]["name"], "app");
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    let running = wait_state(&mut c, &cid, "CONTAINER_RUNNING");
    assert_eq!(running["status"]["log_path"], logs.join("app/0.log").display().to_string());
    assert_eq!(running["status"]["image_id"], image_ref.as_str());
    let ids = |c: &mut CriClient, filter: Value| -> Vec<String> {
        c.ok("RuntimeService/ListContainers", json!({ "filter": filter }))["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&mut c, json!({ "pod_sandbox_id": sid })), vec![cid.clone()]);
    assert_eq!(ids(&mut c, json!({ "state": { "state": "CONTAINER_RUNNING" } })), vec![cid.clone()]);
    assert!(ids(&mut c, json!({ "state": { "state": "CONTAINER_EXITED" } })).is_empty());
    assert_eq!(ids(&mut c, json!({ "label_selector": { "io.kubernetes.container.name": "app" } })), vec![cid.clone()]);

    // Logs in the CRI format at kubelet's path.
    let log_file = logs.join("app/0.log");
    let text = wait_log(&log_file, "stdout F tick 2");
    assert!(text.contains(" stdout F hello\n"), "{text}");
    assert!(text.contains(" stderr F oops\n"), "{text}");
    check_cri_format(&text);

    // One engine: docker sees the pod's containers by dockershim's names and labels.
    let ps = d.docker(&["ps", "--format", "{{.Names}}"]);
    let names = ps.ok().stdout.clone();
    assert!(names.contains("k8s_POD_web_default_uid-web-1_0"), "{names}");
    assert!(names.contains("k8s_app_web_default_uid-web-1_0"), "{names}");
    let labels = d.docker(&["inspect", "--format", "{{json .Config.Labels}}", "k8s_app_web_default_uid-web-1_0"]);
    let labels: Value = serde_json::from_str(labels.ok().stdout.trim()).unwrap();
    assert_eq!(labels["io.kubernetes.sandbox.id"], sid.as_str());
    assert_eq!(labels["io.kubernetes.docker.type"], "container");
    d.docker(&["logs", "k8s_app_web_default_uid-web-1_0"]).ok().mentions(&["hello", "tick"]);

    // ExecSync: output, exit code, time-out.
    let out = c.ok(
        "RuntimeService/ExecSync",
        json!({ "container_id": cid, "cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"] }),
    );
    assert_eq!(out["stdout"], "out\n");
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["exit_code"], 3);
    let began = std::time::Instant::now();
    let (code, _) =
        c.err("RuntimeService/ExecSync", json!({ "container_id": cid, "cmd": ["sleep", "30"], "timeout": 1 }));
    assert_eq!(code, "DEADLINE_EXCEEDED");
    assert!(began.elapsed() < Duration::from_secs(10), "{:?}", began.elapsed());
    // The timed-out command was killed.
    assert!(wait_for(Duration::from_secs(10), || {
        let ps = c.ok("RuntimeService/ExecSync", json!({ "container_id": cid, "cmd": ["ps", "-o", "args"] }));
        !ps["stdout"].as_str().unwrap().contains("sleep 30")
    }));

    // Log rotation as kubelet does it: rename, then ReopenContainerLog.
    let rotated = logs.join("app/0.log.20261202-000000");
    std::fs::rename(&log_file, &rotated).unwrap();
    c.ok("RuntimeService/ReopenContainerLog", json!({ "container_id": cid }));
    let fresh = wait_log(&log_file, "stdout F tick");
    assert!(!fresh.contains("hello"), "{fresh}");
    check_cri_format(&fresh);

    // StopContainer: sh as pid 1 ignores SIGTERM, so the time-out runs out and SIGKILL ends it.
    let began = std::time::Instant::now();
    c.ok("RuntimeService/StopContainer", json!({ "container_id": cid, "timeout": 1 }));
    assert!(began.elapsed() >= Duration::from_secs(1));
    let exited = wait_state(&mut c, &cid, "CONTAINER_EXITED");
    assert_eq!(exited["status"]["exit_code"], 137, "{exited}");
    assert_eq!(exited["status"]["reason"], "Error");
    assert!(exited["status"]["finished_at"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    c.ok("RuntimeService/StopContainer", json!({ "container_id": cid, "timeout": 0 }));
    let (code, _) = c.err("RuntimeService/ReopenContainerLog", json!({ "container_id": cid }));
    assert_eq!(code, "FAILED_PRECONDITION");

    // A container that completes.
    let done = container_config("once", &image_ref, "echo done", "once.log");
    let oid = c.create_container(&sid, &done, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": oid }));
    let st = wait_state(&mut c, &oid, "CONTAINER_EXITED");
    assert_eq!(st["status"]["exit_code"], 0);
    assert_eq!(st["status"]["reason"], "Completed");
    assert!(wait_log(&logs.join("once.log"), "stdout F done").lines().count() == 1);

    c.ok("RuntimeService/RemoveContainer", json!({ "container_id": cid }));
    c.ok("RuntimeService/RemoveContainer", json!({ "container_id": cid }));
    let (code, _) = c.err("RuntimeService/ContainerStatus", json!({ "container_id": cid }));
    assert_eq!(code, "NOT_FOUND");

    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    let ps = c.ok("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid }));
    assert_eq!(ps["status"]["state"], "SANDBOX_NOTREADY");
    // The stopped sandbox's containers stopped with it.
    assert_eq!(
        c.ok("RuntimeService/ContainerStatus", json!({ "container_id": oid }))["status"]["state"],
        "CONTAINER_EXITED"
    );
    let (code, _) =
        c.err("RuntimeService/CreateContainer", json!({ "pod_sandbox_id": sid, "config": cfg, "sandbox_config": pod }));
    assert_eq!(code, "FAILED_PRECONDITION");
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    let (code, _) = c.err("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid }));
    assert_eq!(code, "NOT_FOUND");
    let (code, _) =
        c.err("RuntimeService/CreateContainer", json!({ "pod_sandbox_id": sid, "config": cfg, "sandbox_config": pod }));
    assert_eq!(code, "NOT_FOUND");
    assert!(d.wharf(&["ps", "-aq"]).ok().stdout.trim().is_empty(), "the pod's containers went with it");

    c.ok("ImageService/RemoveImage", json!({ "image": { "image": image_ref } }));
    c.ok("ImageService/RemoveImage", json!({ "image": { "image": image_ref } }));
    assert!(c.ok("ImageService/ImageStatus", json!({ "image": { "image": image_ref } }))["image"].is_null());
    // The streaming verbs on what is gone: kubelet's NotFound.
    let (code, _) = c.err("RuntimeService/Attach", json!({ "container_id": cid, "stdout": true }));
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = c.err("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["true"], "stdout": true }));
    assert_eq!(code, "NOT_FOUND");
}

/// A CNI network of the test's own: bridge `bridge`, `subnet`, host-local's state in `dir`.
fn write_cni_conf(dir: &Path, bridge: &str, subnet: &str) {
    write_cni_conf_with(dir, bridge, subnet, &[]);
}

/// The same network with `more` plugins chained after the bridge and loopback.
fn write_cni_conf_with(dir: &Path, bridge: &str, subnet: &str, more: &[Value]) {
    let mut conf = json!({
        "cniVersion": "1.0.0",
        "name": format!("{bridge}-net"),
        "plugins": [
            { "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
              "ipam": { "type": "host-local", "ranges": [[{ "subnet": subnet }]],
                        "dataDir": dir.join("ipam").display().to_string() } },
            { "type": "loopback" },
        ],
    });
    conf["plugins"].as_array_mut().unwrap().extend(more.iter().cloned());
    std::fs::write(dir.join("net.d/10-test.conflist"), conf.to_string()).unwrap();
}

/// The bridge CNI made, removed even when the test fails.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

#[test]
fn cri_pod_network_through_cni() {
    let tmp = TempDir::new("wharf-e2e-cri-net");
    let (mut d, sock) = cri_daemon(&tmp.0);
    let bridge = Bridge(format!("wcni{}", unique("").chars().filter(char::is_ascii_digit).take(6).collect::<String>()));
    let n = std::process::id() % 180 + 20;
    let subnet = format!("10.{n}.177.0/24");
    write_cni_conf(&tmp.0, &bridge.0, &subnet);
    let mut c = CriClient::start(&sock);
    let st = c.ok("RuntimeService/Status", json!({}));
    let net =
        st["status"]["conditions"].as_array().unwrap().iter().find(|x| x["type"] == "NetworkReady").cloned().unwrap();
    assert_eq!(net["status"], true, "{st}");

    let image_ref = c
        .ok("ImageService/PullImage", json!({ "image": { "image": registry().image("library/busybox:latest") } }))
        ["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = tmp.0.join("pods/netpod");
    std::fs::create_dir_all(&logs).unwrap();
    let mut pod = pod_config("netpod", "uid-net-1", &logs, false);
    pod["dns_config"] = json!({ "servers": ["10.96.0.10"], "searches": ["default.svc.cluster.local", "svc.cluster.local"], "options": ["ndots:5"] });
    pod["linux"]["sysctls"] = json!({ "net.ipv4.ip_unprivileged_port_start": "0" });
    let sid = c.run_pod(&pod);
    let ps = c.ok("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid }));
    assert_eq!(ps["status"]["state"], "SANDBOX_READY", "{ps}");
    let ip = ps["status"]["network"]["ip"].as_str().unwrap().to_string();
    assert!(ip.starts_with(&format!("10.{n}.177.")), "pod ip {ip} not in {subnet}");
    assert!(tmp.0.join("ipam").join(format!("{}-net", bridge.0)).join(&ip).exists(), "host-local recorded {ip}");

    // A server in the pod, reached from the host at the pod's address: it serves the pod's
    // /etc, so its hostname comes back.
    let cfg = container_config("web", &image_ref, "exec httpd -f -p 8080 -h /etc", "web.log");
    let cid = c.create_container(&sid, &cfg, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    wait_state(&mut c, &cid, "CONTAINER_RUNNING");
    let mut body = String::new();
    let answered = wait_for(Duration::from_secs(20), || {
        let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&format!("{ip}:8080").parse().unwrap(), Duration::from_secs(2))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(s, "GET /hostname HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = std::io::Read::read_to_string(&mut s, &mut body);
        body.contains("netpod")
    });
    assert!(answered, "no answer from {ip}:8080: {body:?}");

    // The pod's DNS config, hostname, sysctl and address, as the container sees them.
    let exec = |c: &mut CriClient, cmd: &str| -> String {
        let out = c.ok("RuntimeService/ExecSync", json!({ "container_id": cid, "cmd": ["sh", "-c", cmd] }));
        assert_eq!(out["exit_code"], 0, "{cmd}: {out}");
        out["stdout"].as_str().unwrap().to_string()
    };
    let resolv = exec(&mut c, "cat /etc/resolv.conf");
    assert!(resolv.contains("nameserver 10.96.0.10"), "{resolv}");
    assert!(resolv.contains("search default.svc.cluster.local svc.cluster.local"), "{resolv}");
    assert!(resolv.contains("ndots:5"), "{resolv}");
    assert_eq!(exec(&mut c, "hostname").trim(), "netpod");
    // One UTS namespace for the pod, the sandbox's, as its network one.
    let sandbox_pid = d.docker(&["inspect", "--format", "{{.State.Pid}}", &sid]).ok().trimmed().to_string();
    let pod_uts = std::fs::read_link(format!("/proc/{sandbox_pid}/ns/uts")).unwrap();
    assert_eq!(exec(&mut c, "readlink /proc/self/ns/uts").trim(), pod_uts.display().to_string());
    assert_eq!(exec(&mut c, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start").trim(), "0");
    assert!(exec(&mut c, "ip addr show eth0").contains(&format!("inet {ip}/24")));

    // Across a kill -9 of wharfd the pod keeps its address and answers, and what ADD gave is
    // still there for the DEL.
    drop(c);
    d.kill9();
    d.restart();
    let mut c = CriClient::start(&sock);
    let ps = c.ok("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid }));
    assert_eq!(ps["status"]["state"], "SANDBOX_READY", "{ps}");
    assert_eq!(ps["status"]["network"]["ip"], ip.as_str());
    assert!(
        std::net::TcpStream::connect_timeout(&format!("{ip}:8080").parse().unwrap(), Duration::from_secs(5)).is_ok()
    );

    // StopPodSandbox runs CNI DEL: the address goes back to host-local, the veth goes.
    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    assert!(!tmp.0.join("ipam").join(format!("{}-net", bridge.0)).join(&ip).exists(), "host-local kept {ip}");
    assert!(crate::network::ports_of(&bridge.0).is_empty(), "veths left on {}", bridge.0);
    assert_eq!(
        c.ok("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid }))["status"]["state"],
        "SANDBOX_NOTREADY"
    );
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    drop(d);
}

/// The host's nat table as iptables-save prints it.
fn nat_rules() -> String {
    let out = Command::new("iptables-save").args(["-t", "nat"]).output().expect("run iptables-save");
    assert!(out.status.success(), "iptables-save: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// portmap's shared chains (which its DEL leaves, as they serve every pod), removed after the
/// test when it made them and no pod's chain is left in them; and the `nat` tables iptables-nft
/// made for them (empty built-in chains), when they were not there before.
struct PortmapChains {
    made: bool,
    /// The nftables families whose `nat` table did not exist before the test.
    new_tables: Vec<&'static str>,
}

/// Whether nftables has `table FAMILY nat`.
fn nat_table_exists(family: &str) -> bool {
    Command::new("nft").args(["list", "table", family, "nat"]).output().is_ok_and(|o| o.status.success())
}

impl PortmapChains {
    fn note() -> PortmapChains {
        let new_tables = ["ip", "ip6"].into_iter().filter(|f| !nat_table_exists(f)).collect();
        PortmapChains { made: !nat_rules().contains(":CNI-HOSTPORT-DNAT "), new_tables }
    }

    /// Deletes the `nat` tables the test made, once nothing but empty chains is left in them.
    fn remove_new_tables(&self) {
        for family in &self.new_tables {
            let Ok(out) = Command::new("nft").args(["list", "table", family, "nat"]).output() else { continue };
            let text = String::from_utf8_lossy(&out.stdout);
            let has_rules = text.lines().map(str::trim).any(|l| {
                !(l.is_empty()
                    || l == "}"
                    || l.starts_with("table ")
                    || l.starts_with("chain ")
                    || l.starts_with("type "))
            });
            if out.status.success() && !has_rules {
                let _ = Command::new("nft").args(["delete", "table", family, "nat"]).status();
            }
        }
    }
}

impl Drop for PortmapChains {
    fn drop(&mut self) {
        // Not nat_rules(): no panic in a drop that may run while the test unwinds.
        let out = Command::new("iptables-save").args(["-t", "nat"]).output();
        let rules = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        if !self.made || rules.is_empty() || rules.contains("CNI-DN-") {
            self.remove_new_tables();
            return;
        }
        let ipt = |args: &[&str]| {
            let _ = Command::new("iptables").args(["-w", "-t", "nat"]).args(args).status();
        };
        for chain in ["PREROUTING", "OUTPUT"] {
            ipt(&["-D", chain, "-m", "addrtype", "--dst-type", "LOCAL", "-j", "CNI-HOSTPORT-DNAT"]);
        }
        let masq = ["-m", "comment", "--comment", "CNI portfwd requiring masquerade", "-j", "CNI-HOSTPORT-MASQ"];
        ipt(&[&["-D", "POSTROUTING"][..], &masq[..]].concat());
        for chain in ["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"] {
            ipt(&["-F", chain]);
            ipt(&["-X", chain]);
        }
        self.remove_new_tables();
    }
}

/// A pod's hostPort through Debian's portmap plugin (1.1.1 here: iptables rules, through
/// iptables-nft on this host): 127.0.0.1:HOSTPORT reaches the pod's server, as kubelet's
/// hostPort does with containerd, and the rules go with the sandbox.
#[test]
fn cri_pod_host_port_through_portmap() {
    let tmp = TempDir::new("wharf-e2e-cri-portmap");
    let (d, sock) = cri_daemon(&tmp.0);
    let bridge = Bridge(format!("wcpm{}", unique("").chars().filter(char::is_ascii_digit).take(6).collect::<String>()));
    let n = std::process::id() % 180 + 20;
    let subnet = format!("10.{n}.178.0/24");
    let _chains = PortmapChains::note();
    let portmap = json!({ "type": "portmap", "capabilities": { "portMappings": true }, "snat": true });
    write_cni_conf_with(&tmp.0, &bridge.0, &subnet, &[portmap]);
    // A port free on the host now, for the pod's hostPort.
    let host_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = CriClient::start(&sock);
    let image_ref = c
        .ok("ImageService/PullImage", json!({ "image": { "image": registry().image("library/busybox:latest") } }))
        ["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = tmp.0.join("pods/portpod");
    std::fs::create_dir_all(&logs).unwrap();
    let mut pod = pod_config("portpod", "uid-portmap-1", &logs, false);
    pod["port_mappings"] = json!([{ "protocol": "TCP", "container_port": 8080, "host_port": host_port }]);
    let sid = c.run_pod(&pod);
    let rules = nat_rules();
    assert!(rules.contains(&sid), "no portmap rules for {sid}:\n{rules}");
    assert!(rules.contains(&format!("--dport {host_port}")), "no rule for port {host_port}:\n{rules}");

    let cfg = container_config("web", &image_ref, "exec httpd -f -p 8080 -h /etc", "web.log");
    let cid = c.create_container(&sid, &cfg, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    wait_state(&mut c, &cid, "CONTAINER_RUNNING");
    // The pod serves its /etc: its hostname comes back through the host's port.
    let addr = format!("127.0.0.1:{host_port}");
    let mut body = String::new();
    let answered = wait_for(Duration::from_secs(20), || {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(s, "GET /hostname HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = std::io::Read::read_to_string(&mut s, &mut body);
        body.contains("portpod")
    });
    assert!(answered, "no answer from the pod through {addr}: {body:?}\n{}", nat_rules());

    // The pod's own series in ListPodSandboxMetrics: its eth0's traffic, which that answer was.
    let descs = metric_descriptors(&mut c);
    let all = c.ok("RuntimeService/ListPodSandboxMetrics", json!({}));
    let pm = all["pod_metrics"].as_array().unwrap().iter().find(|p| p["pod_sandbox_id"] == sid.as_str()).cloned();
    let pm = pm.unwrap_or_else(|| panic!("no metrics of pod {sid}: {all}"));
    let net = metric_values(&descs, &pm, &["portpod", "default"]);
    let (labels, tx) = &net["container_network_transmit_bytes_total"];
    assert_eq!(labels[2..], ["".to_string(), sid.clone(), String::new(), "eth0".into()]);
    assert!(*tx > 0 && net["container_network_receive_bytes_total"].1 > 0, "{pm}");
    assert_eq!(pm["container_metrics"][0]["container_id"], cid.as_str(), "{pm}");

    // DEL (StopPodSandbox) takes the pod's rules away; nothing answers on the port then.
    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    let rules = nat_rules();
    assert!(!rules.contains(&sid), "portmap rules left for {sid}:\n{rules}");
    assert!(!rules.contains(&format!("--dport {host_port} ")), "a rule left for port {host_port}:\n{rules}");
    assert!(std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err());
    drop(d);
}

#[test]
fn cri_pods_survive_a_wharfd_kill9() {
    let tmp = TempDir::new("wharf-e2e-cri-restart");
    let (mut d, sock) = cri_daemon(&tmp.0);
    let mut c = CriClient::start(&sock);
    let image_ref = c
        .ok("ImageService/PullImage", json!({ "image": { "image": registry().image("library/busybox:latest") } }))
        ["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = tmp.0.join("pods/keep");
    std::fs::create_dir_all(&logs).unwrap();
    let pod = pod_config("keep", "uid-keep-1", &logs, true);
    let sid = c.run_pod(&pod);
    let cfg =
        container_config("ticker", &image_ref, "echo first; while true; do echo tick; sleep 0.3; done", "ticker.log");
    let cid = c.create_container(&sid, &cfg, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    let log_file = logs.join("ticker.log");
    wait_log(&log_file, "stdout F tick");
    let before = c.ok("RuntimeService/ContainerStatus", json!({ "container_id": cid }))["status"]["started_at"].clone();
    drop(c);

    d.kill9();
    // Output while wharfd is away stays in the engine's log, and reaches the CRI log later.
    std::thread::sleep(Duration::from_millis(1200));
    d.restart();
    let mut c = CriClient::start(&sock);
    let ps = c.ok("RuntimeService/PodSandboxStatus", json!({ "pod_sandbox_id": sid }));
    assert_eq!(ps["status"]["state"], "SANDBOX_READY", "{ps}");
    let st = c.ok("RuntimeService/ContainerStatus", json!({ "container_id": cid }));
    assert_eq!(st["status"]["state"], "CONTAINER_RUNNING", "{st}");
    assert_eq!(st["status"]["started_at"], before, "the same run, re-adopted");
    let out = c.ok("RuntimeService/ExecSync", json!({ "container_id": cid, "cmd": ["echo", "still here"] }));
    assert_eq!(out["stdout"], "still here\n");
    // The copier resumed after what the CRI log had: nothing twice, and the lines keep coming.
    let n = std::fs::read_to_string(&log_file).unwrap().lines().count();
    let text = {
        let mut t = String::new();
        assert!(wait_for(Duration::from_secs(20), || {
            t = std::fs::read_to_string(&log_file).unwrap_or_default();
            t.lines().count() > n + 2
        }));
        t
    };
    assert_eq!(text.matches("stdout F first").count(), 1, "{text}");
    check_cri_format(&text);
    let times: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(times, sorted, "log lines out of order or repeated:\n{text}");

    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    assert!(c.ok("RuntimeService/ListContainers", json!({}))["containers"].as_array().unwrap().is_empty());
}

#[test]
fn cri_pod_namespaces_cgroup_parent_stats_and_updates() {
    let tmp = TempDir::new("wharf-e2e-cri-ns");
    let (d, sock) = cri_daemon(&tmp.0);
    let mut c = CriClient::start(&sock);
    let image_ref = c
        .ok("ImageService/PullImage", json!({ "image": { "image": registry().image("library/busybox:latest") } }))
        ["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = tmp.0.join("pods/shared");
    std::fs::create_dir_all(&logs).unwrap();
    // The pod cgroup kubelet would make (cgroupfs driver), under this daemon's own parent.
    let pod_cgroup = format!("{}/podshared", d.cgroup_parent);
    let mut pod = pod_config("shared", "uid-shared-1", &logs, true);
    pod["linux"]["security_context"]["namespace_options"]["pid"] = json!("POD");
    pod["linux"]["cgroup_parent"] = json!(pod_cgroup);
    // kubelet's evented PLEG: a stream of what happens to the pod, from another connection.
    let mut events = CriClient::start(&sock);
    events.start_stream("RuntimeService/GetContainerEvents");
    let sid = c.run_pod(&pod);
    let evs = events.take(2);
    assert_eq!(evs[0]["container_id"], sid.as_str(), "{evs:?}");
    assert_eq!(evs[0]["container_event_type"], "CONTAINER_CREATED_EVENT", "{evs:?}");
    assert_eq!(evs[1]["container_event_type"], "CONTAINER_STARTED_EVENT", "{evs:?}");
    assert_eq!(evs[1]["pod_sandbox_status"]["metadata"]["name"], "shared", "{evs:?}");
    let cgroup_v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let mut cfg = container_config(name, &image_ref, "exec sleep 1000", "");
        cfg["linux"] = json!({ "resources": { "cpu_shares": 512, "memory_limit_in_bytes": 64 << 20 } });
        // Hugepage limits (applied where the host has the hugetlb controller, as runc) and, on
        // cgroup v2, a unified setting as kubelet's memory QoS writes them.
        if name == "one" {
            cfg["linux"]["resources"]["hugepage_limits"] = json!([{ "page_size": "2MB", "limit": 4 << 20 }]);
            if cgroup_v2 {
                cfg["linux"]["resources"]["unified"] = json!({ "memory.high": (48u64 << 20).to_string() });
            }
        }
        // `one` asks for the runtime's seccomp profile; `two` names none, which is unconfined.
        if name == "one" {
            cfg["linux"]["security_context"] = json!({ "seccomp": { "profile_type": "RuntimeDefault" } });
        }
        let cid = c.create_container(&sid, &cfg, &pod);
        c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
        wait_state(&mut c, &cid, "CONTAINER_RUNNING");
        ids.push(cid);
    }
    // AppArmor: `one` asked for no profile. Where the host has AppArmor it runs under the
    // default one; where it has not, a container asking for a profile is refused, as containerd.
    if crate::apparmor::host_has_apparmor() {
        let out = c.ok(
            "RuntimeService/ExecSync",
            json!({ "container_id": ids[0], "cmd": ["cat", "/proc/self/attr/current"] }),
        );
        assert_eq!(out["stdout"].as_str().unwrap().trim(), "wharf-default (enforce)", "{out}");
    } else {
        let mut cfg = container_config("confined", &image_ref, "true", "");
        cfg["linux"] = json!({ "security_context": { "apparmor_profile": "localhost/some-profile" } });
        let (code, details) = c.err(
            "RuntimeService/CreateContainer",
            json!({ "pod_sandbox_id": sid, "config": cfg, "sandbox_config": pod }),
        );
        assert!(details.contains("apparmor is not supported"), "{code}: {details}");
    }
    let evs = events.take(4);
    let kinds: Vec<(&str, &str)> = evs
        .iter()
        .map(|e| (e["container_id"].as_str().unwrap(), e["container_event_type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ids[0].as_str(), "CONTAINER_CREATED_EVENT"),
            (ids[0].as_str(), "CONTAINER_STARTED_EVENT"),
            (ids[1].as_str(), "CONTAINER_CREATED_EVENT"),
            (ids[1].as_str(), "CONTAINER_STARTED_EVENT"),
        ]
    );
    assert!(evs[3]["containers_statuses"].as_array().unwrap().iter().any(|s| s["id"] == ids[1].as_str()), "{evs:?}");
    let exec = |c: &mut CriClient, id: &str, cmd: &str| -> String {
        let out = c.ok("RuntimeService/ExecSync", json!({ "container_id": id, "cmd": ["sh", "-c", cmd] }));
        assert_eq!(out["exit_code"], 0, "{cmd}: {out}");
        out["stdout"].as_str().unwrap().trim().to_string()
    };
    // One pid namespace for the pod, whose pid 1 is the sandbox's pause process; one IPC
    // namespace; the network one.
    assert_eq!(exec(&mut c, &ids[0], "tr '\\0' ' ' < /proc/1/cmdline"), "/pause --pause");
    for ns in ["pid", "ipc", "net"] {
        let a = exec(&mut c, &ids[0], &format!("readlink /proc/self/ns/{ns}"));
        let b = exec(&mut c, &ids[1], &format!("readlink /proc/self/ns/{ns}"));
        assert_eq!(a, b, "{ns} namespace not shared");
    }
    assert_eq!(exec(&mut c, &ids[0], "grep ^Seccomp: /proc/self/status"), "Seccomp:\t2");
    assert_eq!(exec(&mut c, &ids[1], "grep ^Seccomp: /proc/self/status"), "Seccomp:\t0");
    let other = exec(&mut c, &ids[1], "ps -o args");
    assert!(other.matches("sleep 1000").count() == 2, "each sees the other's process:\n{other}");
    // The pod's cgroup parent holds the containers' cgroups. Read from the host: on cgroup v2
    // the container has a cgroup namespace of its own and sees itself at the root.
    let pid = d.docker(&["inspect", "--format", "{{.State.Pid}}", &ids[0]]).ok().trimmed().to_string();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("{pod_cgroup}/{}", ids[0])), "{cg}");
    if cgroup_v2 {
        let dir = Path::new("/sys/fs/cgroup").join(cg.trim().trim_start_matches("0::/"));
        let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(read("memory.high").trim(), (48u64 << 20).to_string());
        if dir.join("hugetlb.2MB.max").exists() {
            assert_eq!(read("hugetlb.2MB.max").trim(), (4u64 << 20).to_string());
        }
    }

    // Stats of containers and of the pod. `one` writes 1 MiB into its writable layer first.
    exec(&mut c, &ids[0], "dd if=/dev/zero of=/mib bs=1024 count=1024 2>/dev/null && sync");
    let st = c.ok("RuntimeService/ContainerStats", json!({ "container_id": ids[0] }));
    let fs_of = |v: &Value, what: &str| -> u64 { v[what]["value"].as_str().unwrap().parse().unwrap() };
    let wl = &st["stats"]["writable_layer"];
    assert!(fs_of(wl, "used_bytes") >= 1 << 20, "{st}");
    assert!(fs_of(wl, "inodes_used") >= 2, "{st}");
    let fsinfo = c.ok("ImageService/ImageFsInfo", json!({}));
    assert_eq!(wl["fs_id"]["mountpoint"], fsinfo["container_filesystems"][0]["fs_id"]["mountpoint"], "{fsinfo}");
    let listed = c.ok("RuntimeService/ListContainerStats", json!({ "filter": { "id": ids[1] } }));
    let wl2 = &listed["stats"][0]["writable_layer"];
    assert!(fs_of(wl2, "used_bytes") < 1 << 20, "`two` wrote nothing: {listed}");
    assert_eq!(st["stats"]["attributes"]["id"], ids[0].as_str());
    assert!(st["stats"]["memory"]["usage_bytes"]["value"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{st}");
    assert!(
        st["stats"]["cpu"]["usage_core_nano_seconds"]["value"].as_str().unwrap().parse::<u64>().unwrap() > 0,
        "{st}"
    );
    let all = c.ok("RuntimeService/ListContainerStats", json!({ "filter": { "pod_sandbox_id": sid } }));
    assert_eq!(all["stats"].as_array().unwrap().len(), 2, "{all}");
    let pst = c.ok("RuntimeService/PodSandboxStats", json!({ "pod_sandbox_id": sid }));
    assert_eq!(pst["stats"]["linux"]["containers"].as_array().unwrap().len(), 2, "{pst}");
    assert!(
        pst["stats"]["linux"]["process"]["process_count"]["value"].as_str().unwrap().parse::<u64>().unwrap() >= 3,
        "{pst}"
    );
    let lps =
        c.ok("RuntimeService/ListPodSandboxStats", json!({ "filter": { "label_selector": { "app": "shared" } } }));
    assert_eq!(lps["stats"].as_array().unwrap().len(), 1);

    // kubelet's stats from the CRI: the descriptors, then the pod's series by them.
    let descs = metric_descriptors(&mut c);
    for name in ["container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_processes"] {
        assert!(descs.contains_key(name), "no descriptor {name}: {descs:?}");
    }
    let all = c.ok("RuntimeService/ListPodSandboxMetrics", json!({}));
    let pm = all["pod_metrics"].as_array().unwrap().iter().find(|p| p["pod_sandbox_id"] == sid.as_str()).cloned();
    let pm = pm.unwrap_or_else(|| panic!("no metrics of pod {sid}: {all}"));
    // A host-network pod has no network series of its own.
    assert!(pm["metrics"].as_array().unwrap().is_empty(), "{pm}");
    let cms = pm["container_metrics"].as_array().unwrap();
    assert_eq!(cms.len(), 2, "{pm}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (id, name) in ids.iter().zip(["one", "two"]) {
        let cm = cms.iter().find(|cm| cm["container_id"] == id.as_str());
        let cm = cm.unwrap_or_else(|| panic!("no metrics of {name}: {pm}"));
        let series = metric_values(&descs, cm, &["shared", "default"]);
        let (labels, ws) = &series["container_memory_working_set_bytes"];
        assert_eq!(labels[2..4], [name.to_string(), id.clone()], "{cm}");
        assert_eq!(labels[4], image_ref, "the image as the container asked for it");
        assert!(*ws > 0, "{cm}");
        assert!(series["container_memory_usage_bytes"].1 > 0, "{cm}");
        assert!(series["container_processes"].1 >= 1, "{cm}");
        assert_eq!(series["container_spec_memory_limit_bytes"].1, 64 << 20, "the update below comes later");
        let fs = &series["container_fs_usage_bytes"];
        assert_eq!(fs.0[5], wl["fs_id"]["mountpoint"].as_str().unwrap());
        assert_eq!(fs.1 >= 1 << 20, name == "one", "{cm}");
        let started = series["container_start_time_seconds"].1;
        assert!(started <= now && started + 600 > now, "start time {started}, now {now}");
    }

    // UpdateContainerResources reaches the cgroup.
    c.ok(
        "RuntimeService/UpdateContainerResources",
        json!({ "container_id": ids[0], "linux": { "memory_limit_in_bytes": 96 << 20, "cpu_shares": 256 } }),
    );
    let limit = d.docker(&["inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.CpuShares}}", &ids[0]]);
    assert_eq!(limit.ok().trimmed(), format!("{} 256", 96 << 20));
    c.ok("RuntimeService/UpdateContainerResources", json!({ "container_id": ids[0], "linux": { "cpuset_cpus": "0" } }));
    let cpuset = d.docker(&["inspect", "--format", "{{.HostConfig.CpusetCpus}}", &ids[0]]);
    assert_eq!(cpuset.ok().trimmed(), "0");
    // kubelet resends the hugepage limits the container has; others are not changed live.
    c.ok(
        "RuntimeService/UpdateContainerResources",
        json!({ "container_id": ids[0], "linux": { "hugepage_limits": [{ "page_size": "2MB", "limit": 4 << 20 }] } }),
    );
    let (code, details) = c.err(
        "RuntimeService/UpdateContainerResources",
        json!({ "container_id": ids[0], "linux": { "hugepage_limits": [{ "page_size": "2MB", "limit": 8 << 20 }] } }),
    );
    assert_eq!(code, "UNIMPLEMENTED", "{details}");
    assert!(details.contains("hugepage limits"), "{details}");
    c.ok(
        "RuntimeService/UpdateRuntimeConfig",
        json!({ "runtime_config": { "network_config": { "pod_cidr": "10.244.0.0/24" } } }),
    );

    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    let stopped: Vec<Value> = events.take(3);
    assert!(stopped.iter().all(|e| e["container_event_type"] == "CONTAINER_STOPPED_EVENT"), "{stopped:?}");
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    let gone: Vec<Value> = events.take(3);
    assert!(gone.iter().all(|e| e["container_event_type"] == "CONTAINER_DELETED_EVENT"), "{gone:?}");
    // kubelet removes the pod cgroup it made.
    for dir in crate::harness::cgroup_dirs(&pod_cgroup) {
        std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    }
}

/// ListMetricDescriptors as name → label keys.
fn metric_descriptors(c: &mut CriClient) -> std::collections::HashMap<String, Vec<String>> {
    let out = c.ok("RuntimeService/ListMetricDescriptors", json!({}));
    out["descriptors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let keys = d["label_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
            (d["name"].as_str().unwrap().to_string(), keys)
        })
        .collect()
}

/// The series of one ContainerMetrics (or PodSandboxMetrics) as name → (label values, value)
/// (the last of a name), each checked against its descriptor: known, with as many values as
/// keys, starting with the pod's name and namespace `pod`.
#[track_caller]
fn metric_values(
    descs: &std::collections::HashMap<String, Vec<String>>,
    m: &Value,
    pod: &[&str],
) -> std::collections::HashMap<String, (Vec<String>, u64)> {
    let mut out = std::collections::HashMap::new();
    for s in m["metrics"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap();
        let keys = descs.get(name).unwrap_or_else(|| panic!("series {name} has no descriptor"));
        let values: Vec<String> =
            s["label_values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(values.len(), keys.len(), "{name}: values {values:?} for keys {keys:?}");
        assert_eq!(&values[..2], pod, "{name}");
        assert!(s["timestamp"].as_str().unwrap().parse::<i64>().unwrap() > 0, "{s}");
        let value = s["value"]["value"].as_str().unwrap().parse::<u64>().unwrap();
        out.insert(name.to_string(), (values, value));
    }
    out
}

#[test]
fn cri_pull_with_credentials() {
    let reg = crate::harness::TestRegistry::start(crate::harness::RegistryOptions {
        only: vec!["library/busybox".into()],
        htpasswd: Some(("kube".into(), "s3cret".into())),
        access_log: false,
    });
    let tmp = TempDir::new("wharf-e2e-cri-auth");
    let (d, sock) = cri_daemon(&tmp.0);
    let mut c = CriClient::start(&sock);
    let image = reg.image("library/busybox:latest");
    let (code, details) = c.err("ImageService/PullImage", json!({ "image": { "image": image } }));
    assert_ne!(code, "OK");
    assert!(details.contains(&image), "{details}");
    let (code, _) = c.err(
        "ImageService/PullImage",
        json!({ "image": { "image": image }, "auth": { "username": "kube", "password": "wrong" } }),
    );
    assert_ne!(code, "OK");
    let id = c.ok(
        "ImageService/PullImage",
        json!({ "image": { "image": image }, "auth": { "username": "kube", "password": "s3cret" } }),
    )["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    // `auth` (base64 of user:password) as kubelet passes a docker config's entry.
    c.ok("ImageService/RemoveImage", json!({ "image": { "image": id } }));
    let auth = "a3ViZTpzM2NyZXQ="; // kube:s3cret
    c.ok(
        "ImageService/PullImage",
        json!({ "image": { "image": image }, "auth": { "auth": auth, "server_address": reg.addr } }),
    );
    d.wharf(&["image", "inspect", &image]).ok();
}

/// A running pod on the host's network with one container running `script` (its config
/// with `extra`'s fields); the client, the sandbox id, the container id.
fn streaming_pod(tmp: &Path, sock: &Path, name: &str, script: &str, extra: Value) -> (CriClient, String, String) {
    let mut c = CriClient::start(sock);
    let (sid, cid) = add_pod(&mut c, tmp, name, script, extra);
    (c, sid, cid)
}

fn add_pod(c: &mut CriClient, tmp: &Path, name: &str, script: &str, extra: Value) -> (String, String) {
    let image = c
        .ok("ImageService/PullImage", json!({ "image": { "image": registry().image("library/busybox:latest") } }))
        ["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = tmp.join("pods").join(name);
    std::fs::create_dir_all(&logs).unwrap();
    let pod = pod_config(name, &format!("uid-{name}"), &logs, true);
    let sid = c.run_pod(&pod);
    let mut cfg = container_config(name, &image, script, "c.log");
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cid = c.create_container(&sid, &cfg, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    wait_state(c, &cid, "CONTAINER_RUNNING");
    (sid, cid)
}

/// The metav1 Status on the error channel of a v4/v5 stream.
#[track_caller]
fn error_status(out: &Value) -> Value {
    let text = out["channels"]["3"].as_str().unwrap_or_else(|| panic!("no error channel message: {out}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("error channel {text:?}: {e}"))
}

/// Host pids whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

#[test]
fn cri_exec_streams_over_websocket() {
    let tmp = TempDir::new("wharf-e2e-cri-exec");
    let (_d, sock) = cri_daemon(&tmp.0);
    let (mut c, _sid, cid) = streaming_pod(&tmp.0, &sock, "execpod", "exec sleep 100000", json!({}));
    let exec = |cmd: &[&str]| json!({ "container_id": cid, "cmd": cmd, "stdout": true, "stderr": true });

    // A command's output on stdout, and v4's Success on the error channel.
    let url = c.url("RuntimeService/Exec", exec(&["echo", "hello"]));
    let out = c.stream(&url, json!({ "protocols": ["v4.channel.k8s.io"] }));
    assert_eq!(out["status"], 101, "{out}");
    assert_eq!(out["protocol"], "v4.channel.k8s.io");
    assert_eq!(out["channels"]["1"], "hello\n", "{out}");
    assert_eq!(error_status(&out), json!({ "metadata": {}, "status": "Success" }));
    assert_eq!(out["closed"], true, "{out}");

    // A token is good once; unknown ones are nothing.
    let again = c.stream(&url, json!({ "protocols": ["v4.channel.k8s.io"] }));
    assert_eq!(again["status"], 404, "{again}");
    let (base, _) = url.rsplit_once('/').unwrap();
    assert_eq!(c.stream(&format!("{base}/nosuchtoken"), json!({}))["status"], 404);
    assert_eq!(c.stream(&url.replace("/exec/", "/attach/"), json!({}))["status"], 404);

    // The exit code, in v5's Status; stderr on its own channel.
    let url = c.url("RuntimeService/Exec", exec(&["sh", "-c", "echo err >&2; exit 3"]));
    let out = c.stream(&url, json!({ "protocols": ["v5.channel.k8s.io", "v4.channel.k8s.io"] }));
    assert_eq!(out["protocol"], "v5.channel.k8s.io");
    assert_eq!(out["channels"]["2"], "err\n", "{out}");
    let st = error_status(&out);
    assert_eq!(st["status"], "Failure", "{st}");
    assert_eq!(st["reason"], "NonZeroExitCode", "{st}");
    assert_eq!(st["details"]["causes"][0], json!({ "reason": "ExitCode", "message": "3" }), "{st}");
    // The first protocol, channel.k8s.io, says it in text, and nothing on success.
    let url = c.url("RuntimeService/Exec", exec(&["sh", "-c", "exit 3"]));
    let out = c.stream(&url, json!({ "protocols": ["channel.k8s.io"] }));
    let text = out["channels"]["3"].as_str().unwrap();
    assert!(text.starts_with("command terminated with non-zero exit code") && text.contains('3'), "{out}");
    let url = c.url("RuntimeService/Exec", exec(&["true"]));
    let out = c.stream(&url, json!({ "protocols": ["channel.k8s.io"] }));
    assert!(out["channels"]["3"].is_null(), "{out}");
    // A command that cannot start: the engine's message on stdout and its code, 127, as
    // `docker exec` has them.
    let url = c.url("RuntimeService/Exec", exec(&["/no/such/command"]));
    let out = c.stream(&url, json!({ "protocols": ["v4.channel.k8s.io"] }));
    assert!(out["channels"]["1"].as_str().unwrap().contains("no such file or directory"), "{out}");
    assert_eq!(error_status(&out)["details"]["causes"][0]["message"], "127", "{out}");
    // base64: text frames.
    let url = c.url("RuntimeService/Exec", exec(&["printf", "a\\001b"]));
    let out = c.stream(&url, json!({ "protocols": ["v4.base64.channel.k8s.io"] }));
    assert_eq!(out["protocol"], "v4.base64.channel.k8s.io");
    assert_eq!(out["messages"][0], json!([1, "a\u{1}b"]), "{out}");

    // stdin to cat, ended by v5's close signal.
    let mut req = exec(&["cat"]);
    req["stdin"] = json!(true);
    let url = c.url("RuntimeService/Exec", req);
    let out = c.stream(
        &url,
        json!({ "protocols": ["v5.channel.k8s.io"], "actions": [["send", 0, "line one\n"], ["send", 0, "two\n"], ["close", 0]] }),
    );
    assert_eq!(out["channels"]["1"], "line one\ntwo\n", "{out}");
    assert_eq!(error_status(&out)["status"], "Success");

    // A terminal, sized by the resize channel.
    let url = c.url(
        "RuntimeService/Exec",
        json!({ "container_id": cid, "cmd": ["sh", "-c", "read x; stty size; exit 5"], "tty": true, "stdin": true, "stdout": true }),
    );
    let out = c.stream(
        &url,
        json!({ "protocols": ["v5.channel.k8s.io"], "actions": [["resize", 123, 45], ["send", 0, "go\r"]] }),
    );
    assert!(out["channels"]["1"].as_str().unwrap().contains("45 123"), "{out}");
    assert!(out["channels"]["2"].is_null(), "a terminal has one output: {out}");
    assert_eq!(error_status(&out)["details"]["causes"][0]["message"], "5", "{out}");

    // A client that hangs up takes its command with it.
    let n = 4000 + std::process::id() % 1000;
    let marker = ["sleep".to_string(), n.to_string()];
    let argv: Vec<&str> = marker.iter().map(String::as_str).collect();
    let url = c.url("RuntimeService/Exec", exec(&["sh", "-c", &format!("echo started; exec sleep {n}")]));
    let out =
        c.stream(&url, json!({ "protocols": ["v5.channel.k8s.io"], "actions": [["wait", 1, "started"], ["hangup"]] }));
    assert_eq!(out["channels"]["1"], "started\n", "{out}");
    assert!(wait_for(Duration::from_secs(10), || pids_running(&argv).is_empty()), "{argv:?} still runs");

    // What the server refuses: a plain GET (which spends the token), protocols it does not
    // speak.
    let url = c.url("RuntimeService/Exec", exec(&["true"]));
    let out = c.stream(&url, json!({ "upgrade": false }));
    assert_eq!(out["status"], 400, "{out}");
    assert!(out["body"].as_str().unwrap().contains("Upgrade: websocket or SPDY/3.1"), "{out}");
    assert_eq!(c.stream(&url, json!({}))["status"], 404);
    let url = c.url("RuntimeService/Exec", exec(&["true"]));
    let out = c.stream(&url, json!({ "protocols": ["v9.channel.k8s.io"] }));
    assert_eq!(out["status"], 400, "{out}");
    assert!(out["body"].as_str().unwrap().contains("v9.channel.k8s.io"), "{out}");

    // The RPC's own checks, as kubelet's.
    let (code, details) =
        c.err("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["sh"], "tty": true, "stderr": true }));
    assert_eq!((code.as_str(), details.as_str()), ("INVALID_ARGUMENT", "tty and stderr cannot both be true"));
    let (code, details) = c.err("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["sh"] }));
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(details.contains("one of stdin, stdout, or stderr"), "{details}");
    assert_eq!(c.err("RuntimeService/Exec", json!({ "container_id": cid, "stdout": true })).0, "INVALID_ARGUMENT");
    let (code, _) =
        c.err("RuntimeService/Exec", json!({ "container_id": "0123456789ab", "cmd": ["sh"], "stdout": true }));
    assert_eq!(code, "NOT_FOUND");
    let (code, _) = c.err("RuntimeService/PortForward", json!({ "pod_sandbox_id": "0123456789ab", "port": [80] }));
    assert_eq!(code, "NOT_FOUND");
}

/// `--cri-streaming-tlscert`/`-tlskey`: the streaming server speaks TLS with the operator's
/// certificate and its URLs say https; WebSocket and SPDY streams work over it, and a client
/// that does not trust the certificate's CA is stopped at the handshake.
#[test]
fn cri_streams_over_tls() {
    let tmp = TempDir::new("wharf-e2e-cri-tls");
    let certs = tmp.0.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    crate::harness::openssl_ca(&certs, "wharf-e2e-stream-ca");
    crate::harness::openssl_signed(
        &certs,
        "stream",
        "127.0.0.1",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    );
    let (crt, key) = (certs.join("stream.crt").display().to_string(), certs.join("stream.key").display().to_string());
    let (_d, sock) = cri_daemon_with(&tmp.0, &["--cri-streaming-tlscert", &crt, "--cri-streaming-tlskey", &key]);
    let (mut c, _sid, cid) = streaming_pod(&tmp.0, &sock, "tlspod", "exec sleep 100000", json!({}));
    let ca = certs.join("ca.crt").display().to_string();
    let exec = |c: &mut CriClient| -> String {
        let url = c.ok("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["echo", "hello"], "stdout": true }))
            ["url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        url
    };

    let url = exec(&mut c);
    let out = c.stream(&url, json!({ "protocols": ["v4.channel.k8s.io"], "cafile": ca }));
    assert_eq!(out["status"], 101, "{out}");
    assert_eq!(out["channels"]["1"], "hello\n", "{out}");
    assert_eq!(error_status(&out), json!({ "metadata": {}, "status": "Success" }));

    let url = exec(&mut c);
    let st = |t: &str| json!({ "streamType": t });
    let out = c.spdy(
        &url,
        json!({ "protocols": ["v4.channel.k8s.io"], "streams": [["error", st("error")], ["stdout", st("stdout")]],
                "until_fin": ["stdout"], "cafile": ca }),
    );
    assert_eq!(out["status"], 101, "{out}");
    assert_eq!(out["streams"]["stdout"], "hello\n", "{out}");

    // Without the CA the client refuses the server's certificate; the token stays unused.
    let url = exec(&mut c);
    let refused = c.stream_answer(&url, json!({ "protocols": ["v4.channel.k8s.io"] }));
    let details = refused["error"]["details"].as_str().unwrap_or_default();
    assert!(details.contains("CERTIFICATE_VERIFY_FAILED"), "{refused}");
    // And plain HTTP on the TLS port gets no stream.
    let plain = c.stream_answer(&url.replace("https://", "http://"), json!({ "protocols": ["v4.channel.k8s.io"] }));
    assert!(plain["error"]["details"].as_str().is_some_and(|d| d.contains("no HTTP response")), "{plain}");
}

#[test]
fn cri_exec_over_spdy() {
    let tmp = TempDir::new("wharf-e2e-cri-spdy");
    let (_d, sock) = cri_daemon(&tmp.0);
    let (mut c, _sid, cid) = streaming_pod(&tmp.0, &sock, "spdypod", "exec sleep 100000", json!({}));
    let st = |t: &str| json!({ "streamType": t });

    // stdin in, stdout and stderr out, the exit code in v4's Status on the error stream.
    let url = c.url(
        "RuntimeService/Exec",
        json!({ "container_id": cid, "cmd": ["sh", "-c", "cat; echo err >&2; exit 7"], "stdin": true, "stdout": true, "stderr": true }),
    );
    let out = c.spdy(
        &url,
        json!({
            "protocols": ["v4.channel.k8s.io", "v3.channel.k8s.io"],
            "streams": [["error", st("error")], ["stdin", st("stdin")], ["stdout", st("stdout")], ["stderr", st("stderr")]],
            "actions": [["send", "stdin", "abc\n"], ["send", "stdin", "def\n"], ["fin", "stdin"]],
        }),
    );
    assert_eq!(out["status"], 101, "{out}");
    assert_eq!(out["protocol"], "v4.channel.k8s.io");
    assert_eq!(out["replied"], json!(["error", "stdin", "stdout", "stderr"]), "{out}");
    assert_eq!(out["streams"]["stdout"], "abc\ndef\n", "{out}");
    assert_eq!(out["streams"]["stderr"], "err\n", "{out}");
    let status: Value = serde_json::from_str(out["streams"]["error"].as_str().unwrap()).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode", "{out}");
    assert_eq!(status["details"]["causes"][0], json!({ "reason": "ExitCode", "message": "7" }), "{out}");
    for s in ["stdout", "stderr", "error"] {
        assert!(out["fins"].as_array().unwrap().contains(&json!(s)), "{s} not ended: {out}");
    }
    assert_eq!(out["goaway"], true, "{out}");

    // A terminal sized through the resize stream.
    let url = c.url(
        "RuntimeService/Exec",
        json!({ "container_id": cid, "cmd": ["sh", "-c", "read x; stty size"], "tty": true, "stdin": true, "stdout": true }),
    );
    let out = c.spdy(
        &url,
        json!({
            "protocols": ["v4.channel.k8s.io"],
            "streams": [["error", st("error")], ["stdin", st("stdin")], ["stdout", st("stdout")], ["resize", st("resize")]],
            "actions": [["resize", 77, 22], ["resize", 91, 33], ["send", "stdin", "go\r"]],
        }),
    );
    assert!(out["streams"]["stdout"].as_str().unwrap().contains("33 91"), "{out}");
    assert_eq!(out["streams"]["error"], r#"{"metadata":{},"status":"Success"}"#, "{out}");

    // The older protocols say a failure in text, nothing on success.
    let url =
        c.url("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["sh", "-c", "exit 2"], "stdout": true }));
    let out = c.spdy(
        &url,
        json!({ "protocols": ["v2.channel.k8s.io"], "streams": [["error", st("error")], ["stdout", st("stdout")]] }),
    );
    assert_eq!(out["protocol"], "v2.channel.k8s.io");
    assert!(
        out["streams"]["error"].as_str().unwrap().starts_with("command terminated with non-zero exit code"),
        "{out}"
    );

    // Negotiation as Kubernetes' httpstream: none in common is 403 with the server's list;
    // none offered is 400.
    let url = c.url("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["true"], "stdout": true }));
    let out = c.spdy(&url, json!({ "protocols": ["v9.channel.k8s.io"] }));
    assert_eq!(out["status"], 403, "{out}");
    assert!(out["accepted"].as_array().unwrap().contains(&json!("v4.channel.k8s.io")), "{out}");
    let url = c.url("RuntimeService/Exec", json!({ "container_id": cid, "cmd": ["true"], "stdout": true }));
    assert_eq!(c.spdy(&url, json!({}))["status"], 400);

    // A client that hangs up over SPDY takes its command with it too.
    let n = 5000 + std::process::id() % 1000;
    let marker = ["sleep".to_string(), n.to_string()];
    let argv: Vec<&str> = marker.iter().map(String::as_str).collect();
    let url = c.url(
        "RuntimeService/Exec",
        json!({ "container_id": cid, "cmd": ["sh", "-c", format!("echo started; exec sleep {n}")], "stdout": true }),
    );
    let out = c.spdy(
        &url,
        json!({ "protocols": ["v4.channel.k8s.io"], "streams": [["error", st("error")], ["stdout", st("stdout")]],
                "actions": [["wait", "stdout", "started"], ["hangup"]] }),
    );
    assert_eq!(out["streams"]["stdout"], "started\n", "{out}");
    assert!(wait_for(Duration::from_secs(10), || pids_running(&argv).is_empty()), "{argv:?} still runs");
}

#[test]
fn cri_attach_streams_over_websocket_and_spdy() {
    let tmp = TempDir::new("wharf-e2e-cri-attach");
    // The streaming server where it is told to listen (a port free a moment ago).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_d, sock) = cri_daemon_with(&tmp.0, &["--cri-streaming-address", &format!("127.0.0.1:{port}")]);
    // Echoes what comes on its stdin, which stays open between attaches (no stdin_once).
    let script = r#"echo ready; while read l; do [ "$l" = quit ] && exit 0; echo got:$l; echo err:$l >&2; done"#;
    let (mut c, _sid, cid) = streaming_pod(&tmp.0, &sock, "attachpod", script, json!({ "stdin": true }));
    let attach = json!({ "container_id": cid, "stdin": true, "stdout": true, "stderr": true });

    let url = c.url("RuntimeService/Attach", attach.clone());
    assert!(url.starts_with(&format!("http://127.0.0.1:{port}/attach/")), "{url}");
    let out = c.stream(
        &url,
        json!({ "protocols": ["v5.channel.k8s.io"], "actions": [["send", 0, "hello\n"], ["wait", 2, "err:hello"], ["hangup"]] }),
    );
    assert!(out["channels"]["1"].as_str().unwrap().contains("got:hello"), "{out}");
    // The client went; the container goes on, its stdin still open.
    std::thread::sleep(Duration::from_millis(300));
    wait_state(&mut c, &cid, "CONTAINER_RUNNING");

    // The same over SPDY/3.1.
    let url = c.url("RuntimeService/Attach", attach.clone());
    let st = |t: &str| json!({ "streamType": t });
    let out = c.spdy(
        &url,
        json!({
            "protocols": ["v4.channel.k8s.io"],
            "streams": [["error", st("error")], ["stdin", st("stdin")], ["stdout", st("stdout")], ["stderr", st("stderr")]],
            "actions": [["send", "stdin", "spdy\n"], ["wait", "stderr", "err:spdy"], ["hangup"]],
        }),
    );
    assert!(out["streams"]["stdout"].as_str().unwrap().contains("got:spdy"), "{out}");
    std::thread::sleep(Duration::from_millis(300));
    wait_state(&mut c, &cid, "CONTAINER_RUNNING");

    let url = c.url("RuntimeService/Attach", attach.clone());
    let out = c.stream(
        &url,
        json!({ "protocols": ["v4.channel.k8s.io"], "actions": [["send", 0, "again\n"], ["wait", 1, "got:again"], ["send", 0, "quit\n"]] }),
    );
    assert!(!out["channels"]["1"].as_str().unwrap().contains("got:hello"), "only what came after the attach: {out}");
    // The container's end ends the attach, with Success.
    assert_eq!(error_status(&out), json!({ "metadata": {}, "status": "Success" }), "{out}");
    let st = wait_state(&mut c, &cid, "CONTAINER_EXITED");
    assert_eq!(st["status"]["exit_code"], 0, "{st}");
    let (code, _) = c.err("RuntimeService/Attach", attach);
    assert_eq!(code, "FAILED_PRECONDITION");
}

#[test]
fn cri_port_forward_over_websocket_and_spdy() {
    let tmp = TempDir::new("wharf-e2e-cri-pf");
    let (_d, sock) = cri_daemon(&tmp.0);
    let bridge = Bridge(format!("wcpf{}", unique("").chars().filter(char::is_ascii_digit).take(6).collect::<String>()));
    let n = std::process::id() % 180 + 20;
    write_cni_conf(&tmp.0, &bridge.0, &format!("10.{n}.178.0/24"));
    let mut c = CriClient::start(&sock);
    let image = c
        .ok("ImageService/PullImage", json!({ "image": { "image": registry().image("library/busybox:latest") } }))
        ["image_ref"]
        .as_str()
        .unwrap()
        .to_string();
    let logs = tmp.0.join("pods/pfpod");
    std::fs::create_dir_all(&logs).unwrap();
    let pod = pod_config("pfpod", "uid-pf-1", &logs, false);
    let sid = c.run_pod(&pod);
    // Listens on the pod's loopback only: nothing outside the pod reaches it but the forward.
    let cfg = container_config("web", &image, "exec httpd -f -p 127.0.0.1:8080 -h /etc", "web.log");
    let cid = c.create_container(&sid, &cfg, &pod);
    c.ok("RuntimeService/StartContainer", json!({ "container_id": cid }));
    wait_state(&mut c, &cid, "CONTAINER_RUNNING");

    let request = "GET /hostname HTTP/1.0\r\n\r\n";
    let mut out = Value::Null;
    let answered = wait_for(Duration::from_secs(20), || {
        let url = c.url("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid, "port": [8080] }));
        out = c.stream(&url, json!({ "protocols": ["v4.channel.k8s.io"], "actions": [["send", 0, request]] }));
        out["channels"]["0"].as_str().is_some_and(|t| t.contains("pfpod"))
    });
    assert!(answered, "no answer through the forward: {out}");
    assert_eq!(out["protocol"], "v4.channel.k8s.io");
    // Each channel starts with its port, little-endian (8080 = 0x1f90).
    assert_eq!(out["messages"][0], json!([0, "\u{90}\u{1f}"]), "{out}");
    assert_eq!(out["messages"][1], json!([1, "\u{90}\u{1f}"]), "{out}");
    assert!(out["channels"]["0"].as_str().unwrap().contains("200 OK"), "{out}");
    assert_eq!(out["closed"], true, "{out}");

    // Two ports from the query, one of them closed: its error channel says so.
    let url = c.url("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid }));
    let out = c.stream(
        &format!("{url}?port=8080&port=8081"),
        json!({ "protocols": ["v4.channel.k8s.io"], "actions": [["send", 0, request]] }),
    );
    assert!(out["channels"]["0"].as_str().unwrap().contains("pfpod"), "{out}");
    let err = out["channels"]["3"].as_str().unwrap();
    assert!(err.contains("error forwarding port 8081") && err.contains("refused"), "{out}");
    // The same over SPDY/3.1: a pair of streams per connection, with kubectl's headers.
    let url = c.url("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid, "port": [8080] }));
    let pf = |t: &str, port: u16, id: &str| json!({ "streamType": t, "port": port.to_string(), "requestID": id });
    let out = c.spdy(
        &url,
        json!({
            "protocols": ["portforward.k8s.io"],
            "streams": [["e0", pf("error", 8080, "0")], ["d0", pf("data", 8080, "0")],
                        ["e1", pf("error", 8081, "1")], ["d1", pf("data", 8081, "1")],
                        ["e2", pf("error", 8080, "2")], ["d2", pf("data", 8080, "2")]],
            "actions": [["send", "d0", request], ["send", "d2", request]],
            "until_fin": ["d0", "d1", "d2"],
        }),
    );
    assert_eq!(out["protocol"], "portforward.k8s.io", "{out}");
    assert!(out["streams"]["d0"].as_str().unwrap().contains("pfpod"), "{out}");
    assert!(out["streams"]["d2"].as_str().unwrap().contains("pfpod"), "{out}");
    assert!(out["streams"]["e1"].as_str().unwrap().contains("error forwarding port 8081"), "{out}");
    assert_eq!(out["streams"]["e0"].as_str().unwrap_or(""), "", "no error for a forward that worked: {out}");
    let url = c.url("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid, "port": [8080] }));
    assert_eq!(c.spdy(&url, json!({ "protocols": ["v4.channel.k8s.io"] }))["status"], 403);

    // No port at all is refused; so are bad ones.
    let url = c.url("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid }));
    assert_eq!(c.stream(&url, json!({ "protocols": ["v4.channel.k8s.io"] }))["status"], 400);
    let (code, _) = c.err("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid, "port": [70000] }));
    assert_eq!(code, "INVALID_ARGUMENT");
    let url = c.url("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid, "port": [8080] }));
    assert_eq!(c.stream(&url, json!({ "protocols": ["v5.channel.k8s.io"] }))["status"], 400);

    c.ok("RuntimeService/StopPodSandbox", json!({ "pod_sandbox_id": sid }));
    c.ok("RuntimeService/RemovePodSandbox", json!({ "pod_sandbox_id": sid }));
    let (code, _) = c.err("RuntimeService/PortForward", json!({ "pod_sandbox_id": sid, "port": [8080] }));
    assert_eq!(code, "NOT_FOUND");
}

/// kubectl (client-go's remotecommand and portforward clients, the ones kubelet's users run)
/// through a stand-in for the apiserver and kubelet in cri_client.py, which calls the CRI's
/// Exec and PortForward as kubelet does and relays the upgrade to the streaming URL.
#[test]
fn cri_kubectl_exec_and_port_forward() {
    assert!(
        Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success()),
        "kubectl is not installed"
    );
    let tmp = TempDir::new("wharf-e2e-cri-kubectl");
    let (_d, sock) = cri_daemon(&tmp.0);
    let port = 20000 + std::process::id() % 20000;
    // On the host's network: a page only this pod serves.
    let script = format!("mkdir /www && echo served-by-{port} >/www/id && exec httpd -f -p 127.0.0.1:{port} -h /www");
    let (mut c, sid, cid) = streaming_pod(&tmp.0, &sock, "kubepod", &script, json!({}));
    // A terminal container that waits to be sized, says its size and ends: for kubectl attach.
    let tty_script = r#"i=0; while [ "$(stty size)" != "20 70" ] && [ $i -lt 300 ]; do i=$((i+1)); sleep 0.1; done; echo size $(stty size); exit 0"#;
    let (tty_sid, tty_cid) = add_pod(&mut c, &tmp.0, "ttypod", tty_script, json!({ "tty": true, "stdin": true }));
    let pods = json!({
        "kubepod": { "sandbox": sid, "container": cid },
        "ttypod": { "sandbox": tty_sid, "container": tty_cid, "tty": true },
    });
    writeln!(c.stdin, "{}", json!({ "apiserver": pods })).unwrap();
    let mut answer = String::new();
    c.stdout.read_line(&mut answer).unwrap();
    let api: Value = serde_json::from_str(&answer).unwrap();
    let api_port = api["ok"]["port"].as_u64().unwrap_or_else(|| panic!("{answer}"));
    let kubeconfig = tmp.0.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:{api_port}\n\
             contexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n    namespace: default\n\
             current-context: t\nusers:\n- name: u\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let kubectl = |env: &[(&str, &str)], args: &[&str], input: Option<&str>| {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&kubeconfig).args(args);
        cmd.env("HOME", &tmp.0).envs(env.iter().copied());
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(i) = input {
            stdin.write_all(i.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    // WebSocket (kubectl's default since 1.30, v5.channel.k8s.io), then SPDY/3.1.
    for env in [vec![], vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")]] {
        let out = kubectl(&env, &["exec", "kubepod", "--", "sh", "-c", "echo out; echo err >&2; exit 3"], None);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(3), "{env:?}: {stdout} {stderr}");
        assert_eq!(stdout, "out\n", "{env:?}: {stderr}");
        assert!(stderr.contains("err"), "{env:?}: {stderr}");
        let out = kubectl(&env, &["exec", "-i", "kubepod", "--", "sh", "-c", "cat; echo done"], Some("one\ntwo\n"));
        assert!(out.status.success(), "{env:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\ndone\n", "{env:?}");
    }

    // A terminal: kubectl under script(1), on a pty sized 91x33, which kubectl sends on the
    // resize channel (WebSocket) or stream (SPDY) as the command starts.
    for env in [vec![], vec![("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")]] {
        let inner = format!(
            "stty cols 91 rows 33; kubectl --kubeconfig {} exec -it kubepod -- sh -c 'sleep 0.5; stty size; exit 4'",
            kubeconfig.display()
        );
        let out = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .env("HOME", &tmp.0)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("33 91"), "{env:?}: {text} {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(4), "{env:?}: {text}");
    }

    // kubectl attach -it: the container's terminal gets the size of kubectl's (the engine's
    // resize of the container), and the container's end ends the attach.
    let inner = format!("stty cols 70 rows 20; kubectl --kubeconfig {} attach -it ttypod", kubeconfig.display());
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env("HOME", &tmp.0)
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("size 20 70"), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    wait_state(&mut c, &tty_cid, "CONTAINER_EXITED");

    // Port-forward: a local port of kubectl's to the pod's. kubectl first asks for its
    // websocket form, SPDY tunnelled in WebSocket ("SPDY/3.1+portforward.k8s.io", which only
    // an apiserver unwraps); refused (400), it falls back to SPDY/3.1, as against a kubelet.
    for env in [vec![], vec![("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")]] {
        let local = 40000 + std::process::id() % 20000 + u32::from(env.is_empty());
        let mut pf = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["port-forward", "pod/kubepod", &format!("{local}:{port}")])
            .env("HOME", &tmp.0)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl port-forward");
        let mut body = String::new();
        let answered = wait_for(Duration::from_secs(20), || {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", local as u16)) else { return false };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(s, "GET /id HTTP/1.0\r\n\r\n");
            body.clear();
            let _ = std::io::Read::read_to_string(&mut s, &mut body);
            body.contains(&format!("served-by-{port}"))
        });
        let _ = pf.kill();
        let out = pf.wait_with_output().unwrap();
        assert!(
            answered,
            "{env:?}: no answer through kubectl port-forward: {body:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
