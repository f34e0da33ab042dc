//! IPv6 on user-defined networks end to end, as dockerd 20.10 does it: `network create --ipv6`
//! with an IPv6 subnet beside the IPv4 one, containers with an IPv6 address each (the lowest
//! free, or `--ip6`), reaching each other over IPv6 by name (AAAA answers of the embedded DNS),
//! the host reaching them, a published port on `::` as well (DNAT, and `[::1]` through the
//! daemon's proxy), `network connect --ip6`, addresses and routes surviving daemon restarts, the
//! errors of the usual mistakes, and inspect and errors compared with a private dockerd's.
//! Each test's ULA /64s are its daemon's own (`subnet6_for`, numbered as the IPv4 /24s), and
//! the host is checked for what they could leave: routes, and the `ip6` nftables table.

use std::net::{Ipv6Addr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::dockerd::Dockerd;
use crate::harness::{free_port, registry, Cli, Daemon, Output};
use crate::network_user::subnet_for;

/// A ULA /64 of this daemon's own, numbered as `subnet_for` numbers its IPv4 /24s (the harness
/// gives each daemon a unique `--bip`): `fd57:A:C:OFFSET::/64`, and the prefix to write its
/// addresses with (`fd57:A:C:OFFSET::`).
pub(crate) fn subnet6_for(d: &Daemon, offset: u8) -> (String, String) {
    let (v4, _) = subnet_for(d, offset);
    let parts: Vec<&str> = v4.split(['.', '/']).collect();
    let prefix = format!("fd57:{}:{}:{offset}::", parts[1], parts[2]);
    (format!("{prefix}/64"), prefix)
}

const SERVE: &str = "echo hello-$HOSTNAME > /tmp/index.html && exec httpd -f -p 80 -h /tmp";

/// GET `/index.html` from `addr` (`127.0.0.1:80`, `[::1]:80`), retried while the server comes
/// up; the answer or the last error.
fn http_get(addr: &str) -> Result<String, String> {
    crate::network::http_get(addr, "/index.html")
}

/// A global IPv6 address of the host's own (not one of a bridge), usable now.
fn host_global_v6() -> Option<Ipv6Addr> {
    let text = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (hex, scope, flags, dev) = (f.first()?, f.get(3)?, f.get(4)?, f.get(5)?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        // Global scope; not tentative (0x40), deprecated (0x20) or failed DAD (0x08).
        let usable = *scope == "00" && flags & 0x68 == 0;
        let ours = dev.starts_with("br-") || dev.starts_with("whe") || dev.starts_with("veth") || *dev == "lo";
        if !usable || ours {
            return None;
        }
        Some(Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?))
    })
}

fn net_of<'a>(v: &'a Value, net: &str) -> &'a Value {
    &v["NetworkSettings"]["Networks"][net]
}

fn ip6_of(d: &Daemon, cli: Cli, name: &str, net: &str) -> String {
    net_of(&d.inspect(cli, name), net)["GlobalIPv6Address"].as_str().unwrap_or_default().to_string()
}

