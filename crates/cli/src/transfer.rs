//! Images from containers and tars: `export` writes a container's file system as a tar,
//! `import` makes an image of one, `commit` makes an image of a container's changes.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Subcommand};
use wharf_client::{Body, Client, Query};

#[derive(Debug, Subcommand)]
pub enum TransferCommand {
    /// Export a container's filesystem as a tar archive
    Export {
        /// Write to a file, instead of STDOUT
        #[arg(short = 'o', long)]
        output: Option<String>,
        container: String,
    },
    /// Import the contents from a tarball to create a filesystem image
    Import {
        /// Apply Dockerfile instruction to the created image
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
        /// Set commit message for imported image
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// Set platform if server is multi-platform capable
        #[arg(long)]
        platform: Option<String>,
        /// A file, or "-" for STDIN
        file: String,
        #[arg(value_name = "REPOSITORY[:TAG]")]
        reference: Option<String>,
    },
    /// Create a new image from a container's changes
    Commit {
        /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
        #[arg(short = 'a', long)]
        author: Option<String>,
        /// Apply Dockerfile instruction to the created image
        #[arg(short = 'c', long = "change")]
        changes: Vec<String>,
        /// Commit message
        #[arg(short = 'm', long)]
        message: Option<String>,
        /// Pause container during commit
        #[arg(short = 'p', long, default_value_t = true, num_args = 0..=1, default_missing_value = "true",
              action = ArgAction::Set)]
        pause: bool,
        container: String,
        #[arg(value_name = "REPOSITORY[:TAG]")]
        reference: Option<String>,
    },
}

pub fn run(client: &Client, cmd: TransferCommand) -> Result<()> {
    match cmd {
        TransferCommand::Export { output, container } => export(client, output.as_deref(), &container),
        TransferCommand::Import { changes, message, platform, file, reference } => {
            import(client, &file, reference.as_deref(), &changes, message.as_deref(), platform.as_deref())
        }
        TransferCommand::Commit { author, changes, message, pause, container, reference } => {
            commit(client, &container, reference.as_deref(), author.as_deref(), message.as_deref(), &changes, pause)
        }
    }
}

fn export(client: &Client, output: Option<&str>, container: &str) -> Result<()> {
    let stdout = std::io::stdout();
    if output.is_none() && stdout.is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut body = client.container_export(container).context("export")?;
    crate::archive::write_archive(&mut body, output, "export")
}

fn import(
    client: &Client,
    file: &str,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
    platform: Option<&str>,
) -> Result<()> {
    let (reader, len): (Box<dyn Read + Send>, Option<u64>) = if file == "-" {
        (Box::new(std::io::stdin()), None)
    } else if file.contains("://") {
        bail!("import from a URL is not supported: download {file} and import the file");
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("open {file}"))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(f), len)
    };
    let mut q = Query::new().set("fromSrc", "-").set_nonempty("repo", reference.unwrap_or(""));
    for c in changes {
        q = q.set("changes", c.as_str());
    }
    if let Some(m) = message {
        q = q.set("message", m);
    }
    q = q.set_nonempty("platform", platform.unwrap_or(""));
    let messages = client.image_import(&q, Body::Reader(reader, len)).context("import")?;
    let mut out = std::io::stdout().lock();
    for m in messages {
        let m = m.context("import")?;
        if let Some(e) = m.error_message() {
            bail!("import: {e}");
        }
        if let Some(s) = &m.status {
            writeln!(out, "{s}")?;
        }
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct CommitAnswer {
    #[serde(rename = "Id")]
    id: String,
}

fn commit(
    client: &Client,
    container: &str,
    reference: Option<&str>,
    author: Option<&str>,
    message: Option<&str>,
    changes: &[String],
    pause: bool,
) -> Result<()> {
    let mut q = Query::new()
        .set("container", container)
        .set_nonempty("repo", reference.unwrap_or(""))
        .set_nonempty("author", author.unwrap_or(""))
        .set_nonempty("comment", message.unwrap_or(""))
        .set("pause", if pause { "1" } else { "0" });
    for c in changes {
        q = q.set("changes", c.as_str());
    }
    let answer: CommitAnswer = client.commit(&q).context("commit")?;
    println!("{}", answer.id);
    Ok(())
}
