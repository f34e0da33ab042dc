//! A container on several networks, as dockerd 20.10 orders them: at a start the interfaces are
//! numbered in dockerd's order (priority, route out, dual-stack, then the network's name, not
//! the order of connects), and the default route and the published ports go to the first network
//! of that order and move with a connect or disconnect; compared step by step with a private
//! dockerd. And a port published on every address is published on `::` too for an IPv4-only
//! container, the daemon carrying it (TCP and UDP) to the container's IPv4 address, as dockerd's
//! docker-proxy does.

use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use serde_json::json;

use crate::dockerd::Dockerd;
use crate::harness::{free_port, registry, Cli, Daemon, Output};
use crate::network_user::subnet_for;

const SERVE: &str = "echo hello-$HOSTNAME > /tmp/index.html && exec httpd -f -p 80 -h /tmp";

/// A UDP echo server on port 5353 in a busybox container, which has none of its own: the
/// host's python3, its libraries mounted read-only.
const UDP_ECHO: &str = concat!(
    "import socket\n",
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n",
    "s.bind(('0.0.0.0', 5353))\n",
    "while True:\n",
    "    data, peer = s.recvfrom(65536)\n",
    "    s.sendto(b'echo:' + data, peer)\n",
);

fn http_get(addr: &str) -> Result<String, String> {
    crate::network::http_get(addr, "/index.html")
}

/// Sends `msg` to `addr` over UDP and returns the answer, retried while the server comes up.
fn udp_ask(addr: &str, msg: &[u8]) -> Option<Vec<u8>> {
    let target: std::net::SocketAddr = addr.parse().ok()?;
    let local = if target.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
    let s = UdpSocket::bind(local).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(300))).ok()?;
    let mut buf = [0u8; 2048];
    for _ in 0..40 {
        let _ = s.send_to(msg, target);
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

/// What a container's network looks like from inside: each interface with the network it is
/// on (known by its subnet's prefix), and the network of the default route.
fn inside(cmd: &dyn Fn(&[&str]) -> Output, name: &str, prefixes: &[(&str, String)]) -> (Vec<String>, String) {
    let net_of = |ip: &str| {
        prefixes.iter().find(|(_, p)| ip.starts_with(&format!("{p}."))).map(|(n, _)| n.to_string()).unwrap_or_default()
    };
    let addrs = cmd(&["exec", name, "ip", "-o", "-4", "addr", "show"]);
    addrs.ok();
    let mut ifaces: Vec<(String, String)> = addrs
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (dev, ip) = (f.get(1)?, f.get(3)?);
            (*dev != "lo").then(|| (dev.to_string(), net_of(ip)))
        })
        .collect();
    ifaces.sort();
    let routes = cmd(&["exec", name, "ip", "-4", "route", "show", "default"]);
    routes.ok();
    let via = routes.stdout.split_whitespace().skip_while(|w| *w != "via").nth(1).unwrap_or_default().to_string();
    (ifaces.into_iter().map(|(dev, net)| format!("{dev}={net}")).collect(), net_of(&via))
}

