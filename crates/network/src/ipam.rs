//! Subnets and address allocation: parse `10.1.2.0/24` and `fd00:1::/64`, test overlaps (with
//! the host's IPv4 routes too), hand out the lowest free host address.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use wharf_types::ErrorKind;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseNetError {
    #[error("invalid CIDR address: {0}")]
    Invalid(String),
    #[error("no free address left in subnet {0}")]
    Exhausted(String),
}

impl ParseNetError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            ParseNetError::Invalid(_) => ErrorKind::InvalidArgument,
            ParseNetError::Exhausted(_) => ErrorKind::Conflict,
        }
    }
}

/// An address with a prefix length; `addr` may have host bits set (`172.17.0.1/16` names
/// both the gateway and its subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Ipv4Net {
    type Err = ParseNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseNetError::Invalid(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 32 || p.starts_with('+') {
            return Err(bad());
        }
        Ok(Ipv4Net { addr, prefix })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Ipv4Net {
    pub fn mask(&self) -> u32 {
        u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0)
    }

    /// The subnet itself: host bits cleared.
    pub fn network(&self) -> Ipv4Net {
        Ipv4Net { addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()), prefix: self.prefix }
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let p = self.prefix.min(other.prefix);
        let m = u32::MAX.checked_shl(32 - p as u32).unwrap_or(0);
        u32::from(self.addr) & m == u32::from(other.addr) & m
    }

    /// The first usable host address (Docker's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network().addr).wrapping_add(1))
    }

    /// The lowest address of the subnet that is neither the network, the broadcast, nor taken.
    pub fn allocate(&self, taken: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr, ParseNetError> {
        let start = u32::from(self.network().addr).wrapping_add(1);
        let end = u32::from(self.broadcast());
        (start..end).map(Ipv4Addr::from).find(|a| !taken.contains(a)).ok_or(ParseNetError::Exhausted(self.to_string()))
    }
}

/// An IPv6 address with a prefix length; `addr` may have host bits set (`fd00::1/64` names
/// both the gateway and its subnet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Net {
    pub addr: Ipv6Addr,
    pub prefix: u8,
}

impl FromStr for Ipv6Net {
    type Err = ParseNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseNetError::Invalid(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if prefix > 128 || p.starts_with('+') {
            return Err(bad());
        }
        Ok(Ipv6Net { addr, prefix })
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Ipv6Net {
    pub fn mask(&self) -> u128 {
        u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0)
    }

    /// The subnet itself: host bits cleared.
    pub fn network(&self) -> Ipv6Net {
        Ipv6Net { addr: Ipv6Addr::from(u128::from(self.addr) & self.mask()), prefix: self.prefix }
    }

    /// The highest address of the subnet (IPv6 has no broadcast: it is a host address).
    pub fn last(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr) & self.mask()
    }

    pub fn overlaps(&self, other: &Ipv6Net) -> bool {
        let p = self.prefix.min(other.prefix);
        let m = u128::MAX.checked_shl(128 - p as u32).unwrap_or(0);
        u128::from(self.addr) & m == u128::from(other.addr) & m
    }

    /// The address after the subnet's own (Docker's default gateway, `::1`).
    pub fn first_host(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.network().addr).wrapping_add(1))
    }

    /// The lowest address of `range` (a part of this subnet, or the subnet itself) that is
    /// neither this subnet's own address nor taken, as Docker's IPAM hands them out.
    pub fn allocate(&self, range: &Ipv6Net, taken: &BTreeSet<Ipv6Addr>) -> Result<Ipv6Addr, ParseNetError> {
        let zero = self.network().addr;
        let (first, last) = (u128::from(range.network().addr), u128::from(range.last()));
        // At most `taken.len() + 2` steps: every address skipped is the subnet's or taken.
        let mut a = first;
        loop {
            let ip = Ipv6Addr::from(a);
            if ip != zero && !taken.contains(&ip) {
                return Ok(ip);
            }
            if a == last {
                return Err(ParseNetError::Exhausted(self.to_string()));
            }
            a += 1;
        }
    }
}

/// The IPv4 destinations the host routes now (main table, from /proc/net/route), except the
/// default route and routes through `except_dev`.
pub fn host_routes(except_dev: &str) -> Vec<Ipv4Net> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else { return Vec::new() };
    parse_proc_route(&text, except_dev)
}

