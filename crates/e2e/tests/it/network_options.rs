//! dockerd's bridge settings, checked by their effect inside and around containers: the
//! daemon's `mtu`, `icc`, `ip`, `ip-masq`, `fixed-cidr` and `default-gateway` on the default
//! bridge, and the same as a user network's driver options (`com.docker.network.driver.mtu`,
//! `...bridge.enable_icc`, `...host_binding_ipv4`, `...enable_ip_masquerade`). What the
//! networks show in inspect was read off a dockerd 20.10 started with the same settings (in a
//! network namespace of its own, so that its iptables rules stayed there).

use crate::harness::{registry, Cli, Daemon};
use crate::network::http_get;
use crate::network_user::subnet_for;

/// `wget` of `http://ip/hostname` from inside a container on `network`, given 3 s: the page,
/// or None when nothing answered.
fn fetch_from(d: &Daemon, cli: Cli, network: &str, extra: &[&str], ip: &str) -> Option<String> {
    let bb = registry().image("library/busybox:latest");
    let url = format!("http://{ip}/hostname");
    let mut args = vec!["run", "--rm", "--network", network];
    args.extend_from_slice(extra);
    let script = bounded_wget(&url);
    args.extend_from_slice(&[&bb, "sh", "-c", &script]);
    let out = d.cli(cli, &args);
    if out.code != 0 {
        eprintln!("fetch {url} from {network} {extra:?}: {out}");
    }
    (out.code == 0).then_some(out.stdout)
}

/// A shell line that fetches `url` and gives up after 3 s. busybox's `wget -T` crashes
/// (Debian's busybox-static 1.35), and `timeout` must not be the container's PID 1 (which no
/// signal of its own kills), hence the shell and the `exit` that keeps it from exec'ing.
fn bounded_wget(url: &str) -> String {
    format!("timeout -s KILL 3 wget -q -O - {url}; exit $?")
}

fn web(d: &Daemon, cli: Cli, name: &str, network: &str, publish: bool) -> String {
    let bb = registry().image("library/busybox:latest");
    let mut args = vec!["run", "-d", "--name", name, "--hostname", name, "--network", network, "--expose", "80"];
    if publish {
        args.extend_from_slice(&["-p", "80"]);
    }
    args.extend_from_slice(&[&bb, "httpd", "-f", "-p", "80", "-h", "/etc"]);
    d.cli(cli, &args).ok();
    let v = d.inspect(cli, name);
    v["NetworkSettings"]["Networks"][network]["IPAddress"].as_str().unwrap_or_default().to_string()
}

fn masquerades(d: &Daemon, bridge: &str) -> bool {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", &format!("wharf_{}", d.bridge)])
        .output()
        .expect("nft list table");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    text.lines().any(|l| l.contains(&format!("oifname != \"{bridge}\" masquerade")))
}

fn default_bridge_takes_dockerds_settings(cli: Cli) {
    // The harness's bip is X.1/24; addresses from its upper half, the route through X.7.
    let mut d = Daemon::start();
    let prefix = d.bip.rsplit_once('.').map(|(p, _)| p.to_string()).unwrap_or_default();
    let (range, gateway) = (format!("{prefix}.128/25"), format!("{prefix}.7"));
    let args = ["--mtu", "1400", "--icc=false", "--ip", "127.0.0.1", "--ip-masq=false", "--fixed-cidr", &range];
    let mut extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    extra_args.extend(["--default-gateway".to_string(), gateway.clone()]);
    d.restart_with_args(extra_args);
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();

    let out = d.cli(cli, &["network", "inspect", "bridge"]);
    out.ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("network inspect");
    let want = serde_json::json!({
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.enable_icc": "false",
        "com.docker.network.bridge.enable_ip_masquerade": "false",
        "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
        "com.docker.network.bridge.name": d.bridge,
        "com.docker.network.driver.mtu": "1400",
    });
    assert_eq!(v[0]["Options"], want, "{out}");
    let ipam = &v[0]["IPAM"]["Config"][0];
    assert_eq!(ipam["IPRange"], range.as_str(), "{out}");
    assert_eq!(ipam["AuxiliaryAddresses"]["DefaultGatewayIPv4"], gateway.as_str(), "{out}");

    // fixed-cidr: the first address is the range's first; default-gateway: the route.
    let server = web(&d, cli, "server", "bridge", true);
    assert_eq!(server, format!("{prefix}.128"));
    assert_eq!(d.inspect(cli, "server")["NetworkSettings"]["Gateway"], gateway.as_str());
    let out = d.cli(cli, &["run", "--rm", &bb, "sh", "-c", "cat /sys/class/net/eth0/mtu; ip route"]);
    out.ok();
    assert!(out.stdout.starts_with("1400\n"), "{out}");
    assert!(out.stdout.contains(&format!("default via {gateway} dev eth0")), "{out}");
    assert_eq!(std::fs::read_to_string(format!("/sys/class/net/{}/mtu", d.bridge)).unwrap_or_default().trim(), "1400");

    // ip: a port published without an address is on 127.0.0.1 only.
    let v = d.inspect(cli, "server");
    let binding = &v["NetworkSettings"]["Ports"]["80/tcp"][0];
    assert_eq!(binding["HostIp"], "127.0.0.1", "{v}");
    assert_eq!(v["HostConfig"]["PortBindings"]["80/tcp"][0]["HostIp"], "", "the request is kept as it was");
    let port = binding["HostPort"].as_str().unwrap_or_default().to_string();
    let body = http_get(&format!("127.0.0.1:{port}"), "/hostname").expect("published port on 127.0.0.1");
    assert!(body.contains("server"), "{body}");
    let ps = d.cli(cli, &["ps", "--format", "{{.Ports}}", "--filter", "name=server"]);
    assert_eq!(ps.trimmed(), format!("127.0.0.1:{port}->80/tcp"), "{ps}");

    // icc=false: a container reaches another only through a link, on its exposed port.
    web(&d, cli, "other", "bridge", false);
    assert_eq!(fetch_from(&d, cli, "bridge", &["--link", "server"], &server).as_deref(), Some("server\n"));
    let other = d.inspect(cli, "other")["NetworkSettings"]["IPAddress"].as_str().unwrap_or_default().to_string();
    assert_eq!(fetch_from(&d, cli, "bridge", &["--link", "server"], &other), None, "no link to other");
    assert_eq!(fetch_from(&d, cli, "bridge", &[], &server), None, "no link at all");
    // The host is not another container: it still reaches them.
    assert!(http_get(&format!("{other}:80"), "/hostname").is_ok_and(|b| b.contains("other")));

    assert!(!masquerades(&d, &d.bridge), "ip-masq=false, yet the bridge is masqueraded");
    d.cli(cli, &["rm", "-f", "server", "other"]).ok();
}
both!(default_bridge_takes_dockerds_settings);

