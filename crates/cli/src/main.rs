//! The wharf command-line interface: docker's commands and flags, spoken to the daemon only
//! through the Docker Engine API, so it works with any Docker-compatible daemon.

mod api_socket;
mod archive;
mod build;
mod config;
mod containers;
mod context;
mod copy;
mod csv;
mod disk;
mod dockercfg;
mod extras;
mod human;
mod images;
mod inspect;
mod interactive;
mod lifecycle;
mod manifest;
mod network;
mod pull;
mod resources;
mod run;
mod search;
mod security;
mod stats;
mod swarm;
mod system;
mod table;
mod template;
mod transfer;
mod transport;

use std::fmt;

use anyhow::Result;
use clap::{Parser, Subcommand};
use wharf_client::{Client, ClientError};

use crate::config::ContainerFlags;
use crate::containers::{LogsFlags, PsFlags};
use crate::images::ImagesFlags;

#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    about = "A self-sufficient runtime for containers",
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct Cli {
    // Like docker's, the global options come before the command: after it, `-l` is `run`'s
    // `--label` and `-H` is `history`'s `--human`.
    /// Location of client config files (default "$HOME/.docker"; $DOCKER_CONFIG)
    #[arg(long = "config", value_name = "PATH")]
    config: Option<std::path::PathBuf>,
    /// Enable debug mode (log each API request to stderr)
    #[arg(short = 'D', long = "debug")]
    debug: bool,
    /// Set the logging level ("debug", "info", "warn", "error", "fatal")
    #[arg(short = 'l', long = "log-level", default_value = "info",
          value_parser = ["debug", "info", "warn", "error", "fatal"])]
    log_level: String,
    /// Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and
    /// default context set with "wharf context use")
    #[arg(short = 'c', long = "context")]
    context: Option<String>,
    /// Print version information and quit
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// Daemon socket to connect to (unix:///path or tcp://host:port)
    #[arg(short = 'H', long = "host")]
    host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long = "tls")]
    tls: bool,
    /// Use TLS and verify the remote
    #[arg(long = "tlsverify")]
    tlsverify: bool,
    /// Trust certs signed only by this CA (default $DOCKER_CERT_PATH/ca.pem)
    #[arg(long = "tlscacert")]
    tlscacert: Option<std::path::PathBuf>,
    /// Path to TLS certificate file (default $DOCKER_CERT_PATH/cert.pem)
    #[arg(long = "tlscert")]
    tlscert: Option<std::path::PathBuf>,
    /// Path to TLS key file (default $DOCKER_CERT_PATH/key.pem)
    #[arg(long = "tlskey")]
    tlskey: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run {
        /// Run container in background and print container ID
        #[arg(short = 'd', long)]
        detach: bool,
        /// Proxy received signals to the process (`--sig-proxy=false` to not)
        #[arg(long = "sig-proxy", default_value_t = true, num_args = 0..=1, require_equals = true,
              default_missing_value = "true", action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Print help
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        #[command(flatten)]
        flags: ContainerFlags,
    },
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create {
        /// Print help
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        #[command(flatten)]
        flags: ContainerFlags,
    },
    /// Start one or more stopped containers
    Start {
        /// Attach STDOUT/STDERR and forward signals
        #[arg(short = 'a', long)]
        attach: bool,
        /// Attach container's STDIN
        #[arg(short = 'i', long)]
        interactive: bool,
        /// Override the key sequence for detaching a container
        #[arg(long = "detach-keys")]
        detach_keys: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop one or more running containers
    Stop {
        /// Seconds to wait before killing the container (`--time` is docker's old name)
        #[arg(short = 't', long = "timeout", alias = "time", allow_hyphen_values = true)]
        time: Option<i64>,
        /// Signal to send to the container
        #[arg(short = 's', long)]
        signal: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Kill one or more running containers
    Kill {
        /// Signal to send to the container
        #[arg(short = 's', long)]
        signal: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm {
        /// Force the removal of a running container (uses SIGKILL)
        #[arg(short = 'f', long)]
        force: bool,
        /// Remove anonymous volumes associated with the container
        #[arg(short = 'v', long)]
        volumes: bool,
        /// Remove the specified link
        #[arg(short = 'l', long)]
        link: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    #[command(alias = "list")]
    Ps(PsFlags),
    /// Fetch the logs of a container
    Logs(LogsFlags),
    /// Download an image from a registry
    Pull {
        /// Download all tagged images in the repository
        #[arg(short = 'a', long = "all-tags")]
        all_tags: bool,
        /// Suppress verbose output
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Set platform if server is multi-platform capable
        #[arg(long)]
        platform: Option<String>,
        image: String,
    },
    /// List images
    Images(ImagesFlags),
    /// Remove one or more images
    Rmi {
        /// Force removal of the image
        #[arg(short = 'f', long)]
        force: bool,
        /// Do not delete untagged parents
        #[arg(long = "no-prune")]
        no_prune: bool,
        /// Remove only the given platform (API 1.50; refused by older daemons, as docker does)
        #[arg(long)]
        platform: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Return low-level information on containers or images
    Inspect {
        /// Return JSON for specified type (container or image)
        #[arg(long = "type")]
        kind: Option<String>,
        /// Format output using a (small subset of a) Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Display total file sizes if the type is container
        #[arg(short = 's', long)]
        size: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Manage containers
    #[command(after_help = "Also: attach, commit, cp, create, diff, exec, export, inspect, kill, logs, pause, port, \
rename, restart, rm, run, start, stats, stop, top, unpause, update, wait (`wharf container X` is `wharf X`)")]
    Container {
        #[command(subcommand)]
        command: ContainerCommand,
    },
    /// Manage images
    #[command(after_help = "Also: build, history, import, load, push, save (`wharf image X` is `wharf X`)")]
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Show the wharf version information
    Version {
        /// Format output using a custom template ('json', or a Go template)
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        /// Format output using a custom template ('json', or a Go template)
        #[arg(short = 'f', long)]
        format: Option<String>,
    },
    #[command(flatten)]
    Lifecycle(lifecycle::LifecycleCommand),
    #[command(flatten)]
    Transport(transport::TransportCommand),
    #[command(flatten)]
    Archive(archive::ArchiveCommand),
    /// Build an image from a Dockerfile
    Build(build::BuildFlags),
    #[command(flatten)]
    Transfer(transfer::TransferCommand),
    #[command(flatten)]
    Copy(copy::CopyCommand),
    #[command(flatten)]
    Net(network::NetCommand),
    #[command(flatten)]
    Interactive(interactive::InteractiveCommand),
    #[command(flatten)]
    Extras(extras::ExtrasCommand),
    /// Manage Docker
    System {
        #[command(subcommand)]
        command: disk::SystemCommand,
    },
    /// Manage builds
    Builder {
        #[command(subcommand)]
        command: disk::BuilderCommand,
    },
    /// Manage Swarm services
    #[command(
        after_help = "Commands: create, inspect, logs, ls, ps, rm, rollback, scale, update. wharfd is never in a swarm: these ask the daemon as the docker CLI does and report its answer."
    )]
    Service {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND [ARGS]")]
        args: Vec<String>,
    },
    /// Manage Swarm stacks
    #[command(
        after_help = "Commands: config, deploy, ls, ps, rm, services. wharfd is never in a swarm: these ask the daemon as the docker CLI does and report its answer."
    )]
    Stack {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND [ARGS]")]
        args: Vec<String>,
    },
    /// Manage Swarm nodes
    #[command(
        after_help = "Commands: demote, inspect, ls, promote, ps, rm, update. wharfd is never in a swarm: these ask the daemon as the docker CLI does and report its answer."
    )]
    Node {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND [ARGS]")]
        args: Vec<String>,
    },
    /// Manage Swarm secrets
    #[command(
        after_help = "Commands: create, inspect, ls, rm. wharfd is never in a swarm: these ask the daemon as the docker CLI does and report its answer."
    )]
    Secret {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND [ARGS]")]
        args: Vec<String>,
    },
    /// Manage Swarm configs
    #[command(
        after_help = "Commands: create, inspect, ls, rm. wharfd is never in a swarm: these ask the daemon as the docker CLI does and report its answer."
    )]
    Config {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND [ARGS]")]
        args: Vec<String>,
    },
    /// Manage Swarm
    #[command(
        after_help = "Commands: ca, init, join, join-token, leave, unlock, unlock-key, update. wharfd is never in a swarm: these ask the daemon as the docker CLI does and report its answer."
    )]
    Swarm {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND [ARGS]")]
        args: Vec<String>,
    },
    /// Search a registry for images
    Search(search::SearchFlags),
    /// Manage Docker image manifests and manifest lists
    Manifest {
        #[command(subcommand)]
        command: manifest::ManifestCommand,
    },
    /// Manage contexts
    Context {
        #[command(subcommand)]
        command: context::ContextCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ContainerCommand {
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(PsFlags),
    /// Remove all stopped containers
    Prune(extras::PruneFlags),
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(ImagesFlags),
    /// Remove one or more images
    Rm {
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(long = "no-prune")]
        no_prune: bool,
        #[arg(long)]
        platform: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Download an image from a registry
    Pull {
        #[arg(short = 'a', long = "all-tags")]
        all_tags: bool,
        #[arg(short = 'q', long)]
        quiet: bool,
        #[arg(long)]
        platform: Option<String>,
        image: String,
    },
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Remove unused images
    Prune(disk::ImagePruneFlags),
    /// Display detailed information on one or more images
    Inspect {
        /// Format output using a (small subset of a) Go template
        #[arg(short = 'f', long)]
        format: Option<String>,
        /// Inspect the given platform (API 1.49; refused by older daemons, as docker does)
        #[arg(long)]
        platform: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
}

/// An exit with a given status: a container's own status, or a failure already reported.
#[derive(Debug)]
pub struct Exit {
    code: i32,
    message: Option<String>,
}

impl Exit {
    /// Exit with `code`, printing `message` (a full line) to stderr.
    pub fn new(code: i32, message: String) -> Exit {
        Exit { code, message: Some(message) }
    }

    /// Exit with `code`, printing nothing more.
    pub fn silent(code: i32) -> Exit {
        Exit { code, message: None }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{m}"),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

/// Prints an error as one line: `wharf: what: why`; a daemon that cannot be reached is said
/// plainly, without the command's context.
pub fn print_error(e: &anyhow::Error) {
    if let Some(exit) = e.downcast_ref::<Exit>() {
        if let Some(m) = &exit.message {
            eprintln!("{m}");
        }
        return;
    }
    eprintln!("{}", one_line(e));
}

fn main() {
    // Die quietly when the reader of our output goes away (`wharf ps | head`), as docker does,
    // rather than panicking in print!.
    // SAFETY: setting a signal's disposition to the default is always sound.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse_from(management_aliases(std::env::args_os().collect())) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 125 as docker's do; help and version are not errors.
            std::process::exit(if e.use_stderr() { run::EXIT_FAILED } else { 0 });
        }
    };
    let code = match dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            print_error(&e);
            e.downcast_ref::<Exit>().map(|x| x.code).unwrap_or(1)
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: Cli) -> Result<()> {
    if let Some(dir) = &cli.config {
        // Everything that reads the CLI config (credentials, contexts) looks at DOCKER_CONFIG;
        // `--config` wins over it, as in docker. Set before any thread starts.
        std::env::set_var("DOCKER_CONFIG", dir);
    }
    // The CLI logs nothing but its requests, and those at the debug level.
    let debug = cli.debug || cli.log_level == "debug";
    let tls = wharf_client::TlsOptions::from_env(cli.tls, cli.tlsverify).map(|mut t| {
        t.ca = cli.tlscacert.clone().unwrap_or(t.ca);
        t.cert = cli.tlscert.clone().unwrap_or(t.cert);
        t.key = cli.tlskey.clone().unwrap_or(t.key);
        t
    });
    // The context names the daemon unless -H or DOCKER_HOST do (`context::resolve`).
    let context = context::resolve(cli.context.as_deref(), cli.host.is_some());
    if let Command::Context { command } = cli.command {
        return context::run(command, &context?);
    }
    // Like docker's, `manifest` talks to registries itself: no daemon.
    if let Command::Manifest { command } = cli.command {
        return manifest::run(command);
    }
    let client: Result<Client> = context.and_then(|name| context::endpoint(&name)).and_then(|endpoint| {
        let (client, tls) = match endpoint {
            Some((host, context_tls)) => (Client::new(&host), tls.or(context_tls)),
            None => (Client::from_env(cli.host.as_deref()), tls),
        };
        let client = client.map(|c| c.with_debug(debug));
        Ok(match &tls {
            Some(t) => client.and_then(|c| c.with_tls(t)),
            None => client,
        }?)
    });
    // `run` fails with 125 when wharf or the daemon failed, as docker's does.
    let with_failed_code =
        |r: Result<()>| {
            r.map_err(|e| {
                if e.downcast_ref::<Exit>().is_some() {
                    e
                } else {
                    Exit::new(run::EXIT_FAILED, one_line(&e)).into()
                }
            })
        };
    match cli.command {
        Command::Run { detach, sig_proxy, flags, .. } => {
            with_failed_code(client.and_then(|c| run::run(&c, &flags, detach, sig_proxy)))
        }
        // `create` fails with 1, as the docker CLI's does since it no longer shares run's code.
        Command::Create { flags, .. } => client.and_then(|c| run::create(&c, &flags)),
        other => {
            let client = client?;
            match other {
                Command::Start { attach, interactive, detach_keys, containers } => {
                    if attach || interactive {
                        let [one] = containers.as_slice() else {
                            return Err(Exit::new(
                                1,
                                "wharf: you cannot start and attach multiple containers at once".to_string(),
                            )
                            .into());
                        };
                        run::start_attached(&client, one, interactive, detach_keys)
                    } else {
                        run::start_many(&client, &containers)
                    }
                }
                Command::Stop { time, signal, containers } => {
                    containers::stop(&client, &containers, time, signal.as_deref())
                }
                Command::Kill { signal, containers } => containers::kill(&client, &containers, signal.as_deref()),
                Command::Rm { force, volumes, link, containers } => {
                    containers::rm(&client, &containers, force, volumes, link)
                }
                Command::Ps(f) | Command::Container { command: ContainerCommand::Ls(f) } => containers::ps(&client, &f),
                Command::Logs(f) => containers::logs(&client, &f),
                Command::Pull { all_tags, quiet, platform, image }
                | Command::Image { command: ImageCommand::Pull { all_tags, quiet, platform, image } } => {
                    let opts = pull::PullOpts { platform: platform.as_deref(), all_tags, quiet };
                    pull::pull_with(&client, &image, opts, &mut std::io::stdout())
                }
                Command::Images(f) | Command::Image { command: ImageCommand::Ls(f) } => images::images(&client, &f),
                Command::Rmi { force, no_prune, platform, images }
                | Command::Image { command: ImageCommand::Rm { force, no_prune, platform, images } } => {
                    images::refuse_platform(&client, platform.as_deref(), "1.50")?;
                    images::rmi(&client, &images, force, no_prune)
                }
                Command::Tag { source, target } | Command::Image { command: ImageCommand::Tag { source, target } } => {
                    images::tag(&client, &source, &target)
                }
                Command::Inspect { kind, format, size, names } => {
                    inspect::inspect(&client, &names, kind.as_deref(), format.as_deref(), size)
                }
                Command::Image { command: ImageCommand::Inspect { format, platform, images } } => {
                    images::refuse_platform(&client, platform.as_deref(), "1.49")?;
                    inspect::inspect(&client, &images, Some("image"), format.as_deref(), false)
                }
                Command::Version { format: Some(f) } => system::version_format(&client, &f),
                Command::Version { format: None } => system::version(&client),
                Command::Info { format: Some(f) } => system::info_format(&client, &f),
                Command::Info { format: None } => system::info(&client),
                Command::Lifecycle(c) => lifecycle::run(&client, c),
                Command::Transport(c) => transport::run(&client, c),
                Command::Archive(c) => archive::run(&client, c),
                Command::Build(f) => build::run(&client, &f),
                Command::Transfer(c) => transfer::run(&client, c),
                Command::Copy(c) => copy::run(&client, c),
                Command::Net(c) => network::run(&client, c),
                Command::Interactive(c) => interactive::run(&client, c),
                Command::Extras(c) => extras::run(&client, c),
                Command::System { command } => disk::run(&client, command),
                Command::Builder { command } => disk::builder(&client, command),
                Command::Search(f) => search::search(&client, &f),
                Command::Service { args } => swarm::run(&client, "service", &args),
                Command::Stack { args } => swarm::run(&client, "stack", &args),
                Command::Node { args } => swarm::run(&client, "node", &args),
                Command::Secret { args } => swarm::run(&client, "secret", &args),
                Command::Config { args } => swarm::run(&client, "config", &args),
                Command::Swarm { args } => swarm::run(&client, "swarm", &args),
                Command::Image { command: ImageCommand::Prune(f) } => disk::image_prune(&client, &f),
                Command::Container { command: ContainerCommand::Prune(f) } => extras::prune(&client, &f),
                Command::Run { .. } | Command::Create { .. } | Command::Context { .. } | Command::Manifest { .. } => {
                    unreachable!("handled above")
                }
            }
        }
    }
}

/// `container X` and `image X` for the commands that are the same command at the top level
/// (in docker they are one Cobra command under two names): rewritten to the top-level form
/// before parsing, so that each exists once. Global options before the command are skipped.
fn management_aliases(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const CONTAINER: &[&str] = &[
        "attach", "commit", "cp", "create", "diff", "exec", "export", "kill", "logs", "pause", "port", "rename",
        "restart", "rm", "run", "start", "stats", "stop", "top", "unpause", "update", "wait",
    ];
    const IMAGE: &[&str] = &["build", "history", "import", "load", "push", "save"];
    // `system info` and `system events` are `info` and `events`; `builder build` is `build`.
    // The global options that take a value as the next word.
    const WITH_VALUE: &[&str] =
        &["-H", "--host", "--tlscacert", "--tlscert", "--tlskey", "--config", "-l", "--log-level", "-c", "--context"];
    let mut i = 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        if WITH_VALUE.contains(&a) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    let (Some(group), Some(sub)) = (args.get(i).and_then(|a| a.to_str()), args.get(i + 1).and_then(|a| a.to_str()))
    else {
        return args;
    };
    match (group, sub) {
        ("container", c) if CONTAINER.contains(&c) => {
            args.remove(i);
        }
        ("container", "inspect") => {
            args.splice(i..i + 2, ["inspect".into(), "--type".into(), "container".into()]);
        }
        ("image", c) if IMAGE.contains(&c) => {
            args.remove(i);
        }
        ("system", "info" | "events") | ("builder", "build") => {
            args.remove(i);
        }
        _ => {}
    }
    args
}

/// The line [`print_error`] would print for `e`.
fn one_line(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(c @ ClientError::Connect { .. }) = cause.downcast_ref::<ClientError>() {
            return format!("wharf: {c}");
        }
    }
    format!("wharf: {e:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn management_commands_name_the_top_level_ones() {
        let rewrite = |a: &[&str]| -> Vec<String> {
            management_aliases(a.iter().map(Into::into).collect())
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect()
        };
        assert_eq!(rewrite(&["wharf", "container", "run", "-d", "x"]), ["wharf", "run", "-d", "x"]);
        assert_eq!(
            rewrite(&["wharf", "-H", "unix:///s", "image", "history", "x"]),
            ["wharf", "-H", "unix:///s", "history", "x"]
        );
        assert_eq!(rewrite(&["wharf", "container", "inspect", "x"]), ["wharf", "inspect", "--type", "container", "x"]);
        // Those with their own form stay; so does a container named like a command.
        assert_eq!(rewrite(&["wharf", "container", "ls"]), ["wharf", "container", "ls"]);
        assert_eq!(rewrite(&["wharf", "rm", "container", "run"]), ["wharf", "rm", "container", "run"]);
    }

    #[test]
    fn parses_docker_style_command_lines() {
        let cli = Cli::try_parse_from([
            "wharf",
            "-H",
            "unix:///tmp/s.sock",
            "run",
            "--rm",
            "-h",
            "box",
            "busybox",
            "ls",
            "-l",
        ])
        .unwrap();
        assert_eq!(cli.host.as_deref(), Some("unix:///tmp/s.sock"));
        match cli.command {
            Command::Run { detach, sig_proxy, flags, .. } => {
                assert!(!detach && flags.rm && sig_proxy);
                assert_eq!(flags.hostname.as_deref(), Some("box"));
                assert_eq!(flags.image_and_command, ["busybox", "ls", "-l"]);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["wharf", "stop", "-t", "0", "a", "b"]).unwrap();
        assert!(matches!(cli.command, Command::Stop { time: Some(0), ref containers, .. } if containers.len() == 2));
        let cli = Cli::try_parse_from(["wharf", "logs", "-f", "--tail", "10", "web"]).unwrap();
        assert!(matches!(cli.command, Command::Logs(ref f) if f.follow && f.tail == "10" && f.container == "web"));
        let cli = Cli::try_parse_from(["wharf", "image", "ls", "-q"]).unwrap();
        assert!(matches!(cli.command, Command::Image { command: ImageCommand::Ls(ref f) } if f.quiet));
        let cli = Cli::try_parse_from(["wharf", "ps", "-a", "-n", "3", "--filter", "status=exited"]).unwrap();
        assert!(matches!(cli.command, Command::Ps(ref f) if f.all && f.last == 3 && f.filter.len() == 1));
    }
}
