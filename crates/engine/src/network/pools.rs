//! Where networks' addresses come from: the address pools (`default-address-pools` or
//! Docker's built-in ones) that subnets are cut from, the default bridge's subnet choice, and
//! the IPv6 subnet and address helpers (dockerd's checks of `--ip6`, the default bridge's
//! MAC-derived addresses).

use std::net::{Ipv4Addr, Ipv6Addr};

use wharf_network::{Ipv4Net, Ipv6Net};

use super::networks::NetworkRecord;
use super::NetworkConfig;
use crate::EngineError;

/// The default bridge's IPv6 subnet (host bits cleared): `fixed_cidr_v6` when `ipv6` is on.
pub(crate) fn default_bridge_subnet6(config: &NetworkConfig) -> Option<Ipv6Net> {
    if !config.ipv6 {
        return None;
    }
    config.fixed_cidr_v6.as_deref()?.parse::<Ipv6Net>().ok().map(|n| n.network())
}

/// `--ip6` as dockerd reads it: an IPv6 address, not an IPv4 one in any form.
pub(crate) fn parse_ipv6(a: &str) -> Result<Ipv6Addr, EngineError> {
    match a.parse::<Ipv6Addr>() {
        Ok(ip) if ip.to_ipv4_mapped().is_none() => Ok(ip),
        _ => Err(EngineError::Invalid(format!("invalid IPv6 address: {a}"))),
    }
}

/// dockerd's check of an `--ip6` for a network: it must have an IPv6 subnet of the user's.
pub(crate) fn check_ipv6_configured(n: &NetworkRecord) -> Result<(), EngineError> {
    if n.subnet6.is_none() {
        return Err(EngineError::Invalid(
            "user specified IP address is supported only when connecting to networks with user configured subnets"
                .to_string(),
        ));
    }
    Ok(())
}

/// One entry of `default-address-pools`: subnets with a `size`-bit prefix carved out of `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl AddressPool {
    /// Checks a pool as dockerd does: a valid base, and a size between its prefix and /30.
    pub fn new(base: &str, size: u8) -> Result<AddressPool, EngineError> {
        let net: Ipv4Net = base.parse().map_err(|e: wharf_network::ParseNetError| {
            EngineError::Invalid(format!("address pool base {base}: {e}"))
        })?;
        if size < net.prefix || size > 30 {
            return Err(EngineError::Invalid(format!(
                "address pool {base}: size {size} must be between the base's prefix /{} and /30",
                net.prefix
            )));
        }
        Ok(AddressPool { base: net.network(), size })
    }

    /// Every subnet of the pool, lowest first.
    fn subnets(self) -> impl Iterator<Item = Ipv4Net> {
        let start = u64::from(u32::from(self.base.addr));
        let step = 1u64 << (32 - self.size);
        let count = 1u64 << (self.size - self.base.prefix);
        (0..count).map(move |i| Ipv4Net { addr: Ipv4Addr::from((start + i * step) as u32), prefix: self.size })
    }
}

/// The subnets wharf picks from, in order, for a network given none: the configured pools, or
/// Docker's built-in ones (172.17-31.0.0/16, then 192.168.0-240.0/20).
pub(crate) fn candidate_subnets(pools: &[AddressPool]) -> Box<dyn Iterator<Item = Ipv4Net> + '_> {
    if pools.is_empty() {
        let builtin = (17..=31u8)
            .map(|b| Ipv4Net { addr: Ipv4Addr::new(172, b, 0, 0), prefix: 16 })
            .chain((0..=240u8).step_by(16).map(|c| Ipv4Net { addr: Ipv4Addr::new(192, 168, c, 0), prefix: 20 }));
        return Box::new(builtin);
    }
    Box::new(pools.iter().flat_map(|p| p.subnets()))
}