/// The same commands against wharfd and a private dockerd 20.10 (the docker CLI for both): the
/// interfaces and the network of the default route after each step are the same, and so are the
/// published ports shown.
#[test]
fn network_order_compared_with_dockerd() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let run_on = |cmd: &dyn Fn(&[&str]) -> Output, offset: u8| -> Vec<String> {
        let names = ["zeta", "alpha", "mid", "inner"];
        let prefixes: Vec<(&str, String)> =
            names.iter().enumerate().map(|(i, n)| (*n, subnet_for(&d, offset + i as u8).1)).collect();
        for (i, n) in names.iter().enumerate() {
            let (subnet, _) = subnet_for(&d, offset + i as u8);
            let mut args = vec!["network", "create", "--subnet", &subnet];
            if *n == "inner" {
                args.push("--internal");
            }
            args.push(n);
            cmd(&args).ok();
        }
        let seen = std::cell::RefCell::new(Vec::new());
        let look = |step: &str, name: &str| {
            let (ifaces, route) = inside(cmd, name, &prefixes);
            seen.borrow_mut().push(format!("{step}: {} default via {route}", ifaces.join(" ")));
        };
        let port = free_port().to_string();
        let spec = format!("{port}:80");
        cmd(&["run", "-d", "--name", "c1", "--network", "zeta", "-p", &spec, &image, "sleep", "300"]).ok();
        look("run on zeta", "c1");
        cmd(&["network", "connect", "alpha", "c1"]).ok();
        look("connect alpha", "c1");
        cmd(&["network", "connect", "mid", "c1"]).ok();
        look("connect mid", "c1");
        cmd(&["network", "disconnect", "alpha", "c1"]).ok();
        look("disconnect alpha", "c1");
        cmd(&["network", "connect", "inner", "c1"]).ok();
        look("connect inner", "c1");
        let ports = cmd(&["port", "c1"]);
        seen.borrow_mut().push(format!("ports: {}", ports.stdout.replace(&port, "PORT").trim()));
        // Networks connected before the start: numbered in dockerd's order at the start.
        cmd(&["create", "--name", "c2", "--network", "mid", &image, "sleep", "300"]).ok();
        for n in ["inner", "zeta", "alpha"] {
            cmd(&["network", "connect", n, "c2"]).ok();
        }
        cmd(&["start", "c2"]).ok();
        look("start on mid, inner, zeta, alpha", "c2");
        cmd(&["restart", "-t", "0", "c2"]).ok();
        look("restart", "c2");
        cmd(&["rm", "-f", "c1", "c2"]).ok();
        cmd(&["network", "rm", "zeta", "alpha", "mid", "inner"]).ok();
        seen.into_inner()
    };
    let ours = run_on(&|args| d.docker(args), 3);
    let theirs = run_on(&|args| docker.cli(args), 9);
    assert_eq!(ours, theirs, "\nwharfd:  {ours:#?}\ndockerd: {theirs:#?}");
    // Not a comparison of two empty lists.
    assert!(ours.iter().any(|s| s.contains("eth1=alpha default via alpha")), "{ours:#?}");
}

/// An IPv4-only container's published ports on `::` as well: reached on `[::1]` over TCP and
/// UDP (the daemon's proxy to its IPv4 address), on `127.0.0.1` as before; `[::1]:P:80` only
/// there. Connected to a network that comes first in dockerd's order, the ports move with the
/// default route and still answer; removed, nothing listens.
fn ipv4_only_containers_are_published_on_both_families(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (s1, _) = subnet_for(&d, 2);
    let (s2, p2) = subnet_for(&d, 3);
    d.cli(cli, &["network", "create", "--subnet", &s1, "only4"]).ok();
    let (tcp, udp, lo) = (free_port(), free_port(), free_port());
    let (t, u, l) = (format!("{tcp}:80"), format!("{udp}:5353/udp"), format!("[::1]:{lo}:80"));
    let serve = format!("{SERVE} & exec /usr/bin/python3 -c \"{UDP_ECHO}\"");
    let out = d.cli(
        cli,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--hostname",
            "web",
            "--network",
            "only4",
            "-p",
            &t,
            "-p",
            &u,
            "-p",
            &l,
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/usr/lib:/lib:ro",
            "-v",
            "/usr/lib64:/lib64:ro",
            &bb,
            "sh",
            "-c",
            &serve,
        ],
    );
    out.ok();
    let ports = d.inspect(cli, "web")["NetworkSettings"]["Ports"].clone();
    assert!(ports.is_object(), "{ports}: {}", d.cli(cli, &["logs", "web"]));
    let (tp, up, lp) = (tcp.to_string(), udp.to_string(), lo.to_string());
    assert_eq!(
        ports["80/tcp"],
        json!([{"HostIp": "0.0.0.0", "HostPort": tp}, {"HostIp": "::", "HostPort": tp}, {"HostIp": "::1", "HostPort": lp}]),
        "{ports}: {}\n{}",
        d.cli(cli, &["ps", "-a"]),
        d.cli(cli, &["logs", "web"])
    );
    assert_eq!(ports["5353/udp"], json!([{"HostIp": "0.0.0.0", "HostPort": up}, {"HostIp": "::", "HostPort": up}]));
    let reached = |when: &str| {
        for addr in [format!("127.0.0.1:{tcp}"), format!("[::1]:{tcp}"), format!("[::1]:{lo}")] {
            let got = http_get(&addr);
            if !got.as_deref().is_ok_and(|b| b.contains("hello-web")) {
                let ss = std::process::Command::new("ss").args(["-ltnp"]).output().unwrap();
                panic!(
                    "{when}: {addr}: {got:?}\n{}\n{}\n{}",
                    d.cli(cli, &["ps", "-a"]),
                    d.cli(cli, &["logs", "web"]),
                    String::from_utf8_lossy(&ss.stdout)
                );
            }
        }
        for addr in [format!("127.0.0.1:{udp}"), format!("[::1]:{udp}")] {
            let got = udp_ask(&addr, b"ping");
            assert_eq!(got.as_deref(), Some(&b"echo:ping"[..]), "{when}: udp {addr}");
        }
    };
    reached("on only4");
    assert!(TcpStream::connect_timeout(&format!("127.0.0.1:{lo}").parse().unwrap(), Duration::from_secs(2)).is_err());
    // `docker ps` and `port` show both families.
    let ps = d.cli(cli, &["ps", "--format", "{{.Ports}}", "--filter", "name=web"]);
    assert!(
        ps.stdout.contains(&format!("0.0.0.0:{tcp}->80/tcp")) && ps.stdout.contains(&format!(":{tcp}->80/tcp")),
        "{ps}"
    );
    let port = d.cli(cli, &["port", "web", "80"]);
    assert!(port.stdout.contains(&format!("0.0.0.0:{tcp}")) && port.stdout.contains(&format!("[::]:{tcp}")), "{port}");

    // `aaa` comes before `only4` in dockerd's order: the route and the ports go there.
    d.cli(cli, &["network", "create", "--subnet", &s2, "aaa"]).ok();
    d.cli(cli, &["network", "connect", "aaa", "web"]).ok();
    let routes = d.cli(cli, &["exec", "web", "ip", "-4", "route", "show", "default"]);
    assert!(routes.stdout.contains(&format!("via {p2}.1")), "{routes}");
    reached("connected to aaa");
    d.cli(cli, &["network", "disconnect", "aaa", "web"]).ok();
    reached("disconnected from aaa");

    d.cli(cli, &["rm", "-f", "web"]).ok();
    for addr in [format!("[::1]:{tcp}"), format!("[::1]:{lo}"), format!("127.0.0.1:{tcp}")] {
        assert!(TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_err(), "{addr}");
    }
    assert!(UdpSocket::bind(format!("[::]:{udp}")).is_ok(), "the IPv6 UDP port is free again");
    d.cli(cli, &["network", "rm", "only4", "aaa"]).ok();
}
both!(ipv4_only_containers_are_published_on_both_families);

