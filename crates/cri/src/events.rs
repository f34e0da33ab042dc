//! GetContainerEvents (kubelet's evented PLEG): the engine's container events of pods and
//! their containers as the CRI's, each with the status of the pod and its containers then.

use std::sync::Arc;

use prost::Message;
use tokio::sync::{broadcast, mpsc};

use crate::grpc::Status;
use crate::meta;
use crate::proto;
use crate::Cri;

// ContainerEventType
const CREATED: i32 = 0;
const STARTED: i32 = 1;
const STOPPED: i32 = 2;
const DELETED: i32 = 3;

impl Cri {
    /// A stream of events from now on, until the client goes away.
    pub(crate) fn container_events(self: &Arc<Self>) -> mpsc::Receiver<Result<Vec<u8>, Status>> {
        let (tx, rx) = mpsc::channel(64);
        let (_, mut sub) = self.engine.subscribe_events(None);
        let cri = self.clone();
        tokio::spawn(async move {
            loop {
                let ev = match sub.recv().await {
                    Ok(ev) => ev,
                    // A slow client misses events, as containerd's drops them; go on.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        log::warn!("cri: container events: {n} events dropped for a slow client");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if ev.kind != "container" {
                    continue;
                }
                let kind = match ev.action.as_str() {
                    "create" => CREATED,
                    "start" => STARTED,
                    "die" => STOPPED,
                    "destroy" => DELETED,
                    _ => continue,
                };
                let sandbox_id = match ev.attributes.get(meta::TYPE_LABEL).map(String::as_str) {
                    Some(meta::TYPE_SANDBOX) => ev.actor_id.clone(),
                    Some(meta::TYPE_CONTAINER) => {
                        ev.attributes.get(meta::SANDBOX_ID_LABEL).cloned().unwrap_or_default()
                    }
                    _ => continue,
                };
                let resp = cri.event_response(&ev.actor_id, kind, ev.time_nano, &sandbox_id).await;
                if tx.send(Ok(resp.encode_to_vec())).await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    async fn event_response(&self, id: &str, kind: i32, time: i64, sandbox_id: &str) -> proto::ContainerEventResponse {
        let pod = self
            .pod_sandbox_status(proto::PodSandboxIdRequest { pod_sandbox_id: sandbox_id.to_string(), verbose: false })
            .await
            .ok()
            .and_then(|r| r.status);
        let mut statuses = Vec::new();
        if let Ok(cs) = self.pod_containers(sandbox_id) {
            for c in cs {
                let req = proto::ContainerIdRequest { container_id: c.id.clone(), verbose: false };
                if let Ok(s) = self.container_status(req).await {
                    statuses.extend(s.status);
                }
            }
        }
        proto::ContainerEventResponse {
            container_id: id.to_string(),
            container_event_type: kind,
            created_at: time,
            pod_sandbox_status: pod,
            containers_statuses: statuses,
        }
    }
}