/// Picks the default bridge's address: the configured one, else the first of Docker's default
/// pools that the host does not route.
pub(super) fn choose_bip(config: &NetworkConfig) -> Result<Ipv4Net, EngineError> {
    let routes = wharf_network::ipam::host_routes(&config.bridge);
    if let Some(bip) = &config.bip {
        let net: Ipv4Net =
            bip.parse().map_err(|e: wharf_network::ParseNetError| EngineError::Invalid(e.to_string()))?;
        if net.addr == net.network().addr || net.prefix > 30 {
            return Err(EngineError::Invalid(format!("bip {bip}: give the bridge's address, as 172.17.0.1/16")));
        }
        return Ok(net);
    }
    for c in candidate_subnets(&config.address_pools) {
        if !routes.iter().any(|r| r.overlaps(&c)) {
            return Ok(Ipv4Net { addr: c.first_host(), prefix: c.prefix });
        }
    }
    Err(EngineError::Internal(
        "no free subnet for the default bridge in the address pools: set bip or default-address-pools".to_string(),
    ))
}

/// dockerd's IPv6 address on the default bridge: the subnet with the MAC address in its
/// low 48 bits.
pub(super) fn mac_ipv6(subnet: Ipv6Net, mac: &[u8; 6]) -> Ipv6Addr {
    let low = mac.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    Ipv6Addr::from(u128::from(subnet.network().addr) | low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_as_dockerd_takes_and_makes_them() {
        for (a, ok) in [("fd00::5", true), ("::1", true), ("10.0.0.5", false), ("::ffff:10.0.0.5", false), ("x", false)]
        {
            assert_eq!(parse_ipv6(a).is_ok(), ok, "{a}");
        }
        assert_eq!(parse_ipv6("zz").unwrap_err().to_string(), "invalid IPv6 address: zz");
        // The default bridge's: the subnet with the MAC address in the low 48 bits.
        let subnet: Ipv6Net = "fd42:99::/64".parse().unwrap();
        assert_eq!(mac_ipv6(subnet, &[0x02, 0x42, 0x0a, 0x5a, 0, 2]).to_string(), "fd42:99::242:a5a:2");
        let config = NetworkConfig { ipv6: true, fixed_cidr_v6: Some("fd42:99::1/64".into()), ..Default::default() };
        assert_eq!(default_bridge_subnet6(&config).unwrap().to_string(), "fd42:99::/64");
        assert_eq!(default_bridge_subnet6(&NetworkConfig { ipv6: false, ..config.clone() }), None);
        assert!(NetworkConfig { fixed_cidr_v6: Some("10.0.0.0/8".into()), ..config }.check().is_err());
    }

    #[test]
    fn address_pools_are_cut_in_order() {
        let pool = AddressPool::new("10.9.0.0/16", 24).unwrap();
        let subnets: Vec<String> = pool.subnets().take(3).map(|n| n.to_string()).collect();
        assert_eq!(subnets, ["10.9.0.0/24", "10.9.1.0/24", "10.9.2.0/24"]);
        assert_eq!(pool.subnets().count(), 256);
        // A base given with host bits is taken as its network.
        assert_eq!(AddressPool::new("10.9.3.7/16", 16).unwrap().subnets().collect::<Vec<_>>().len(), 1);
        for (base, size) in [("10.9.0.0/16", 15), ("10.9.0.0/16", 31), ("10.9.0.0", 24), ("x", 24)] {
            assert!(AddressPool::new(base, size).is_err(), "{base} {size}");
        }
        let two = [pool, AddressPool::new("192.168.50.0/24", 25).unwrap()];
        let all: Vec<String> = candidate_subnets(&two).skip(255).map(|n| n.to_string()).collect();
        assert_eq!(all, ["10.9.255.0/24", "192.168.50.0/25", "192.168.50.128/25"]);
        let builtin: Vec<String> = candidate_subnets(&[]).take(2).map(|n| n.to_string()).collect();
        assert_eq!(builtin, ["172.17.0.0/16", "172.18.0.0/16"]);
    }
}
