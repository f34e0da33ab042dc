//! Every daemon.json key dockerd 20.10 to 28 accepts, and what wharfd does with it: the one
//! table that decides whether a key is honoured, accepted with a warning that says what wharf
//! does instead, or refused with the reason. A dockerd flag of a key wharfd does not honour
//! (`--live-restore`, `--icc=false`, ...) goes through the same table (`passive_flags`).

/// What wharfd does with a daemon.json key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Read into [`crate::config::FileConfig`] and applied.
    Honoured,
    /// Accepted whatever its value; this line is logged once at start.
    Warned(&'static str),
    /// Accepted when its value (as text: `true`, `overlay2`, `{}`) is one of `values`, with the
    /// warning when there is one; refused with `why` otherwise.
    Only { values: &'static [&'static str], warn: Option<&'static str>, why: &'static str },
    /// Refused whatever its value.
    Refused(&'static str),
}

/// How a dockerd flag of a key that is not [`Support::Honoured`] is written on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// `--name`, `--name=true`, `--name=false`.
    Bool,
    /// `--name value` or `--name=value` (repeatable for list keys).
    Value,
}

pub struct Key {
    pub name: &'static str,
    /// The dockerd flag for this key, when dockerd has one (without the leading `--`).
    pub flag: Option<(&'static str, FlagKind)>,
    pub support: Support,
}

const fn key(name: &'static str, support: Support) -> Key {
    Key { name, flag: None, support }
}

const fn flag(name: &'static str, flag: &'static str, kind: FlagKind, support: Support) -> Key {
    Key { name, flag: Some((flag, kind)), support }
}

use FlagKind::{Bool, Value};
use Support::{Honoured, Only, Refused, Warned};

const IPV6_PARTLY: &str = "wharf's default bridge takes its IPv6 from ipv6 and fixed-cidr-v6 only; \
bip6, ip6tables and default-gateway-v6 are not applied (no IPv6 masquerade, as dockerd 20.10 without ip6tables)";
const NO_SWARM: &str = "wharf has no swarm mode; this swarm setting does nothing";
const NO_CONTAINERD: &str = "wharf does not use containerd: each container runs under its own wharf-shim";

/// The table. Honoured keys' flags are wharfd's own typed flags ([`crate::config::Flags`]).
pub const KEYS: &[Key] = &[
    // What wharf reads and applies.
    key("data-root", Honoured),
    key("exec-root", Honoured),
    key("hosts", Honoured),
    key("debug", Honoured),
    key("log-level", Honoured),
    key("registry-mirrors", Honoured),
    key("insecure-registries", Honoured),
    key("max-concurrent-downloads", Honoured),
    key("max-concurrent-uploads", Honoured),
    key("max-download-attempts", Honoured),
    key("cgroup-parent", Honoured),
    key("bridge", Honoured),
    key("bip", Honoured),
    key("iptables", Honoured),
    key("log-driver", Honoured),
    key("log-opts", Honoured),
    key("userns-remap", Honoured),
    key("default-address-pools", Honoured),
    key("dns", Honoured),
    key("dns-opts", Honoured),
    key("dns-search", Honoured),
    key("default-ulimits", Honoured),
    key("default-shm-size", Honoured),
    key("labels", Honoured),
    key("init", Honoured),
    key("no-new-privileges", Honoured),
    key("runtimes", Honoured),
    key("default-runtime", Honoured),
    key("seccomp-profile", Honoured),
    key("default-cgroupns-mode", Honoured),
    key("cpu-rt-period", Honoured),
    key("cpu-rt-runtime", Honoured),
    key("exec-opts", Honoured),
    key("pidfile", Honoured),
    key("group", Honoured),
    key("tls", Honoured),
    key("tlsverify", Honoured),
    key("tlscacert", Honoured),
    key("tlscert", Honoured),
    key("tlskey", Honoured),
    // `http-proxy`, `https-proxy`, `no-proxy`: passed through whole to where pulls use them.
    key("proxies", Honoured),
    key("metrics-addr", Honoured),
    // How long a stop waits for the API requests in flight (builds, pulls, pushes, ...):
    // wharf's containers outlive the daemon, so none is stopped.
    key("shutdown-timeout", Honoured),
    // wharf's own: the most a build may bring in.
    key("max-build-context", Honoured),
    // wharf's own: the Kubernetes CRI's socket, where its pods' CNI lives, and its streaming server.
    key("cri-socket", Honoured),
    key("cni-conf-dir", Honoured),
    key("cni-bin-dir", Honoured),
    key("cri-streaming-address", Honoured),
    key("cri-streaming-tlscert", Honoured),
    key("cri-streaming-tlskey", Honoured),
    // Accepted: wharf does the same thing, or something that makes the key moot.
    flag(
        "live-restore",
        "live-restore",
        Bool,
        Warned("live-restore: wharf's containers always outlive the daemon (each has its own shim); nothing to set"),
    ),
    flag(
        "storage-driver",
        "storage-driver",
        Value,
        Only {
            values: &["overlay2", "overlay"],
            warn: Some("storage-driver: wharf always keeps layers as overlayfs directories, as overlay2 does"),
            why: "wharf keeps layers only as overlayfs directories (overlay2)",
        },
    ),
    flag(
        "storage-opts",
        "storage-opt",
        Value,
        Only { values: &["[]"], warn: None, why: "no storage options apply to wharf's overlayfs layers" },
    ),
    flag("experimental", "experimental", Bool, Warned("experimental: wharf has no experimental features; ignored")),
    key("features", Warned("features: no feature flags apply to wharf; the builder is wharf's own Dockerfile builder")),
    key("builder", Warned("builder: wharf's build cache is pruned by `docker builder prune` only, not by this policy")),
    flag(
        "raw-logs",
        "raw-logs",
        Bool,
        Warned("raw-logs: wharfd's log lines always have full time stamps and no colours"),
    ),
    flag(
        "log-format",
        "log-format",
        Value,
        Only { values: &["text"], warn: None, why: "wharfd writes its log as text lines only" },
    ),
    flag(
        "userland-proxy",
        "userland-proxy",
        Bool,
        Warned("userland-proxy: published ports are forwarded by nftables rules only; there is no proxy process"),
    ),
    flag(
        "userland-proxy-path",
        "userland-proxy-path",
        Value,
        Warned("userland-proxy-path: published ports are forwarded by nftables rules only; there is no proxy process"),
    ),
    flag(
        "firewall-backend",
        "firewall-backend",
        Value,
        Only { values: &["nftables"], warn: None, why: "wharf writes its rules with nftables only, in its own table" },
    ),
    flag(
        "ip-forward",
        "ip-forward",
        Bool,
        Only { values: &["true"], warn: None, why: "wharf always enables net.ipv4.ip_forward for its bridges" },
    ),
    flag(
        "ip-forward-no-drop",
        "ip-forward-no-drop",
        Bool,
        Warned(
            "ip-forward-no-drop: wharf never sets the FORWARD chain's policy; its rules live in its own nftables table",
        ),
    ),
    key("ip-masq", Honoured),
    key("icc", Honoured),
    key("ip", Honoured),
    key("mtu", Honoured),
    key("fixed-cidr", Honoured),
    key("default-gateway", Honoured),
    key("ipv6", Honoured),
    key("fixed-cidr-v6", Honoured),
    flag("bip6", "bip6", Value, Warned(IPV6_PARTLY)),
    flag("ip6tables", "ip6tables", Bool, Warned(IPV6_PARTLY)),
    flag("default-gateway-v6", "default-gateway-v6", Value, Warned(IPV6_PARTLY)),
    flag(
        "allow-direct-routing",
        "allow-direct-routing",
        Bool,
        Warned("allow-direct-routing: wharf's rules only filter what they publish; direct routing is not blocked"),
    ),
    key("bridge-accept-fwmark", Warned("bridge-accept-fwmark: wharf's rules do not look at firewall marks")),
    flag(
        "host-gateway-ip",
        "host-gateway-ip",
        Value,
        Refused("not implemented: `host-gateway` in --add-host is always the network's gateway address"),
    ),
    key(
        "host-gateway-ips",
        Refused("not implemented: `host-gateway` in --add-host is always the network's gateway address"),
    ),
    flag(
        "default-network-opts",
        "default-network-opt",
        Value,
        Only { values: &["{}"], warn: None, why: "default options of network drivers are not implemented" },
    ),
    flag(
        "default-ipc-mode",
        "default-ipc-mode",
        Value,
        Only {
            values: &["private"],
            warn: None,
            why: "containers get a private IPC namespace unless they ask for another",
        },
    ),
    flag(
        "init-path",
        "init-path",
        Value,
        Warned("init-path: --init always runs wharf's own init (wharf-init), mounted as /sbin/docker-init"),
    ),
    flag(
        "api-cors-header",
        "api-cors-header",
        Value,
        Warned("api-cors-header: the API sends no CORS headers: browsers on other origins cannot call it"),
    ),
    flag(
        "oom-score-adjust",
        "oom-score-adjust",
        Value,
        Warned("oom-score-adjust: wharfd leaves its own oom_score_adj as it was started with"),
    ),
    flag(
        "allow-nondistributable-artifacts",
        "allow-nondistributable-artifacts",
        Value,
        Warned("allow-nondistributable-artifacts: wharf pushes every layer it has, foreign ones included"),
    ),
    key("disable-legacy-registry", Warned("disable-legacy-registry: registry v1 is gone from wharf as from dockerd")),
    flag(
        "cdi-spec-dirs",
        "cdi-spec-dir",
        Value,
        Warned("cdi-spec-dirs: CDI devices are not supported; containers asking for them are refused"),
    ),
    flag(
        "selinux-enabled",
        "selinux-enabled",
        Bool,
        Only { values: &["false"], warn: None, why: "wharf does not label containers for SELinux" },
    ),
    flag(
        "rootless",
        "rootless",
        Bool,
        Only { values: &["false"], warn: None, why: "wharfd runs as root; rootless mode is not implemented" },
    ),
    flag(
        "authorization-plugins",
        "authorization-plugin",
        Value,
        Refused("authorization plugins are not supported, and the API must not be served without the checks asked for"),
    ),
    flag("containerd", "containerd", Value, Warned(NO_CONTAINERD)),
    flag("containerd-namespace", "containerd-namespace", Value, Warned(NO_CONTAINERD)),
    flag("containerd-plugins-namespace", "containerd-plugins-namespace", Value, Warned(NO_CONTAINERD)),
    flag("cri-containerd", "cri-containerd", Bool, Warned(NO_CONTAINERD)),
    flag("swarm-default-advertise-addr", "swarm-default-advertise-addr", Value, Warned(NO_SWARM)),
    key("swarm-raft-heartbeat-tick", Warned(NO_SWARM)),
    key("swarm-raft-election-tick", Warned(NO_SWARM)),
    flag("network-control-plane-mtu", "network-control-plane-mtu", Value, Warned(NO_SWARM)),
    flag("node-generic-resources", "node-generic-resource", Value, Warned(NO_SWARM)),
    // Gone from dockerd itself.
    key("graph", Refused("replaced by data-root (and removed in Docker 23)")),
    key("cluster-store", Refused("removed in Docker 23; wharf has no cluster store")),
    key("cluster-store-opts", Refused("removed in Docker 23; wharf has no cluster store")),
    key("cluster-advertise", Refused("removed in Docker 23; wharf has no cluster store")),
];

pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// A JSON value as the table's `values` spell it: strings bare, everything else as JSON.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks one key against the table. `Ok(Some(line))`: accepted with that warning;
/// `Ok(None)`: accepted quietly (or honoured, the caller reads it); `Err`: refused.
pub fn check(name: &str, value: &serde_json::Value) -> Result<Option<&'static str>, String> {
    let Some(k) = find(name) else {
        return Err(format!("unknown key {name:?}: neither dockerd nor wharfd has it"));
    };
    match k.support {
        Honoured => Ok(None),
        Warned(w) => Ok(Some(w)),
        Refused(why) => Err(format!("{name:?} is not supported: {why}")),
        Only { values, warn, why } => {
            // `null` is "not set", as Go reads it.
            if value.is_null() || values.contains(&value_text(value).as_str()) {
                Ok(warn)
            } else {
                Err(format!("{name:?} = {} is not supported: {why}", value_text(value)))
            }
        }
    }
}

