//! `/_ping`, `/version`, `/info`.

use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};
use wharf_engine::ListOptions;

use crate::body::Body;
use crate::router::{json, Ctx, Result};
use crate::{API_VERSION, MIN_API_VERSION};

pub fn ping(method: &Method) -> Response<Body> {
    let mut r = Response::new(if method == Method::HEAD { Body::empty() } else { Body::from_bytes("OK") });
    let h = r.headers_mut();
    h.insert("Content-Type", hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    h.insert("Cache-Control", hyper::header::HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert("Pragma", hyper::header::HeaderValue::from_static("no-cache"));
    // The classic builder's protocol (POST /build with a tar); clients then do not try BuildKit.
    h.insert("Builder-Version", hyper::header::HeaderValue::from_static("1"));
    r
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// What `GoVersion` says: wharf is not written in Go, and clients only show the field.
const GO_VERSION: &str = concat!("none (Rust ", env!("CARGO_PKG_RUST_VERSION"), "+)");

pub fn version(_ctx: &Ctx) -> Result<Response<Body>> {
    let v = env!("CARGO_PKG_VERSION");
    json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "wharf"},
            "Components": [{
                "Name": "Engine",
                "Version": v,
                "Details": {
                    "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch(),
                    "KernelVersion": kernel_version(), "BuildTime": "", "Experimental": "false", "GitCommit": "",
                    "GoVersion": GO_VERSION,
                }
            }],
            "Version": v,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": GO_VERSION,
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel_version(),
            "BuildTime": "",
        }),
    )
}

pub async fn info(ctx: &Ctx) -> Result<Response<Body>> {
    let e = &ctx.engine;
    let all = e.list_containers(&ListOptions { all: true, ..Default::default() })?;
    let running = all.iter().filter(|c| c.state.running && !c.state.paused).count();
    let paused = all.iter().filter(|c| c.state.paused).count();
    let images = e.list_images()?.len();
    let cfg = e.config();
    let runtimes = e.runtimes();
    let proxy = &cfg.proxy;
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        .map(|k| k * 1024)
        .unwrap_or(0);
    let hostname =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
        .unwrap_or_else(|| "Linux".to_string());
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { "2" } else { "1" };
    json(
        StatusCode::OK,
        &json!({
            "ID": "",
            "Containers": all.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": all.len() - running - paused,
            "Images": images,
            "Driver": "overlayfs",
            "DriverStatus": [["Backing Filesystem", "overlay snapshots"]],
            "DockerRootDir": cfg.data_root.display().to_string(),
            "CgroupDriver": cfg.cgroup_driver.as_str(),
            "CgroupVersion": cgroup_version,
            "KernelVersion": kernel_version(),
            "OperatingSystem": os,
            "OSType": "linux",
            "OSVersion": "",
            "Architecture": std::env::consts::ARCH,
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "MemTotal": mem_total,
            "Name": hostname,
            "ServerVersion": env!("CARGO_PKG_VERSION"),
            "LoggingDriver": "json-file",
            "DefaultRuntime": runtimes.default_name(),
            "Runtimes": runtimes.list(&cfg.shim_path.display().to_string()),
            "MemoryLimit": true,
            // What the host's cgroups can limit, as dockerd's sysinfo reads them.
            "SwapLimit": wharf_engine::cgroup_support().swap_limit,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "PidsLimit": true,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": registry_config(&e.registry_settings()),
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Authorization": null, "Log": ["json-file"]},
            "SecurityOptions": security_options(cfg, cgroup_version),
            "Warnings": null,
            "ExperimentalBuild": false,
            "Labels": ctx.engine.labels(),
            "Debug": log::log_enabled!(log::Level::Debug),
            "SystemTime": wharf_types::time::rfc3339_nanos(std::time::SystemTime::now()),
            "NFd": std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0),
            // Threads: wharfd's unit of concurrency, as goroutines are dockerd's.
            "NGoroutines": threads(),
            "NEventsListener": e.event_listeners(),
            "IPv4Forwarding": sysctl_on("net/ipv4/ip_forward"),
            "BridgeNfIptables": sysctl_on("net/bridge/bridge-nf-call-iptables"),
            "BridgeNfIp6tables": sysctl_on("net/bridge/bridge-nf-call-ip6tables"),
            "CPUSet": true,
            // dockerd reports the v1 files (its runc 1.1 writes no kernel limit either).
            "KernelMemory": wharf_engine::cgroup_support().kernel_memory,
            "KernelMemoryTCP": wharf_engine::cgroup_support().kernel_memory_tcp,
            "OomKillDisable": wharf_engine::oom_kill_disable_supported(),
            // Containers always outlive the daemon (their shims hold them).
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "wharf-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "GenericResources": null,
            "HttpProxy": proxy.http.as_ref().map(|p| p.masked()).unwrap_or_default(),
            "HttpsProxy": proxy.https.as_ref().map(|p| p.masked()).unwrap_or_default(),
            "NoProxy": proxy.no_proxy.given,
        }),
    )
}

/// `RegistryConfig`: Docker Hub and every insecure registry as an index config.
fn registry_config(cfg: &wharf_engine::RegistrySettings) -> Value {
    let mut index = serde_json::Map::new();
    index.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": cfg.registry_mirrors, "Secure": true, "Official": true}),
    );
    for r in &cfg.insecure_registries {
        index.insert(r.clone(), json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}));
    }
    json!({
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": ["127.0.0.0/8"],
        "IndexConfigs": index,
        "Mirrors": cfg.registry_mirrors,
    })
}

/// `SecurityOptions`, in dockerd's `name=…` form.
fn security_options(cfg: &wharf_engine::EngineConfig, cgroup_version: &str) -> Vec<String> {
    let mut out = Vec::new();
    if wharf_engine::apparmor::host_supports() {
        out.push("name=apparmor".to_string());
    }
    out.push("name=seccomp,profile=builtin".to_string());
    if cfg.userns_remap.is_some() {
        out.push("name=userns".into());
    }
    if cgroup_version == "2" {
        out.push("name=cgroupns".into());
    }
    out
}

fn sysctl_on(name: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/{name}")).is_ok_and(|v| v.trim() == "1")
}

fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").and_then(|n| n.trim().parse().ok())))
        .unwrap_or(0)
}
