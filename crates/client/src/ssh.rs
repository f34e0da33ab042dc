//! `ssh://[user@]host[:port]` daemons, as the docker CLI reaches them: each connection is an
//! `ssh … -- host docker system dial-stdio` process (the system's ssh, with the user's own
//! config, keys and known hosts), whose standard input and output are one end of a socket pair
//! and the connection the other end. On the remote host `docker system dial-stdio` is the docker
//! CLI's, or wharf's (`scripts/install` links `docker` to `wharf` where no docker CLI is).

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use wharf_http::Stream;

/// Where an `ssh://` host points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// `ssh://[user@]host[:port]`, as the docker CLI takes it: no path, no password, and
    /// nothing that ssh would read as an option.
    pub(crate) fn parse(url: &str) -> Result<SshTarget, String> {
        let rest = url.strip_prefix("ssh://").ok_or_else(|| format!("not an ssh:// URL: {url}"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err(format!("extra path after the host: {url}"));
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if let Some(u) = user {
            if u.contains(':') {
                return Err(format!("plain-text password is not supported: {url}"));
            }
            if u.is_empty() || u.starts_with('-') {
                return Err(format!("bad user name in {url}"));
            }
        }
        let (host, port) = match hostport.strip_prefix('[') {
            // `[::1]:2222`
            Some(v6) => {
                let (h, after) = v6.split_once(']').ok_or_else(|| format!("bad host in {url}"))?;
                (h, after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(format!("no host in {url}"));
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| format!("bad port in {url}"))?),
            None => None,
        };
        Ok(SshTarget { user: user.map(str::to_string), host: host.to_string(), port })
    }

    /// The ssh command line of one connection, as the docker CLI's.
    fn command(&self) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-o", "ConnectTimeout=30", "-T"]);
        if let Some(u) = &self.user {
            cmd.args(["-l", u]);
        }
        if let Some(p) = self.port {
            cmd.args(["-p", &p.to_string()]);
        }
        cmd.args(["--", &self.host, "docker", "system", "dial-stdio"]);
        cmd
    }

    /// A connection to the remote daemon: a new ssh process.
    pub(crate) fn connect(&self) -> io::Result<Box<dyn Stream>> {
        let (ours, theirs) = UnixStream::pair()?;
        let out = OwnedFd::from(theirs.try_clone()?);
        let child = self
            .command()
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(out))
            // ssh's own messages (an unknown host key, a refused login) go to the user.
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("ssh: {e}")))?;
        Ok(Box::new(SshStream { sock: ours, child: Arc::new(SshProcess(Mutex::new(child))) }))
    }
}

/// The ssh process of a connection: ended (killed if it is still there, and reaped) when the
/// last handle on the connection goes.
struct SshProcess(Mutex<Child>);

impl Drop for SshProcess {
    fn drop(&mut self) {
        let child = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One connection through ssh.
struct SshStream {
    sock: UnixStream,
    child: Arc<SshProcess>,
}

impl Read for SshStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.read(buf)
    }
}

impl Write for SshStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sock.flush()
    }
}

impl Stream for SshStream {
    fn shutdown_write(&self) -> io::Result<()> {
        self.sock.shutdown(std::net::Shutdown::Write)
    }

    fn try_clone_stream(&self) -> io::Result<Box<dyn Stream>> {
        Ok(Box::new(SshStream { sock: self.sock.try_clone()?, child: self.child.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_urls_as_the_docker_cli_takes_them() {
        let t = |user: Option<&str>, host: &str, port: Option<u16>| {
            Ok(SshTarget { user: user.map(str::to_string), host: host.to_string(), port })
        };
        let cases: &[(&str, Result<SshTarget, String>)] = &[
            ("ssh://host", t(None, "host", None)),
            ("ssh://me@host", t(Some("me"), "host", None)),
            ("ssh://me@host:2222", t(Some("me"), "host", Some(2222))),
            ("ssh://root@127.0.0.1:22/", t(Some("root"), "127.0.0.1", Some(22))),
            ("ssh://me@[::1]:2222", t(Some("me"), "::1", Some(2222))),
        ];
        for (url, want) in cases {
            assert_eq!(&SshTarget::parse(url), want, "{url}");
        }
        for (url, err) in [
            ("ssh://me@host/var/run/docker.sock", "extra path"),
            ("ssh://me:secret@host", "password"),
            ("ssh://-oProxyCommand=x", "no host"),
            ("ssh://me@host:notaport", "bad port"),
            ("ssh://", "no host"),
        ] {
            let got = SshTarget::parse(url);
            assert!(got.as_ref().is_err_and(|e| e.contains(err)), "{url}: {got:?}");
        }
        let args: Vec<String> = SshTarget::parse("ssh://me@host:2222")
            .unwrap()
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            ["-o", "ConnectTimeout=30", "-T", "-l", "me", "-p", "2222", "--", "host", "docker", "system", "dial-stdio"]
        );
    }
}
