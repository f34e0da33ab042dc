//! wharfd killed (`kill -9`) in the middle of an operation, then started again: at every step
//! of create, start and rm (through the engine's failpoints), and at random instants under
//! load. After each restart the API's view, the shims, the cgroups, the mounts and the bridge
//! ports must agree, and a later `rm -f` must leave nothing running.

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use crate::harness::{cgroup_dirs, mounts_under, pid_alive, registry, wait_for, Cli, Daemon};

/// Ids of the containers the API says are running.
fn running(d: &Daemon) -> BTreeSet<String> {
    let out = d.wharf(&["ps", "-q", "--no-trunc"]);
    out.ok();
    out.stdout.split_whitespace().map(str::to_string).collect()
}

/// Ids of every container the API knows.
fn known(d: &Daemon) -> BTreeSet<String> {
    let out = d.wharf(&["ps", "-aq", "--no-trunc"]);
    out.ok();
    out.stdout.split_whitespace().map(str::to_string).collect()
}

/// Container ids of the shims that run for this daemon's data root.
fn shims(d: &Daemon) -> BTreeSet<String> {
    let containers = d.data_root.join("containers");
    let mut out = BTreeSet::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmd.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).to_string()).collect();
        if !args.first().is_some_and(|a| a.ends_with("wharf-shim")) {
            continue;
        }
        let bundle = args.iter().position(|a| a == "--bundle").and_then(|i| args.get(i + 1));
        if let Some(id) = bundle.and_then(|b| b.strip_prefix(&format!("{}/", containers.display()))) {
            out.insert(id.to_string());
        }
    }
    out
}

/// Container ids whose cgroup (in the pids hierarchy) holds a process.
fn populated_cgroups(d: &Daemon) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in cgroup_dirs(&d.cgroup_parent) {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let procs = fs::read_to_string(e.path().join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                out.insert(e.file_name().to_string_lossy().to_string());
            }
        }
    }
    out
}

/// Waits until what runs settles (a shim reports an exit before it leaves), then checks that
/// the API, the shims, the cgroups, the netns mounts and the bridge's ports tell one story.
#[track_caller]
fn assert_consistent(d: &Daemon, when: &str) {
    let mut last = String::new();
    let agreed = wait_for(Duration::from_secs(10), || {
        let api = running(d);
        let shims = shims(d);
        let cgroups = populated_cgroups(d);
        let netns: BTreeSet<String> = mounts_under(&d.exec_root.join("netns"))
            .iter()
            .filter_map(|m| m.file_name().map(|n| n.to_string_lossy().to_string()))
            .collect();
        let ports = crate::network::ports_of(&d.bridge).len();
        let other_mounts: Vec<_> =
            mounts_under(&d.dir).into_iter().filter(|m| !m.starts_with(d.exec_root.join("netns"))).collect();
        last = format!(
            "api running {api:?}\nshims {shims:?}\ncgroups {cgroups:?}\nnetns {netns:?}\nbridge ports {ports}\nother mounts {other_mounts:?}"
        );
        api == shims && api == cgroups && api == netns && ports == api.len() && other_mounts.is_empty()
    });
    assert!(agreed, "{when}: the daemon's view and the host disagree:\n{last}\n--- log ---\n{}", d.log_text());
    assert_storage_whole(d, when);
}