/// The answers `nslookup` prints after the name (busybox prints the server's address first).
fn answers(out: &Output, name: &str) -> Vec<String> {
    out.stdout
        .split(&format!("Name:\t{name}"))
        .skip(1)
        .filter_map(|a| a.split("Address: ").nth(1))
        .filter_map(|a| a.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// What a test's networks must not leave once its daemon is gone: routes of their IPv6
/// subnets, and the daemon's `ip6` table. (The harness checks bridges, veths and the `ip`
/// table.)
fn assert_no_ipv6_left(bridge: &str, subnets: &[&str]) {
    let mut leaks = Vec::new();
    for s in subnets {
        let out = std::process::Command::new("ip").args(["-6", "route", "show", s]).output();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !text.trim().is_empty() {
                leaks.push(format!("route left behind: {text}"));
            }
        }
    }
    let table = format!("wharf_{bridge}");
    if let Ok(out) = std::process::Command::new("nft").args(["list", "tables"]).output() {
        if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == format!("table ip6 {table}")) {
            leaks.push(format!("nftables table left behind: ip6 {table}"));
            let _ = std::process::Command::new("nft").args(["delete", "table", "ip6", &table]).status();
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
}

fn dual_stack_containers_reach_each_other_by_name(cli: Cli) {
    let mut d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (s4, p4) = subnet_for(&d, 1);
    let (s6, p6) = subnet6_for(&d, 1);
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "dual"]).ok();
    let net = d.cli(cli, &["network", "inspect", "dual"]).ok().json();
    assert_eq!(net[0]["EnableIPv6"], true, "{net}");
    // The IPv6 pool as dockerd shows it: as given, no gateway when none was.
    assert_eq!(net[0]["IPAM"]["Config"][1], json!({"Subnet": s6}), "{net}");
    assert_eq!(net[0]["IPAM"]["Config"][0]["Subnet"], s4.as_str(), "{net}");
    d.cli(cli, &["run", "-d", "--name", "srv", "--hostname", "srv", "--network", "dual", &bb, "sh", "-c", SERVE]).ok();
    let fixed = format!("{p6}99");
    d.cli(cli, &["run", "-d", "--name", "fixed", "--network", "dual", "--ip6", &fixed, &bb, "sleep", "300"]).ok();
    let srv = d.inspect(cli, "srv");
    let ep = net_of(&srv, "dual");
    assert_eq!(ep["GlobalIPv6Address"], format!("{p6}2").as_str(), "{ep}");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64, "{ep}");
    assert_eq!(ep["IPv6Gateway"], format!("{p6}1").as_str(), "{ep}");
    assert!(ep["IPAddress"].as_str().unwrap_or_default().starts_with(&format!("{p4}.")), "{ep}");
    assert_eq!(net_of(&d.inspect(cli, "fixed"), "dual")["IPAMConfig"], json!({"IPv6Address": fixed}));
    let net = d.cli(cli, &["network", "inspect", "dual"]).ok().json();
    let listed: Vec<&str> = net[0]["Containers"]
        .as_object()
        .map(|m| m.values().filter_map(|c| c["IPv6Address"].as_str()).collect())
        .unwrap_or_default();
    assert!(listed.contains(&format!("{p6}2/64").as_str()) && listed.contains(&format!("{fixed}/64").as_str()));
    let check = |d: &Daemon, when: &str| {
        let addr = d.cli(cli, &["exec", "fixed", "ip", "-6", "addr", "show", "eth0"]);
        let line = addr.stdout.lines().find(|l| l.contains(&format!("{fixed}/64"))).unwrap_or_default().to_string();
        assert!(!line.is_empty() && !line.contains("tentative"), "{when}: {addr}");
        let route = d.cli(cli, &["exec", "fixed", "ip", "-6", "route"]);
        assert!(route.stdout.contains(&format!("default via {p6}1 dev eth0")), "{when}: {route}");
        let aaaa = d.cli(cli, &["exec", "fixed", "nslookup", "-type=AAAA", "srv"]);
        assert_eq!(answers(&aaaa, "srv"), [format!("{p6}2")], "{when}: {aaaa}");
        let both = d.cli(cli, &["exec", "fixed", "nslookup", "srv.dual"]);
        let got = answers(&both, "srv.dual");
        assert!(got.iter().any(|a| a.starts_with(&format!("{p4}."))) && got.contains(&format!("{p6}2")), "{both}");
        let ping = d.cli(cli, &["exec", "fixed", "ping", "-6", "-c", "1", "-W", "3", "srv"]);
        assert!(ping.success() && ping.stdout.contains(&format!("{p6}2")), "{when}: {ping}");
        let get = d.cli(cli, &["exec", "fixed", "wget", "-q", "-O", "-", &format!("http://[{p6}2]/")]);
        assert!(get.stdout.contains("hello-srv"), "{when}: {get}");
        // The host reaches the container's IPv6 address through the bridge.
        let got = http_get(&format!("[{p6}2]:80"));
        assert!(got.as_deref().is_ok_and(|b| b.contains("hello-srv")), "{when}: {got:?}");
    };
    check(&d, "started");
    let hosts = d.cli(cli, &["exec", "fixed", "cat", "/etc/hosts"]);
    assert!(hosts.stdout.lines().any(|l| l.starts_with(&format!("{fixed}\t"))), "{hosts}");
    d.restart();
    check(&d, "after a graceful restart");
    d.kill9();
    d.restart();
    check(&d, "after kill -9");
    // A container started now takes the next free address, not one still in use.
    d.cli(cli, &["run", "-d", "--name", "third", "--network", "dual", &bb, "sleep", "300"]).ok();
    assert_eq!(ip6_of(&d, cli, "third", "dual"), format!("{p6}3"));
    d.cli(cli, &["rm", "-f", "srv", "fixed", "third"]).ok();
    d.cli(cli, &["network", "rm", "dual"]).ok();
    let bridge = d.bridge.clone();
    drop(d);
    assert_no_ipv6_left(&bridge, &[&s6]);
}
both!(dual_stack_containers_reach_each_other_by_name);

