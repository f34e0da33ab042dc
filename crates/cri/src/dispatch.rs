//! The method table: a request path to the service method that answers it, with Version,
//! Status and RuntimeConfig, which need nothing but the daemon itself.

use std::future::Future;

use prost::Message;

use std::sync::Arc;

use crate::grpc::{Code, Reply, Status};
use crate::proto;
use crate::Cri;

/// The CRI version this server speaks.
const API_VERSION: &str = "v1";

async fn unary<Req, Resp, Fut>(msg: &[u8], f: impl FnOnce(Req) -> Fut) -> Result<Vec<u8>, Status>
where
    Req: Message + Default,
    Resp: Message,
    Fut: Future<Output = Result<Resp, Status>>,
{
    let req = Req::decode(msg).map_err(|e| Status::invalid(format!("decode request: {e}")))?;
    Ok(f(req).await?.encode_to_vec())
}

/// Answers one call; an unknown path is `Unimplemented` (kubelet falls back for some).
pub async fn call(cri: &Arc<Cri>, path: &str, msg: &[u8]) -> Reply {
    if path == "/runtime.v1.RuntimeService/GetContainerEvents" {
        return match proto::Empty::decode(msg) {
            Ok(_) => Reply::Stream(cri.container_events()),
            Err(e) => Reply::Unary(Err(Status::invalid(format!("decode request: {e}")))),
        };
    }
    Reply::Unary(unary_call(cri, path, msg).await)
}

async fn unary_call(cri: &Cri, path: &str, msg: &[u8]) -> Result<Vec<u8>, Status> {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Err(Status::new(Code::Unimplemented, format!("no gRPC method at {path:?}")));
    };
    match (service, method) {
        ("runtime.v1.RuntimeService", m) => match m {
            "Version" => unary(msg, |r| cri.version(r)).await,
            "Status" => unary(msg, |r| cri.status(r)).await,
            "RuntimeConfig" => unary(msg, |_: proto::Empty| cri.runtime_config()).await,
            "UpdateRuntimeConfig" => unary(msg, |r| cri.update_runtime_config(r)).await,
            "RunPodSandbox" => unary(msg, |r| cri.run_pod_sandbox(r)).await,
            "StopPodSandbox" => unary(msg, |r| cri.stop_pod_sandbox(r)).await,
            "RemovePodSandbox" => unary(msg, |r| cri.remove_pod_sandbox(r)).await,
            "PodSandboxStatus" => unary(msg, |r| cri.pod_sandbox_status(r)).await,
            "ListPodSandbox" => unary(msg, |r| cri.list_pod_sandbox(r)).await,
            "CreateContainer" => unary(msg, |r| cri.create_container(r)).await,
            "StartContainer" => unary(msg, |r| cri.start_container(r)).await,
            "StopContainer" => unary(msg, |r| cri.stop_container(r)).await,
            "RemoveContainer" => unary(msg, |r| cri.remove_container(r)).await,
            "ListContainers" => unary(msg, |r| cri.list_containers(r)).await,
            "ContainerStatus" => unary(msg, |r| cri.container_status(r)).await,
            "ExecSync" => unary(msg, |r| cri.exec_sync(r)).await,
            "Exec" => unary(msg, |r| cri.exec(r)).await,
            "Attach" => unary(msg, |r| cri.attach(r)).await,
            "PortForward" => unary(msg, |r| cri.port_forward(r)).await,
            "ReopenContainerLog" => unary(msg, |r| cri.reopen_container_log(r)).await,
            "UpdateContainerResources" => unary(msg, |r| cri.update_container_resources(r)).await,
            "ContainerStats" => unary(msg, |r| cri.container_stats(r)).await,
            "ListContainerStats" => unary(msg, |r| cri.list_container_stats(r)).await,
            "PodSandboxStats" => unary(msg, |r| cri.pod_sandbox_stats(r)).await,
            "ListPodSandboxStats" => unary(msg, |r| cri.list_pod_sandbox_stats(r)).await,
            "ListMetricDescriptors" => unary(msg, |_: proto::Empty| cri.list_metric_descriptors()).await,
            "ListPodSandboxMetrics" => unary(msg, |_: proto::Empty| cri.list_pod_sandbox_metrics()).await,
            other => Err(unimplemented(service, other)),
        },
        ("runtime.v1.ImageService", m) => match m {
            "ListImages" => unary(msg, |r| cri.list_images(r)).await,
            "ImageStatus" => unary(msg, |r| cri.image_status(r)).await,
            "PullImage" => unary(msg, |r| cri.pull_image(r)).await,
            "RemoveImage" => unary(msg, |r| cri.remove_image(r)).await,
            "ImageFsInfo" => unary(msg, |_: proto::Empty| cri.image_fs_info()).await,
            other => Err(unimplemented(service, other)),
        },
        _ => Err(Status::new(Code::Unimplemented, format!("unknown service {service}"))),
    }
}

