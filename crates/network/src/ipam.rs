//! IPv4 subnets and address allocation: parse `10.1.2.0/24`, test overlaps with the host's
//! routes, hand out the lowest free host address.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
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
    fn proc_route_lines() {
        let text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    wh0\t0000110A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_proc_route(text, "wh0");
        assert_eq!(routes, vec!["192.168.2.0/24".parse().unwrap()]);
    }
}