/// `-p` on a dual-stack network publishes on `0.0.0.0` and `::` at the same host port, as
/// dockerd 20.10 does: reached on 127.0.0.1, on `[::1]` (which no NAT can carry: the daemon
/// proxies it) and on the host's own IPv6 address; `[::1]:P:80` on IPv6 only.
fn published_port_on_both_families(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (s4, _) = subnet_for(&d, 2);
    let (s6, _) = subnet6_for(&d, 2);
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "pub"]).ok();
    let port = free_port();
    let spec = format!("{port}:80");
    d.cli(
        cli,
        &["run", "-d", "--name", "web", "--hostname", "web", "--network", "pub", "-p", &spec, &bb, "sh", "-c", SERVE],
    )
    .ok();
    let ports = d.inspect(cli, "web")["NetworkSettings"]["Ports"]["80/tcp"].clone();
    let p = port.to_string();
    assert_eq!(ports, json!([{"HostIp": "0.0.0.0", "HostPort": p}, {"HostIp": "::", "HostPort": p}]));
    for addr in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let got = http_get(&addr);
        assert!(got.as_deref().is_ok_and(|b| b.contains("hello-web")), "{addr}: {got:?}");
    }
    if let Some(h6) = host_global_v6() {
        let addr = format!("[{h6}]:{port}");
        let got = http_get(&addr);
        assert!(got.as_deref().is_ok_and(|b| b.contains("hello-web")), "{addr}: {got:?}");
    }
    // A port left to the daemon: the same one in both families.
    d.cli(
        cli,
        &["run", "-d", "--name", "any", "--hostname", "any", "--network", "pub", "-p", "80", &bb, "sh", "-c", SERVE],
    )
    .ok();
    let ports = d.inspect(cli, "any")["NetworkSettings"]["Ports"]["80/tcp"].clone();
    let hp = ports[0]["HostPort"].as_str().unwrap_or_default().to_string();
    assert_eq!(ports, json!([{"HostIp": "0.0.0.0", "HostPort": hp}, {"HostIp": "::", "HostPort": hp}]));
    let got = http_get(&format!("[::1]:{hp}"));
    assert!(got.as_deref().is_ok_and(|b| b.contains("hello-any")), "{got:?}");
    // On the IPv6 loopback only.
    let lo = free_port();
    let spec = format!("[::1]:{lo}:80");
    d.cli(
        cli,
        &["run", "-d", "--name", "lo6", "--hostname", "lo6", "--network", "pub", "-p", &spec, &bb, "sh", "-c", SERVE],
    )
    .ok();
    let ports = d.inspect(cli, "lo6")["NetworkSettings"]["Ports"]["80/tcp"].clone();
    assert_eq!(ports, json!([{"HostIp": "::1", "HostPort": lo.to_string()}]));
    let got = http_get(&format!("[::1]:{lo}"));
    assert!(got.as_deref().is_ok_and(|b| b.contains("hello-lo6")), "{got:?}");
    assert!(TcpStream::connect_timeout(&format!("127.0.0.1:{lo}").parse().unwrap(), Duration::from_secs(2)).is_err());
    // Gone with the containers: rules, proxies and the ports' reservations.
    d.cli(cli, &["rm", "-f", "web", "any", "lo6"]).ok();
    for addr in [format!("[::1]:{port}"), format!("[::1]:{lo}")] {
        assert!(TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err(), "{addr}");
    }
    let table = format!("wharf_{}", d.bridge);
    let rules = std::process::Command::new("nft").args(["list", "table", "ip6", &table]).output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains(&format!("dport {port}")), "{rules}");
    d.cli(cli, &["network", "rm", "pub"]).ok();
    let bridge = d.bridge.clone();
    drop(d);
    assert_no_ipv6_left(&bridge, &[&s6]);
}
both!(published_port_on_both_families);

