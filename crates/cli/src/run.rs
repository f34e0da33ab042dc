//! `run`, `create` and `start`: create a container (pulling its image when missing), attach to
//! it before it starts so no output is lost, and exit with its status as docker does.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use wharf_client::{AttachStreams, Client, ClientError, ContainerConfig, CreateResponse, Resize, WaitResponse};
use wharf_types::ImageRef;

use crate::config::ContainerFlags;
use crate::interactive::{self, SessionEnd, SessionOptions};
use crate::pull::pull;
use crate::Exit;

/// Exit status when wharf or the daemon failed, as docker's 125.
pub const EXIT_FAILED: i32 = 125;
/// Exit status when the command exists but cannot be invoked.
pub const EXIT_CANNOT_INVOKE: i32 = 126;
/// Exit status when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// How long to give the daemon to take the wait request before starting the container anyway.
const WAIT_REGISTERED_TIMEOUT: Duration = Duration::from_millis(500);

/// `wharf create`: prints the new container's id.
pub fn create(client: &Client, flags: &ContainerFlags) -> Result<()> {
    let mut config = container_config(flags)?;
    let id = create_with_api_socket(client, flags, &mut config)?;
    println!("{id}");
    Ok(())
}

/// Creates the container; with `--use-api-socket` with the daemon's socket mounted and the
/// caller's credentials written into it once it exists (`api_socket.rs`).
fn create_with_api_socket(client: &Client, flags: &ContainerFlags, config: &mut ContainerConfig) -> Result<String> {
    let creds = if flags.use_api_socket { crate::api_socket::prepare(client, config)? } else { None };
    let id = create_with_cidfile(client, flags, config)?;
    if let Some(creds) = &creds {
        crate::api_socket::inject(client, &id, creds)?;
    }
    Ok(id)
}

/// Creates the container, writing its ID to `--cidfile` as the docker CLI does: the file must
/// not exist beforehand (another container may own it), and it is removed again when the
/// create fails.
fn create_with_cidfile(client: &Client, flags: &ContainerFlags, config: &ContainerConfig) -> Result<String> {
    let Some(path) = flags.cidfile.as_deref().filter(|p| !p.is_empty()) else {
        return create_container(client, flags, config);
    };
    if std::fs::symlink_metadata(path).is_ok() {
        bail!("container ID file found, make sure the other container isn't running or delete {path}");
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("failed to create the container ID file {path}"))?;
    let id = match create_container(client, flags, config) {
        Ok(id) => id,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    use std::io::Write as _;
    file.write_all(id.as_bytes()).with_context(|| format!("failed to write the container ID to the file {path}"))?;
    Ok(id)
}

/// `wharf run`: the container's exit status comes back as an [`Exit`] error.
pub fn run(client: &Client, flags: &ContainerFlags, detach: bool, sig_proxy: bool) -> Result<()> {
    if detach && !flags.attach.is_empty() {
        // A usage error, found before any request: the docker CLI's exit status 1.
        return Err(Exit::new(1, "wharf: conflicting options: cannot specify both --attach and --detach".into()).into());
    }
    let mut config = container_config(flags)?;
    if detach {
        config.attach_stdout = false;
        config.attach_stderr = false;
        config.attach_stdin = false;
        config.stdin_once = false;
    }
    let id = create_with_api_socket(client, flags, &mut config)?;
    if detach {
        start(client, &id)?;
        println!("{id}");
        return Ok(());
    }

    let streams = AttachStreams {
        stdin: config.attach_stdin,
        stdout: config.attach_stdout,
        stderr: config.attach_stderr,
        logs: false,
        detach_keys: flags.detach_keys.clone(),
    };
    attached_start(client, &id, config.tty, streams, flags.rm, sig_proxy)
}

/// Attaches (stdin too with `stdin`), starts the container and streams until it ends; the
/// container's exit status comes back as an [`Exit`] error, a detach as success.
fn attached_start(
    client: &Client,
    id: &str,
    tty: bool,
    streams: AttachStreams,
    removed: bool,
    sig_proxy: bool,
) -> Result<()> {
    // A terminal's signals reach the container through the terminal itself.
    if sig_proxy && !tty {
        proxy_signals(client, id);
    }
    let (stdin, keys) = (streams.stdin, streams.detach_keys.clone());
    let attached = client.attach_streams(id, streams).with_context(|| format!("attach to {}", short(id)))?;
    let exit = spawn_wait(client, id, removed);
    start(client, id)?;
    let opts = SessionOptions { tty, stdin, detach_keys: keys, resize: Resize::Container(id.to_string()) };
    if interactive::stream(client, attached, &opts)? == SessionEnd::Detached {
        return Ok(());
    }
    let status = exit.recv().map_err(|_| anyhow!("waiting for container {}: no answer", short(id)))??;
    interactive::finish(status, id)
}

/// `wharf start -a [-i] ID`: one container, its output (and our stdin) attached.
pub fn start_attached(client: &Client, container: &str, stdin: bool, keys: Option<String>) -> Result<()> {
    let info: serde_json::Value = client.container_inspect(container, false)?;
    let id = info["Id"].as_str().unwrap_or(container).to_string();
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if info["State"]["Running"].as_bool().unwrap_or(false) {
        // Docker attaches to a running container rather than failing.
        let streams = AttachStreams { stdin, stdout: true, stderr: true, logs: false, detach_keys: keys.clone() };
        let exit = spawn_wait(client, &id, false);
        let attached = client.attach_streams(&id, streams).with_context(|| format!("attach to {}", short(&id)))?;
        let opts = SessionOptions { tty, stdin, detach_keys: keys, resize: Resize::Container(id.clone()) };
        if interactive::stream(client, attached, &opts)? == SessionEnd::Detached {
            return Ok(());
        }
        let status = exit.recv().map_err(|_| anyhow!("waiting for container {}: no answer", short(&id)))??;
        return interactive::finish(status, &id);
    }
    let streams = AttachStreams { stdin, stdout: true, stderr: true, logs: false, detach_keys: keys };
    attached_start(client, &id, tty, streams, false, true)
}

/// `wharf start ID...`: prints each name as given; failures are reported one by one.
pub fn start_many(client: &Client, containers: &[String]) -> Result<()> {
    let mut failed = false;
    for c in containers {
        match start(client, c) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                failed = true;
                crate::print_error(&e);
            }
        }
    }
    if failed {
        return Err(Exit::silent(1).into());
    }
    Ok(())
}

