//! CPU limits: `--cpus` becomes a CFS quota over a 100 ms period, `--cpu-shares` cpu.shares
//! (or cpu.weight on cgroup v2).

use std::fs;

use crate::harness::{registry, Cli, Daemon};
use crate::resources::cgroup_file;

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).trim().to_string()
}

fn cpus_and_shares(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["run", "-d", "--name", "cpu", "--cpus", "0.5", "--cpu-shares", "512", &image, "sleep", "1000"]).ok();
    let info = d.inspect(cli, "cpu");
    assert_eq!(info["HostConfig"]["NanoCpus"], 500_000_000, "{info}");
    assert_eq!(info["HostConfig"]["CpuShares"], 512, "{info}");
    let pid = info["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{info}");

    let (quota, path) = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(path.starts_with(&format!("{}/", d.cgroup_parent)), "cgroup {path} not under {}", d.cgroup_parent);
    if quota.ends_with("cpu.max") {
        assert_eq!(read(&quota), "50000 100000", "{}", quota.display());
        // runtime::cgroups::shares_to_weight: 1 + (512 - 2) * 9999 / 262142 = 20.
        let (weight, _) = cgroup_file(pid, "cpu", "", "cpu.weight");
        assert_eq!(read(&weight), "20", "{}", weight.display());
    } else {
        assert_eq!(read(&quota), "50000", "{}", quota.display());
        let (period, _) = cgroup_file(pid, "cpu", "cpu.cfs_period_us", "");
        assert_eq!(read(&period), "100000", "{}", period.display());
        let (shares, _) = cgroup_file(pid, "cpu", "cpu.shares", "");
        assert_eq!(read(&shares), "512", "{}", shares.display());
    }
    d.cli(cli, &["rm", "-f", "cpu"]).ok();
}
both!(cpus_and_shares);