/// A container on an IPv4-only network connected to a dual-stack one with `--ip6`: its new
/// interface has that address and carries both default routes (a dual-stack network comes
/// first in dockerd's order, so the IPv4 one moves to it too, as with dockerd), and another
/// dual-stack network stays out of its reach; disconnected, the address and the IPv6 route go,
/// the IPv4 route goes back, and its /etc/hosts follows.
fn connect_with_ip6(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, pa) = subnet_for(&d, 3);
    let (sb, _) = subnet_for(&d, 4);
    let (s6, p6) = subnet6_for(&d, 4);
    d.cli(cli, &["network", "create", "--subnet", &sa, "only4"]).ok();
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &sb, "--subnet", &s6, "dual"]).ok();
    d.cli(cli, &["run", "-d", "--name", "box", "--network", "only4", &bb, "sleep", "300"]).ok();
    let addr = format!("{p6}77");
    d.cli(cli, &["network", "connect", "--ip6", &addr, "dual", "box"]).ok();
    let a = d.cli(cli, &["exec", "box", "ip", "-6", "addr", "show", "eth1"]);
    assert!(a.stdout.contains(&format!("{addr}/64")), "{a}");
    let r6 = d.cli(cli, &["exec", "box", "ip", "-6", "route"]);
    assert!(r6.stdout.contains(&format!("default via {p6}1 dev eth1")), "{r6}");
    let (_, pb) = subnet_for(&d, 4);
    let r4 = d.cli(cli, &["exec", "box", "ip", "route"]);
    assert!(r4.stdout.contains(&format!("default via {pb}.1 dev eth1")), "{r4}");
    assert_eq!(net_of(&d.inspect(cli, "box"), "dual")["IPAMConfig"]["IPv6Address"], addr.as_str());
    let hosts = d.cli(cli, &["exec", "box", "cat", "/etc/hosts"]);
    assert!(hosts.stdout.contains(&format!("{addr}\t")), "{hosts}");
    // Another dual-stack network is out of reach over IPv6 too (`box` has a route, through
    // `dual`'s gateway: the host forwards IPv6, and its rules keep the networks apart).
    let (sc, _) = subnet_for(&d, 5);
    let (s6c, p6c) = subnet6_for(&d, 5);
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &sc, "--subnet", &s6c, "other"]).ok();
    d.cli(cli, &["run", "-d", "--name", "far", "--network", "other", &bb, "sleep", "300"]).ok();
    let far = format!("{p6c}2");
    let near = d.cli(cli, &["run", "--rm", "--network", "other", &bb, "ping", "-6", "-c", "1", "-W", "3", &far]);
    assert!(near.success(), "{near}");
    let across = d.cli(cli, &["exec", "box", "ping", "-6", "-c", "1", "-W", "2", &far]);
    assert!(!across.success(), "{across}");
    d.cli(cli, &["rm", "-f", "far"]).ok();
    d.cli(cli, &["network", "rm", "other"]).ok();
    // Taken now, by `box`.
    d.cli(cli, &["run", "--rm", "--network", "dual", "--ip6", &addr, &bb, "true"])
        .fails()
        .mentions(&["Address already in use"]);
    d.cli(cli, &["network", "disconnect", "dual", "box"]).ok();
    let r6 = d.cli(cli, &["exec", "box", "ip", "-6", "route"]);
    assert!(!r6.stdout.contains("default"), "{r6}");
    let r4 = d.cli(cli, &["exec", "box", "ip", "route"]);
    assert!(r4.stdout.contains(&format!("default via {pa}.1 dev eth0")), "{r4}");
    let hosts = d.cli(cli, &["exec", "box", "cat", "/etc/hosts"]);
    assert!(!hosts.stdout.contains(&addr), "{hosts}");
    // Free again.
    d.cli(cli, &["run", "--rm", "--network", "dual", "--ip6", &addr, &bb, "true"]).ok();
    d.cli(cli, &["rm", "-f", "box"]).ok();
    d.cli(cli, &["network", "rm", "only4", "dual"]).ok();
    let bridge = d.bridge.clone();
    drop(d);
    assert_no_ipv6_left(&bridge, &[&s6, &s6c]);
}
both!(connect_with_ip6);

