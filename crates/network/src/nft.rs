//! wharf's nftables table: outbound masquerade per network, DNAT of published ports, and
//! forward rules that isolate networks from each other and keep `--internal` ones inside.
//!
//! The whole table is rendered from the daemon's state and replaced in one `nft -f -`
//! transaction, so rules never drift from the state and a crashed daemon's rules are simply
//! rewritten at the next start. The host's own tables are never touched.
//!
//! While a network has IPv6, a second table of the same name in the `ip6` family goes with
//! it in the same transaction: DNAT of published ports to the containers' IPv6 addresses
//! (except those asked on `::1`, which no packet may carry off the loopback device: the
//! daemon proxies them), hairpin masquerade, and the same isolation rules. Like dockerd
//! 20.10 (whose `ip6tables` is off by default), no outbound masquerade for IPv6.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use wharf_types::ErrorKind;

use crate::{Ipv4Net, Ipv6Net};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("run nft: {0}")]
    Spawn(std::io::Error),
    #[error("nft rejected the rules of table {table}: {message}")]
    Rejected { table: String, message: String },
}

impl NftError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Checks an interface name that wharf creates or names in rules: what the kernel accepts
/// (1 to 15 bytes, not `.` or `..`, no `/`, `:` or white space), narrowed to ASCII letters,
/// digits, `_`, `-` and `.` so that the name can never change the meaning of the nft text it
/// is written into (a `"` or `;` in a name once made `nft -f` reject wharf's whole
/// table, and every later `-p` failed).
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!("invalid interface name {name:?}: it must be 1 to 15 characters long"));
    }
    if name == "." || name == ".." {
        return Err(format!("invalid interface name {name:?}"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!(
            "invalid interface name {name:?}: {c:?} is not allowed (use letters, digits, '_', '-' and '.')"
        ));
    }
    Ok(())
}

/// One bridge network as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// The IPv6 subnet of a dual-stack network.
    pub subnet6: Option<Ipv6Net>,
    /// No route out: traffic only between the network's own containers.
    pub internal: bool,
    pub masquerade: bool,
    /// Containers of the network may talk to each other (`enable_icc`, dockerd's `icc`); when
    /// not, only what a [`LinkRule`] lets through passes between them.
    pub icc: bool,
    /// The host ends of the network's veths, the bridge's ports (read without `icc` only).
    pub members: Vec<String>,
}

/// What a legacy link opens between two containers of a bridge without inter-container
/// traffic, as dockerd does: the linking container (`client`) reaches one exposed port of the
/// linked one (`server`), and the answers come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRule {
    pub bridge: String,
    pub client: std::net::Ipv4Addr,
    pub server: std::net::Ipv4Addr,
    pub proto: String,
    pub port: u16,
}

/// A published port: traffic to `host_ip:host_port` (any local address of the family when
/// `host_ip` is unspecified) goes to `container_ip:container_port`. The family of
/// `container_ip` says which table the rule goes to; a `host_ip` of the other family leaves
/// the rule out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: String,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub networks: Vec<NetRules>,
    pub ports: Vec<PortRule>,
    pub links: Vec<LinkRule>,
}