/// A passive flag's key and the value it gives that key.
pub type FlagValue = (&'static str, serde_json::Value);

/// The dockerd flags of keys wharfd does not honour, taken out of `args` before clap sees
/// them, as (key, value) pairs for [`check`]. A list key's flag may be given more than once.
pub fn passive_flags(args: Vec<String>) -> Result<(Vec<String>, Vec<FlagValue>), String> {
    let mut rest = Vec::new();
    let mut found = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(body) = arg.strip_prefix("--") else {
            rest.push(arg);
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        let Some(k) = KEYS.iter().find(|k| k.flag.is_some_and(|(f, _)| f == name)) else {
            rest.push(arg);
            continue;
        };
        let value = match k.flag.map(|(_, kind)| kind) {
            Some(Bool) => match inline.as_deref() {
                None | Some("true") => serde_json::Value::Bool(true),
                Some("false") => serde_json::Value::Bool(false),
                Some(v) => return Err(format!("--{name}={v}: expected true or false")),
            },
            _ => match inline.or_else(|| it.next()) {
                Some(v) => serde_json::Value::String(v),
                None => return Err(format!("--{name} needs a value")),
            },
        };
        found.push((k.name, value));
    }
    Ok((rest, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_flags_unique() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(!KEYS[..i].iter().any(|o| o.name == k.name), "{} twice", k.name);
            if let Some((f, _)) = k.flag {
                assert!(!KEYS[..i].iter().any(|o| o.flag.is_some_and(|(g, _)| g == f)), "--{f} twice");
            }
        }
    }

    #[test]
    fn honoured_keys_have_no_passive_flag_and_every_message_names_something() {
        for k in KEYS {
            match k.support {
                Honoured => assert!(k.flag.is_none(), "{}: an honoured key's flag is a typed one", k.name),
                Warned(w) => assert!(!w.is_empty()),
                Refused(why) => assert!(!why.is_empty()),
                Only { values, why, .. } => assert!(!values.is_empty() && !why.is_empty()),
            }
        }
    }

    #[test]
    fn check_follows_the_table() {
        use serde_json::json;
        assert_eq!(check("dns", &json!(["1.1.1.1"])), Ok(None));
        assert!(check("live-restore", &json!(true)).unwrap().unwrap().contains("outlive"));
        assert!(check("storage-driver", &json!("overlay2")).unwrap().is_some());
        let e = check("storage-driver", &json!("btrfs")).unwrap_err();
        assert!(e.contains("storage-driver") && e.contains("btrfs"), "{e}");
        assert_eq!(check("icc", &json!(false)), Ok(None));
        assert_eq!(check("ip-forward", &json!(true)), Ok(None));
        assert!(check("ip-forward", &json!(false)).unwrap_err().contains("ip_forward"));
        assert!(check("graph", &json!("/x")).unwrap_err().contains("data-root"));
        assert!(check("authorization-plugins", &json!(["authz"])).is_err());
        assert_eq!(check("ipv6", &json!(true)), Ok(None));
        assert!(check("ip6tables", &json!(true)).unwrap().unwrap().contains("IPv6"));
        assert!(check("no-such-key", &json!(1)).unwrap_err().contains("no-such-key"));
        assert_eq!(check("mtu", &json!(1400)), Ok(None));
    }

    #[test]
    fn passive_flags_are_taken_out() {
        let args = [
            "wharfd",
            "--live-restore",
            "-D",
            "--ip-forward=true",
            "--storage-driver",
            "overlay2",
            "--data-root",
            "/x",
        ];
        let (rest, found) = passive_flags(args.iter().map(|s| s.to_string()).collect()).unwrap();
        assert_eq!(rest, vec!["wharfd", "-D", "--data-root", "/x"]);
        assert_eq!(
            found,
            vec![
                ("live-restore", serde_json::json!(true)),
                ("ip-forward", serde_json::json!(true)),
                ("storage-driver", serde_json::json!("overlay2")),
            ]
        );
        assert!(passive_flags(vec!["wharfd".into(), "--ip-forward=maybe".into()]).is_err());
        assert!(passive_flags(vec!["wharfd".into(), "--userland-proxy-path".into()]).is_err());
    }
}
