//! Many containers on one daemon: wharfd holds a few descriptors per running container, so it
//! raises its soft open-file limit to the hard one at start (as dockerd, a Go program, does)
//! and its containers get the soft limit it was started with (wharf_runtime::rlimit).

use crate::harness::{registry, Cli, Daemon, DaemonOptions};

#[test]
fn more_containers_than_the_soft_open_file_limit_allows_descriptors() {
    // 64 descriptors are used up by about 20 running containers without the raise.
    let d = Daemon::start_with(DaemonOptions { nofile_soft: Some(64), ..Default::default() });
    let busybox = registry().image("library/busybox:latest");
    d.cli(Cli::Wharf, &["pull", &busybox]).ok();
    for i in 0..40 {
        d.cli(
            Cli::Wharf,
            &["run", "-d", "--network", "none", "--name", &format!("many-{i}"), &busybox, "sleep", "1000"],
        )
        .ok();
    }
    let running = d.cli(Cli::Wharf, &["ps", "-q"]);
    assert_eq!(running.ok().stdout.lines().count(), 40, "{running}");
    // A container sees the limit wharfd was started with, not the raised one.
    let soft = d.cli(Cli::Wharf, &["exec", "many-0", "sh", "-c", "ulimit -Sn"]);
    assert_eq!(soft.ok().trimmed(), "64", "{soft}");
    let run = d.cli(Cli::Wharf, &["run", "--rm", "--network", "none", &busybox, "sh", "-c", "ulimit -Sn"]);
    assert_eq!(run.ok().trimmed(), "64", "{run}");
    let ids = d.cli(Cli::Wharf, &["ps", "-aq"]);
    let mut args = vec!["rm", "-f"];
    args.extend(ids.ok().stdout.split_whitespace());
    d.cli(Cli::Wharf, &args).ok();
}
