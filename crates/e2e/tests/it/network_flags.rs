//! Per-network endpoint flags: `--link-local-ip` (`run`/`create`, `network connect`): further
//! addresses on the container's interface, IPv4 ones with a /16 and IPv6 ones with a /64, as
//! dockerd adds them (compared with a private dockerd 20.10), and `--gw-priority` (`network
//! connect`, `--network name=..,gw-priority=N`, API 1.48): the default route goes through the
//! network of the highest priority, and moves when a higher one is connected or that one goes.

use serde_json::Value;

use crate::dockerd::Dockerd;
use crate::harness::{registry, Cli, Daemon};
use crate::network_ipv6::subnet6_for;
use crate::network_user::subnet_for;

/// The `inet`/`inet6` line of `addr` in `ip addr show IF` inside the container, its words
/// joined by one space up to the scope's ("" when the address is not there): the flags after
/// it (`tentative` while duplicate address detection runs) depend on the moment.
fn addr_line(addrs: &str, addr: &str) -> String {
    let want = format!("{addr}/");
    addrs
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().nth(1).is_some_and(|a| a.starts_with(&want)))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let end = words.iter().position(|w| *w == "scope").map_or(words.len(), |i| (i + 2).min(words.len()));
            words[..end].join(" ")
        })
        .unwrap_or_default()
}

fn endpoint(inspect: &Value, net: &str) -> Value {
    inspect["NetworkSettings"]["Networks"][net].clone()
}

/// `--link-local-ip` on a user network, on the default bridge and through `network connect`:
/// the addresses are on the interface (with dockerd's prefix lengths), inspect lists them, they
/// are back after a restart, and an address that is none fails the start with dockerd's message.
fn link_local_addresses(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, _) = subnet_for(&d, 1);
    let (sb, _) = subnet_for(&d, 2);
    d.cli(cli, &["network", "create", "--subnet", &sa, "lla"]).ok();
    d.cli(cli, &["network", "create", "--subnet", &sb, "llb"]).ok();
    d.cli(
        cli,
        &[
            "run",
            "-d",
            "--name",
            "box",
            "--network",
            "lla",
            "--link-local-ip",
            "169.254.7.7",
            "--link-local-ip",
            "fe80::7:7",
            &bb,
            "sleep",
            "300",
        ],
    )
    .ok();
    let check_eth0 = |when: &str| {
        let a = d.cli(cli, &["exec", "box", "ip", "addr", "show", "eth0"]);
        a.ok();
        assert!(addr_line(&a.stdout, "169.254.7.7").starts_with("inet 169.254.7.7/16"), "{when}: {a}");
        assert!(addr_line(&a.stdout, "fe80::7:7").starts_with("inet6 fe80::7:7/64"), "{when}: {a}");
    };
    check_eth0("run");
    let ep = endpoint(&d.inspect(cli, "box"), "lla");
    assert_eq!(ep["IPAMConfig"]["LinkLocalIPs"], serde_json::json!(["169.254.7.7", "fe80::7:7"]), "{ep}");
    // Connected to one more network with one more address: on that interface only.
    d.cli(cli, &["network", "connect", "--link-local-ip", "169.254.8.8", "llb", "box"]).ok();
    let a1 = d.cli(cli, &["exec", "box", "ip", "addr", "show", "eth1"]);
    assert!(addr_line(&a1.stdout, "169.254.8.8").starts_with("inet 169.254.8.8/16"), "{a1}");
    assert!(addr_line(&a1.stdout, "169.254.7.7").is_empty(), "{a1}");
    let ep = endpoint(&d.inspect(cli, "box"), "llb");
    assert_eq!(ep["IPAMConfig"]["LinkLocalIPs"], serde_json::json!(["169.254.8.8"]), "{ep}");
    // Kept with the container: there again after a restart.
    // (`stop` then `start`: `restart` then `exec` at once races, the container is sometimes
    // killed right after its new start, with or without these flags.)
    d.cli(cli, &["stop", "-t", "1", "box"]).ok();
    d.cli(cli, &["start", "box"]).ok();
    check_eth0("restart");
    let names = d.cli(cli, &["exec", "box", "ip", "addr"]);
    assert!(names.stdout.contains("169.254.8.8/16"), "{names}");
    // The default bridge takes them too, as dockerd 20.10.
    let out = d.cli(cli, &["run", "--rm", "--link-local-ip", "169.254.9.9", &bb, "ip", "addr", "show", "eth0"]);
    out.ok();
    assert!(addr_line(&out.stdout, "169.254.9.9").starts_with("inet 169.254.9.9/16"), "{out}");
    // Not an address: the start fails, naming the list.
    let bad = d.cli(cli, &["run", "--rm", "--network", "lla", "--link-local-ip", "notanip", &bb, "true"]);
    bad.fails();
    assert!(bad.stderr.contains("Invalid link-local IP address: [notanip]"), "{bad}");
    d.cli(cli, &["rm", "-f", "box"]).ok();
    d.cli(cli, &["network", "rm", "lla", "llb"]).ok();
}
both!(link_local_addresses);

