//! The Swarm commands (`service`, `stack`, `node`, `secret`, `config`, `swarm`). wharfd is
//! never in a swarm, so what matters is what the docker CLI says against a daemon that is not:
//! each command makes the request the docker CLI makes first and reports the daemon's refusal
//! in its words. Against a daemon that is a swarm manager (a dockerd), the answer is that the
//! wharf CLI does not manage swarms. The commands' flags are not read: none changes which
//! request comes first.

use anyhow::Result;
use wharf_client::{Client, ClientError, SwarmObjects, SwarmProbe};

use crate::Exit;

/// The docker CLI's own refusal for `stack deploy` when `/info` says the daemon manages no swarm.
const NOT_A_MANAGER: &str = "this node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again";

/// `wharf GROUP ARGS...`.
pub fn run(client: &Client, group: &str, args: &[String]) -> Result<()> {
    let sub = args.first().map(String::as_str).unwrap_or("");
    if args.iter().any(|a| a == "--help") {
        println!(
            "Usage: wharf {group} {sub} [ARGS]\n\nAsks the daemon as `docker {group} {sub}` does first and reports its \
answer; wharfd is never in a swarm. The flags are docker's (`docker {group} {sub} --help`)."
        );
        return Ok(());
    }
    // The words after the subcommand that are not flags: names, `NAME=N`, files.
    let names: Vec<&str> = args.iter().skip(1).map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    let first = names.first().copied().unwrap_or("");
    let objects = match group {
        "node" => SwarmObjects::Nodes,
        "secret" => SwarmObjects::Secrets,
        "config" => SwarmObjects::Configs,
        _ => SwarmObjects::Services,
    };
    let (probe, prefix) = match (group, sub) {
        ("stack", "deploy") => {
            let info: serde_json::Value = client.info()?;
            if info["Swarm"]["ControlAvailable"] != true {
                return Err(Exit::new(1, format!("wharf: {NOT_A_MANAGER}")).into());
            }
            return unsupported();
        }
        ("stack", _) => (SwarmProbe::List(SwarmObjects::Services), String::new()),
        ("swarm", "init" | "join" | "leave" | "unlock") => {
            let force = args.iter().any(|a| a == "--force" || a == "-f" || a == "--force=true");
            (SwarmProbe::Action { verb: sub, force: sub == "leave" && force }, String::new())
        }
        ("swarm", "unlock-key") => (SwarmProbe::UnlockKey, "could not fetch unlock key: ".to_string()),
        ("swarm", _) => (SwarmProbe::Inspect, String::new()),
        (_, "ls" | "list") => (SwarmProbe::List(objects), String::new()),
        (_, "create") => (SwarmProbe::Create(objects), String::new()),
        ("service", "scale") => {
            let name = first.split_once('=').map(|(n, _)| n).unwrap_or(first);
            (SwarmProbe::Get(SwarmObjects::Services, name), format!("{name}: "))
        }
        ("node", "ps") if first.is_empty() => (SwarmProbe::Get(SwarmObjects::Nodes, "self"), String::new()),
        (_, "") => {
            return Err(
                Exit::new(1, format!("wharf: \"{group}\" requires a subcommand (see wharf {group} --help)")).into()
            )
        }
        (_, _) => (SwarmProbe::Get(objects, first), String::new()),
    };
    match client.swarm_probe(&probe) {
        Ok(_) => unsupported(),
        Err(e @ ClientError::Daemon { .. }) => {
            Err(Exit::new(1, format!("wharf: {prefix}Error response from daemon: {e}")).into())
        }
        Err(e) => Err(e.into()),
    }
}

fn unsupported() -> Result<()> {
    Err(Exit::new(
        1,
        "wharf: this daemon is a swarm manager; the wharf CLI does not manage swarms (use the docker CLI)".to_string(),
    )
    .into())
}