/// No half-made thing is left in the stores, and every image the daemon lists can run: its
/// layers are all in place (a missing one fails the overlay mount).
#[track_caller]
fn assert_storage_whole(d: &Daemon, when: &str) {
    // A removal deletes its files after it answered (`rm-*` here): on a loaded machine that
    // takes a while, so what is asserted is that the dir empties, not that it already has.
    let tmp_dir = d.data_root.join("snapshots/tmp");
    let mut tmp = Vec::new();
    let drained = wait_for(Duration::from_secs(30), || {
        tmp = crate::harness::list_dir(&tmp_dir);
        tmp.is_empty()
    });
    assert!(drained, "{when}: half-applied layers left in snapshots/tmp: {tmp:?}");
    // Resumable downloads (`partial-*`) are kept by design; anything else is a torn write.
    let ingest: Vec<String> = crate::harness::list_dir(&d.data_root.join("content/ingest"))
        .into_iter()
        .filter(|n| !n.starts_with("partial-"))
        .collect();
    assert!(ingest.is_empty(), "{when}: torn blob writes left in content/ingest: {ingest:?}");
    let images = d.wharf(&["images", "-q", "--no-trunc"]);
    for id in images.ok().stdout.split_whitespace().collect::<BTreeSet<_>>() {
        let out = d.wharf(&["run", "--rm", "--network", "none", id, "true"]);
        assert!(out.success(), "{when}: image {id} is listed but cannot run:\n{out}");
    }
    for net in d.wharf(&["network", "ls", "-q", "--no-trunc", "--filter", "type=custom"]).ok().stdout.split_whitespace()
    {
        let bridge = format!("br-{}", net.get(..12).unwrap_or(net));
        assert!(
            std::path::Path::new(&format!("/sys/class/net/{bridge}")).exists(),
            "{when}: network {net} is listed but its bridge {bridge} is gone"
        );
    }
}

fn image() -> String {
    registry().image("library/busybox:latest")
}

/// The crash fired: the client saw an error and the daemon is gone.
#[track_caller]
fn crashed(d: &mut Daemon, out: crate::harness::Output, point: &str) {
    assert!(!out.success(), "{point}: the command should fail when wharfd dies under it:\n{out}");
    assert!(wait_for(Duration::from_secs(5), || d.has_died()), "{point}: wharfd did not die at its failpoint");
}

