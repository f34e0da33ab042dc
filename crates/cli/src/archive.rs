//! Moving images as files: `save` writes the daemon's image archive to a file or stdout, `load`
//! sends one from a file or stdin.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use wharf_client::Client;

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save {
        /// Write to a file, instead of STDOUT
        #[arg(short = 'o', long)]
        output: Option<String>,
        /// Save only the given platform (API 1.48; refused by older daemons, as docker does)
        #[arg(long)]
        platform: Option<String>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Load an image from a tar archive or STDIN
    Load {
        /// Read from tar archive file, instead of STDIN
        #[arg(short = 'i', long)]
        input: Option<String>,
        /// Suppress the load output
        #[arg(short = 'q', long)]
        quiet: bool,
        /// Load only the given platform (API 1.48; refused by older daemons, as docker does)
        #[arg(long)]
        platform: Option<String>,
    },
}

pub fn run(client: &Client, cmd: ArchiveCommand) -> Result<()> {
    match cmd {
        ArchiveCommand::Save { output, platform, images } => {
            crate::images::refuse_platform(client, platform.as_deref(), "1.48")?;
            save(client, output.as_deref(), &images)
        }
        ArchiveCommand::Load { input, quiet, platform } => {
            crate::images::refuse_platform(client, platform.as_deref(), "1.48")?;
            load(client, input.as_deref(), quiet)
        }
    }
}

fn save(client: &Client, output: Option<&str>, images: &[String]) -> Result<()> {
    let stdout = std::io::stdout();
    if output.is_none() && stdout.is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let mut body = client.images_save(images).context("save")?;
    write_archive(&mut body, output, "save")
}

fn load(client: &Client, input: Option<&str>, quiet: bool) -> Result<()> {
    let (reader, len): (Box<dyn Read + Send>, Option<u64>) = match input {
        Some(path) => {
            let f = std::fs::File::open(path).with_context(|| format!("open {path}"))?;
            let len = f.metadata().ok().map(|m| m.len());
            (Box::new(f), len)
        }
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            (Box::new(std::io::stdin()), None)
        }
    };
    let messages = client.images_load(quiet, reader, len).context("load")?;
    let mut out = std::io::stdout().lock();
    for m in messages {
        let m = m.context("load")?;
        if let Some(e) = m.error_message() {
            bail!("load: {e}");
        }
        if let Some(s) = &m.stream {
            write!(out, "{s}")?;
        }
    }
    Ok(())
}

/// Writes an archive streamed from the daemon to `output` (or stdout): into a temp file renamed
/// into place when it is a regular file, so a failed `save`/`export` leaves no partial file;
/// as it is when it names a device or pipe (renaming over it would replace it).
pub(crate) fn write_archive(body: &mut dyn Read, output: Option<&str>, what: &str) -> Result<()> {
    match output {
        // A device or pipe named with -o is written as it is: renaming over it would replace it.
        Some(path) if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) => {
            let mut f = std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("open {path}"))?;
            std::io::copy(body, &mut f).with_context(|| format!("{what}: writing the archive"))?;
            Ok(())
        }
        Some(path) => {
            // Written next to the target and renamed, so a failure leaves no partial file.
            let tmp = format!("{path}.wharf-tmp-{}", std::process::id());
            let result = (|| -> Result<()> {
                let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {tmp}"))?;
                std::io::copy(body, &mut f).with_context(|| format!("{what}: reading the archive"))?;
                f.sync_all().with_context(|| format!("write {path}"))?;
                std::fs::rename(&tmp, path).with_context(|| format!("rename {tmp} to {path}"))?;
                Ok(())
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        None => {
            let mut out = std::io::stdout().lock();
            std::io::copy(body, &mut out).with_context(|| format!("{what}: writing the archive"))?;
            out.flush()?;
            Ok(())
        }
    }
}