impl Ruleset {
    /// The script that replaces table `ip <table>` with these rules.
    ///
    /// Only names that pass [`check_ifname`] reach the text: a network whose bridge name does
    /// not (a record from before names were checked) is left out of the rules, with a warning,
    /// rather than breaking the table for every other network.
    pub fn render(&self, table: &str) -> String {
        let networks: Vec<&NetRules> = self
            .networks
            .iter()
            .filter(|n| match check_ifname(&n.bridge) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!("nft: network left out of table {table}: {e}");
                    false
                }
            })
            .collect();
        let ports: Vec<&PortRule> =
            self.ports.iter().filter(|p| matches!(p.proto.as_str(), "tcp" | "udp" | "sctp")).collect();
        let mut s = String::new();
        // Creating first makes the delete succeed whether or not the table existed.
        s.push_str(&format!("table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n"));
        s.push_str("  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n");
        for n in &networks {
            let (br, net) = (&n.bridge, n.subnet.network());
            // Published ports reached on 127.0.0.1 leave through the bridge with a loopback
            // source (route_localnet); the container must see the gateway instead.
            s.push_str(&format!("    oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade\n"));
            // Hairpin: a container reaching a published port through a host address.
            s.push_str(&format!("    oifname \"{br}\" ip saddr {net} ct status dnat masquerade\n"));
            if n.masquerade && !n.internal {
                s.push_str(&format!("    ip saddr {net} oifname != \"{br}\" masquerade\n"));
            }
        }
        s.push_str("  }\n");
        s.push_str("  chain ports {\n");
        for p in &ports {
            let IpAddr::V4(cip) = p.container_ip else { continue };
            let daddr = match p.host_ip {
                Some(IpAddr::V6(_)) => continue,
                Some(IpAddr::V4(a)) if !a.is_unspecified() => format!("ip daddr {a} "),
                _ => String::new(),
            };
            s.push_str(&format!(
                "    {daddr}{proto} dport {hp} dnat to {cip}:{cp}\n",
                proto = p.proto,
                hp = p.host_port,
                cp = p.container_port
            ));
        }
        s.push_str("  }\n");
        s.push_str(NAT_HOOKS);
        s.push_str(&forward_chain(&networks));
        s.push_str("}\n");
        let v6: Vec<&&NetRules> = networks.iter().filter(|n| n.subnet6.is_some()).collect();
        if !v6.is_empty() {
            s.push_str(&format!("table ip6 {table} {{}}\ndelete table ip6 {table}\ntable ip6 {table} {{\n"));
            s.push_str("  chain postrouting {\n    type nat hook postrouting priority 100; policy accept;\n");
            for n in &v6 {
                let Some(net) = n.subnet6.map(|s| s.network()) else { continue };
                s.push_str(&format!("    oifname \"{}\" ip6 saddr {net} ct status dnat masquerade\n", n.bridge));
            }
            s.push_str("  }\n");
            s.push_str("  chain ports {\n");
            for p in &ports {
                let IpAddr::V6(cip) = p.container_ip else { continue };
                // No packet leaves the loopback device with a loopback address (the kernel
                // drops them whatever NAT does afterwards): `::1` is the daemon's to proxy.
                let daddr = match p.host_ip {
                    Some(IpAddr::V4(_)) => continue,
                    Some(IpAddr::V6(a)) if a.is_loopback() => continue,
                    Some(IpAddr::V6(a)) if !a.is_unspecified() => format!("ip6 daddr {a} "),
                    _ => "ip6 daddr != ::1 ".to_string(),
                };
                s.push_str(&format!(
                    "    {daddr}{proto} dport {hp} dnat to [{cip}]:{cp}\n",
                    proto = p.proto,
                    hp = p.host_port,
                    cp = p.container_port
                ));
            }
            s.push_str("  }\n");
            s.push_str(NAT_HOOKS);
            s.push_str(&forward_chain(&networks));
            s.push_str("}\n");
        }
        if networks.iter().any(|n| !n.icc) {
            s.push_str(&self.bridge_table(table, &networks));
        }
        s
    }

    /// The `bridge` family table: traffic between two ports of a bridge without
    /// inter-container traffic is dropped, except what a link lets through. dockerd drops it in
    /// iptables' FORWARD chain, which sees bridged frames only while `br_netfilter` is loaded;
    /// the bridge family's forward hook sees them always. Ports are named by their veths (the
    /// kernels here lack `meta ibrname`), so the table follows every endpoint of such a network.
    fn bridge_table(&self, table: &str, networks: &[&NetRules]) -> String {
        let mut s = format!("table bridge {table} {{}}\ndelete table bridge {table}\ntable bridge {table} {{\n");
        s.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
        for n in networks.iter().filter(|n| !n.icc) {
            let members: Vec<String> =
                n.members.iter().filter(|m| check_ifname(m).is_ok()).map(|m| format!("\"{m}\"")).collect();
            if members.len() < 2 {
                continue;
            }
            let on = format!("iifname {{ {set} }} oifname {{ {set} }}", set = members.join(", "));
            for l in self.links.iter().filter(|l| l.bridge == n.bridge) {
                if !matches!(l.proto.as_str(), "tcp" | "udp" | "sctp") {
                    continue;
                }
                let (c, v, p, port) = (l.client, l.server, &l.proto, l.port);
                s.push_str(&format!("    {on} ip saddr {c} ip daddr {v} {p} dport {port} accept\n"));
                s.push_str(&format!("    {on} ip saddr {v} ip daddr {c} {p} sport {port} accept\n"));
            }
            s.push_str(&format!("    {on} ether type {{ ip, ip6 }} drop\n"));
        }
        s.push_str("  }\n}\n");
        s
    }

    /// Whether the rules need the `ip6` table.
    pub fn has_ipv6(&self) -> bool {
        self.networks.iter().any(|n| n.subnet6.is_some())
    }

    /// Whether the rules need the `bridge` table (a network without inter-container traffic).
    pub fn has_bridge_rules(&self) -> bool {
        self.networks.iter().any(|n| !n.icc && check_ifname(&n.bridge).is_ok())
    }

    pub fn apply(&self, table: &str) -> Result<(), NftError> {
        run(table, &self.render(table))
    }
}