fn parse_proc_route(text: &str, except_dev: &str) -> Vec<Ipv4Net> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] == except_dev {
            continue;
        }
        let (Ok(dst), Ok(mask)) = (u32::from_str_radix(f[1], 16), u32::from_str_radix(f[7], 16)) else { continue };
        // The file prints the raw network-order word as a native integer.
        let dst = Ipv4Addr::from(dst.to_ne_bytes());
        let mask = u32::from_be_bytes(mask.to_ne_bytes());
        if mask == 0 {
            continue;
        }
        out.push(Ipv4Net { addr: dst, prefix: mask.count_ones() as u8 });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Option<(&str, u8)>)] = &[
            ("10.1.2.0/24", Some(("10.1.2.0", 24))),
            ("172.17.0.1/16", Some(("172.17.0.1", 16))),
            ("0.0.0.0/0", Some(("0.0.0.0", 0))),
            ("10.1.2.0", None),
            ("10.1.2.0/33", None),
            ("10.1.2/24", None),
            ("10.1.2.0/+8", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<Ipv4Net>().ok().map(|n| (n.addr.to_string(), n.prefix));
            assert_eq!(got, want.map(|(a, p)| (a.to_string(), p)), "{input}");
        }
    }

    #[test]
    fn allocation_skips_taken_network_and_broadcast() {
        let net: Ipv4Net = "10.9.8.0/30".parse().unwrap();
        let mut taken = BTreeSet::new();
        assert_eq!(net.allocate(&taken).unwrap(), Ipv4Addr::new(10, 9, 8, 1));
        taken.insert(Ipv4Addr::new(10, 9, 8, 1));
        assert_eq!(net.allocate(&taken).unwrap(), Ipv4Addr::new(10, 9, 8, 2));
        taken.insert(Ipv4Addr::new(10, 9, 8, 2));
        assert!(net.allocate(&taken).is_err());
    }

    #[test]
    fn overlaps_and_contains() {
        let a: Ipv4Net = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Net = "10.3.0.0/16".parse().unwrap();
        let c: Ipv4Net = "192.168.1.0/24".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!(b.contains(Ipv4Addr::new(10, 3, 200, 1)));
        assert_eq!("172.17.0.1/16".parse::<Ipv4Net>().unwrap().network().to_string(), "172.17.0.0/16");
        assert_eq!(b.broadcast(), Ipv4Addr::new(10, 3, 255, 255));
    }

    #[test]
    fn ipv6_parse_overlap_and_allocation() {
        let cases: &[(&str, Option<(&str, u8)>)] = &[
            ("fd00:1::/64", Some(("fd00:1::", 64))),
            ("fd00:1::1/64", Some(("fd00:1::1", 64))),
            ("::/0", Some(("::", 0))),
            ("fd00::/129", None),
            ("fd00::", None),
            ("10.0.0.0/8", None),
            ("fd00::/+64", None),
        ];
        for (input, want) in cases {
            let got = input.parse::<Ipv6Net>().ok().map(|n| (n.addr.to_string(), n.prefix));
            assert_eq!(got, want.map(|(a, p)| (a.to_string(), p)), "{input}");
        }
        let net: Ipv6Net = "fd00:1::1/64".parse().unwrap();
        assert_eq!(net.network().to_string(), "fd00:1::/64");
        assert_eq!(net.first_host().to_string(), "fd00:1::1");
        assert_eq!(net.last().to_string(), "fd00:1::ffff:ffff:ffff:ffff");
        assert!(net.overlaps(&"fd00:1::/48".parse().unwrap()));
        assert!(!net.overlaps(&"fd00:2::/64".parse().unwrap()));
        assert!(net.contains("fd00:1::abcd".parse().unwrap()) && !net.contains("fd00:2::1".parse().unwrap()));
        // The subnet's own address and the taken ones are skipped; the last one is a host.
        let small: Ipv6Net = "fd00:9::/126".parse().unwrap();
        let mut taken: BTreeSet<Ipv6Addr> = ["fd00:9::1".parse().unwrap()].into();
        assert_eq!(small.allocate(&small, &taken).unwrap().to_string(), "fd00:9::2");
        taken.insert("fd00:9::2".parse().unwrap());
        assert_eq!(small.allocate(&small, &taken).unwrap().to_string(), "fd00:9::3");
        taken.insert("fd00:9::3".parse().unwrap());
        assert!(small.allocate(&small, &taken).is_err());
        // From a range: its first address counts.
        let range: Ipv6Net = "fd00:1::100/120".parse().unwrap();
        assert_eq!(net.allocate(&range, &BTreeSet::new()).unwrap().to_string(), "fd00:1::100");
        // The whole space, with the top address taken: no overflow.
        let all: Ipv6Net = "::/0".parse().unwrap();
        let top: Ipv6Net = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128".parse().unwrap();
        let taken: BTreeSet<Ipv6Addr> = [top.addr].into();
        assert!(all.allocate(&top, &taken).is_err());
    }

    #[test]
    fn proc_route_lines() {
        let text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    wh0\t0000110A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_proc_route(text, "wh0");
        assert_eq!(routes, vec!["192.168.2.0/24".parse().unwrap()]);
    }
}
