//! A user network's bridge driver options (`com.docker.network.*`, `network create -o`) as
//! dockerd parses them, and the default bridge's as inspect shows them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::DefaultBridgeOptions;
use crate::EngineError;

/// Docker's option naming the bridge device of a network.
pub(super) const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const OPT_MTU: &str = "com.docker.network.driver.mtu";
const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
const OPT_HOST_IP: &str = "com.docker.network.bridge.host_binding_ipv4";

/// A bridge option's value as dockerd parses it, with its message for one it cannot.
fn parse_option<T>(
    options: &BTreeMap<String, String>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, EngineError> {
    match options.get(key) {
        None => Ok(None),
        Some(v) => {
            parse(v).map(Some).map_err(|why| EngineError::Invalid(format!("failed to parse {key} value: {v} ({why})")))
        }
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    // Go's strconv.ParseBool, which dockerd uses.
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("strconv.ParseBool: parsing {v:?}: invalid syntax")),
    }
}

/// `com.docker.network.driver.mtu`: None without it or at 0 (the kernel's 1500). A value out of
/// a veth's range is taken, as dockerd takes it, and refused when an endpoint is made.
pub(super) fn mtu_option(options: &BTreeMap<String, String>) -> Result<Option<u32>, EngineError> {
    let mtu = parse_option(options, OPT_MTU, |v| {
        v.parse::<i64>().map_err(|_| format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
    })?;
    Ok(mtu.filter(|m| *m != 0).map(|m| u32::try_from(m).unwrap_or(u32::MAX)))
}

/// `com.docker.network.bridge.enable_icc`: containers may reach each other (default true).
pub(super) fn icc_option(options: &BTreeMap<String, String>) -> bool {
    parse_option(options, OPT_ICC, parse_bool).ok().flatten().unwrap_or(true)
}

/// `com.docker.network.bridge.enable_ip_masquerade` (default true).
pub(super) fn masquerade_option(options: &BTreeMap<String, String>) -> bool {
    parse_option(options, OPT_MASQUERADE, parse_bool).ok().flatten().unwrap_or(true)
}

/// `com.docker.network.bridge.host_binding_ipv4`: the address ports published without one
/// bind; None for every address.
pub(super) fn host_ip_option(options: &BTreeMap<String, String>) -> Option<Ipv4Addr> {
    parse_option(options, OPT_HOST_IP, |v| v.parse::<Ipv4Addr>().map_err(|_| "nil ip".to_string()))
        .ok()
        .flatten()
        .filter(|a| !a.is_unspecified())
}

/// Refuses, as dockerd does at `network create`, a bridge option it cannot parse.
pub(super) fn check_options(options: &BTreeMap<String, String>) -> Result<(), EngineError> {
    mtu_option(options)?;
    parse_option(options, OPT_ICC, parse_bool)?;
    parse_option(options, OPT_MASQUERADE, parse_bool)?;
    parse_option(options, OPT_HOST_IP, |v| v.parse::<Ipv4Addr>().map(|_| ()).map_err(|_| "nil ip".to_string()))?;
    Ok(())
}

/// The default bridge's options as dockerd shows them, from its settings.
pub(super) fn default_bridge_options(bridge: &str, o: &DefaultBridgeOptions) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("com.docker.network.bridge.default_bridge".to_string(), "true".to_string()),
        (OPT_ICC.to_string(), o.icc.to_string()),
        (OPT_MASQUERADE.to_string(), o.masquerade.to_string()),
        (OPT_HOST_IP.to_string(), o.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED).to_string()),
        (OPT_BRIDGE_NAME.to_string(), bridge.to_string()),
        (OPT_MTU.to_string(), o.mtu.unwrap_or(1500).to_string()),
    ])
}