const NAT_HOOKS: &str = "  chain prerouting {\n    type nat hook prerouting priority -100; policy accept;\n    fib daddr type local jump ports\n  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump ports\n  }\n";

/// The forward chain, the same in both families: an `--internal` network's bridge carries
/// only its own traffic, and no network forwards to another's bridge.
fn forward_chain(networks: &[&NetRules]) -> String {
    let mut s = String::from("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    for n in networks {
        let br = &n.bridge;
        if n.internal {
            s.push_str(&format!("    iifname \"{br}\" oifname != \"{br}\" drop\n"));
            s.push_str(&format!("    oifname \"{br}\" iifname != \"{br}\" drop\n"));
        }
        for m in networks {
            if m.bridge != n.bridge {
                s.push_str(&format!("    iifname \"{br}\" oifname \"{}\" drop\n", m.bridge));
            }
        }
    }
    s.push_str("  }\n");
    s
}

/// Removes the table; a table that is not there is not an error.
pub fn delete_table(table: &str) -> Result<(), NftError> {
    run(table, &format!("table ip {table} {{}}\ndelete table ip {table}\n"))
}

/// Removes the `ip6` table of that name; a table that is not there is not an error.
pub fn delete_table6(table: &str) -> Result<(), NftError> {
    run(table, &format!("table ip6 {table} {{}}\ndelete table ip6 {table}\n"))
}

/// Removes the `bridge` table of that name; a table that is not there is not an error.
pub fn delete_table_bridge(table: &str) -> Result<(), NftError> {
    run(table, &format!("table bridge {table} {{}}\ndelete table bridge {table}\n"))
}

