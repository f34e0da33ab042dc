//! The daemon's network settings: dockerd's `bridge`, `bip`, `iptables`,
//! `default-address-pools`, `ipv6` and `fixed-cidr-v6`, and the options that apply to its
//! default bridge only; with the checks dockerd makes of them at its start.

use std::net::Ipv4Addr;

use wharf_network::{Ipv4Net, Ipv6Net};

use super::AddressPool;
use crate::EngineError;

/// The daemon's network settings (dockerd's `bridge`, `bip`, `iptables`).
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The default bridge's name.
    pub bridge: String,
    /// The bridge's address and subnet (`172.17.0.1/16`); chosen among free private ranges
    /// when not given.
    pub bip: Option<String>,
    /// Whether wharf writes nftables rules (masquerade, published ports).
    pub iptables: bool,
    /// dockerd's `default-address-pools`: where the default bridge (without `bip`) and user
    /// networks (without `--subnet`) get their subnets; empty means Docker's built-in pools.
    pub address_pools: Vec<AddressPool>,
    /// dockerd's `ipv6`: the default bridge is dual-stack (with `fixed_cidr_v6`).
    pub ipv6: bool,
    /// dockerd's `fixed-cidr-v6` (`fd00:1::/64`): the default bridge's IPv6 subnet; its first
    /// address is the bridge's, containers get the subnet plus their MAC address (a prefix of
    /// /80 or shorter) or the lowest free address. Without it, `ipv6` gives no addresses.
    pub fixed_cidr_v6: Option<String>,
    /// dockerd's settings that apply to the default bridge only (a user network takes the
    /// same as its driver options).
    pub default_bridge: DefaultBridgeOptions,
}

/// dockerd's `mtu`, `icc`, `ip`, `ip-masq`, `fixed-cidr` and `default-gateway`: what its
/// default bridge shows as the options `com.docker.network.driver.mtu`,
/// `com.docker.network.bridge.enable_icc`, `...host_binding_ipv4` and
/// `...enable_ip_masquerade`, and as the IPAM range and `DefaultGatewayIPv4` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBridgeOptions {
    /// The bridge's and its containers' interfaces' MTU; None is the kernel's 1500.
    pub mtu: Option<u32>,
    /// Containers on the default bridge may reach each other (otherwise only through links).
    pub icc: bool,
    /// The address ports published without one bind (None: every address).
    pub host_ip: Option<Ipv4Addr>,
    pub masquerade: bool,
    /// Where containers' addresses come from, inside the bridge's subnet.
    pub fixed_cidr: Option<Ipv4Net>,
    /// The containers' default route, instead of the bridge's address.
    pub default_gateway: Option<Ipv4Addr>,
}

impl Default for DefaultBridgeOptions {
    fn default() -> Self {
        DefaultBridgeOptions {
            mtu: None,
            icc: true,
            host_ip: None,
            masquerade: true,
            fixed_cidr: None,
            default_gateway: None,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            bridge: "wharf0".to_string(),
            bip: None,
            iptables: true,
            address_pools: Vec::new(),
            ipv6: false,
            fixed_cidr_v6: None,
            default_bridge: DefaultBridgeOptions::default(),
        }
    }
}

/// The MTUs a veth takes (the kernel's ETH_MIN_MTU and its maximum).
pub(super) const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

impl NetworkConfig {
    /// Checks what dockerd checks at its start: `fixed_cidr_v6` is an IPv6 subnet, the MTU one a
    /// veth can have, and, with `bip` given, `fixed_cidr` and `default_gateway` inside its subnet.
    pub fn check(&self) -> Result<(), EngineError> {
        if let Some(c) = &self.fixed_cidr_v6 {
            c.parse::<Ipv6Net>().map_err(|_| EngineError::Invalid(format!("invalid fixed-cidr-v6: {c}")))?;
        }
        if let Some(m) = self.default_bridge.mtu.filter(|m| !MTU_RANGE.contains(m)) {
            return Err(EngineError::Invalid(format!(
                "invalid mtu {m}: it must be from {} to {} (0 for the default, 1500)",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            )));
        }
        if let Some(bip) = &self.bip {
            let net: Ipv4Net =
                bip.parse().map_err(|e: wharf_network::ParseNetError| EngineError::Invalid(e.to_string()))?;
            self.check_in_bridge_subnet(net)?;
        }
        Ok(())
    }

    /// `fixed-cidr` and `default-gateway` must lie in the default bridge's subnet.
    pub(super) fn check_in_bridge_subnet(&self, bip: Ipv4Net) -> Result<(), EngineError> {
        let subnet = bip.network();
        if let Some(c) = self.default_bridge.fixed_cidr {
            if c.prefix < subnet.prefix || !subnet.contains(c.addr) {
                return Err(EngineError::Invalid(format!(
                    "fixed-cidr {c} is not inside the default bridge's subnet {subnet} (set bip to an address of a \
                     subnet that holds it)"
                )));
            }
        }
        if let Some(g) = self.default_bridge.default_gateway {
            if !subnet.contains(g) {
                return Err(EngineError::Invalid(format!(
                    "auxiliary address: (DefaultGatewayIPv4:{g}) must belong to the master pool: {subnet}"
                )));
            }
        }
        Ok(())
    }
}
