//! Pulls from a registry that wants credentials (htpasswd, basic auth): they come from the
//! client's config.json as `X-Registry-Auth`; none or wrong ones fail with "unauthorized".

use std::fs;
use std::path::Path;

use crate::harness::{Cli, Daemon, RegistryOptions, TempDir, TestRegistry};

const USER: &str = "wharfuser";
const PASSWORD: &str = "s3cret-pass";

/// Standard base64 with padding (Basic credentials, config.json auths).
pub(crate) fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes `DIR/config.json` with credentials for `addr`, as `docker login` would.
fn write_config(dir: &Path, addr: &str, user: &str, password: &str) {
    fs::create_dir_all(dir).expect("create config dir");
    let auth = base64(format!("{user}:{password}").as_bytes());
    let json = format!(r#"{{"auths": {{"{addr}": {{"auth": "{auth}"}}}}}}"#);
    fs::write(dir.join("config.json"), json).expect("write config.json");
}

fn pull_with_credentials(cli: Cli) {
    let reg = TestRegistry::start(RegistryOptions {
        only: vec!["library/busybox".into()],
        htpasswd: Some((USER.into(), PASSWORD.into())),
        ..Default::default()
    });
    let d = Daemon::start();
    let image = reg.image("library/busybox:latest");
    // wharf reads ~/.docker/config.json: a HOME of its own; docker gets DOCKER_CONFIG.
    let home = TempDir::new("wharf-e2e-home");
    let config_dir = match cli {
        Cli::Wharf => home.0.join(".docker"),
        Cli::Docker => d.docker_config.clone(),
    };
    let pull = |args: &[&str]| match cli {
        Cli::Wharf => d.wharf_env(&[("HOME", &home.0)], args),
        Cli::Docker => d.docker(args),
    };

    pull(&["pull", &image]).fails().mentions(&["unauthorized"]);

    write_config(&config_dir, &reg.addr, USER, "wrong-password");
    pull(&["pull", &image]).fails().mentions(&["unauthorized"]);
    d.cli(cli, &["image", "inspect", &image]).fails();

    write_config(&config_dir, &reg.addr, USER, PASSWORD);
    pull(&["pull", &image]).ok();
    let out = pull(&["run", "--rm", &image, "echo", "authorized"]);
    assert_eq!(out.ok().trimmed(), "authorized", "{out}");
    let digest = reg.summary["images"]["library/busybox:latest"]["manifest_digest"].as_str().unwrap_or_default();
    let out = d.cli(cli, &["image", "inspect", "-f", "{{json .RepoDigests}}", &image]);
    out.ok().mentions(&[digest]);

    // run pulls a missing image with the same credentials.
    d.cli(cli, &["rmi", &image]).ok();
    let out = pull(&["run", "--rm", &image, "echo", "pulled-by-run"]);
    out.ok().mentions(&["pulled-by-run"]);
}
both!(pull_with_credentials);
