//! User-defined networks end to end: create/ls/inspect/rm/prune, `--network NAME`, `--ip`,
//! aliases, the embedded DNS (names of the network's containers only, following them as they
//! come and go), `--dns*` and `--add-host`, and networks surviving a daemon restart.

use crate::harness::{registry, Cli, Daemon, DaemonOptions};

/// A /24 of this daemon's own (the harness gives each daemon a unique `--bip` 10.A.B.1/24).
pub(crate) fn subnet_for(d: &Daemon, third_offset: u8) -> (String, String) {
    let parts: Vec<u16> =
        d.bip.split('/').next().unwrap_or_default().split('.').filter_map(|p| p.parse().ok()).collect();
    let (a, b) = (parts.get(1).copied().unwrap_or(200) - 100, parts.get(2).copied().unwrap_or(0));
    let c = (b + third_offset as u16 * 7) % 256;
    (format!("10.{a}.{c}.0/24"), format!("10.{a}.{c}"))
}

fn bridge_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

fn names_resolve_on_the_network_only(cli: Cli) {
    let mut d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (subnet, prefix) = subnet_for(&d, 1);
    let net = d.cli(cli, &["network", "create", "--subnet", &subnet, "appnet"]);
    net.ok();
    let net_id = net.trimmed().to_string();
    let bridge = format!("br-{}", &net_id[..12]);
    assert!(bridge_exists(&bridge), "bridge {bridge} of the network");
    d.cli(cli, &["run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www", &bb, "sleep", "300"])
        .ok();
    let web_ip = d.inspect(cli, "web")["NetworkSettings"]["Networks"]["appnet"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(web_ip.starts_with(&prefix), "{web_ip} in {subnet}");
    let out = d.cli(
        cli,
        &[
            "run",
            "--rm",
            "--network",
            "appnet",
            &bb,
            "sh",
            "-c",
            "cat /etc/resolv.conf; nslookup web; nslookup www.appnet",
        ],
    );
    out.ok();
    assert!(out.stdout.contains(&format!("nameserver {prefix}.1")), "{out}");
    assert_eq!(out.stdout.matches(&format!("Address: {web_ip}")).count(), 2, "{out}");
    // The default bridge has no name resolution.
    let out = d.cli(cli, &["run", "--rm", &bb, "nslookup", "-timeout=1", "web"]);
    assert!(!out.stdout.contains(&web_ip), "{out}");
    // The network lists its container; in use, it cannot be removed.
    let v = d.cli(cli, &["network", "inspect", "appnet"]).json();
    assert_eq!(v[0]["Containers"].as_object().map(|m| m.len()), Some(1), "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], subnet.as_str(), "{v}");
    d.cli(cli, &["network", "rm", "appnet"]).fails().mentions(&["active endpoints"]);
    // Answers follow the container: gone once it is removed.
    d.cli(cli, &["rm", "-f", "web"]).ok();
    let out = d.cli(cli, &["run", "--rm", "--network", "appnet", &bb, "nslookup", "web"]);
    assert!(!out.stdout.contains(&web_ip), "{out}");
    // The network and its bridge survive a daemon restart.
    d.restart();
    let out = d.cli(cli, &["network", "ls"]);
    out.ok();
    assert!(out.stdout.contains("appnet"), "{out}");
    let out =
        d.cli(cli, &["run", "--rm", "--network", "appnet", "--ip", &format!("{prefix}.77"), &bb, "ip", "-4", "addr"]);
    out.ok();
    assert!(out.stdout.contains(&format!("{prefix}.77/24")), "{out}");
    d.cli(cli, &["network", "rm", "appnet"]).ok();
    assert!(!bridge_exists(&bridge), "bridge {bridge} removed with its network");
}
both!(names_resolve_on_the_network_only);

fn create_ls_inspect_rm_prune(cli: Cli) {
    let d = Daemon::start();
    let (subnet, prefix) = subnet_for(&d, 2);
    d.cli(
        cli,
        &[
            "network",
            "create",
            "--subnet",
            &subnet,
            "--gateway",
            &format!("{prefix}.254"),
            "--ip-range",
            &format!("{prefix}.128/25"),
            "--label",
            "team=a",
            "--internal",
            "n1",
        ],
    )
    .ok();
    d.cli(cli, &["network", "create", "--subnet", &subnet, "n2"]).fails().mentions(&["overlaps"]);
    d.cli(cli, &["network", "create", "n1"]).fails().mentions(&["already exists"]);
    // dockerd takes any name, spaces included; a '/' would change the API path.
    d.cli(cli, &["network", "create", "my net"]).ok();
    assert_eq!(d.cli(cli, &["network", "inspect", "my net"]).json()[0]["Name"], "my net");
    d.cli(cli, &["network", "rm", "my net"]).ok();
    d.cli(cli, &["network", "create", "a/b"]).fails().mentions(&["'/'"]);
    d.cli(cli, &["network", "rm", "bridge"]).fails().mentions(&["pre-defined"]);
    d.cli(cli, &["network", "inspect", "nope"]).fails().mentions(&["not found"]);
    let v = d.cli(cli, &["network", "inspect", "n1"]).json();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], format!("{prefix}.254").as_str(), "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["IPRange"], format!("{prefix}.128/25").as_str(), "{v}");
    assert_eq!(v[0]["Internal"], true, "{v}");
    assert_eq!(v[0]["Labels"]["team"], "a", "{v}");
    let ls = d.cli(cli, &["network", "ls"]);
    ls.ok();
    for n in ["bridge", "host", "none", "n1"] {
        assert!(ls.stdout.contains(n), "{ls}");
    }
    let ls = d.cli(cli, &["network", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(ls.trimmed().lines().count(), 1, "{ls}");
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    // Addresses come from the range; an internal network has no default route.
    let out = d.cli(cli, &["run", "--rm", "--network", "n1", &bb, "sh", "-c", "ip -4 addr show eth0; ip route"]);
    out.ok();
    assert!(out.stdout.contains(&format!("{prefix}.128/24")), "{out}");
    assert!(!out.stdout.contains("default"), "{out}");
    d.cli(cli, &["network", "create", "n3"]).ok();
    let out = d.cli(cli, &["network", "prune", "-f"]);
    out.ok();
    assert!(out.stdout.contains("n1") && out.stdout.contains("n3"), "{out}");
    let ls = d.cli(cli, &["network", "ls", "-q"]);
    assert_eq!(ls.trimmed().lines().count(), 3, "{ls}");
}
both!(create_ls_inspect_rm_prune);

fn resolver_flags_and_extra_hosts(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let out = d.cli(
        cli,
        &[
            "run",
            "--rm",
            "--dns",
            "10.9.9.9",
            "--dns-search",
            "corp.test",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "db:10.8.8.8",
            "--mac-address",
            "02:42:0a:0b:0c:0d",
            &bb,
            "sh",
            "-c",
            "cat /etc/resolv.conf /etc/hosts; cat /sys/class/net/eth0/address",
        ],
    );
    out.ok();
    for want in ["nameserver 10.9.9.9", "search corp.test", "options ndots:2", "10.8.8.8\tdb", "02:42:0a:0b:0c:0d"] {
        assert!(out.stdout.contains(want), "{want}: {out}");
    }
    d.cli(cli, &["run", "--rm", "--ip", "10.1.1.1", &bb, "true"]).fails().mentions(&["user defined networks"]);
    d.cli(cli, &["run", "--rm", "--network", "nonet", &bb, "true"]).fails().mentions(&["not found"]);
}
both!(resolver_flags_and_extra_hosts);

/// `ip -4 addr` inside a running container.
fn addrs(d: &Daemon, cli: Cli, name: &str) -> String {
    let out = d.cli(cli, &["exec", name, "ip", "-4", "addr"]);
    out.ok();
    out.stdout.clone()
}

/// The address `nslookup` gives for a name asked from inside a container ("" when none).
fn lookup(d: &Daemon, cli: Cli, from: &str, name: &str) -> String {
    let out = d.cli(cli, &["exec", from, "nslookup", "-timeout=2", name]);
    // busybox prints the server's address first, then the answers after the name.
    out.stdout
        .split(&format!("Name:\t{name}"))
        .nth(1)
        .and_then(|a| a.split("Address: ").nth(1))
        .map(|a| a.split_whitespace().next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn ip_on(d: &Daemon, cli: Cli, name: &str, net: &str) -> String {
    d.inspect(cli, name)["NetworkSettings"]["Networks"][net]["IPAddress"].as_str().unwrap_or_default().to_string()
}

const SERVE: &str = "echo hello-$HOSTNAME > /tmp/index.html && exec httpd -f -p 80 -h /tmp";

fn connect_and_disconnect_a_running_container(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, _) = subnet_for(&d, 3);
    let (sb, pb) = subnet_for(&d, 4);
    d.cli(cli, &["network", "create", "--subnet", &sa, "neta"]).ok();
    d.cli(cli, &["network", "create", "--subnet", &sb, "netb"]).ok();
    d.cli(cli, &["run", "-d", "--name", "srvb", "--hostname", "srvb", "--network", "netb", &bb, "sh", "-c", SERVE])
        .ok();
    d.cli(cli, &["run", "-d", "--name", "cli", "-p", "127.0.0.1::80", "--network", "neta", &bb, "sleep", "300"]).ok();
    let port_before = d.cli(cli, &["port", "cli", "80"]).trimmed().to_string();
    let srvb_ip = ip_on(&d, cli, "srvb", "netb");
    assert!(srvb_ip.starts_with(&pb), "{srvb_ip}");
    assert_eq!(lookup(&d, cli, "cli", "srvb"), "", "not on netb yet");
    assert!(!addrs(&d, cli, "cli").contains("eth1"));

    d.cli(cli, &["network", "connect", "--alias", "client", "netb", "cli"]).ok();
    let a = addrs(&d, cli, "cli");
    let cli_b = ip_on(&d, cli, "cli", "netb");
    assert!(cli_b.starts_with(&pb) && a.contains("eth1") && a.contains(&format!("{cli_b}/24")), "{a} {cli_b}");
    // eth0 keeps the default route; published ports are untouched.
    let route = d.cli(cli, &["exec", "cli", "ip", "route"]);
    assert!(route.stdout.lines().any(|l| l.starts_with("default") && l.contains("eth0")), "{route}");
    assert_eq!(d.cli(cli, &["port", "cli", "80"]).trimmed(), port_before);
    assert_eq!(lookup(&d, cli, "cli", "srvb"), srvb_ip);
    assert_eq!(lookup(&d, cli, "srvb", "client"), cli_b, "the alias given on connect");
    let get = d.cli(cli, &["exec", "cli", "wget", "-q", "-O", "-", "http://srvb/"]);
    get.ok();
    assert!(get.stdout.contains("hello-srvb"), "{get}");
    let hosts = d.cli(cli, &["exec", "cli", "cat", "/etc/hosts"]);
    assert!(hosts.stdout.contains(&cli_b), "a hosts line per address: {hosts}");
    // Inspect lists both networks; the network lists the container.
    let v = d.inspect(cli, "cli");
    let nets = &v["NetworkSettings"]["Networks"];
    assert!(nets["neta"]["IPAddress"].as_str().is_some_and(|s| !s.is_empty()), "{nets}");
    assert!(nets["netb"]["Aliases"].as_array().is_some_and(|a| a.iter().any(|x| x == "client")), "{nets}");
    assert_ne!(nets["neta"]["EndpointID"], nets["netb"]["EndpointID"], "{nets}");
    assert!(!nets["netb"]["MacAddress"].as_str().unwrap_or_default().is_empty(), "{nets}");
    let n = d.cli(cli, &["network", "inspect", "netb"]).json();
    let cid = v["Id"].as_str().unwrap_or_default();
    assert_eq!(n[0]["Containers"][cid]["IPv4Address"], format!("{cli_b}/24").as_str(), "{n}");
    // Twice is an error, as are the modes that cannot be connected.
    d.cli(cli, &["network", "connect", "netb", "cli"]).fails().mentions(&["already exists in network netb"]);
    d.cli(cli, &["network", "rm", "netb"]).fails().mentions(&["active endpoints", "cli", "srvb"]);

    d.cli(cli, &["network", "disconnect", "netb", "cli"]).ok();
    assert!(!addrs(&d, cli, "cli").contains("eth1"), "eth1 gone");
    assert_eq!(lookup(&d, cli, "cli", "srvb"), "", "netb's names are gone");
    assert_eq!(lookup(&d, cli, "srvb", "client"), "", "and its own name on netb");
    let get = d.cli(cli, &["exec", "cli", "ping", "-c1", "-W2", &srvb_ip]);
    assert!(!get.success(), "{get}");
    let hosts = d.cli(cli, &["exec", "cli", "cat", "/etc/hosts"]);
    assert!(!hosts.stdout.contains(&cli_b), "{hosts}");
    assert!(d.inspect(cli, "cli")["NetworkSettings"]["Networks"]["netb"].is_null());
    d.cli(cli, &["network", "disconnect", "netb", "cli"]).fails().mentions(&["not connected"]);
    // Connected again, it is back (and its address is the one just released or another).
    d.cli(cli, &["network", "connect", "netb", "cli"]).ok();
    assert_eq!(lookup(&d, cli, "cli", "srvb"), srvb_ip);
    d.cli(cli, &["rm", "-f", "cli", "srvb"]).ok();
    d.cli(cli, &["network", "rm", "neta", "netb"]).ok();
}
both!(connect_and_disconnect_a_running_container);

fn modes_that_cannot_be_connected(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, _) = subnet_for(&d, 5);
    d.cli(cli, &["network", "create", "--subnet", &sa, "neta"]).ok();
    d.cli(cli, &["create", "--name", "hostc", "--network", "host", &bb, "true"]).ok();
    d.cli(cli, &["create", "--name", "nonec", "--network", "none", &bb, "true"]).ok();
    d.cli(cli, &["run", "-d", "--name", "base", &bb, "sleep", "300"]).ok();
    d.cli(cli, &["create", "--name", "cm", "--network", "container:base", &bb, "true"]).ok();
    d.cli(cli, &["network", "connect", "neta", "hostc"]).fails().mentions(&["host network"]);
    d.cli(cli, &["network", "connect", "neta", "nonec"]).fails().mentions(&["private (none) mode"]);
    d.cli(cli, &["network", "connect", "neta", "cm"]).fails().mentions(&["sharing network namespace"]);
    d.cli(cli, &["network", "connect", "host", "base"]).fails().mentions(&["host network"]);
    d.cli(cli, &["network", "connect", "bridge", "base"]).fails().mentions(&["already exists in network bridge"]);
    d.cli(cli, &["network", "connect", "--alias", "x", "bridge", "base"]).fails();
    d.cli(cli, &["network", "disconnect", "neta", "base"]).fails().mentions(&["not connected to network neta"]);
    d.cli(cli, &["network", "connect", "nosuchnet", "base"]).fails().mentions(&["not found"]);
    d.cli(cli, &["rm", "-f", "hostc", "nonec", "cm", "base"]).ok();
}
both!(modes_that_cannot_be_connected);

/// A container on two networks resolves and reaches both; one on a single network reaches
/// only that one; created-then-connected containers join at start; both endpoints survive
/// daemon restarts (graceful and `kill -9`).
fn two_networks_and_restarts(cli: Cli) {
    let mut d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, pa) = subnet_for(&d, 6);
    let (sb, pb) = subnet_for(&d, 7);
    d.cli(cli, &["network", "create", "--subnet", &sa, "neta"]).ok();
    d.cli(cli, &["network", "create", "--subnet", &sb, "netb"]).ok();
    d.cli(cli, &["run", "-d", "--name", "sa", "--hostname", "sa", "--network", "neta", &bb, "sh", "-c", SERVE]).ok();
    d.cli(cli, &["run", "-d", "--name", "sb", "--hostname", "sb", "--network", "netb", &bb, "sh", "-c", SERVE]).ok();
    d.cli(cli, &["create", "--name", "multi", "--network", "neta", &bb, "sleep", "300"]).ok();
    d.cli(cli, &["network", "connect", "--ip", &format!("{pb}.99"), "netb", "multi"]).ok();
    d.cli(cli, &["network", "connect", "netb", "multi"]).fails().mentions(&["already exists"]);
    let v = d.inspect(cli, "multi");
    assert!(v["NetworkSettings"]["Networks"]["netb"].is_object(), "a created container lists it: {v}");
    d.cli(cli, &["start", "multi"]).ok();
    d.cli(cli, &["run", "-d", "--name", "onlya", "--network", "neta", &bb, "sleep", "300"]).ok();
    let sb_ip = ip_on(&d, cli, "sb", "netb");
    let check = |d: &Daemon, when: &str| {
        let a = addrs(d, cli, "multi");
        assert!(a.contains(&format!("{pb}.99/24")) && a.contains(&format!("{pa}.")), "{when}: {a}");
        assert_eq!(lookup(d, cli, "multi", "sa"), ip_on(d, cli, "sa", "neta"), "{when}");
        assert_eq!(lookup(d, cli, "multi", "sb"), sb_ip, "{when}");
        for target in ["sa", "sb"] {
            let get = d.cli(cli, &["exec", "multi", "wget", "-q", "-O", "-", &format!("http://{target}/")]);
            assert!(get.stdout.contains(&format!("hello-{target}")), "{when}: {get}");
        }
        assert_eq!(lookup(d, cli, "onlya", "sb"), "", "{when}: onlya is not on netb");
        let get = d.cli(cli, &["exec", "onlya", "ping", "-c1", "-W2", &sb_ip]);
        assert!(!get.success(), "{when}: netb is out of onlya's reach: {get}");
    };
    check(&d, "started");
    d.restart();
    check(&d, "after a graceful restart");
    d.kill9();
    d.restart();
    check(&d, "after kill -9");
    // Stop releases both; start brings both back.
    d.cli(cli, &["stop", "-t", "1", "multi"]).ok();
    assert_eq!(lookup(&d, cli, "sb", "multi"), "");
    d.cli(cli, &["start", "multi"]).ok();
    check(&d, "started again");
    d.cli(cli, &["rm", "-f", "multi", "onlya", "sa", "sb"]).ok();
    d.cli(cli, &["network", "rm", "neta", "netb"]).ok();
}
both!(two_networks_and_restarts);

/// `run --network a --network b` (API 1.44's several `EndpointsConfig`), `ps` naming both
/// networks, and the `network connect`/`disconnect` events naming the container.
fn run_on_two_networks_and_events(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, pa) = subnet_for(&d, 8);
    let (sb, pb) = subnet_for(&d, 9);
    d.cli(cli, &["network", "create", "--subnet", &sa, "neta"]).ok();
    d.cli(cli, &["network", "create", "--subnet", &sb, "netb"]).ok();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.as_secs()).unwrap_or(0);
    let t0 = now();
    d.cli(cli, &["run", "-d", "--name", "two", "--network", "neta", "--network", "netb", &bb, "sleep", "300"]).ok();
    let a = addrs(&d, cli, "two");
    assert!(a.contains(&format!("inet {pa}.")) && a.contains(&format!("inet {pb}.")), "{a}");
    // The list's NetworkSettings names both (the wharf CLI's `ps` leaves `.Networks` empty).
    if cli == Cli::Docker {
        let ps = d.cli(cli, &["ps", "--format", "{{.Networks}}", "--filter", "name=two"]);
        ps.ok();
        assert!(ps.stdout.contains("neta") && ps.stdout.contains("netb"), "{ps}");
    }
    d.cli(cli, &["network", "disconnect", "neta", "two"]).ok();
    let a = addrs(&d, cli, "two");
    assert!(!a.contains(&format!("inet {pa}.")) && a.contains(&format!("inet {pb}.")), "{a}");
    // The route moved to the network that is left.
    let route = d.cli(cli, &["exec", "two", "ip", "route"]);
    assert!(route.stdout.lines().any(|l| l.starts_with(&format!("default via {pb}.1"))), "{route}");
    d.cli(cli, &["network", "connect", "neta", "two"]).ok();
    let id = d.inspect(cli, "two")["Id"].as_str().unwrap_or_default().to_string();
    d.cli(cli, &["rm", "-f", "two"]).ok();
    let t1 = now() + 1;
    let ev = d.cli(
        cli,
        &[
            "events",
            "--since",
            &t0.to_string(),
            "--until",
            &t1.to_string(),
            "--filter",
            "type=network",
            "--format",
            "{{json .}}",
        ],
    );
    ev.ok();
    let seen: Vec<String> = ev
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| {
            let attr = |k: &str| e["Actor"]["Attributes"][k].as_str().unwrap_or_default().to_string();
            format!("{} {} {}", e["Action"].as_str().unwrap_or_default(), attr("container"), attr("name"))
        })
        .collect();
    // At start, on connect and disconnect, and at the end.
    let want = [
        format!("connect {id} neta"),
        format!("connect {id} netb"),
        format!("disconnect {id} neta"),
        format!("connect {id} neta"),
        format!("disconnect {id} neta"),
        format!("disconnect {id} netb"),
    ];
    let mut seen_sorted: Vec<String> = seen.iter().filter(|s| s.contains("connect ")).cloned().collect();
    seen_sorted.sort();
    let mut want_sorted = want.to_vec();
    want_sorted.sort();
    assert_eq!(seen_sorted, want_sorted, "{ev}");
    d.cli(cli, &["network", "rm", "neta", "netb"]).ok();
}
both!(run_on_two_networks_and_events);

