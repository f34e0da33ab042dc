//! Git contexts (`remote=` a git URL, `#ref:dir`): the repository is cloned with the `git`
//! binary as dockerd clones it (init, fetch of the one ref, shallow where the server can,
//! checkout, submodules), and the checkout, or the directory the fragment names, is the
//! context. git runs with no user or system configuration and only network protocols allowed,
//! so a repository cannot make it read the daemon's files (`file://` submodules, `ext::`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one git command may take before it is killed.
const GIT_TIMEOUT: Duration = Duration::from_secs(600);

/// A git URL as dockerd tells one from a tarball's: `git://`, `git@`, `github.com/`, or an
/// http(s) URL whose path ends in `.git` (before a `#fragment`).
pub fn is_git_url(url: &str) -> bool {
    if url.starts_with("git://") || url.starts_with("git@") || url.starts_with("github.com/") {
        return true;
    }
    let http = url.starts_with("http://") || url.starts_with("https://");
    http && url.split_once('#').map_or(url, |(base, _)| base).ends_with(".git")
}

/// A git URL taken apart: where to fetch from, the ref (`master` when none is given, as
/// dockerd), and the context's directory in the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRemote {
    pub remote: String,
    pub reference: String,
    pub subdir: String,
}

impl GitRemote {
    pub fn parse(url: &str) -> Result<GitRemote, String> {
        let transport = url.starts_with("http://")
            || url.starts_with("https://")
            || url.starts_with("git://")
            || url.starts_with("git@");
        let url = if transport { url.to_string() } else { format!("https://{url}") };
        let (remote, fragment) = url.split_once('#').unwrap_or((&url, ""));
        let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
        let reference = if reference.is_empty() { "master" } else { reference };
        // Each reaches git's command line: nothing that reads as an option or leaves the
        // checkout.
        if remote.starts_with('-') || remote.chars().any(char::is_control) {
            return Err(format!("invalid git URL {url:?}"));
        }
        if reference.starts_with('-') || reference.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("invalid git reference {reference:?} in {url:?}"));
        }
        if subdir.starts_with('/') || subdir.split('/').any(|c| c == "..") || subdir.chars().any(char::is_control) {
            return Err(format!("invalid context directory {subdir:?} in {url:?}: it must be inside the repository"));
        }
        Ok(GitRemote { remote: remote.to_string(), reference: reference.to_string(), subdir: subdir.to_string() })
    }
}

/// Clones `url` into `root` (which must not exist) and returns the context's directory in it.
pub fn clone(url: &str, root: &Path) -> Result<PathBuf, String> {
    let repo = GitRemote::parse(url)?;
    std::fs::create_dir_all(root).map_err(|e| format!("create {}: {e}", root.display()))?;
    let log = root.with_extension("log");
    let git = |args: &[&str]| run_git(root, &log, args);
    git(&["init", "--quiet", "--template=", "."])
        .map_err(|e| format!("failed to init repo at {}: {e}", root.display()))?;
    git(&["remote", "add", "origin", &repo.remote])
        .map_err(|e| format!("failed add origin repo at {}: {e}", repo.remote))?;
    // A shallow fetch where the server can serve one (git's own protocol, smart HTTP); a dumb
    // HTTP server cannot, and gets the whole history.
    if git(&["fetch", "--quiet", "--depth", "1", "origin", "--", &repo.reference]).is_err() {
        git(&["fetch", "--quiet", "origin", "--", &repo.reference]).map_err(|e| format!("error fetching: {e}"))?;
    }
    // A branch name checks out as that branch; anything else as what was fetched.
    if let Err(e) = git(&["checkout", "--quiet", &repo.reference, "--"]) {
        git(&["checkout", "--quiet", "FETCH_HEAD", "--"])
            .map_err(|_| format!("error checking out {}: {e}", repo.reference))?;
    }
    git(&["submodule", "--quiet", "update", "--init", "--recursive", "--depth=1"])
        .map_err(|e| format!("error initializing submodules: {e}"))?;
    let _ = std::fs::remove_file(&log);
    let mut dir = root.to_path_buf();
    for part in repo.subdir.split('/').filter(|p| !p.is_empty() && *p != ".") {
        dir.push(part);
        // No symlink on the way: the context stays inside the checkout.
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("error setting git context, not a directory: {}", repo.subdir)),
            Err(e) => return Err(format!("error setting git context, {:?} not within git root: {e}", repo.subdir)),
        }
    }
    Ok(dir)
}

/// Runs git in `dir` with its output in `log`, killed after `GIT_TIMEOUT`; an error carries
/// what git said.
fn run_git(dir: &Path, log: &Path, args: &[&str]) -> Result<(), String> {
    let out = std::fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let home = dir.parent().unwrap_or(dir);
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", "http:https:git:ssh")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("run git: {e}"))?;
    let deadline = Instant::now() + GIT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("git {} took longer than {GIT_TIMEOUT:?}", args.join(" ")));
            }
            Err(e) => return Err(format!("wait for git: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let said = std::fs::read_to_string(log).unwrap_or_default();
    Err(format!("{status}: {}", said.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_told_from_tarballs_as_dockerd_tells_them() {
        for (url, git) in [
            ("git://example.com/r", true),
            ("git@example.com:r.git", true),
            ("github.com/docker/cli", true),
            ("https://example.com/r.git", true),
            ("http://127.0.0.1:1/r.git#main:sub", true),
            ("https://example.com/context.tar.gz", false),
            ("https://example.com/r.git/Dockerfile", false),
        ] {
            assert_eq!(is_git_url(url), git, "{url}");
        }
    }

    #[test]
    fn fragments_name_the_ref_and_the_directory() {
        let r = GitRemote::parse("http://h/r.git#v1:a/b").unwrap();
        assert_eq!((r.remote.as_str(), r.reference.as_str(), r.subdir.as_str()), ("http://h/r.git", "v1", "a/b"));
        let r = GitRemote::parse("github.com/o/r").unwrap();
        assert_eq!(
            (r.remote.as_str(), r.reference.as_str(), r.subdir.as_str()),
            ("https://github.com/o/r", "master", "")
        );
        let r = GitRemote::parse("http://h/r.git#:sub").unwrap();
        assert_eq!((r.reference.as_str(), r.subdir.as_str()), ("master", "sub"));
        for bad in ["http://h/r.git#--upload-pack=x", "http://h/r.git#main:../up", "http://h/r.git#main:/abs"] {
            assert!(GitRemote::parse(bad).is_err(), "{bad}");
        }
    }
}