/// Starts a container, turning "command not found" and "cannot invoke" into docker's 127 and 126.
fn start(client: &Client, id: &str) -> Result<()> {
    match client.container_start(id) {
        Ok(()) => Ok(()),
        Err(e) => {
            let code = start_failure_code(&e.to_string());
            Err(Exit::new(code, format!("wharf: start {}: {e}", short(id))).into())
        }
    }
}

/// The exit status docker gives a failed start, from the daemon's message.
pub fn start_failure_code(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if m.contains("executable file not found") || m.contains("no such file or directory") {
        EXIT_NOT_FOUND
    } else if m.contains("permission denied") || m.contains("is a directory") {
        EXIT_CANNOT_INVOKE
    } else {
        EXIT_FAILED
    }
}

fn container_config(flags: &ContainerFlags) -> Result<ContainerConfig> {
    let mut config = flags.to_config(&|k| std::env::var(k).ok(), &|p| std::fs::read_to_string(p))?;
    // As the docker CLI: the docker config's proxies become the container's environment,
    // unless `-e`/`--env-file` set the same name.
    if let Ok(docker_config) = crate::dockercfg::read_config() {
        add_proxy_env(&mut config.env, crate::dockercfg::proxy_env(&docker_config));
    }
    Ok(config)
}

fn add_proxy_env(env: &mut Vec<String>, proxies: Vec<(String, String)>) {
    for (k, v) in proxies {
        if !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
            env.push(format!("{k}={v}"));
        }
    }
}