/// The container's default route through the network of the highest `GwPriority`: given at
/// `run` in `--network name=..,gw-priority=N` (that network is `eth0`: at a start interfaces
/// are numbered in dockerd's order), then a higher one connected (the next interface number,
/// never one given before), then that one disconnected (the route goes back to the highest
/// left), and after a restart; among equal priorities the network's name decides, as in
/// dockerd. Inspect shows each network's priority.
fn default_route_by_gw_priority(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (sa, pa) = subnet_for(&d, 3);
    let (sb, pb) = subnet_for(&d, 4);
    let (sc, pc) = subnet_for(&d, 5);
    for (s, n) in [(&sa, "gwa"), (&sb, "gwb"), (&sc, "gwc")] {
        d.cli(cli, &["network", "create", "--subnet", s, n]).ok();
    }
    let route = || {
        let r = d.cli(cli, &["exec", "box", "ip", "route"]);
        r.ok();
        r.stdout.lines().find(|l| l.starts_with("default ")).unwrap_or_default().trim().to_string()
    };
    d.cli(
        cli,
        &["run", "-d", "--name", "box", "--network", "gwa", "--network", "name=gwb,gw-priority=5", &bb, "sleep", "300"],
    )
    .ok();
    assert!(route().starts_with(&format!("default via {pb}.1 dev eth0")), "{}", route());
    let c = d.inspect(cli, "box");
    assert_eq!(endpoint(&c, "gwa")["GwPriority"], 0, "{c}");
    assert_eq!(endpoint(&c, "gwb")["GwPriority"], 5, "{c}");
    // A lower priority connected: the route stays.
    d.cli(cli, &["network", "connect", "--gw-priority", "-3", "gwc", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pb}.1 dev eth0")), "{}", route());
    d.cli(cli, &["network", "disconnect", "gwc", "box"]).ok();
    // A higher one: the route moves to it.
    d.cli(cli, &["network", "connect", "--gw-priority", "10", "gwc", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pc}.1 dev eth3")), "{}", route());
    assert_eq!(endpoint(&d.inspect(cli, "box"), "gwc")["GwPriority"], 10);
    // It goes: back to the highest of those left (gwb, not the first connected gwa).
    d.cli(cli, &["network", "disconnect", "gwc", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pb}.1 dev eth0")), "{}", route());
    // At a start too.
    // (`stop` then `start`: `restart` then `exec` at once races, the container is sometimes
    // killed right after its new start, with or without these flags.)
    d.cli(cli, &["stop", "-t", "1", "box"]).ok();
    d.cli(cli, &["start", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pb}.1 dev eth0")), "{}", route());
    // Equal priorities: the network's name decides, not the order of connects.
    d.cli(cli, &["network", "disconnect", "gwb", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pa}.1 dev eth1")), "{}", route());
    d.cli(cli, &["network", "connect", "gwc", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pa}.1 dev eth1")), "{}", route());
    d.cli(cli, &["network", "disconnect", "gwa", "box"]).ok();
    d.cli(cli, &["network", "connect", "gwb", "box"]).ok();
    assert!(route().starts_with(&format!("default via {pb}.1 dev eth3")), "{}", route());
    d.cli(cli, &["rm", "-f", "box"]).ok();
    d.cli(cli, &["network", "rm", "gwa", "gwb", "gwc"]).ok();
}

both!(default_route_by_gw_priority);

/// The same `--link-local-ip` commands through the docker CLI against wharfd and a private
/// dockerd 20.10, on a dual-stack network: the same address lines on the interface, the same
/// `IPAMConfig`, and wharf's errors for bad addresses say what dockerd's say.
#[test]
fn link_local_addresses_compared_with_dockerd() {
    let d = Daemon::start();
    let image = d.pull("library/busybox:latest");
    let docker = Dockerd::start(&[&registry().addr]).unwrap_or_else(|e| panic!("private dockerd: {e}"));
    docker.cli(&["pull", "-q", &image]).ok();
    let run_on = |cmd: &dyn Fn(&[&str]) -> crate::harness::Output, offset: u8| -> (Vec<String>, Value, Vec<String>) {
        // Dual-stack: dockerd 20.10 fails the start when an IPv6 one is given on an IPv4-only
        // network (its interface has IPv6 off: "permission denied"); wharf switches IPv6 on
        // for that interface, as for `--ip6`.
        let (s, _) = subnet_for(&d, offset);
        let (s6, _) = subnet6_for(&d, offset);
        cmd(&["network", "create", "--ipv6", "--subnet", &s, "--subnet", &s6, "lln"]).ok();
        let lls = ["169.254.3.4", "fe80::3:4", "fe80:0:0:1::9", "febf::5"];
        let mut args = vec!["run", "-d", "--name", "llc", "--network", "lln"];
        for a in &lls {
            args.extend(["--link-local-ip", a]);
        }
        args.extend([image.as_str(), "sleep", "300"]);
        cmd(&args).ok();
        let shown = cmd(&["exec", "llc", "ip", "addr", "show", "eth0"]);
        shown.ok();
        let lines = lls.iter().map(|a| addr_line(&shown.stdout, a)).collect();
        let inspect = cmd(&["inspect", "llc"]).json();
        let ipam = inspect[0]["NetworkSettings"]["Networks"]["lln"]["IPAMConfig"].clone();
        // Not an address; not link-local (either family); both (the first check wins).
        let mut errors = Vec::new();
        for bad in [&["1.2.3"][..], &["10.99.0.1"], &["169.254.1.1", "fd00::1"], &["fd00::1", "x"]] {
            let mut args = vec!["run", "--rm", "--network", "lln"];
            for a in bad {
                args.extend(["--link-local-ip", a]);
            }
            args.extend([image.as_str(), "true"]);
            let out = cmd(&args);
            assert!(!out.success(), "{out}");
            let msg =
                out.stderr.lines().find_map(|l| l.split("Error response from daemon: ").nth(1)).unwrap_or_default();
            errors.push(msg.trim().to_string());
        }
        cmd(&["rm", "-f", "llc"]).ok();
        cmd(&["network", "rm", "lln"]).ok();
        (lines, ipam, errors)
    };
    let ours = run_on(&|args| d.docker(args), 7);
    let theirs = run_on(&|args| docker.cli(args), 9);
    assert!(theirs.0.iter().all(|l| !l.is_empty()), "dockerd: {:?}", theirs.0);
    assert_eq!(ours.0, theirs.0, "address lines");
    assert_eq!(ours.1, theirs.1, "IPAMConfig");
    for (o, t) in ours.2.iter().zip(&theirs.2) {
        assert!(!t.is_empty() && o.contains(t.as_str()), "wharfd: {o}\ndockerd: {t}");
    }
}