fn run(table: &str, script: &str) -> Result<(), NftError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(NftError::Spawn)?;
    }
    let out = child.wait_with_output().map_err(NftError::Spawn)?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().lines().next().unwrap_or("").to_string();
        return Err(NftError::Rejected { table: table.to_string(), message });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn nft_accepts(script: &str) {
        // The kernel's parser accepts it (check mode changes nothing).
        if let Ok(mut child) =
            Command::new("nft").args(["-c", "-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn()
        {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes()).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}\n{script}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn dual_stack_rules_go_to_an_ip6_table_of_the_same_name() {
        let c6: Ipv6Addr = "fd00:7::2".parse().unwrap();
        let port = |host_ip: Option<&str>, container_ip: IpAddr, host_port: u16| PortRule {
            proto: "tcp".into(),
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port,
            container_ip,
            container_port: 80,
        };
        let r = Ruleset {
            networks: vec![
                NetRules {
                    bridge: "wh0".into(),
                    subnet: "10.7.0.1/24".parse().unwrap(),
                    subnet6: Some("fd00:7::1/64".parse().unwrap()),
                    internal: false,
                    masquerade: true,
                    icc: true,
                    members: vec![],
                },
                NetRules {
                    bridge: "wh1".into(),
                    subnet: "10.8.0.0/24".parse().unwrap(),
                    subnet6: None,
                    internal: false,
                    masquerade: true,
                    icc: true,
                    members: vec![],
                },
            ],
            ports: vec![
                port(Some("0.0.0.0"), IpAddr::V4(Ipv4Addr::new(10, 7, 0, 2)), 8080),
                port(Some("::"), IpAddr::V6(c6), 8080),
                port(Some("::1"), IpAddr::V6(c6), 8081),
                port(Some("fd00:99::5"), IpAddr::V6(c6), 8082),
                // A v6 host address for a v4 container (or the other way): no rule.
                port(Some("::"), IpAddr::V4(Ipv4Addr::new(10, 7, 0, 2)), 8083),
                port(Some("127.0.0.1"), IpAddr::V6(c6), 8084),
            ],
            links: vec![],
        };
        assert!(r.has_ipv6());
        let s = r.render("wharf");
        let (v4, v6) = s.split_once("table ip6 wharf {}\ndelete table ip6 wharf\n").unwrap();
        assert!(v4.contains("    tcp dport 8080 dnat to 10.7.0.2:80\n"), "{v4}");
        assert!(!v4.contains("8083") && !v4.contains("8084") && !v4.contains("fd00"), "{v4}");
        assert!(v6.contains("    ip6 daddr != ::1 tcp dport 8080 dnat to [fd00:7::2]:80\n"), "{v6}");
        assert!(v6.contains("    ip6 daddr fd00:99::5 tcp dport 8082 dnat to [fd00:7::2]:80\n"), "{v6}");
        assert!(!v6.contains("8081") && !v6.contains("8083") && !v6.contains("8084"), "{v6}");
        assert!(v6.contains("oifname \"wh0\" ip6 saddr fd00:7::/64 ct status dnat masquerade"), "{v6}");
        // No outbound masquerade for IPv6 (dockerd 20.10 has none with ip6tables off).
        assert!(!v6.contains("oifname != \"wh0\" masquerade"), "{v6}");
        assert!(
            v6.contains("iifname \"wh0\" oifname \"wh1\" drop") && v6.contains("iifname \"wh1\" oifname \"wh0\" drop")
        );
        nft_accepts(&s);
    }

    #[test]
    fn renders_masquerade_ports_and_isolation() {
        let r = Ruleset {
            networks: vec![
                NetRules {
                    bridge: "wh0".into(),
                    subnet: "10.7.0.1/24".parse().unwrap(),
                    subnet6: None,
                    internal: false,
                    masquerade: true,
                    icc: true,
                    members: vec![],
                },
                NetRules {
                    bridge: "wh1".into(),
                    subnet: "10.8.0.0/24".parse().unwrap(),
                    subnet6: None,
                    internal: true,
                    masquerade: true,
                    icc: true,
                    members: vec![],
                },
            ],
            ports: vec![PortRule {
                proto: "tcp".into(),
                host_ip: None,
                host_port: 8080,
                container_ip: IpAddr::V4(Ipv4Addr::new(10, 7, 0, 2)),
                container_port: 80,
            }],
            links: vec![],
        };
        let s = r.render("wharf");
        assert!(!s.contains("ip6"), "no IPv6 network, no ip6 table: {s}");
        assert!(s.starts_with("table ip wharf {}\ndelete table ip wharf\n"));
        assert!(s.contains("ip saddr 10.7.0.0/24 oifname != \"wh0\" masquerade"));
        assert!(!s.contains("ip saddr 10.8.0.0/24 oifname != \"wh1\" masquerade"));
        assert!(s.contains("    tcp dport 8080 dnat to 10.7.0.2:80\n"));
        assert!(s.contains("iifname \"wh0\" oifname \"wh1\" drop"));
        assert!(s.contains("iifname \"wh1\" oifname != \"wh1\" drop"));
        nft_accepts(&s);
    }

    // Regression: issue 13, "A network option breaks port publishing for everyone".
    #[test]
    fn interface_names_that_could_change_the_rules_are_refused_and_never_rendered() {
        for bad in ["a\"b", "br;x", "br{", "", "0123456789abcdef", "..", "a b", "a/b", "a:b", "bré"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
        for good in ["docker0", "br-0123456789a", "wh_0.1", "x"] {
            assert!(check_ifname(good).is_ok(), "{good:?}");
        }
        let net = |bridge: &str| NetRules {
            bridge: bridge.into(),
            subnet: "10.9.0.1/24".parse().unwrap(),
            subnet6: None,
            internal: false,
            masquerade: true,
            icc: true,
            members: vec![],
        };
        let rules = Ruleset { networks: vec![net("ok0"), net("x\";}{")], ports: vec![], links: vec![] };
        let s = rules.render("t");
        assert!(s.contains("\"ok0\"") && !s.contains("x\";"), "{s}");
    }

    #[test]
    fn without_icc_a_bridge_table_drops_what_no_link_opens() {
        let net = |bridge: &str, icc: bool, members: &[&str]| NetRules {
            bridge: bridge.into(),
            subnet: "10.9.0.1/24".parse().unwrap(),
            subnet6: None,
            internal: false,
            masquerade: true,
            icc,
            members: members.iter().map(|m| m.to_string()).collect(),
        };
        let link = LinkRule {
            bridge: "wh0".into(),
            client: Ipv4Addr::new(10, 9, 0, 3),
            server: Ipv4Addr::new(10, 9, 0, 2),
            proto: "tcp".into(),
            port: 80,
        };
        let with =
            Ruleset { networks: vec![net("wh0", true, &["va", "vb"])], ports: vec![], links: vec![link.clone()] };
        assert!(!with.has_bridge_rules());
        assert!(!with.render("t").contains("table bridge"));
        let without = Ruleset {
            networks: vec![net("wh0", false, &["va", "vb", "v\"x"]), net("wh1", true, &["vc", "vd"])],
            ports: vec![],
            links: vec![link],
        };
        assert!(without.has_bridge_rules());
        let s = without.render("t");
        let (_, bridge) = s.split_once("table bridge t {}\ndelete table bridge t\n").unwrap();
        let on = "iifname { \"va\", \"vb\" } oifname { \"va\", \"vb\" }";
        let open = format!("{on} ip saddr 10.9.0.3 ip daddr 10.9.0.2 tcp dport 80 accept");
        let back = format!("{on} ip saddr 10.9.0.2 ip daddr 10.9.0.3 tcp sport 80 accept");
        let drop = format!("{on} ether type {{ ip, ip6 }} drop");
        let (o, b, d) = (bridge.find(&open), bridge.find(&back), bridge.find(&drop));
        assert!(o.is_some() && b.is_some() && d.is_some() && o < d && b < d, "{bridge}");
        assert!(!bridge.contains("vc") && !bridge.contains("v\"x"), "{bridge}");
        nft_accepts(&s);
        // A network of one container has nothing to drop yet.
        let alone = Ruleset { networks: vec![net("wh0", false, &["va"])], ports: vec![], links: vec![] };
        assert!(!alone.render("t").contains("drop\n  }\n}\n"));
    }
}
