//! `ps` and its filters: status, name, id, label, ancestor; -n, -l, -q, --no-trunc; the
//! default list holds running containers only.

use crate::harness::{registry, Cli, Daemon};

fn ids(out: &crate::harness::Output) -> Vec<String> {
    out.ok();
    let mut v: Vec<String> = out.stdout.split_whitespace().map(str::to_string).collect();
    v.sort();
    v
}

fn short(id: &str) -> String {
    id[..12].to_string()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| short(s)).collect();
    v.sort();
    v
}

fn ps_filters_and_flags(cli: Cli) {
    let d = Daemon::start();
    let busybox = registry().image("library/busybox:latest");
    let entry = registry().image("test/entrypoint:latest");
    d.cli(cli, &["pull", &busybox]).ok();
    d.cli(cli, &["pull", &entry]).ok();

    let out = d.cli(cli, &["run", "-d", "--name", "ps-running", "--label", "a=b", &busybox, "sleep", "1000"]);
    let running = out.ok().trimmed().to_string();
    let out = d.cli(cli, &["run", "-d", "--name", "ps-exited", "--label", "a=c", &busybox, "true"]);
    let exited = out.ok().trimmed().to_string();
    d.wait_exited(cli, "ps-exited");
    let out = d.cli(cli, &["create", "--name", "ps-created", &entry]);
    let created = out.ok().trimmed().to_string();
    assert_eq!(created.len(), 64, "{out}");

    // Running only by default, every one with -a.
    assert_eq!(ids(&d.cli(cli, &["ps", "-q"])), sorted(&[&running]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq"])), sorted(&[&running, &exited, &created]));
    let table = d.cli(cli, &["ps"]);
    table.ok();
    assert!(table.stdout.contains("ps-running"), "{table}");
    assert!(!table.stdout.contains("ps-exited") && !table.stdout.contains("ps-created"), "{table}");

    // A status filter looks at every container, without -a (moby daemon/list.go sets All).
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "--filter", "status=exited"])), sorted(&[&exited]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "--filter", "status=created"])), sorted(&[&created]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "--filter", "status=running"])), sorted(&[&running]));

    // name= matches a part of the name; without -a stopped ones stay hidden.
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq", "--filter", "name=ps-ex"])), sorted(&[&exited]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "--filter", "name=ps-ex"])), Vec::<String>::new());
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq", "-f", "name=ps-"])), sorted(&[&running, &exited, &created]));

    // id= matches a prefix.
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq", "--filter", &format!("id={}", &exited[..8])])), sorted(&[&exited]));

    // label= with a value, and with a key only.
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq", "--filter", "label=a=b"])), sorted(&[&running]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq", "--filter", "label=a"])), sorted(&[&running, &exited]));

    // ancestor= by reference.
    assert_eq!(
        ids(&d.cli(cli, &["ps", "-aq", "--filter", &format!("ancestor={busybox}")])),
        sorted(&[&running, &exited])
    );
    assert_eq!(ids(&d.cli(cli, &["ps", "-aq", "--filter", &format!("ancestor={entry}")])), sorted(&[&created]));

    // Two filters of different keys both apply.
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "-f", "status=exited", "-f", "label=a=b"])), Vec::<String>::new());

    // -n and -l: the last created, whatever their state.
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "-n", "1"])), sorted(&[&created]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "-n", "2"])), sorted(&[&created, &exited]));
    assert_eq!(ids(&d.cli(cli, &["ps", "-q", "-l"])), sorted(&[&created]));
    let latest = d.cli(cli, &["ps", "-l"]);
    latest.ok();
    assert!(latest.stdout.contains("ps-created") && latest.stdout.contains("Created"), "{latest}");

    // --no-trunc: full ids.
    let out = d.cli(cli, &["ps", "-q", "--no-trunc"]);
    assert_eq!(out.ok().trimmed(), running, "{out}");
    let out = d.cli(cli, &["ps", "--no-trunc"]);
    out.ok();
    assert!(out.stdout.contains(&running), "{out}");
    assert!(out.stdout.contains("\"sleep 1000\""), "--no-trunc should print the command quoted:\n{out}");

    d.cli(cli, &["rm", "-f", "ps-running", "ps-exited", "ps-created"]).ok();
}
both!(ps_filters_and_flags);
