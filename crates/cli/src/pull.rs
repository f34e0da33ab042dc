//! `pull`: `POST /images/create` and the progress it streams back, drawn per layer in place on
//! a terminal (as docker does) and as plain lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use base64::Engine;
use wharf_client::{Client, ClientError, JsonMessage};
use wharf_types::ImageRef;

use crate::human;
use crate::Exit;

/// `pull`'s flags.
pub struct PullOpts<'a> {
    pub platform: Option<&'a str>,
    /// `-a`: every tag of the repository (the daemon pulls them when sent no tag).
    pub all_tags: bool,
    pub quiet: bool,
}

/// Pulls `reference`, writing progress and then the full reference to `out`.
pub fn pull(client: &Client, reference: &str, platform: Option<&str>, quiet: bool, out: &mut dyn Write) -> Result<()> {
    pull_with(client, reference, PullOpts { platform, all_tags: false, quiet }, out)
}

/// `pull` with all its flags.
pub fn pull_with(client: &Client, reference: &str, opts: PullOpts, out: &mut dyn Write) -> Result<()> {
    let PullOpts { platform, all_tags, quiet } = opts;
    let what = format!("pull {reference}");
    // A reference wharf itself refuses is a usage error: 125, as docker's flag errors.
    let usage = |e: String| Exit::new(crate::run::EXIT_FAILED, format!("wharf: {what}: {e}"));
    let r = if all_tags {
        let r = ImageRef::parse_any(reference).map_err(|e| usage(e.to_string()))?;
        if r.tag.is_some() || r.digest.is_some() {
            // The docker CLI's message and status.
            return Err(Exit::new(1, "tag can't be used with --all-tags/-a".to_string()).into());
        }
        r
    } else {
        ImageRef::parse(reference).map_err(|e| usage(e.to_string()))?
    };
    let tag = match (&r.digest, &r.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) if all_tags => String::new(),
        (None, None) => "latest".to_string(),
    };

    let auth = registry_auth(&r.registry).with_context(|| what.clone())?;
    // Some daemons already name the pull in their message; say it once.
    let named = |e: ClientError| {
        let named = e.to_string().starts_with(&what);
        let e = anyhow::Error::from(e);
        if named {
            e
        } else {
            e.context(what.clone())
        }
    };
    let messages =
        client.image_pull(&r.familiar_name(), &tag, platform.unwrap_or(""), auth.as_deref()).map_err(named)?;
    let mut display = Progress::new(std::io::stdout().is_terminal() && !quiet);
    for m in messages {
        let m = m.map_err(named)?;
        if let Some(e) = m.error_message() {
            if e.starts_with(&what) {
                bail!("{e}");
            }
            bail!("{what}: {e}");
        }
        if !quiet {
            display.show(&m, out)?;
        }
    }
    let mut full = r.name();
    if let Some(t) = &r.tag {
        full.push_str(&format!(":{t}"));
    }
    if let Some(d) = &r.digest {
        full.push_str(&format!("@{d}"));
    }
    writeln!(out, "{full}")?;
    Ok(())
}

/// Draws JSON progress messages: on a terminal, one line per layer id rewritten in place.
pub struct Progress {
    terminal: bool,
    lines: HashMap<String, usize>,
    total_lines: usize,
}

impl Progress {
    pub fn new(terminal: bool) -> Progress {
        Progress { terminal, lines: HashMap::new(), total_lines: 0 }
    }

    pub fn show(&mut self, m: &JsonMessage, out: &mut dyn Write) -> Result<()> {
        let has_progress = m.progress_detail.as_ref().is_some_and(|p| p.current.is_some() || p.total.is_some())
            || m.progress.is_some();
        if !self.terminal {
            // Like docker: byte counts are noise in a log file.
            if has_progress {
                return Ok(());
            }
            out.write_all(render(m, false).as_bytes())?;
            out.write_all(b"\n")?;
            return Ok(());
        }
        let text = render(m, true);
        match m.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => {
                if let Some(&line) = self.lines.get(id) {
                    let up = self.total_lines - line;
                    // Up to the layer's line, clear it, write, and back down.
                    write!(out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")?;
                } else {
                    self.lines.insert(id.to_string(), self.total_lines);
                    self.total_lines += 1;
                    writeln!(out, "\x1b[2K{text}")?;
                }
            }
            None => {
                // A message without id (a header or the digest) ends the block of layer lines.
                self.lines.clear();
                self.total_lines = 0;
                writeln!(out, "\x1b[2K{text}")?;
            }
        }
        out.flush()?;
        Ok(())
    }
}