/// IPv6 is off inside a container until one of its networks has IPv6, as dockerd 20.10 has
/// it (read off one: `all`, `default` and `lo` off, no `::1`, no link-local address; on a
/// dual-stack network `lo` and that interface on, `all` still off; `--network none` off).
fn ipv6_is_off_in_containers_until_a_network_has_it(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let confs = |ifs: &str| {
        format!(
            "for c in {ifs}; do printf '%s=%s ' $c $(cat /proc/sys/net/ipv6/conf/$c/disable_ipv6); done; \
             ip -6 addr | grep -c inet6 || true"
        )
    };
    for net in ["bridge", "none"] {
        let out = d.cli(cli, &["run", "--rm", "--network", net, &bb, "sh", "-c", &confs("all default lo")]);
        assert_eq!(out.trimmed(), "all=1 default=1 lo=1 0", "on {net}: {out}");
    }
    let (s4, _) = subnet_for(&d, 6);
    let (s6, p6) = subnet6_for(&d, 6);
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "dual6"]).ok();
    let out = d.cli(cli, &["run", "--rm", "--network", "dual6", &bb, "sh", "-c", &confs("all lo eth0")]);
    // ::1, the network's address and the link-local one.
    assert_eq!(out.trimmed(), "all=1 lo=0 eth0=0 3", "{out}");
    d.cli(cli, &["run", "-d", "--name", "later6", &bb, "sleep", "300"]).ok();
    d.cli(cli, &["network", "connect", "dual6", "later6"]).ok();
    let out = d.cli(cli, &["exec", "later6", "sh", "-c", &confs("all lo eth0 eth1")]);
    assert_eq!(out.trimmed(), "all=1 lo=0 eth0=1 eth1=0 3", "{out}");
    let out = d.cli(cli, &["exec", "later6", "ip", "-6", "addr", "show", "eth1"]);
    assert!(out.stdout.contains(&p6), "{out}");
    d.cli(cli, &["rm", "-f", "later6"]).ok();
    d.cli(cli, &["network", "rm", "dual6"]).ok();
}
both!(ipv6_is_off_in_containers_until_a_network_has_it);

