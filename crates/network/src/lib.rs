//! Container networking on the kernel side, synchronous: network namespaces bind-mounted on
//! files, rtnetlink by hand (bridges, veth pairs, IPv4 and IPv6 addresses, routes), address
//! management and the nftables rules of wharf's own tables (`ip`, and `ip6` while a network
//! has IPv6). Knows nothing of containers or the daemon.

pub mod dns_wire;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod sandbox;

pub use ipam::{Ipv4Net, Ipv6Net, ParseNetError};
pub use netlink::NetlinkError;
pub use netns::NetnsError;
pub use nft::NftError;
pub use sandbox::{Attachment, BridgeConfig, SandboxError};

/// Writes a sysctl under /proc/sys (`net/ipv4/ip_forward`), leaving it as is when it already
/// holds the value. Under `net/` it is the calling thread's network namespace's.
pub fn sysctl(key: &str, value: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/{key}");
    if std::fs::read_to_string(&path).map(|v| v.trim() == value).unwrap_or(false) {
        return Ok(());
    }
    std::fs::write(&path, value)
}