#[test]
fn a_crash_during_create_leaves_no_files_or_a_created_container() {
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");

    d.crash_at("create-after-files");
    let out = d.wharf(&["create", "--name", "half", &image(), "sleep", "600"]);
    crashed(&mut d, out, "create-after-files");
    d.restart();
    assert!(!known(&d).iter().any(|_| true), "a container with no record appeared");
    let dirs: Vec<_> = fs::read_dir(d.data_root.join("containers")).into_iter().flatten().flatten().collect();
    assert!(
        dirs.is_empty(),
        "files of the cut create are left: {:?}",
        dirs.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
    assert_consistent(&d, "after create-after-files");

    d.crash_at("create-after-record");
    let out = d.wharf(&["create", "--name", "made", &image(), "sleep", "600"]);
    crashed(&mut d, out, "create-after-record");
    d.restart();
    let info = d.inspect(Cli::Wharf, "made");
    assert_eq!(info["State"]["Status"], "created", "{info}");
    d.wharf(&["start", "made"]).ok();
    assert_consistent(&d, "after starting the container made before the crash");
    d.wharf(&["rm", "-f", "made"]).ok();
    assert_consistent(&d, "after rm -f");
}

/// A crash inside `network create` or `network rm`: the network is either there with its
/// bridge or not there at all, never a bridge on the host that no network of the daemon names
/// (which no later start could know to remove). The crash torture below left one such bridge
/// per run before the record was written ahead of the bridge.
#[test]
fn a_crash_during_network_create_or_rm_leaves_no_bridge_without_a_network() {
    let mut d = Daemon::start();
    let bridge_of = |d: &Daemon, name: &str| {
        let id = d.wharf(&["network", "inspect", "-f", "{{.Id}}", name]).ok().trimmed().to_string();
        format!("br-{}", &id[..12])
    };
    let exists = |bridge: &str| std::path::Path::new("/sys/class/net").join(bridge).exists();

    d.crash_at("network-create-after-record");
    let out = d.wharf(&["network", "create", "halfnet"]);
    crashed(&mut d, out, "network-create-after-record");
    d.restart();
    // The record was written: the network is there, and the start brought its bridge up.
    let bridge = bridge_of(&d, "halfnet");
    assert!(exists(&bridge), "network halfnet is back but its bridge {bridge} is not");
    assert_consistent(&d, "after network-create-after-record");

    d.crash_at("network-rm-after-bridge");
    let out = d.wharf(&["network", "rm", "halfnet"]);
    crashed(&mut d, out, "network-rm-after-bridge");
    d.restart();
    // The record was not deleted: the network is still there, bridge and all, and goes with
    // a second rm.
    assert!(exists(&bridge), "network halfnet is still listed but its bridge {bridge} is gone");
    d.wharf(&["network", "rm", "halfnet"]).ok();
    assert!(!exists(&bridge), "{bridge} outlived the network");
    assert_consistent(&d, "after the second network rm");
}

#[test]
fn a_crash_during_start_is_adopted_or_undone() {
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");

    // Network attached, no shim yet: the container stays created and its network goes.
    d.wharf(&["create", "--name", "netonly", &image(), "sleep", "600"]).ok();
    d.crash_at("start-after-network");
    let out = d.wharf(&["start", "netonly"]);
    crashed(&mut d, out, "start-after-network");
    d.restart();
    assert_consistent(&d, "after start-after-network");
    let info = d.inspect(Cli::Wharf, "netonly");
    assert_eq!(info["State"]["Running"], false, "{info}");
    d.wharf(&["start", "netonly"]).ok();
    assert_consistent(&d, "after a second start of netonly");

    // Shim spawned, start not recorded: the running container is adopted, with a working
    // exec, and rm -f stops it for real (the bug: it ran on with no record).
    d.crash_at("start-after-spawn");
    let out = d.wharf(&["run", "-d", "--name", "spawned", &image(), "sleep", "600"]);
    crashed(&mut d, out, "start-after-spawn");
    d.restart();
    assert_consistent(&d, "after start-after-spawn");
    let info = d.inspect(Cli::Wharf, "spawned");
    assert_eq!(info["State"]["Running"], true, "the cut start was not adopted: {info}");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0 && pid_alive(pid), "{info}");
    let exec = d.wharf(&["exec", "spawned", "echo", "adopted"]);
    exec.ok();
    assert_eq!(exec.trimmed(), "adopted");
    d.wharf(&["rm", "-f", "spawned"]).ok();
    assert!(wait_for(Duration::from_secs(5), || !pid_alive(pid)), "process {pid} outlived rm -f");
    assert_consistent(&d, "after rm -f of the adopted container");

    // A start cut short whose container then ended while no daemon ran: its exit is recorded
    // (not left "created"), with its code.
    d.crash_at("start-after-spawn");
    let out = d.wharf(&["run", "-d", "--name", "brief", &image(), "sh", "-c", "sleep 1; exit 3"]);
    crashed(&mut d, out, "start-after-spawn (brief)");
    std::thread::sleep(Duration::from_secs(2));
    d.restart();
    let info = d.inspect(Cli::Wharf, "brief");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    assert_eq!(info["State"]["ExitCode"], 3, "{info}");
    assert_consistent(&d, "after a cut start that ended while the daemon was down");
    // And a daemon restart later records nothing again for it.
    d.restart();
    let again = d.inspect(Cli::Wharf, "brief");
    assert_eq!(again["State"]["FinishedAt"], info["State"]["FinishedAt"], "{again}");
    d.wharf(&["rm", "brief"]).ok();

    // The same with --rm: adopted, and removed when it exits.
    d.crash_at("start-after-spawn");
    let out = d.docker(&["run", "-d", "--rm", "--name", "spawned-rm", &image(), "sleep", "600"]);
    crashed(&mut d, out, "start-after-spawn (--rm)");
    d.restart();
    assert_consistent(&d, "after start-after-spawn of a --rm container");
    d.docker(&["kill", "spawned-rm"]).ok();
    assert!(
        wait_for(Duration::from_secs(10), || !d.wharf(&["inspect", "spawned-rm"]).success()),
        "the adopted --rm container was not removed when it exited"
    );
    assert_consistent(&d, "after the adopted --rm container exited");
}