/// Creates the container; pulls first with `--pull always`, or on "no such image" unless
/// `--pull never`. Prints the daemon's warnings to stderr.
fn create_container(client: &Client, flags: &ContainerFlags, config: &ContainerConfig) -> Result<String> {
    let image = flags.image();
    // Refuse a malformed reference here, before the daemon is asked, as the docker CLI does.
    let parsed = ImageRef::parse(image).map_err(|e| anyhow!("{e}"))?;
    let platform = flags.platform.as_deref();
    let mut stderr = std::io::stderr();
    if flags.pull == "always" {
        pull(client, image, platform, flags.quiet, &mut stderr)?;
    }
    let (name, platform_param) = (flags.name.as_deref().unwrap_or(""), platform.unwrap_or(""));
    let created: CreateResponse = match client.container_create(name, platform_param, config) {
        Ok(c) => c,
        Err(ClientError::Daemon { status: 404, message }) if flags.pull == "missing" && is_missing_image(&message) => {
            eprintln!("Unable to find image '{}' locally", parsed.familiar());
            pull(client, image, platform, flags.quiet, &mut stderr)?;
            client
                .container_create(name, platform_param, config)
                .with_context(|| format!("create a container of {image}"))?
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("create a container of {image}"))),
    };
    for w in &created.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(created.id)
}

fn is_missing_image(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no such image") || m.contains("not found") || m.contains("unable to find")
}

/// Sends the wait request on its own connection before the container starts, so an early exit
/// is not missed; gives the daemon a moment to register it.
pub(crate) fn spawn_wait(client: &Client, id: &str, removed: bool) -> mpsc::Receiver<Result<WaitResponse>> {
    let (registered_tx, registered_rx) = mpsc::channel::<()>();
    let (tx, rx) = mpsc::channel();
    let condition = if removed { "removed" } else { "next-exit" };
    let req = wharf_client::ops::container_wait_request(id, condition);
    let client = client.clone();
    let short_id = short(id).to_string();
    std::thread::spawn(move || {
        let result = (|| -> Result<WaitResponse> {
            let mut resp = client.request(req)?;
            let _ = registered_tx.send(());
            let mut body = Vec::new();
            std::io::Read::read_to_end(resp.body_reader(), &mut body)
                .with_context(|| format!("waiting for container {short_id}"))?;
            serde_json::from_slice(&body).with_context(|| format!("waiting for container {short_id}: bad answer"))
        })();
        let _ = tx.send(result);
    });
    let _ = registered_rx.recv_timeout(WAIT_REGISTERED_TIMEOUT);
    rx
}

/// The signals `run` passes on to its container instead of dying of them, as docker's
/// `--sig-proxy` does.
const PROXIED_SIGNALS: [(libc::c_int, &str); 5] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
];

/// Blocks the proxied signals in this thread (and the threads it starts later) and forwards
/// each one that arrives to the container with `POST /containers/{id}/kill`.
pub(crate) fn proxy_signals(client: &Client, id: &str) {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t; the signal numbers are valid.
    let blocked = unsafe {
        libc::sigemptyset(&mut set);
        for (sig, _) in PROXIED_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    };
    if !blocked {
        return;
    }
    let client = client.clone();
    let id = id.to_string();
    std::thread::spawn(move || loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` lives in this closure and `sig` is a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let Some((_, name)) = PROXIED_SIGNALS.iter().find(|(s, _)| *s == sig) else { continue };
        if let Err(e) = client.container_kill(&id, name) {
            eprintln!("wharf: forward {name} to the container: {e}");
        }
    });
}

pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_env_does_not_override_the_users() {
        let mut env = vec!["HTTP_PROXY=mine".to_string(), "A=b".to_string()];
        let proxies =
            vec![("HTTP_PROXY".to_string(), "cfg".to_string()), ("http_proxy".to_string(), "cfg".to_string())];
        add_proxy_env(&mut env, proxies);
        assert_eq!(env, ["HTTP_PROXY=mine", "A=b", "http_proxy=cfg"]);
    }

    #[test]
    fn start_failure_codes_table() {
        let cases = [
            ("failed to create task: exec: \"nosuch\": executable file not found in $PATH", 127),
            ("exec /bin/nosuch: no such file or directory", 127),
            ("exec /etc/passwd: permission denied", 126),
            ("exec /tmp: is a directory", 126),
            ("cgroup: memory limit too low", 125),
        ];
        for (msg, want) in cases {
            assert_eq!(start_failure_code(msg), want, "{msg}");
        }
    }
}
