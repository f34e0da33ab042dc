//! Networking end to end: the default bridge (address, route, /etc/hosts), published ports
//! from the host on 127.0.0.1 and on the bridge address, a taken port, `container:` mode, and
//! create/start/rm cycles that leave interfaces, namespaces and rules where they began,
//! `"iptables": false`, and a `kill -9` of wharfd with containers on the bridge and a network.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::{registry, Cli, Daemon, DaemonOptions};

/// What a stopped daemon must not leave: its bridge, its nftables table, veths on it.
pub fn leaked_network(bridge: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    if std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists() {
        leaks.push(format!("bridge left behind: {bridge}"));
        let _ = std::process::Command::new("ip").args(["link", "del", bridge]).status();
    }
    let table = format!("wharf_{bridge}");
    let listed = std::process::Command::new("nft").args(["list", "tables"]).output();
    if let Ok(out) = listed {
        let text = String::from_utf8_lossy(&out.stdout);
        // The ip6 table exists while any of the daemon's networks has IPv6, the bridge one
        // while any has no inter-container traffic.
        for family in ["ip", "ip6", "bridge"] {
            if text.lines().any(|l| l.trim() == format!("table {family} {table}")) {
                leaks.push(format!("nftables table left behind: {family} {table}"));
                let _ = std::process::Command::new("nft").args(["delete", "table", family, &table]).status();
            }
        }
    }
    leaks
}

