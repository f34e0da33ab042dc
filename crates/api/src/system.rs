//! `/_ping`, `/version`, `/info`.

use hyper::{Method, Response, StatusCode};
use serde_json::json;
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

pub fn version(_ctx: &Ctx) -> Result<Response<Body>> {
    let v = env!("CARGO_PKG_VERSION");
    json(
        StatusCode::OK,
        &json!({
            "Platform": {"Name": "wharf"},
            "Components": [{
                "Name": "Engine",
                "Version": v,
                "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch(), "KernelVersion": kernel_version()}
            }],
            "Version": v,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
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
            "CgroupDriver": "cgroupfs",
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
            "DefaultRuntime": "wharf",
            "Runtimes": {"wharf": {"path": cfg.shim_path.display().to_string()}},
            "MemoryLimit": true,
            "SwapLimit": false,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "PidsLimit": true,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": cfg.registry_mirrors,
            },
            "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
            "Plugins": {"Volume": [], "Network": ["host", "none"], "Authorization": null, "Log": ["json-file"]},
            "SecurityOptions": if cfg.userns_remap.is_some() { vec!["name=userns"] } else { Vec::new() },
            "Warnings": [],
            "ExperimentalBuild": false,
            "Labels": [],
        }),
    )
}