/// One message as docker prints it: `id: Status [progress bar]`.
fn render(m: &JsonMessage, terminal: bool) -> String {
    let mut s = String::new();
    if let Some(id) = m.id.as_deref().filter(|id| !id.is_empty()) {
        s.push_str(id);
        s.push_str(": ");
    }
    s.push_str(m.status.as_deref().unwrap_or(""));
    if let Some(stream) = &m.stream {
        s.push_str(stream.trim_end_matches('\n'));
    }
    if terminal {
        if let Some(d) = &m.progress_detail {
            if let (Some(cur), Some(total)) = (d.current, d.total) {
                if total > 0 {
                    s.push(' ');
                    s.push_str(&bar(cur, total));
                }
            } else if let Some(p) = &m.progress {
                s.push(' ');
                s.push_str(p);
            }
        } else if let Some(p) = &m.progress {
            s.push(' ');
            s.push_str(p);
        }
    }
    s
}

/// `[=====>        ]  1.2MB/3.4MB`, docker's bar of 50 steps.
fn bar(current: i64, total: i64) -> String {
    let steps = (current.clamp(0, total) * 50 / total).clamp(0, 50) as usize;
    format!("[{}>{}] {:>8}/{}", "=".repeat(steps), " ".repeat(50 - steps), human::size(current), human::size(total))
}

/// The docker config for reading credentials; a malformed one is warned about and treated as
/// empty, as the docker CLI does.
fn config_for_credentials() -> serde_json::Value {
    match crate::dockercfg::read_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("WARNING: Error loading config file: {e:#}");
            serde_json::json!({})
        }
    }
}

/// The `X-Registry-Auth` header for `registry`, when the docker config (its `auths`, or a
/// credential helper) holds credentials for it.
pub(crate) fn registry_auth(registry: &str) -> Result<Option<String>> {
    let config = config_for_credentials();
    let Some(creds) = crate::dockercfg::get(&config, registry)? else { return Ok(None) };
    let body = creds.to_auth_json(&crate::dockercfg::server_key(registry));
    Ok(Some(base64::engine::general_purpose::URL_SAFE.encode(body.to_string())))
}

/// The `X-Registry-Config` header of a build: every credential the docker config knows, by
/// registry, as the docker CLI sends them (the daemon picks the one each pull needs).
pub(crate) fn registry_config() -> Result<Option<String>> {
    let config = config_for_credentials();
    let all = crate::dockercfg::all(&config)?;
    if all.is_empty() {
        return Ok(None);
    }
    let map: serde_json::Map<String, serde_json::Value> =
        all.iter().map(|(server, c)| (server.clone(), c.to_auth_json(server))).collect();
    Ok(Some(base64::engine::general_purpose::URL_SAFE.encode(serde_json::Value::Object(map).to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(json: &str) -> JsonMessage {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plain_output_skips_byte_counts() {
        let mut p = Progress::new(false);
        let mut out = Vec::new();
        for m in [
            r#"{"status":"Pulling from library/busybox","id":"latest"}"#,
            r#"{"status":"Pulling fs layer","id":"abc"}"#,
            r#"{"status":"Downloading","progressDetail":{"current":10,"total":20},"id":"abc"}"#,
            r#"{"status":"Pull complete","id":"abc"}"#,
            r#"{"status":"Digest: sha256:00"}"#,
        ] {
            p.show(&msg(m), &mut out).unwrap();
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "latest: Pulling from library/busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:00\n"
        );
    }

    #[test]
    fn terminal_output_rewrites_layer_lines() {
        let mut p = Progress::new(true);
        let mut out = Vec::new();
        p.show(&msg(r#"{"status":"Pulling fs layer","id":"a"}"#), &mut out).unwrap();
        p.show(&msg(r#"{"status":"Pulling fs layer","id":"b"}"#), &mut out).unwrap();
        out.clear();
        p.show(&msg(r#"{"status":"Downloading","progressDetail":{"current":1000,"total":2000},"id":"a"}"#), &mut out)
            .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("\x1b[2A\r\x1b[2Ka: Downloading ["), "{s:?}");
        assert!(s.contains("1kB/2kB"), "{s:?}");
        assert!(s.ends_with("\r\x1b[2B"), "{s:?}");
    }

    #[test]
    fn progress_bar_widths() {
        assert!(bar(0, 100).starts_with("[>   "));
        assert!(bar(50, 100).starts_with(&format!("[{}>{}]", "=".repeat(25), " ".repeat(25))));
        assert!(bar(100, 100).starts_with(&format!("[{}>]", "=".repeat(50))));
        assert!(bar(1000, 2000).ends_with("     1kB/2kB"));
    }
}
