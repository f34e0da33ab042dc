//! Containers in a new user namespace: the maps, the idmapped overlay rootfs, joined
//! namespaces the host owns.

use std::os::unix::fs::MetadataExt;

use wharf_runtime::spec::{IdMapping, Namespace, ANNOTATION_OVERLAY};

use super::{require_root, Bundle};

const HOST_BASE: u32 = 3_100_000;

fn remap(spec: &mut wharf_runtime::spec::Spec) {
    let linux = spec.linux.as_mut().unwrap();
    linux.namespaces.push(Namespace { kind: "user".to_string(), path: None });
    let map = vec![IdMapping { container_id: 0, host_id: HOST_BASE, size: 65536 }];
    linux.uid_mappings = map.clone();
    linux.gid_mappings = map;
}

/// The busybox rootfs as the only lower layer, with an upper dir the remapped root owns.
fn overlay_rootfs(spec: &mut wharf_runtime::spec::Spec, dir: &std::path::Path) {
    for d in ["upper", "work", "merged"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    for d in ["upper", "work"] {
        std::os::unix::fs::chown(dir.join(d), Some(HOST_BASE), Some(HOST_BASE)).unwrap();
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        dir.join("rootfs").display(),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    spec.annotations.insert(ANNOTATION_OVERLAY.to_string(), opts);
    spec.root.as_mut().unwrap().path = "merged".to_string();
}

#[test]
fn remapped_root_on_an_idmapped_overlay() {
    require_root();
    let script =
        "id -u; id -g; cat /proc/self/uid_map; ls -ln /bin/busybox; echo data > /written; ls -ln /written; ls /sys/class/net";
    let b = Bundle::new("userns", &["sh", "-c", script], |spec, dir| {
        remap(spec);
        overlay_rootfs(spec, dir);
    });
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0..2], ["0", "0"], "{out}");
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(map, ["0", &HOST_BASE.to_string(), "65536"], "{out}");
    // Host root's layer files belong to the container's root, and so do its new files.
    let owner = |line: &str| line.split_whitespace().skip(2).take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(owner(lines[3]), "0 0", "{out}");
    assert_eq!(owner(lines[4]), "0 0", "{out}");
    // The sysfs of the container's own network namespace, read-only.
    assert_eq!(lines[5..], ["lo"], "{out}");
    let written = std::fs::metadata(b.dir.join("upper/written")).unwrap();
    assert_eq!((written.uid(), written.gid()), (HOST_BASE, HOST_BASE));
    let layer = std::fs::metadata(b.dir.join("rootfs/bin/busybox")).unwrap();
    assert_eq!(layer.uid(), 0, "the layer itself is not chowned");
    b.assert_cleaned_up();
}

#[test]
fn remapped_container_joins_a_host_network_namespace() {
    require_root();
    let b = Bundle::new("userns-net", &["sh", "-c", "id -u; ls /sys/class/net | grep -c lo"], |spec, dir| {
        remap(spec);
        overlay_rootfs(spec, dir);
        let linux = spec.linux.as_mut().unwrap();
        for n in linux.namespaces.iter_mut().filter(|n| n.kind == "network") {
            n.path = Some(format!("/proc/{}/ns/net", std::process::id()));
        }
    });
    assert_eq!(b.run_ok(), "0\n1\n");
    b.assert_cleaned_up();
}

#[test]
fn second_container_joins_the_user_ipc_and_pid_namespaces_of_the_first() {
    require_root();
    let a = Bundle::new("userns-a", &["sleep", "30"], |spec, dir| {
        remap(spec);
        overlay_rootfs(spec, dir);
    });
    let hs = a.start();
    let pid = hs["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{hs}");
    let link = |p: i64, ns: &str| std::fs::read_link(format!("/proc/{p}/ns/{ns}")).unwrap();
    let script = "id -u; for n in user ipc pid; do busybox readlink /proc/self/ns/$n; done; busybox ps | busybox grep -c '[s]leep 30'";
    let b = Bundle::new("userns-b", &["sh", "-c", script], |spec, dir| {
        remap(spec);
        overlay_rootfs(spec, dir);
        for n in spec.linux.as_mut().unwrap().namespaces.iter_mut() {
            if ["user", "ipc", "pid"].contains(&n.kind.as_str()) {
                n.path = Some(format!("/proc/{pid}/ns/{}", n.kind));
            }
        }
    });
    let out = b.run_ok();
    let want = format!(
        "0\n{}\n{}\n{}\n1\n",
        link(pid, "user").display(),
        link(pid, "ipc").display(),
        link(pid, "pid").display()
    );
    assert_eq!(out, want);
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    a.wait_exit();
    b.assert_cleaned_up();
    a.assert_cleaned_up();
}

#[test]
fn bind_mount_from_a_dir_the_remapped_root_cannot_reach() {
    require_root();
    let b = Bundle::new(
        "userns-bind",
        &["sh", "-c", "cat /data/f; ls -ln /data/f; cat /version | grep -c Linux"],
        |spec, dir| {
            remap(spec);
            overlay_rootfs(spec, dir);
            let private = dir.join("private");
            std::fs::create_dir_all(private.join("secret")).unwrap();
            std::fs::write(private.join("secret/f"), "hidden\n").unwrap();
            std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
            spec.mounts.push(wharf_runtime::spec::Mount {
                destination: "/data".to_string(),
                kind: Some("bind".to_string()),
                source: Some(private.join("secret").display().to_string()),
                options: vec!["rbind".to_string(), "ro".to_string()],
            });
            // A file from another file system (proc), bound read-only.
            spec.mounts.push(wharf_runtime::spec::Mount {
                destination: "/version".to_string(),
                kind: Some("bind".to_string()),
                source: Some("/proc/version".to_string()),
                options: vec!["bind".to_string(), "ro".to_string()],
            });
        },
    );
    let out = b.run_ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hidden", "{out}");
    // Host root's file, not idmapped: the overflow id in the container, as under Docker.
    assert_eq!(lines[1].split_whitespace().nth(2), Some("65534"), "{out}");
    assert_eq!(lines[2], "1", "{out}");
    b.assert_cleaned_up();
}