/// The usual mistakes, with dockerd 20.10's messages (`compared_with_dockerd` checks them
/// against a real one).
fn ipv6_mistakes_get_dockerds_errors(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (s4, _) = subnet_for(&d, 5);
    let (s6, p6) = subnet6_for(&d, 5);
    let (other4, _) = subnet_for(&d, 6);
    d.cli(cli, &["network", "create", "--ipv6", "nosubnet"])
        .fails()
        .mentions(&["could not find an available, non-overlapping IPv6 address pool"]);
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "dual"]).ok();
    let inside = s6.replace("::/64", "::/80");
    d.cli(cli, &["network", "create", "--ipv6", "--subnet", &inside, "overlap"])
        .fails()
        .mentions(&["Pool overlaps with other one on this address space"]);
    d.cli(cli, &["network", "create", "--subnet", &other4, "only4"]).ok();
    let run = |net: &str, ip6: &str| d.cli(cli, &["run", "--rm", "--network", net, "--ip6", ip6, &bb, "true"]);
    run("dual", "fd57:ffff::5").fails().mentions(&["It does not belong to any of this network's subnets"]);
    run("dual", "notanip").fails().mentions(&["invalid IPv6 address: notanip"]);
    run("dual", "10.1.2.3").fails().mentions(&["invalid IPv6 address"]);
    run("dual", &format!("{p6}1")).fails().mentions(&["Address already in use"]);
    run("only4", &format!("{p6}5")).fails().mentions(&[
        "user specified IP address is supported only when connecting to networks with user configured subnets",
    ]);
    run("bridge", &format!("{p6}5"))
        .fails()
        .mentions(&["user specified IP address is supported on user defined networks only"]);
    d.cli(cli, &["run", "-d", "--name", "box", "--network", "only4", &bb, "sleep", "60"]).ok();
    d.cli(cli, &["network", "connect", "--ip6", "fd57:ffff::5", "dual", "box"])
        .fails()
        .mentions(&["It does not belong to any of this network's subnets"]);
    // A good one still works after all that.
    let ok = d.cli(cli, &["run", "--rm", "--network", "dual", "--ip6", &format!("{p6}5"), &bb, "ip", "-6", "addr"]);
    assert!(ok.ok().stdout.contains(&format!("{p6}5/64")), "{ok}");
    d.cli(cli, &["rm", "-f", "box"]).ok();
    d.cli(cli, &["network", "rm", "dual", "only4"]).ok();
}
both!(ipv6_mistakes_get_dockerds_errors);

/// The body of an HTTP response, de-chunked.
fn body_of(resp: &str) -> String {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
    }
    out
}

fn api_json(sock: &std::path::Path, path: &str) -> Value {
    let resp = crate::harness::http_unix(sock, "GET", path).unwrap_or_default();
    serde_json::from_str(&body_of(&resp)).unwrap_or_else(|e| panic!("{path}: {e}: {resp}"))
}

/// Key paths and JSON types of a value (`a.b: string`), arrays by their first element.
fn shape(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                shape(x, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(a) => match a.first() {
            Some(x) => shape(x, &format!("{path}[]"), out),
            None => out.push(format!("{path}: []")),
        },
        Value::Null => out.push(format!("{path}: null")),
        Value::Bool(_) => out.push(format!("{path}: bool")),
        Value::Number(_) => out.push(format!("{path}: number")),
        Value::String(_) => out.push(format!("{path}: string")),
    }
}

/// One engine's answers to the same commands, its subnets written as `S4` and `P6`.
struct Answers {
    network: Value,
    endpoint: Value,
    fixed: Value,
    ports: Value,
    members: Vec<String>,
    errors: Vec<(String, String)>,
}

