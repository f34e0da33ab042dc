//! `--format` templates: `inspect -f` with the Go-template forms scripts use, `ps --format`
//! and `images --format` (plain, `table`, `json`), through wharf and the docker CLI.

use serde_json::Value;

use crate::harness::{registry, Cli, Daemon};

fn inspect_formats(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let vol = std::env::temp_dir().join(crate::harness::unique("fmt-vol"));
    std::fs::create_dir_all(&vol).unwrap();
    let bind = format!("{}:/data", vol.display());
    d.cli(cli, &["run", "-d", "--name", "fmt", "-l", "k=v1", "-l", "a.b=c", "-v", &bind, &image, "sleep", "100"]).ok();
    let info = d.inspect(cli, "fmt");
    let f = |t: &str| d.cli(cli, &["inspect", "-f", t, "fmt"]).ok().trimmed().to_string();
    assert_eq!(f("{{.State.Pid}}"), info["State"]["Pid"].to_string());
    assert_eq!(f("{{ .State.Status }}"), "running");
    assert_eq!(f("{{.Name}}"), "/fmt");
    let config: Value = serde_json::from_str(&f("{{json .Config}}")).unwrap();
    assert_eq!(config["Labels"]["k"], "v1", "{config}");
    assert_eq!(f("{{range .Mounts}}{{.Source}} {{end}}"), vol.display().to_string());
    assert_eq!(f(r#"{{index .Config.Labels "k"}}"#), "v1");
    assert_eq!(f(r#"{{index .Config.Labels "a.b"}}"#), "c");
    assert_eq!(f("{{.NetworkSettings.IPAddress}}"), info["NetworkSettings"]["IPAddress"].as_str().unwrap_or(""));
    assert_eq!(f("{{if .State.Running}}up{{else}}down{{end}} {{len .Mounts}}"), "up 1");
    // An unknown field is an error naming it, with a failing exit status.
    d.cli(cli, &["inspect", "-f", "{{.Nope}}", "fmt"]).fails().mentions(&["Nope"]);
    d.cli(cli, &["inspect", "-f", "{{.Name", "fmt"]).fails();
    d.cli(cli, &["rm", "-f", "fmt"]).ok();
    let _ = std::fs::remove_dir_all(&vol);
}
both!(inspect_formats);

fn ps_and_images_formats(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    d.cli(cli, &["run", "-d", "--name", "one", "-l", "role=web", &image, "sleep", "100"]).ok();
    let id = d.inspect(cli, "one")["Id"].as_str().unwrap().to_string();
    let out = d.cli(cli, &["ps", "--format", "{{.Names}}"]).ok().stdout.clone();
    assert_eq!(out, "one\n");
    let out = d.cli(cli, &["ps", "--format", "table {{.ID}}\\t{{.Names}}\\t{{.Labels}}"]).ok().stdout.clone();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0].split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["CONTAINER ID", "NAMES", "LABELS"], "{out}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row, [&id[..12], "one", "role=web"], "{out}");
    let out = d.cli(cli, &["ps", "--format", "{{json .}}"]).ok().stdout.clone();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Names"], "one", "{v}");
    assert_eq!(v["ID"], &id[..12], "{v}");
    assert_eq!(v["State"], "running", "{v}");
    assert!(v["Status"].as_str().unwrap().starts_with("Up"), "{v}");

    let (repo, tag) = image.rsplit_once(':').unwrap();
    let out = d.cli(cli, &["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok().stdout.clone();
    assert_eq!(out.trim(), format!("{repo}:{tag}"));
    let out = d.cli(cli, &["images", "--format", "table {{.Repository}}\\t{{.Tag}}"]).ok().stdout.clone();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["REPOSITORY", "TAG"], "{out}");
    assert_eq!(lines[1].split_whitespace().collect::<Vec<_>>(), [repo, tag], "{out}");
    let out = d.cli(cli, &["images", "--format", "{{json .}}"]).ok().stdout.clone();
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["Tag"], tag, "{v}");
    assert_eq!(v["ID"].as_str().unwrap().len(), 12, "{v}");
    d.cli(cli, &["rm", "-f", "one"]).ok();
}
both!(ps_and_images_formats);

/// `{{.Networks}}`, `{{.Mounts}}` and `{{.LocalVolumes}}` of `ps --format`, as the docker CLI
/// computes them from the container list: network names sorted, volume names or bind
/// sources shortened to 15 characters, the count of local-driver volumes.
fn ps_networks_and_mounts(cli: Cli) {
    let d = Daemon::start();
    let image = registry().image("library/busybox:latest");
    d.cli(cli, &["pull", &image]).ok();
    let (subnet, _) = crate::network_user::subnet_for(&d, 3);
    d.cli(cli, &["network", "create", "--subnet", &subnet, "fmtnet"]).ok();
    let bind = std::env::temp_dir().join(crate::harness::unique("fmt-bind-source"));
    std::fs::create_dir_all(&bind).unwrap();
    let bind_arg = format!("{}:/b", bind.display());
    let args = ["run", "-d", "--name", "two", "--network", "fmtnet", "-v", "fmtvol:/data", "-v", &bind_arg];
    d.cli(cli, &[&args[..], &[image.as_str(), "sleep", "100"]].concat()).ok();
    d.cli(cli, &["run", "-d", "--name", "one", &image, "sleep", "100"]).ok();
    let row = |name: &str, extra: &[&str]| {
        let filter = format!("name=^{name}$");
        let mut a = vec!["ps", "--filter", &filter, "--format", "{{.Networks}}|{{.Mounts}}|{{.LocalVolumes}}"];
        a.extend_from_slice(extra);
        d.cli(cli, &a).ok().trimmed().to_string()
    };
    assert_eq!(row("one", &[]), "bridge||0");
    let short: String = bind.display().to_string().chars().take(14).collect();
    let out = row("two", &[]);
    let (nets, rest) = out.split_once('|').unwrap();
    assert_eq!(nets, "fmtnet", "{out}");
    let (mounts, local) = rest.rsplit_once('|').unwrap();
    let mut mounts: Vec<&str> = mounts.split(',').collect();
    mounts.sort();
    assert_eq!(mounts, [format!("{short}…").as_str(), "fmtvol"], "{out}");
    assert_eq!(local, "1", "{out}");
    assert!(row("two", &["--no-trunc"]).contains(&bind.display().to_string()));
    d.cli(cli, &["rm", "-f", "one", "two"]).ok();
    d.cli(cli, &["network", "rm", "fmtnet"]).ok();
    d.cli(cli, &["volume", "rm", "fmtvol"]).ok();
    let _ = std::fs::remove_dir_all(&bind);
}
both!(ps_networks_and_mounts);
