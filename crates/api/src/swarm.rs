//! Swarm mode, which wharf does not run: every swarm endpoint answers as a dockerd that is not
//! in a swarm does, a 503 with dockerd's words, because clients test for exactly that
//! (docker-py's `leave_swarm(force=True)` treats it as done, test suites call it in every
//! tear-down). `init` and `join` say that wharf has no swarm mode.

use hyper::{Method, StatusCode};

use crate::error::ApiError;

const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

/// The answer to a swarm request, or `None` when the path is not one.
pub fn answer(method: &Method, segs: &[&str]) -> Option<ApiError> {
    let unavailable = |m: &str| Some(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m));
    match (method, segs) {
        (&Method::POST, ["swarm", "init" | "join"]) => unavailable(
            "swarm mode is not supported by wharf: it runs containers on one host (use Kubernetes through wharfd's CRI for more)",
        ),
        (&Method::POST, ["swarm", "leave"]) => unavailable(NOT_IN_A_SWARM),
        (_, ["swarm", ..]) => unavailable(NOT_A_MANAGER),
        (_, ["nodes" | "services" | "tasks" | "secrets" | "configs", ..]) => unavailable(NOT_A_MANAGER),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_paths_are_unavailable_with_dockerds_words() {
        let leave = answer(&Method::POST, &["swarm", "leave"]).unwrap();
        assert_eq!((leave.status, leave.message.as_str()), (StatusCode::SERVICE_UNAVAILABLE, NOT_IN_A_SWARM));
        for segs in [&["swarm"][..], &["nodes"], &["services", "x", "logs"], &["tasks"], &["secrets", "create"]] {
            let e = answer(&Method::GET, segs).unwrap();
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(e.message.starts_with("This node is not a swarm manager"), "{segs:?}");
        }
        assert!(answer(&Method::GET, &["containers", "json"]).is_none());
    }
}