/// The same commands against wharfd and a private dockerd 20.10 (the docker CLI for both, the
/// raw API for inspect), each engine on subnets of its own: the dual-stack parts of network
/// and container inspect are the same, key for key and value for value (addresses written
/// relative to the subnet), and so are the errors of the usual mistakes.
#[test]
fn compared_with_dockerd() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let run_on = |cmd: &dyn Fn(&[&str]) -> Output, sock: &std::path::Path, offset: u8| -> Answers {
        let (s4, p4) = subnet_for(&d, offset);
        let (s6, p6) = subnet6_for(&d, offset);
        let (other4, _) = subnet_for(&d, offset + 1);
        let gw6 = format!("{p6}fe");
        let range6 = format!("{p6}100/120");
        let norm = |s: &str| s.replace(&p6, "P6:").replace(&s6, "S6").replace(&format!("{p4}."), "P4.");
        cmd(&[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &s4,
            "--subnet",
            &s6,
            "--gateway",
            &gw6,
            "--ip-range",
            &range6,
            "dual",
        ])
        .ok();
        cmd(&["network", "create", "--subnet", &other4, "only4"]).ok();
        let port = free_port().to_string();
        let spec = format!("{port}:80");
        cmd(&["run", "-d", "--name", "ca", "--network", "dual", "-p", &spec, &image, "sleep", "300"]).ok();
        cmd(&["run", "-d", "--name", "cb", "--network", "dual", "--ip6", &format!("{p6}99"), &image, "sleep", "300"])
            .ok();
        cmd(&["run", "-d", "--name", "cc", "--network", "only4", &image, "sleep", "300"]).ok();
        let mut errors = Vec::new();
        let mistakes: Vec<Vec<String>> = vec![
            vec!["network".into(), "create".into(), "--ipv6".into(), "nosubnet".into()],
            vec!["network".into(), "create".into(), "--ipv6".into(), "--subnet".into(), s6.clone(), "again".into()],
            vec!["run".into(), "--rm".into(), "--network".into(), "dual".into(), "--ip6".into(), "fd57:ffff::5".into()],
            vec!["run".into(), "--rm".into(), "--network".into(), "dual".into(), "--ip6".into(), "notanip".into()],
            vec!["run".into(), "--rm".into(), "--network".into(), "only4".into(), "--ip6".into(), format!("{p6}5")],
            vec!["network".into(), "connect".into(), "--ip6".into(), "fd57:ffff::6".into(), "dual".into(), "cc".into()],
        ];
        for m in mistakes {
            let mut args: Vec<&str> = m.iter().map(String::as_str).collect();
            if args[0] == "run" {
                args.extend([image.as_str(), "true"]);
            }
            let out = cmd(&args);
            assert!(!out.success(), "{args:?}: {out}");
            let msg =
                out.stderr.lines().find_map(|l| l.split("Error response from daemon: ").nth(1)).unwrap_or_default();
            errors.push((m.join(" ").replace(&p6, "P6:").replace(&s6, "S6"), norm(msg)));
        }
        let network = api_json(sock, "/v1.41/networks/dual");
        let a = api_json(sock, "/v1.41/containers/ca/json");
        let b = api_json(sock, "/v1.41/containers/cb/json");
        let members: Vec<String> = network["Containers"]
            .as_object()
            .map(|m| m.values().map(|c| norm(c["IPv6Address"].as_str().unwrap_or_default())).collect())
            .unwrap_or_default();
        let ports = a["NetworkSettings"]["Ports"]["80/tcp"].to_string().replace(&port, "PORT");
        let answers = Answers {
            network: json!({
                "EnableIPv6": network["EnableIPv6"],
                // A subnet of the user's without a gateway: no Gateway shown, as dockerd.
                "IPv4": serde_json::from_str::<Value>(&norm(&network["IPAM"]["Config"][0].to_string())).unwrap(),
                "IPv6": serde_json::from_str::<Value>(&norm(&network["IPAM"]["Config"][1].to_string())).unwrap(),
            }),
            endpoint: serde_json::from_str(&norm(&a["NetworkSettings"]["Networks"]["dual"].to_string())).unwrap(),
            fixed: serde_json::from_str(&norm(&b["NetworkSettings"]["Networks"]["dual"].to_string())).unwrap(),
            ports: serde_json::from_str(&ports).unwrap(),
            members,
            errors,
        };
        cmd(&["rm", "-f", "ca", "cb", "cc"]).ok();
        cmd(&["network", "rm", "dual", "only4"]).ok();
        answers
    };
    let ours = run_on(&|args| d.docker(args), &d.sock, 7);
    let theirs = run_on(&|args| docker.cli(args), &docker.sock, 9);
    assert_eq!(ours.network, theirs.network);
    assert_eq!(ours.ports, theirs.ports);
    let (mut om, mut tm) = (ours.members.clone(), theirs.members.clone());
    om.sort();
    tm.sort();
    assert_eq!(om, tm);
    // Same keys, same types, in the endpoints of both containers; but for `GwPriority`, which
    // wharfd shows as dockerd 28 does (API 1.48) and dockerd 20.10 has not.
    for (o, t) in [(&ours.endpoint, &theirs.endpoint), (&ours.fixed, &theirs.fixed)] {
        let (mut so, mut st) = (Vec::new(), Vec::new());
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("GwPriority");
        }
        let o = &o;
        shape(o, "", &mut so);
        shape(t, "", &mut st);
        so.sort();
        st.sort();
        assert_eq!(so, st, "wharfd {o}\ndockerd {t}");
        for k in ["IPAMConfig", "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen"] {
            assert_eq!(o[k], t[k], "{k}: wharfd {o}\ndockerd {t}");
        }
    }
    // wharf's messages say what dockerd's say (some add the address and network).
    for ((cmd, o), (_, t)) in ours.errors.iter().zip(&theirs.errors) {
        assert!(!t.is_empty() && o.contains(t.as_str()), "{cmd}:\n  wharfd:  {o}\n  dockerd: {t}");
    }
}