/// A created container disconnected from its first network starts on the next; one
/// disconnected from every network starts with loopback only and gets `eth0` when connected
/// while it runs.
fn disconnect_everything_then_connect_again(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, pa) = subnet_for(&d, 10);
    let (sb, pb) = subnet_for(&d, 11);
    d.cli(cli, &["network", "create", "--subnet", &sa, "neta"]).ok();
    d.cli(cli, &["network", "create", "--subnet", &sb, "netb"]).ok();
    d.cli(cli, &["create", "--name", "box", "--network", "neta", &bb, "sleep", "300"]).ok();
    d.cli(cli, &["network", "connect", "netb", "box"]).ok();
    d.cli(cli, &["network", "disconnect", "neta", "box"]).ok();
    d.cli(cli, &["start", "box"]).ok();
    let a = addrs(&d, cli, "box");
    assert!(a.contains(&format!("inet {pb}.")) && !a.contains(&format!("inet {pa}.")), "{a}");
    assert!(a.contains("eth0"), "{a}");
    let nets = d.inspect(cli, "box")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets.as_object().map(|m| m.len()), Some(1), "{nets}");
    d.cli(cli, &["network", "disconnect", "netb", "box"]).ok();
    let a = addrs(&d, cli, "box");
    assert!(!a.contains("eth0") && a.contains("127.0.0.1"), "{a}");
    let nets = d.inspect(cli, "box")["NetworkSettings"]["Networks"].clone();
    assert_eq!(nets.as_object().map(|m| m.len()), Some(0), "{nets}");
    // Stopped and started again with no network: loopback only, then connected live.
    d.cli(cli, &["stop", "-t", "1", "box"]).ok();
    d.cli(cli, &["start", "box"]).ok();
    assert!(!addrs(&d, cli, "box").contains("eth0"));
    d.cli(cli, &["network", "connect", "neta", "box"]).ok();
    let a = addrs(&d, cli, "box");
    assert!(a.contains("eth0") && a.contains(&format!("inet {pa}.")), "{a}");
    let route = d.cli(cli, &["exec", "box", "ip", "route"]);
    assert!(route.stdout.contains(&format!("default via {pa}.1")), "{route}");
    d.cli(cli, &["rm", "-f", "box"]).ok();
    d.cli(cli, &["network", "rm", "neta", "netb"]).ok();
}
both!(disconnect_everything_then_connect_again);