/// A bridge with IPv6 has dockerd's link-local `fe80::1/64` besides its gateway.
#[test]
fn ipv6_bridges_have_fe80_1() {
    let d = Daemon::start();
    let (s4, _) = subnet_for(&d, 4);
    let (s6, _) = crate::network_ipv6::subnet6_for(&d, 4);
    let out = d.docker(&["network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "six"]);
    out.ok();
    let bridge = format!("br-{}", &out.trimmed()[..12]);
    let addrs = std::process::Command::new("ip").args(["-6", "addr", "show", "dev", &bridge]).output().unwrap();
    let addrs = String::from_utf8_lossy(&addrs.stdout);
    assert!(addrs.contains("inet6 fe80::1/64 scope link"), "{addrs}");
    d.docker(&["network", "rm", "six"]).ok();
}

/// The address mistakes of a start through the API, on wharfd and a private dockerd 20.10:
/// an address in use is dockerd's 403 with its words; one outside the network's subnets has
/// dockerd's words too, but a 400 where dockerd answers 500 (it is the caller's mistake, and a
/// 5xx would tell clients to retry).
#[test]
fn address_mistakes_compared_with_dockerd() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let run_on = |cmd: &dyn Fn(&[&str]) -> Output, sock: &std::path::Path, offset: u8| -> Vec<(String, u16, String)> {
        let (s4, p4) = subnet_for(&d, offset);
        let (s6, p6) = crate::network_ipv6::subnet6_for(&d, offset);
        cmd(&["network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "addrs"]).ok();
        let (ip4, ip6) = (format!("{p4}.50"), format!("{p6}50"));
        cmd(&[
            "run",
            "-d",
            "--name",
            "holder",
            "--network",
            "addrs",
            "--ip",
            &ip4,
            "--ip6",
            &ip6,
            &image,
            "sleep",
            "300",
        ])
        .ok();
        let cases = [
            ("IPv4 in use", json!({"IPv4Address": ip4})),
            ("IPv6 in use", json!({"IPv6Address": ip6})),
            ("IPv4 outside", json!({"IPv4Address": "10.255.254.5"})),
            ("IPv6 outside", json!({"IPv6Address": "fd57:ffff::5"})),
        ];
        let mut out = Vec::new();
        for (what, ipam) in cases {
            let body = json!({
                "Image": image, "Cmd": ["true"], "HostConfig": {"NetworkMode": "addrs"},
                "NetworkingConfig": {"EndpointsConfig": {"addrs": {"IPAMConfig": ipam}}},
            });
            let created = crate::harness::http_unix_post(sock, "/v1.41/containers/create", &body.to_string());
            let id =
                serde_json::from_str::<serde_json::Value>(created.split_once("\r\n\r\n").map(|x| x.1).unwrap_or(""))
                    .ok()
                    .and_then(|v| v["Id"].as_str().map(str::to_string))
                    .unwrap_or_else(|| panic!("{what}: create: {created}"));
            let started = crate::harness::http_unix_post(sock, &format!("/v1.41/containers/{id}/start"), "");
            let status: u16 = started.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
            let body = started.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
            let message = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.to_string());
            out.push((what.to_string(), status, message.replace(&p6, "P6:").replace(&format!("{p4}."), "P4.")));
            cmd(&["rm", "-f", &id]).ok();
        }
        cmd(&["rm", "-f", "holder"]).ok();
        cmd(&["network", "rm", "addrs"]).ok();
        out
    };
    let ours = run_on(&|args| d.docker(args), &d.sock, 5);
    let theirs = run_on(&|args| docker.cli(args), &docker.sock, 8);
    for ((what, os, om), (_, ts, tm)) in ours.iter().zip(&theirs) {
        let want_status = if what.ends_with("outside") { 400 } else { *ts };
        assert_eq!(*os, want_status, "{what}: wharfd {os} {om}; dockerd {ts} {tm}");
        assert!(!tm.is_empty() && om.contains(tm.as_str()), "{what}:\n  wharfd:  {om}\n  dockerd: {tm}");
    }
    assert_eq!(
        theirs.iter().map(|c| c.1).collect::<Vec<_>>(),
        [403, 403, 500, 500],
        "dockerd's, as measured: {theirs:?}"
    );
}

/// The network a container was created on is disconnected: the next one keeps its own MAC
/// address and driver options (inspect, and the interface after a restart), which a connect
/// gave it.
#[test]
fn the_next_network_keeps_its_own_settings_when_the_first_goes() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let (sa, _) = subnet_for(&d, 6);
    let (sb, _) = subnet_for(&d, 7);
    d.docker(&["network", "create", "--subnet", &sa, "first"]).ok();
    d.docker(&["network", "create", "--subnet", &sb, "second"]).ok();
    d.docker(&[
        "run",
        "-d",
        "--name",
        "box",
        "--network",
        "first",
        "--mac-address",
        "02:42:0a:00:00:0a",
        &image,
        "sleep",
        "300",
    ])
    .ok();
    let mac = "02:42:0a:00:00:0b";
    // Through the API: the connect's endpoint settings, as docker-py and compose send them.
    let body = json!({"Container": "box", "EndpointConfig": {"MacAddress": mac, "DriverOpts": {"com.example.k": "v"}}});
    let resp = crate::harness::http_unix_post(&d.sock, "/v1.44/networks/second/connect", &body.to_string());
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    d.docker(&["network", "disconnect", "first", "box"]).ok();
    let ep = d.inspect(crate::harness::Cli::Docker, "box")["NetworkSettings"]["Networks"]["second"].clone();
    assert_eq!(ep["MacAddress"], mac, "{ep}");
    assert_eq!(ep["DriverOpts"], json!({"com.example.k": "v"}), "{ep}");
    d.docker(&["restart", "-t", "0", "box"]).ok();
    let ep = d.inspect(crate::harness::Cli::Docker, "box")["NetworkSettings"]["Networks"]["second"].clone();
    assert_eq!(ep["MacAddress"], mac, "after a restart: {ep}");
    assert_eq!(ep["DriverOpts"], json!({"com.example.k": "v"}), "after a restart: {ep}");
    let link = d.docker(&["exec", "box", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(link.trimmed(), mac, "{link}");
    d.docker(&["rm", "-f", "box"]).ok();
    d.docker(&["network", "rm", "first", "second"]).ok();
}
