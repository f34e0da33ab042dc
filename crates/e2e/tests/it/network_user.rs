//! User-defined networks end to end: create/ls/inspect/rm/prune, `--network NAME`, `--ip`,
//! aliases, the embedded DNS (names of the network's containers only, following them as they
//! come and go), `--dns*` and `--add-host`, and networks surviving a daemon restart.

use crate::harness::{registry, Cli, Daemon};

/// A /24 of this daemon's own (the harness gives each daemon a unique `--bip` 10.A.B.1/24).
fn subnet_for(d: &Daemon, third_offset: u8) -> (String, String) {
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
    d.cli(cli, &["network", "create", "bad name"]).fails();
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