fn unimplemented(service: &str, method: &str) -> Status {
    Status::new(Code::Unimplemented, format!("{service}/{method} is not implemented by wharf"))
}

impl Cri {
    async fn version(&self, _: proto::VersionRequest) -> Result<proto::VersionResponse, Status> {
        Ok(proto::VersionResponse {
            version: "0.1.0".to_string(),
            runtime_name: "wharf".to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_string(),
            runtime_api_version: API_VERSION.to_string(),
        })
    }

    /// RuntimeReady always (the engine answers); NetworkReady while a CNI configuration with
    /// its plugins is present.
    async fn status(&self, r: proto::StatusRequest) -> Result<proto::StatusResponse, Status> {
        let cni = self.cni.clone();
        let network = tokio::task::spawn_blocking(move || cni.load())
            .await
            .map_err(|e| Status::internal(format!("cni task: {e}")))?;
        let net = match &network {
            Ok(_) => proto::RuntimeCondition { r#type: "NetworkReady".into(), status: true, ..Default::default() },
            Err(e) => proto::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: format!("Network plugin returns error: cni plugin not initialized: {e}"),
            },
        };
        let runtime = proto::RuntimeCondition { r#type: "RuntimeReady".into(), status: true, ..Default::default() };
        let mut info = proto::Map::new();
        if r.verbose {
            let v = serde_json::json!({
                "cniConfDir": self.config.cni_conf_dir,
                "cniBinDirs": self.config.cni_bin_dirs,
                "cniNetwork": network.as_ref().map(|l| l.name.clone()).ok(),
                "cniConfigFile": network.as_ref().map(|l| l.file.clone()).ok(),
                "socket": self.config.socket,
            });
            info.insert("config".into(), v.to_string());
        }
        Ok(proto::StatusResponse {
            status: Some(proto::RuntimeStatus { conditions: vec![runtime, net] }),
            info,
            runtime_handlers: vec![
                proto::RuntimeHandler { name: String::new() },
                proto::RuntimeHandler { name: "wharf".into() },
            ],
        })
    }

    /// kubelet's pod CIDR. containerd uses it only to fill a CNI config template, which wharf
    /// has not: the CNI configuration is the operator's, so the CIDR is only logged.
    async fn update_runtime_config(&self, r: proto::UpdateRuntimeConfigRequest) -> Result<proto::Empty, Status> {
        let cidr = r.runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr).unwrap_or_default();
        log::info!("cri: kubelet's pod CIDR is {cidr:?} (the CNI configuration in force is not changed)");
        Ok(proto::Empty {})
    }

    /// The daemon's cgroup driver, which kubelet (1.28 on) takes for its own, so that pods'
    /// slices or cgroups are named the way containers' cgroups will be made.
    async fn runtime_config(&self) -> Result<proto::RuntimeConfigResponse, Status> {
        let cgroup_driver = match self.engine.config().cgroup_driver {
            wharf_engine::CgroupDriver::Systemd => proto::CGROUP_DRIVER_SYSTEMD,
            wharf_engine::CgroupDriver::Cgroupfs => proto::CGROUP_DRIVER_CGROUPFS,
        };
        Ok(proto::RuntimeConfigResponse { linux: Some(proto::LinuxRuntimeConfiguration { cgroup_driver }) })
    }
}
