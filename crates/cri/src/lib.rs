//! The Kubernetes CRI (`runtime.v1.RuntimeService` and `runtime.v1.ImageService`) as a second
//! front door onto the engine: gRPC on a unix socket of its own (`grpc.rs`), the messages
//! (`proto.rs`), and the services, which only call the engine's public API.
//!
//! A pod sandbox is an engine container running wharf's own pause process (`pause.rs`: no
//! image is pulled for it); it holds the pod's network, IPC and (when shared) pid namespaces,
//! which the pod's containers, ordinary engine containers too, join (`container:<sandbox>`
//! modes). Both carry dockershim's names and `io.kubernetes.*` labels, so `docker ps` shows
//! them, and their CRI metadata in one label (`io.wharf.cri`) of the engine's own record:
//! what the CRI knows of a pod or container is written in the same transaction as the record,
//! and survives a restart or `kill -9` with it. The one thing kept beside it is what CNI gave
//! a sandbox (`cni.rs`), written when ADD succeeded and removed after DEL.

mod cni;
mod container;
mod dispatch;
mod events;
mod grpc;
mod image;
mod logs;
mod meta;
mod metrics;
mod pause;
mod proto;
mod sandbox;
mod stats;
mod streaming;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use wharf_engine::Engine;

pub use grpc::{Code, Status};

/// Where the CRI listens and where it finds CNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriConfig {
    /// The gRPC socket (`--cri-socket`).
    pub socket: PathBuf,
    /// CNI network configurations (`--cni-conf-dir`, default `/etc/cni/net.d`).
    pub cni_conf_dir: PathBuf,
    /// CNI plugin executables (`--cni-bin-dir`, default `/opt/cni/bin`; more than one is
    /// searched in order, as CNI_PATH).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Where the streaming server of Exec, Attach and PortForward listens
    /// (`--cri-streaming-address`, default 127.0.0.1 with a port the kernel picks).
    pub streaming_addr: SocketAddr,
    /// The streaming server's PEM certificate and key (`--cri-streaming-tlscert`/`-tlskey`):
    /// streams are then served over TLS and their URLs are `https://`.
    pub streaming_tls: Option<(PathBuf, PathBuf)>,
}

impl CriConfig {
    pub fn new(socket: PathBuf) -> CriConfig {
        CriConfig {
            socket,
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin")],
            streaming_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            streaming_tls: None,
        }
    }
}

/// The CRI service state: the engine and what lives only while wharfd runs (log copiers).
pub struct Cri {
    engine: Engine,
    config: CriConfig,
    cni: cni::Cni,
    logs: logs::LogCopiers,
    /// Serializes making the pause image.
    pause_lock: tokio::sync::Mutex<()>,
    /// The previous CPU sample of each container, for nano-cores.
    cpu_samples: stats::CpuSamples,
    /// Serializes the CRI's changes of one sandbox with its containers' (run, stop, remove).
    sandbox_lock: tokio::sync::Mutex<()>,
    /// The streaming server's address and one-time tokens.
    streaming: streaming::Streaming,
}

impl Cri {
    fn state_dir(&self) -> PathBuf {
        self.engine.config().data_root.join("cri")
    }
}

/// Binds the socket (replacing a stale one) and the streaming server's address, re-adopts what the CRI had running (log copiers
/// of running containers) and serves until the returned task is aborted.
pub async fn start(engine: Engine, config: CriConfig) -> Result<tokio::task::JoinHandle<()>, String> {
    let path = config.socket.clone();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("remove stale socket {}: {e}", path.display())),
    }
    let listener =
        tokio::net::UnixListener::bind(&path).map_err(|e| format!("listen on cri socket {}: {e}", path.display()))?;
    // kubelet runs as root: the socket is root's alone, as containerd's.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", path.display()))?;
    }
    let stream_listener = tokio::net::TcpListener::bind(config.streaming_addr)
        .await
        .map_err(|e| format!("listen for cri streams on {}: {e}", config.streaming_addr))?;
    let stream_addr = stream_listener.local_addr().map_err(|e| format!("address of the cri streaming server: {e}"))?;
    let stream_tls = match &config.streaming_tls {
        Some((cert, key)) => {
            Some(wharf_tls::server_config(cert, key).map_err(|e| format!("cri streaming server: {e:#}"))?)
        }
        None => None,
    };
    let streaming = streaming::Streaming::new(stream_addr, stream_tls.is_some());
    let cri = Arc::new(Cri {
        cni: cni::Cni::new(config.cni_conf_dir.clone(), config.cni_bin_dirs.clone()),
        engine,
        config,
        logs: logs::LogCopiers::default(),
        cpu_samples: stats::CpuSamples::default(),
        pause_lock: tokio::sync::Mutex::new(()),
        sandbox_lock: tokio::sync::Mutex::new(()),
        streaming,
    });
    cri.recover_logs();
    log::info!("cri listening on {}, streams on {} (bound to {stream_addr})", path.display(), cri.streaming.base());
    // One task for both servers, so that aborting it stops both.
    Ok(tokio::spawn(async move {
        tokio::join!(grpc::serve(listener, cri.clone()), streaming::serve(stream_listener, cri, stream_tls));
    }))
}