/// daemon.json's `ipv6` and `fixed-cidr-v6`: the default bridge is dual-stack, containers on it
/// get an address of the subnet and reach each other over IPv6.
#[test]
fn the_default_bridge_is_dual_stack_with_daemon_json_ipv6() {
    // Unique while this test runs: the port is free on this machine now.
    let tag = free_port();
    let subnet = format!("fd58:{tag:x}:1::/64");
    let d = Daemon::start_with(crate::harness::DaemonOptions {
        config_json: Some(format!(r#"{{"ipv6": true, "fixed-cidr-v6": "{subnet}"}}"#)),
        ..Default::default()
    });
    let bridge = d.bridge.clone();
    let bb = d.pull("library/busybox:latest");
    d.wharf(&["run", "-d", "--name", "v6", &bb, "sleep", "300"]).ok();
    let v = d.wharf(&["inspect", "v6"]).json();
    let settings = &v[0]["NetworkSettings"];
    let ip6 = settings["GlobalIPv6Address"].as_str().unwrap_or_default().to_string();
    assert!(ip6.starts_with(&format!("fd58:{tag:x}:1:")), "{settings}");
    assert_eq!(settings["GlobalIPv6PrefixLen"], 64, "{settings}");
    assert_eq!(settings["IPv6Gateway"], format!("fd58:{tag:x}:1::1"), "{settings}");
    let out = d.wharf(&["run", "--rm", &bb, "ping", "-6", "-c", "1", "-W", "5", &ip6]);
    out.ok().mentions(&["1 packets received"]);
    d.wharf(&["rm", "-f", "v6"]).ok();
    drop(d);
    assert_no_ipv6_left(&bridge, &[&subnet]);
    // A malformed subnet stops the daemon, naming it.
    let bad = Daemon::try_start(crate::harness::DaemonOptions {
        config_json: Some(r#"{"ipv6": true, "fixed-cidr-v6": "fd58::/999"}"#.into()),
        ..Default::default()
    });
    let err = bad.err().expect("a bad fixed-cidr-v6 must be refused");
    assert!(err.log.contains("fixed-cidr-v6"), "{}", err.log);
}