fn user_network_takes_the_same_as_driver_options(cli: Cli) {
    let d = Daemon::start();
    let bb = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &bb]).ok();
    let (subnet, _) = subnet_for(&d, 3);
    let opts = [
        "com.docker.network.driver.mtu=1300",
        "com.docker.network.bridge.enable_icc=false",
        "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
        "com.docker.network.bridge.enable_ip_masquerade=false",
    ];
    let mut args = vec!["network", "create", "--subnet", &subnet];
    for o in &opts {
        args.extend_from_slice(&["--opt", o]);
    }
    args.push("closed");
    let out = d.cli(cli, &args);
    out.ok();
    let bridge = format!("br-{}", &out.trimmed()[..12]);
    let (open_subnet, _) = subnet_for(&d, 4);
    d.cli(cli, &["network", "create", "--subnet", &open_subnet, "open"]).ok();

    let a = web(&d, cli, "alpha", "closed", true);
    let out = d.cli(cli, &["run", "--rm", "--network", "closed", &bb, "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(out.trimmed(), "1300", "{out}");
    // Names still resolve (the embedded DNS is on the gateway), but nothing gets through.
    let out = d.cli(cli, &["run", "--rm", "--network", "closed", &bb, "nslookup", "alpha"]);
    assert!(out.stdout.contains(&a), "{out}");
    assert_eq!(fetch_from(&d, cli, "closed", &[], &a), None, "icc=false, yet a container reached alpha");
    // Nor for a container connected while running, whose veth joins the rules then.
    d.cli(cli, &["run", "-d", "--name", "late", "--network", "open", &bb, "sleep", "300"]).ok();
    d.cli(cli, &["network", "connect", "closed", "late"]).ok();
    let url = format!("http://{a}/hostname");
    let out = d.cli(cli, &["exec", "late", "sh", "-c", &bounded_wget(&url)]);
    assert_ne!(out.code, 0, "a container connected later reached alpha: {out}");
    // The control: on a network with icc, the same fetch works.
    let b = web(&d, cli, "beta", "open", false);
    assert_eq!(fetch_from(&d, cli, "open", &[], &b).as_deref(), Some("beta\n"));
    let out = d.cli(cli, &["exec", "late", "sh", "-c", &bounded_wget(&format!("http://{b}/hostname"))]);
    assert_eq!(out.trimmed(), "beta", "{out}");

    let v = d.inspect(cli, "alpha");
    assert_eq!(v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostIp"], "127.0.0.1", "{v}");
    assert!(!masquerades(&d, &bridge), "enable_ip_masquerade=false, yet {bridge} is masqueraded");
    let out = d.cli(cli, &["network", "inspect", "closed", "--format", "{{json .Options}}"]);
    let shown: serde_json::Value = serde_json::from_str(out.trimmed()).unwrap_or_default();
    for o in &opts {
        let (k, v) = o.split_once('=').unwrap();
        assert_eq!(shown[k], v, "{out}");
    }

    // Values dockerd cannot parse are refused at create, naming the option; an MTU no veth can
    // have is taken at create and refused when a container would get it, as dockerd does.
    for (opt, says) in [
        ("com.docker.network.driver.mtu=abc", "failed to parse com.docker.network.driver.mtu value: abc"),
        ("com.docker.network.bridge.enable_icc=maybe", "failed to parse com.docker.network.bridge.enable_icc value"),
        ("com.docker.network.bridge.host_binding_ipv4=foo", "host_binding_ipv4 value: foo"),
    ] {
        let out = d.cli(cli, &["network", "create", "--opt", opt, "bad"]);
        assert_ne!(out.code, 0, "{out}");
        assert!(out.stderr.contains(says), "{out}");
    }
    d.cli(cli, &["network", "create", "--opt", "com.docker.network.driver.mtu=60", "tiny"]).ok();
    let out = d.cli(cli, &["run", "--rm", "--network", "tiny", &bb, "true"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("failed to set MTU"), "{out}");

    d.cli(cli, &["rm", "-f", "alpha", "beta", "late"]).ok();
    for n in ["closed", "open", "tiny"] {
        d.cli(cli, &["network", "rm", n]).ok();
    }
}
both!(user_network_takes_the_same_as_driver_options);