/// `default-address-pools` in daemon.json: networks created without `--subnet` take the pool's
/// subnets in order, a container on one gets an address from it, and an exhausted pool is an
/// error that says so.
fn networks_come_from_the_address_pools(cli: Cli) {
    // A pool unique to this daemon: 10.<a>.<c>.0/24 cut into four /26 subnets.
    let probe = Daemon::start();
    let (base, prefix) = subnet_for(&probe, 5);
    drop(probe);
    let config = format!(r#"{{"default-address-pools": [{{"base": "{base}", "size": 26}}]}}"#);
    let d = Daemon::start_with(DaemonOptions { config_json: Some(config), ..Default::default() });
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let subnet = |net: &str| {
        let v = d.cli(cli, &["network", "inspect", net]).ok().json();
        v[0]["IPAM"]["Config"][0]["Subnet"].as_str().unwrap_or_default().to_string()
    };
    for (i, net) in ["p0", "p1", "p2", "p3"].iter().enumerate() {
        d.cli(cli, &["network", "create", net]).ok();
        assert_eq!(subnet(net), format!("{prefix}.{}/26", i * 64));
    }
    d.cli(cli, &["network", "create", "p4"]).fails().mentions(&["address pool"]);
    let ip = d
        .cli(cli, &["run", "--rm", "--network", "p1", &bb, "ip", "-4", "-o", "addr", "show", "eth0"])
        .ok()
        .stdout
        .clone();
    assert!(ip.contains(&format!("{prefix}.66/26")), "{ip}");
    d.cli(cli, &["network", "rm", "p0", "p1", "p2", "p3"]).ok();
}
both!(networks_come_from_the_address_pools);

/// `--link name:alias`: on the default bridge an /etc/hosts line (`IP alias id name`), on a
/// user-defined network a name only the linking container resolves; inspect shows the links
/// as dockerd does, and a link to a container that does not run is refused at start.
fn links_on_the_default_bridge_and_on_a_user_network(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    d.cli(cli, &["run", "-d", "--name", "db", "-e", "SECRET=1", "--expose", "6379", &bb, "sleep", "60"]).ok();
    let db_ip = d.inspect(cli, "db")["NetworkSettings"]["IPAddress"].as_str().unwrap_or_default().to_string();
    assert!(!db_ip.is_empty());
    let out = d.cli(cli, &["run", "--rm", "--link", "db:database", &bb, "sh", "-c", "grep database /etc/hosts"]);
    let line = out.ok().trimmed().to_string();
    assert!(line.starts_with(&db_ip) && line.contains("database") && line.ends_with(" db"), "{line}");
    // And the variables dockerd gives a linked container.
    let out = d.cli(
        cli,
        &["run", "--rm", "--name", "env", "--link", "db:database", &bb, "sh", "-c", "env | grep ^DATABASE_ | sort"],
    );
    let env = out.ok().trimmed().to_string();
    for want in [
        "DATABASE_ENV_SECRET=1".to_string(),
        "DATABASE_NAME=/env/database".to_string(),
        format!("DATABASE_PORT=tcp://{db_ip}:6379"),
        format!("DATABASE_PORT_6379_TCP_ADDR={db_ip}"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    d.cli(cli, &["create", "--name", "web", "--link", "db:database", &bb, "true"]).ok();
    assert_eq!(d.inspect(cli, "web")["HostConfig"]["Links"], serde_json::json!(["/db:/web/database"]));
    // `rm --link` removes the link, not a container; the form Docker documents has a leading
    // slash, which both CLIs trim.
    d.cli(cli, &["rm", "--link", "/web/database"]).ok();
    let links = d.inspect(cli, "web")["HostConfig"]["Links"].clone();
    assert!(links.as_array().is_none_or(|a| a.is_empty()), "{links}");
    d.cli(cli, &["rm", "--link", "web/nosuch"]).fails();
    assert_eq!(d.inspect(cli, "web")["Name"], "/web", "rm --link keeps the container");
    d.cli(cli, &["create", "--name", "lonely", "--link", "nosuch:x", &bb, "true"]).ok();
    d.cli(cli, &["start", "lonely"]).fails().mentions(&["Cannot link to a non running container"]);

    let (subnet, _) = subnet_for(&d, 5);
    d.cli(cli, &["network", "create", "--subnet", &subnet, "linked"]).ok();
    d.cli(cli, &["run", "-d", "--name", "store", "--network", "linked", &bb, "sleep", "60"]).ok();
    let store_ip = ip_on(&d, cli, "store", "linked");
    d.cli(cli, &["run", "-d", "--name", "app", "--network", "linked", "--link", "store:cache", &bb, "sleep", "60"])
        .ok();
    d.cli(cli, &["run", "-d", "--name", "other", "--network", "linked", &bb, "sleep", "60"]).ok();
    assert_eq!(lookup(&d, cli, "app", "cache"), store_ip);
    assert_eq!(lookup(&d, cli, "other", "cache"), "", "the alias is the linking container's only");
    assert_eq!(lookup(&d, cli, "other", "store"), store_ip);
    // `network connect --link`: a container joining the network later links as it joins.
    d.cli(cli, &["run", "-d", "--name", "late", &bb, "sleep", "60"]).ok();
    d.cli(cli, &["network", "connect", "--link", "store:kv", "linked", "late"]).ok();
    assert_eq!(lookup(&d, cli, "late", "kv"), store_ip);
    assert_eq!(lookup(&d, cli, "other", "kv"), "", "the alias is the linking container's only");
    d.cli(cli, &["rm", "-f", "db", "web", "lonely", "store", "app", "other", "late"]).ok();
    d.cli(cli, &["network", "rm", "linked"]).ok();
}
both!(links_on_the_default_bridge_and_on_a_user_network);

/// `network connect` with a MAC address and driver options: the interface has that address,
/// and inspect shows the options (kept as dockerd keeps them).
#[test]
fn connect_with_a_mac_address_and_driver_opts() {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.wharf(&["pull", &bb]).ok();
    let (subnet, _) = subnet_for(&d, 6);
    d.wharf(&["network", "create", "--subnet", &subnet, "extra"]).ok();
    d.wharf(&["run", "-d", "--name", "box", &bb, "sleep", "60"]).ok();
    let body =
        r#"{"Container":"box","EndpointConfig":{"MacAddress":"02:42:ac:11:00:99","DriverOpts":{"com.example.x":"1"}}}"#;
    let resp = crate::harness::http_unix_post(&d.sock, "/networks/extra/connect", body);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let link = d.wharf(&["exec", "box", "ip", "link", "show", "eth1"]);
    assert!(link.ok().stdout.contains("02:42:ac:11:00:99"), "{link}");
    let net = &d.inspect(Cli::Wharf, "box")["NetworkSettings"]["Networks"]["extra"];
    assert_eq!(net["DriverOpts"]["com.example.x"], "1", "{net}");
    assert_eq!(net["MacAddress"], "02:42:ac:11:00:99", "{net}");
    let bad = r#"{"Container":"box","EndpointConfig":{"MacAddress":"not-a-mac"}}"#;
    d.wharf(&["network", "create", "other"]).ok();
    let resp = crate::harness::http_unix_post(&d.sock, "/networks/other/connect", bad);
    assert!(resp.starts_with("HTTP/1.1 400") && resp.contains("invalid MAC address"), "{resp}");
    d.wharf(&["rm", "-f", "box"]).ok();
    d.wharf(&["network", "rm", "extra", "other"]).ok();
}

/// `network create --aux-address/--ipam-opt/--ipv4` and `network connect --driver-opt`:
/// auxiliary addresses are reserved (never handed out, refused to `--ip`) and shown in their
/// pool, IPAM options are kept and shown, `--ipv4=false` is refused with a reason, and the
/// endpoint's driver options are kept.
fn aux_addresses_ipam_options_ipv4_and_driver_opts(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (_, prefix) = subnet_for(&d, 8);
    // A /29: .1 is the gateway; .2 and .3 are reserved, so the first container gets .4.
    let subnet = format!("{prefix}.0/29");
    let (a2, a3) = (format!("{prefix}.2"), format!("{prefix}.3"));
    d.cli(cli, &["network", "create", "--subnet", &subnet, "--aux-address", &format!("far={prefix}.9"), "bad"])
        .fails()
        .mentions(&["no matching subnet for aux-address"]);
    d.cli(cli, &["network", "create", "--ipv4=false", "v6only"]).fails().mentions(&["IPv6-only"]);
    d.cli(cli, &["network", "create", "--ipv4", "--subnet", &format!("{prefix}.64/29"), "v4"]).ok();
    let args = ["--aux-address", &format!("r1={a2}"), "--aux-address", &format!("r2={a3}"), "--ipam-opt", "k=v"];
    d.cli(cli, &[&["network", "create", "--subnet", &subnet][..], &args[..], &["aux"]].concat()).ok();
    let v = d.cli(cli, &["network", "inspect", "aux"]).json();
    assert_eq!(v[0]["IPAM"]["Config"][0]["AuxiliaryAddresses"]["r1"], a2.as_str(), "{v}");
    assert_eq!(v[0]["IPAM"]["Config"][0]["AuxiliaryAddresses"]["r2"], a3.as_str(), "{v}");
    assert_eq!(v[0]["IPAM"]["Options"]["k"], "v", "{v}");
    d.cli(cli, &["run", "--rm", "--network", "aux", "--ip", &a2, &bb, "true"]).fails().mentions(&["already in use"]);
    let out = d.cli(cli, &["run", "--rm", "--network", "aux", &bb, "ip", "-4", "addr", "show", "eth0"]);
    assert!(out.ok().stdout.contains(&format!("{prefix}.4/29")), "{out}");
    d.cli(cli, &["run", "-d", "--name", "box", &bb, "sleep", "60"]).ok();
    d.cli(cli, &["network", "connect", "--driver-opt", "novalue", "aux", "box"])
        .fails()
        .mentions(&["invalid key/value pair format in driver options"]);
    d.cli(cli, &["network", "connect", "--driver-opt", "com.example.x=1", "aux", "box"]).ok();
    let net = &d.inspect(cli, "box")["NetworkSettings"]["Networks"]["aux"];
    assert_eq!(net["DriverOpts"]["com.example.x"], "1", "{net}");
    assert_eq!(net["IPAddress"], format!("{prefix}.4").as_str(), "{net}");
    d.cli(cli, &["rm", "-f", "box"]).ok();
    d.cli(cli, &["network", "rm", "aux", "v4"]).ok();
}
both!(aux_addresses_ipam_options_ipv4_and_driver_opts);