/// The interfaces attached to a bridge (none when it does not exist).
pub fn ports_of(bridge: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// GET `path` from `addr` (`127.0.0.1:80`, `[::1]:80`), retried while the server comes up; the
/// answer or the last error.
pub(crate) fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut last = String::new();
    for _ in 0..50 {
        match TcpStream::connect_timeout(&addr.parse().map_err(|e| format!("{addr}: {e}"))?, Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let req = format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut body = String::new();
                    if s.read_to_string(&mut body).is_ok() && !body.is_empty() {
                        return Ok(body);
                    }
                }
                last = "empty answer".into();
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

fn inspect(d: &Daemon, cli: Cli, id: &str, format: &str) -> String {
    let out = d.cli(cli, &["inspect", "-f", format, id]);
    out.ok();
    out.trimmed().to_string()
}

fn default_bridge_gives_address_route_and_hosts(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let out = d.cli(
        cli,
        &[
            "run",
            "--rm",
            "--hostname",
            "web",
            &bb,
            "sh",
            "-c",
            "ip -4 addr show eth0; ip route; cat /etc/hosts; ping -c1 -W2 $(ip route | awk '/default/{print $3}')",
        ],
    );
    out.ok();
    let gw = d.bip.split('/').next().unwrap_or_default().to_string();
    let prefix = gw.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
    assert!(out.stdout.contains(&format!("inet {prefix}.2/24")), "{out}");
    assert!(out.stdout.contains(&format!("default via {gw} dev eth0")), "{out}");
    assert!(out.stdout.contains(&format!("{prefix}.2\tweb")), "{out}");
    assert!(out.stdout.contains("1 packets received"), "{out}");
}
both!(default_bridge_gives_address_route_and_hosts);

fn published_port_answers_on_loopback_and_bridge(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let out = d.cli(cli, &["run", "-d", "-p", "80", "-p", "0:80/udp", &bb, "httpd", "-f", "-p", "80", "-h", "/etc"]);
    out.ok();
    let id = out.trimmed().to_string();
    let out = d.cli(cli, &["inspect", &id]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("inspect json");
    let port = v[0]["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"].as_str().unwrap_or_default().to_string();
    assert!(v[0]["NetworkSettings"]["Ports"]["80/udp"][0]["HostPort"].as_str().is_some(), "{out}");
    assert!(port.parse::<u16>().is_ok_and(|p| p > 0), "host port {port:?}");
    let ip = inspect(&d, cli, &id, "{{.NetworkSettings.IPAddress}}");
    let hostname = inspect(&d, cli, &id, "{{.Config.Hostname}}");
    let body = http_get(&format!("127.0.0.1:{port}"), "/hostname").expect("published port on 127.0.0.1");
    assert!(body.contains("200 OK") && body.contains(&hostname), "{body}");
    // The container's own address from the host, through the bridge.
    let body = http_get(&format!("{ip}:80"), "/hostname").expect("container address");
    assert!(body.contains(&hostname), "{body}");
    // Another container reaches the port through the bridge's address (hairpin through DNAT).
    let gw = d.bip.split('/').next().unwrap_or_default().to_string();
    let out = d.cli(cli, &["run", "--rm", &bb, "wget", "-q", "-O", "-", &format!("http://{gw}:{port}/hostname")]);
    assert!(out.stdout.contains(&hostname), "{out}");
    let ps = d.cli(cli, &["ps"]);
    assert!(ps.stdout.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    d.cli(cli, &["rm", "-f", &id]).ok();
    // The rule is gone with the container: nothing answers any more.
    assert!(
        TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(500)).is_err()
    );
}
both!(published_port_answers_on_loopback_and_bridge);

fn taken_port_is_an_error_naming_it(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let out = d.cli(cli, &["run", "-d", "--name", "taken", "-p", &format!("127.0.0.1:{port}:80"), &bb, "sleep", "100"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains(&port.to_string()) && out.stderr.contains("already allocated"), "{out}");
    assert_eq!(inspect(&d, cli, "taken", "{{.State.Running}}"), "false");
    assert_eq!(ports_of(&d.bridge), Vec::<String>::new(), "an interface was left by the failed start");
    d.cli(cli, &["rm", "-f", "taken"]).ok();
}
both!(taken_port_is_an_error_naming_it);

fn container_mode_shares_the_interface(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let out = d.cli(cli, &["run", "-d", "--name", "owner", &bb, "sleep", "100"]);
    out.ok();
    let ip = inspect(&d, cli, "owner", "{{.NetworkSettings.IPAddress}}");
    let out = d.cli(cli, &["run", "--rm", "--network", "container:owner", &bb, "ip", "-4", "addr", "show", "eth0"]);
    out.ok();
    assert!(out.stdout.contains(&format!("inet {ip}/")), "{out}");
    d.cli(cli, &["rm", "-f", "owner"]).ok();
}
both!(container_mode_shares_the_interface);

#[test]
fn create_start_rm_cycles_leave_nothing() {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.wharf(&["pull", &bb]).ok();
    // The bridge exists from the first start on; count from there.
    d.wharf(&["run", "--rm", &bb, "true"]).ok();
    let netns = d.exec_root.join("netns");
    for i in 0..50 {
        let name = format!("cycle{i}");
        d.wharf(&["create", "--name", &name, "-p", "127.0.0.1::80", &bb, "true"]).ok();
        d.wharf(&["start", &name]).ok();
        d.wharf(&["rm", "-f", &name]).ok();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ports_of(&d.bridge), Vec::<String>::new(), "veths left on the bridge");
    let left: Vec<_> = std::fs::read_dir(&netns).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let rules =
        std::process::Command::new("nft").args(["list", "table", "ip", &format!("wharf_{}", d.bridge)]).output();
    if let Ok(r) = rules {
        assert!(!String::from_utf8_lossy(&r.stdout).contains("dnat to"), "{}", String::from_utf8_lossy(&r.stdout));
    }
}

fn table_exists(table: &str) -> bool {
    std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == format!("table ip {table}")))
}

/// A /24 of this daemon's own, derived from its unique `--bip` as network_user does.
fn own_subnet(d: &Daemon, offset: u16) -> (String, String) {
    let parts: Vec<u16> =
        d.bip.split('/').next().unwrap_or_default().split('.').filter_map(|p| p.parse().ok()).collect();
    let (a, b) = (parts.get(1).copied().unwrap_or(200) - 100, parts.get(2).copied().unwrap_or(0));
    let c = (b + offset * 7) % 256;
    (format!("10.{a}.{c}.0/24"), format!("10.{a}.{c}"))
}

#[test]
fn iptables_false_writes_no_rules_but_containers_get_addresses() {
    let d = Daemon::start_with(DaemonOptions {
        config_json: Some(r#"{"iptables": false}"#.to_string()),
        ..Default::default()
    });
    let bb = registry().image("library/busybox:latest");
    d.wharf(&["pull", &bb]).ok();
    let out = d.wharf(&["run", "--rm", &bb, "ip", "-4", "addr", "show", "eth0"]);
    out.ok();
    let prefix = d.bip.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
    assert!(out.stdout.contains(&format!("inet {prefix}.")), "{out}");
    let (subnet, net_prefix) = own_subnet(&d, 3);
    d.wharf(&["network", "create", "--subnet", &subnet, "plain"]).ok();
    d.wharf(&["run", "-d", "--name", "web", "--network", "plain", &bb, "httpd", "-f", "-p", "80", "-h", "/etc"]).ok();
    let out = d.wharf(&["run", "--rm", "--network", "plain", &bb, "wget", "-q", "-O", "-", "http://web/hostname"]);
    out.ok();
    assert!(!out.trimmed().is_empty(), "{out}");
    let ip = inspect(&d, Cli::Wharf, "web", "{{.NetworkSettings.Networks.plain.IPAddress}}");
    assert!(ip.starts_with(&net_prefix), "{ip} in {subnet}");
    assert!(!table_exists(&format!("wharf_{}", d.bridge)), "iptables=false, yet wharf wrote its table");
    d.wharf(&["rm", "-f", "web"]).ok();
    d.wharf(&["network", "rm", "plain"]).ok();
    assert!(!table_exists(&format!("wharf_{}", d.bridge)));
}

#[test]
fn kill9_of_the_daemon_keeps_names_ports_and_then_cleans_up() {
    let mut d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.wharf(&["pull", &bb]).ok();
    let (subnet, _) = own_subnet(&d, 4);
    let out = d.wharf(&["network", "create", "--subnet", &subnet, "appnet"]);
    out.ok();
    let user_bridge = format!("br-{}", &out.trimmed()[..12]);
    let web = ["run", "-d", "--name", "web", "--network", "appnet", "-p", "127.0.0.1::80"];
    d.wharf(&[&web[..], &[bb.as_str(), "httpd", "-f", "-p", "80", "-h", "/etc"]].concat()).ok();
    d.wharf(&["run", "-d", "--name", "client", "--network", "appnet", &bb, "sleep", "300"]).ok();
    d.wharf(&["run", "-d", "--name", "plainweb", "-p", "127.0.0.1::80", &bb, "httpd", "-f", "-p", "80", "-h", "/etc"])
        .ok();
    let port_of = |d: &Daemon, name: &str| {
        d.inspect(Cli::Wharf, name)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (web_port, plain_port) = (port_of(&d, "web"), port_of(&d, "plainweb"));
    let web_host = inspect(&d, Cli::Wharf, "web", "{{.Config.Hostname}}");
    let plain_host = inspect(&d, Cli::Wharf, "plainweb", "{{.Config.Hostname}}");

    d.kill9();
    // While the daemon is away the published ports still answer: the rules are the kernel's.
    let body = http_get(&format!("127.0.0.1:{web_port}"), "/hostname").expect("web's port without the daemon");
    assert!(body.contains(&web_host), "{body}");
    d.restart();

    let out = d.wharf(&["exec", "client", "wget", "-q", "-O", "-", "http://web/hostname"]);
    out.ok();
    assert!(out.stdout.contains(&web_host), "web by name after the restart: {out}");
    for (port, host) in [(&web_port, &web_host), (&plain_port, &plain_host)] {
        let body = http_get(&format!("127.0.0.1:{port}"), "/hostname").expect("published port after the restart");
        assert!(body.contains(host.as_str()), "{body}");
    }
    d.wharf(&["rm", "-f", "web", "client", "plainweb"]).ok();
    d.wharf(&["network", "rm", "appnet"]).ok();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ports_of(&d.bridge), Vec::<String>::new(), "veths left on the default bridge");
    assert!(!std::path::Path::new(&format!("/sys/class/net/{user_bridge}")).exists(), "{user_bridge} left");
    let left: Vec<_> = std::fs::read_dir(d.exec_root.join("netns"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let rules =
        std::process::Command::new("nft").args(["list", "table", "ip", &format!("wharf_{}", d.bridge)]).output();
    if let Ok(r) = rules {
        let text = String::from_utf8_lossy(&r.stdout);
        assert!(!text.contains("dnat to") && !text.contains(&user_bridge), "{text}");
    }
}