#[test]
fn a_crash_during_rm_keeps_or_finishes_the_removal() {
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");
    let run = |d: &Daemon, name: &str| {
        let out = d.wharf(&["run", "-d", "--name", name, &image(), "sleep", "600"]);
        out.ok();
        d.inspect(Cli::Wharf, name)["State"]["Pid"].as_i64().unwrap_or(0)
    };

    let pid = run(&d, "killed");
    d.crash_at("remove-after-kill");
    let out = d.wharf(&["rm", "-f", "killed"]);
    crashed(&mut d, out, "remove-after-kill");
    assert!(!pid_alive(pid), "rm -f reached its record step with process {pid} alive");
    d.restart();
    assert_consistent(&d, "after remove-after-kill");
    let info = d.inspect(Cli::Wharf, "killed");
    assert_eq!(info["State"]["Status"], "exited", "{info}");
    d.wharf(&["rm", "killed"]).ok();

    let pid = run(&d, "forgotten");
    d.crash_at("remove-after-record");
    let out = d.wharf(&["rm", "-f", "forgotten"]);
    crashed(&mut d, out, "remove-after-record");
    d.restart();
    assert!(!pid_alive(pid), "process {pid} outlived its removal");
    assert!(!d.wharf(&["inspect", "forgotten"]).success(), "the removed container came back");
    assert_consistent(&d, "after remove-after-record");
    // The start's sweep of orphans removes them off the start's path: wait for it.
    let mut dirs = Vec::new();
    wait_for(Duration::from_secs(30), || {
        dirs = fs::read_dir(d.data_root.join("containers")).into_iter().flatten().flatten().collect();
        dirs.is_empty()
    });
    assert!(
        dirs.is_empty(),
        "files of the removed container are left: {:?}",
        dirs.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
}

/// A process left in a container's cgroup that its record does not account for (its shim was
/// killed, so nothing reports on it) is killed by the next start, and `rm -f` does not report
/// success while something of the container still runs.
#[test]
fn rm_force_kills_what_is_left_in_the_cgroup() {
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");
    d.wharf(&["run", "-d", "--name", "lonely", &image(), "sleep", "600"]).ok();
    let info = d.inspect(Cli::Wharf, "lonely");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    let shim: BTreeSet<String> = shims(&d);
    assert_eq!(shim.len(), 1, "{shim:?}");
    d.kill9();
    // Kill the shim only: its container's init lives on in the cgroup with no monitor.
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(&format!("{}/containers/", d.data_root.display()))
            && String::from_utf8_lossy(&cmd).contains("wharf-shim")
        {
            if let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() {
                // SAFETY: kill(2) on a shim this test's daemon started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
    assert!(wait_for(Duration::from_secs(5), || shims(&d).is_empty()));
    assert!(pid_alive(pid), "the init died with its shim (pid namespace); the test needs it alive");
    let started = Instant::now();
    d.restart();
    assert!(wait_for(Duration::from_secs(10), || !pid_alive(pid)), "the restart left process {pid} running");
    assert_consistent(&d, "after a restart with a shimless process");
    let info = d.inspect(Cli::Wharf, "lonely");
    assert_eq!(info["State"]["Running"], false, "{info}");
    assert!(started.elapsed() < Duration::from_secs(30));
    d.wharf(&["rm", "-f", "lonely"]).ok();
    assert_consistent(&d, "after rm -f");
}

/// Three clients (the wharf and the docker CLI in turns) loop over runs, execs, removals,
/// pulls and rmis, volume and network changes and connects while wharfd is killed at random
/// instants; after each restart the views must agree. Rounds: 4 here (CI),
/// `WHARF_TORTURE_ROUNDS` for more (bench/crash-torture.sh runs 50).
#[test]
fn torture_random_kills_under_load_leave_no_orphans() {
    let rounds: usize = std::env::var("WHARF_TORTURE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut d = Daemon::start();
    d.pull("library/busybox:latest");
    let img = image();
    // A small deterministic generator: the same rounds every run, seed printed on failure.
    let mut seed: u64 = std::env::var("WHARF_TORTURE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut clean = 0;
    for round in 0..rounds {
        let delay = Duration::from_millis(200 + next() % 1500);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sock = d.host();
        let mut clients = Vec::new();
        for client in 0..3 {
            let stop = stop.clone();
            let sock = sock.clone();
            let img = img.clone();
            let other = registry().image("test/layers:latest");
            let docker_config = d.docker_config.clone();
            clients.push(std::thread::spawn(move || {
                // The wharf CLI and the docker CLI in turns, as different users would.
                let cli = |docker: bool, args: &[&str]| {
                    let mut cmd = if docker {
                        let mut c = std::process::Command::new("docker");
                        c.env("DOCKER_HOST", &sock)
                            .env("DOCKER_CONFIG", &docker_config)
                            .env("DOCKER_CLI_HINTS", "false");
                        c
                    } else {
                        let mut c = std::process::Command::new(crate::harness::bin("wharf"));
                        c.arg("-H").arg(&sock);
                        c
                    };
                    cmd.args(args);
                    crate::harness::run_cmd(cmd, Duration::from_secs(30))
                };
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let name = format!("t{round}-{client}-{i}");
                    let docker = i % 2 == 1;
                    let run = |args: &[&str]| drop(cli(docker, args));
                    match (client + i) % 7 {
                        0 => run(&["run", "-d", "--name", &name, &img, "sleep", "600"]),
                        1 => run(&["run", "--rm", &img, "true"]),
                        2 => {
                            run(&["run", "-d", "--name", &name, &img, "sleep", "600"]);
                            run(&["exec", &name, "true"]);
                            run(&["rm", "-f", &name]);
                        }
                        3 => {
                            run(&["volume", "create", &name]);
                            run(&["volume", "rm", &name]);
                        }
                        4 => {
                            run(&["pull", &other]);
                            run(&["rmi", &other]);
                        }
                        5 => {
                            run(&["network", "create", &name]);
                            run(&["run", "-d", "--name", &name, &img, "sleep", "600"]);
                            run(&["network", "connect", &name, &name]);
                            run(&["network", "disconnect", &name, &name]);
                            run(&["rm", "-f", &name]);
                            run(&["network", "rm", &name]);
                        }
                        _ => {
                            run(&["network", "create", &name]);
                            run(&["network", "rm", &name]);
                        }
                    }
                    i += 1;
                }
            }));
        }
        std::thread::sleep(delay);
        d.kill9();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in clients {
            let _ = c.join();
        }
        d.restart();
        assert_consistent(&d, &format!("torture round {round} (killed after {delay:?})"));
        clean += 1;
    }
    let all: Vec<String> = known(&d).into_iter().collect();
    if !all.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(all.iter().map(String::as_str));
        d.wharf(&args).ok();
    }
    assert_consistent(&d, "after removing every container");
    assert!(shims(&d).is_empty(), "shims outlived rm -f of every container");
    eprintln!("crash torture: {clean} of {rounds} rounds clean");
}

/// The shim of a running container is killed (`kill -9`) under a running daemon: the
/// container is reported exited, nothing of it keeps running, and it can be started again
/// and removed.
#[test]
fn a_killed_shim_is_noticed_and_leaves_nothing_running() {
    let d = Daemon::start();
    d.pull("library/busybox:latest");
    let id = d.wharf(&["run", "-d", &image(), "sleep", "600"]).ok().trimmed().to_string();
    let shim_pid = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let cmd = fs::read(e.path().join("cmdline")).ok()?;
            let text = String::from_utf8_lossy(&cmd).to_string();
            (text.contains("wharf-shim") && text.contains(&id))
                .then(|| e.file_name().to_string_lossy().parse::<i32>().ok())?
        })
        .expect("the container's shim");
    // SAFETY: kill has no memory preconditions; the pid is the shim found above.
    assert_eq!(unsafe { libc::kill(shim_pid, libc::SIGKILL) }, 0);
    let exited = wait_for(Duration::from_secs(20), || {
        d.wharf(&["inspect", "-f", "{{.State.Running}}", &id]).trimmed() == "false"
    });
    let state = d.wharf(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", &id]);
    assert!(exited, "the container still shows running after its shim was killed: {state}\n{}", d.log_text());
    assert_consistent(&d, "after the shim was killed");
    d.wharf(&["start", &id]).ok();
    assert_consistent(&d, "after starting it again");
    d.wharf(&["rm", "-f", &id]).ok();
    assert_consistent(&d, "after rm -f");
}

/// A data root on a small file system that fills up: a pull fails with the reason and leaves
/// no torn blob or layer; a container writing logs past the full disk does not take the
/// daemon with it; after space is freed, everything works again.
#[test]
fn a_full_disk_gives_clear_errors_and_corrupts_nothing() {
    // An image with a 40 MB incompressible layer, made on an ordinary daemon and pushed.
    let reg = crate::harness::TestRegistry::start(crate::harness::RegistryOptions::default());
    let big = reg.image("full/big:1");
    {
        let maker = Daemon::start();
        maker.pull("library/busybox:latest");
        maker.wharf(&["run", "--name", "mk", &image(), "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=40"]).ok();
        maker.wharf(&["commit", "mk", &big]).ok();
        maker.wharf(&["push", &big]).ok();
        maker.wharf(&["rm", "mk"]).ok();
    }
    let tmp = crate::harness::TempDir::new("fulldisk");
    let image_file = tmp.0.join("fs.img");
    let mnt = tmp.0.join("mnt");
    fs::create_dir_all(&mnt).expect("mount point");
    let sh = |script: &str| {
        let mut c = std::process::Command::new("sh");
        c.arg("-c").arg(script);
        crate::harness::run_cmd(c, Duration::from_secs(60))
    };
    sh(&format!(
        "truncate -s 64M {img} && mkfs.ext4 -q -F -m 0 {img} && mount -o loop {img} {mnt}",
        img = image_file.display(),
        mnt = mnt.display()
    ))
    .ok();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let d =
        Daemon::start_with(crate::harness::DaemonOptions { data_root: Some(mnt.join("data")), ..Default::default() });
    d.pull("library/busybox:latest");
    // A file that takes 24 MB, removed at the end to free space for certain: a failed pull
    // keeps what it downloaded (`partial-*`, to resume), so that alone may not free enough.
    let filler = mnt.join("filler");
    sh(&format!("dd if=/dev/zero of={} bs=1M count=24 2>/dev/null && sync", filler.display())).ok();

    let out = d.wharf(&["pull", &big]);
    out.fails().mentions(&["no space left on device"]);
    assert_storage_whole(&d, "after a pull on a full disk");
    assert!(!d.wharf(&["images"]).ok().stdout.contains("full/big"), "a failed pull left its image listed");

    // A container whose output meets the full disk: the daemon goes on serving.
    let script = "yes 0123456789012345678901234567890123456789 | head -c 60000000; echo done";
    let c = d.wharf(&["run", "-d", &image(), "sh", "-c", script]).ok().trimmed().to_string();
    let ended = wait_for(Duration::from_secs(60), || {
        d.wharf(&["inspect", "-f", "{{.State.Running}}", &c]).trimmed() == "false"
    });
    assert!(ended, "the container writing past a full disk did not end");
    let ps = d.wharf(&["ps", "-a"]);
    assert!(ps.success(), "the daemon stopped serving when the disk filled:\n{ps}\n--- log ---\n{}", d.log_text());
    let _ = d.wharf(&["logs", "--tail", "1", &c]);
    let rm = d.wharf(&["rm", "-f", &c]);
    assert!(rm.success(), "rm -f after the disk filled:\n{rm}\n--- log ---\n{}", d.log_text());

    // Space again: a pull and a run work, and the stores are whole.
    fs::remove_file(&filler).expect("remove the filler");
    let small = registry().image("test/layers:latest");
    d.wharf(&["pull", &small]).ok();
    d.wharf(&["run", "--rm", &small, "true"]).ok();
    assert_storage_whole(&d, "after space was freed");
    drop(d);
}
