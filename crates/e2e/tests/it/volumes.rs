//! Volumes and mounts: named volumes filled from the image, binds, tmpfs, read-only rootfs,
//! `--volumes-from`, `rm -v`, removal refused while in use, prune.

use serde_json::Value;

use crate::harness::{registry, unique, Cli, Daemon};

fn named_volumes(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let vol = unique("vol");
    assert_eq!(d.cli(cli, &["volume", "create", &vol]).ok().trimmed(), vol);
    let ls = d.cli(cli, &["volume", "ls", "-q"]);
    assert!(ls.ok().stdout.lines().any(|l| l == vol), "{ls}");
    let info = d.cli(cli, &["volume", "inspect", &vol]).ok().json();
    assert_eq!(info[0]["Driver"], "local", "{info}");
    let mp = info[0]["Mountpoint"].as_str().unwrap_or_default().to_string();
    assert!(mp.ends_with(&format!("volumes/{vol}/_data")), "{info}");

    // Written by one container, read by the next; ro refuses writes.
    d.cli(cli, &["run", "--rm", "-v", &format!("{vol}:/data"), &image, "sh", "-c", "echo hi > /data/f"]).ok();
    let out = d.cli(cli, &["run", "--rm", "-v", &format!("{vol}:/data:ro"), &image, "cat", "/data/f"]);
    assert_eq!(out.ok().trimmed(), "hi");
    d.cli(cli, &["run", "--rm", "-v", &format!("{vol}:/data:ro"), &image, "touch", "/data/g"]).fails();
    assert_eq!(std::fs::read_to_string(format!("{mp}/f")).unwrap_or_default(), "hi\n");

    // A fresh volume on /etc gets the image's /etc.
    let etc = unique("etc");
    let out = d.cli(cli, &["run", "--rm", "-v", &format!("{etc}:/etc"), &image, "cat", "/etc/passwd"]);
    assert!(out.ok().stdout.contains("root:"), "{out}");

    // In use: rm is refused with a conflict; after the container goes, it works.
    let c = unique("user");
    d.cli(cli, &["create", "--name", &c, "-v", &format!("{vol}:/data"), &image, "true"]).ok();
    let info = d.inspect(cli, &c);
    let mounts = info["Mounts"].as_array().cloned().unwrap_or_default();
    assert_eq!(mounts.len(), 1, "{info}");
    assert_eq!(mounts[0]["Type"], "volume");
    assert_eq!(mounts[0]["Name"], vol.as_str());
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["RW"], true);
    d.cli(cli, &["volume", "rm", &vol]).fails().mentions(&["in use"]);
    d.cli(cli, &["rm", &c]).ok();
    d.cli(cli, &["volume", "rm", &vol]).ok();
    d.cli(cli, &["volume", "rm", &etc]).ok();
    d.cli(cli, &["volume", "inspect", &vol]).fails();
    assert!(!std::path::Path::new(&mp).exists(), "volume dir left behind");
    d.cli(cli, &["volume", "create", "a/b"]).fails();
}
both!(named_volumes);

fn binds_tmpfs_readonly(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let host = std::env::temp_dir().join(unique("bind"));
    std::fs::create_dir_all(&host).expect("host dir");
    std::fs::write(host.join("in"), "from host").expect("host file");
    let h = host.display().to_string();
    let out =
        d.cli(cli, &["run", "--rm", "-v", &format!("{h}:/h"), &image, "sh", "-c", "cat /h/in; echo back > /h/out"]);
    assert_eq!(out.ok().trimmed(), "from host");
    assert_eq!(std::fs::read_to_string(host.join("out")).unwrap_or_default(), "back\n");
    let mount = format!("type=bind,source={h},target=/m,readonly");
    d.cli(cli, &["run", "--rm", "--mount", &mount, &image, "touch", "/m/x"]).fails();
    d.cli(cli, &["run", "--rm", "--mount", "type=bind,source=/nonexistent-wharf,target=/m", &image, "true"]).fails();

    let out = d.cli(
        cli,
        &["run", "--rm", "--tmpfs", "/scratch:size=1m", &image, "sh", "-c", "grep ' /scratch ' /proc/mounts"],
    );
    assert!(out.ok().stdout.contains("tmpfs"), "{out}");
    let out = d.cli(cli, &["run", "--rm", "--read-only", &image, "touch", "/x"]);
    out.fails();
    assert!(out.all().contains("Read-only file system"), "{out}");
    let _ = std::fs::remove_dir_all(&host);
}
both!(binds_tmpfs_readonly);

fn anonymous_and_volumes_from(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let src = unique("src");
    d.cli(cli, &["create", "--name", &src, "-v", "/shared", &image, "true"]).ok();
    let info = d.inspect(cli, &src);
    let anon = info["Mounts"][0]["Name"].as_str().unwrap_or_default().to_string();
    assert_eq!(anon.len(), 64, "{info}");
    let out =
        d.cli(cli, &["run", "--rm", "--volumes-from", &src, &image, "sh", "-c", "echo x > /shared/y && ls /shared"]);
    assert_eq!(out.ok().trimmed(), "y");
    // Prune keeps what is in use; rm -v removes the anonymous volume.
    let pruned = d.cli(cli, &["volume", "prune", "-f"]);
    assert!(!pruned.ok().stdout.contains(&anon), "{pruned}");
    d.cli(cli, &["rm", "-v", &src]).ok();
    let ls = d.cli(cli, &["volume", "ls", "-q"]);
    assert!(!ls.ok().stdout.contains(&anon), "{ls}");

    let named = unique("keep");
    d.cli(cli, &["volume", "create", &named]).ok();
    d.cli(cli, &["volume", "create", "--label", "x=1", &unique("all")]).ok();
    d.cli(cli, &["volume", "prune", "-f"]).ok();
    assert!(d.cli(cli, &["volume", "ls", "-q"]).ok().stdout.contains(&named));
    d.cli(cli, &["volume", "prune", "-f", "--all"]).ok();
    let left: Value = Value::String(d.cli(cli, &["volume", "ls", "-q"]).ok().trimmed().to_string());
    assert_eq!(left, "", "prune --all left volumes");
}
both!(anonymous_and_volumes_from);
