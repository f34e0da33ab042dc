//! A small client of systemd's manager (org.freedesktop.systemd1) over D-Bus, for the systemd
//! cgroup driver: transient scopes started on a PID and stopped again, and the name rules of
//! slices. Only the wire format these calls need is here (little-endian messages, the basic
//! types, arrays, structs and variants). As root it talks to systemd's private socket, which
//! needs no dbus-daemon and no Hello; there is no fallback to the system bus, since wharfd
//! runs as root wherever it places containers in cgroups.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const PRIVATE_SOCKET: &str = "/run/systemd/private";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

/// How long a call or a job may take before the client gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("systemd: {0}")]
    Io(#[from] io::Error),
    #[error("systemd: {name}: {message}")]
    Call { name: String, message: String },
    #[error("systemd: {0}")]
    Protocol(String),
    #[error("systemd: job for {unit} ended with {result}")]
    Job { unit: String, result: String },
    #[error("{0}")]
    InvalidName(String),
}

pub type Result<T> = std::result::Result<T, SystemdError>;

/// Whether systemd is pid 1 here, as sd_booted(3) tells.
pub fn runs() -> bool {
    std::path::Path::new("/run/systemd/system").is_dir()
}

/// The cgroup path of a slice, as systemd nests it: `a-b.slice` is `/a.slice/a-b.slice`;
/// `-.slice` is the root. The error says what dockerd says of a wrong `--cgroup-parent`.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || {
        SystemdError::InvalidName(format!(
            "cgroup-parent for systemd cgroup should be a valid slice named as \"xxx.slice\", not {slice:?}"
        ))
    };
    if slice == "-.slice" {
        return Ok(String::new());
    }
    let name = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if name.is_empty() || name.contains('/') || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(bad());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in name.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push('/');
        path.push_str(&prefix);
        path.push_str(".slice");
    }
    Ok(path)
}

/// A container's cgroup as the systemd driver names it in `cgroupsPath`, runc's form
/// `slice:prefix:name`: the transient scope `prefix-name.scope` in `slice` (system.slice when
/// empty), whose directory is the slice's path and the unit's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub slice: String,
    pub unit: String,
}

impl Scope {
    /// None when `path` is a cgroupfs path (it starts with '/').
    pub fn parse(path: &str) -> Option<Result<Scope>> {
        if path.starts_with('/') || !path.contains(':') {
            return None;
        }
        let bad = || SystemdError::InvalidName(format!("cgroupsPath {path:?} is not \"slice:prefix:name\""));
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else { return Some(Err(bad())) };
        if name.is_empty() || name.contains('/') || prefix.contains('/') {
            return Some(Err(bad()));
        }
        let slice = if slice.is_empty() { "system.slice" } else { slice };
        if let Err(e) = expand_slice(slice) {
            return Some(Err(e));
        }
        let unit = if prefix.is_empty() { format!("{name}.scope") } else { format!("{prefix}-{name}.scope") };
        Some(Ok(Scope { slice: slice.to_string(), unit }))
    }

    /// The scope's directory below the cgroup root: `/system.slice/docker-<id>.scope`.
    pub fn cgroup_path(&self) -> String {
        format!("{}/{}", expand_slice(&self.slice).unwrap_or_default(), self.unit)
    }
}

/// A value of the few D-Bus types the manager's calls take.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    U32(u32),
    U64(u64),
    /// `au`
    U32s(Vec<u32>),
}

impl Value {
    fn signature(&self) -> &'static str {
        match self {
            Value::Str(_) => "s",
            Value::Bool(_) => "b",
            Value::U32(_) => "u",
            Value::U64(_) => "t",
            Value::U32s(_) => "au",
        }
    }
}

/// Marshals a message body or header, little-endian. Offsets count from the message's start,
/// which the header and the body (8-aligned after the header) both satisfy.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }
    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// `s` and `o`.
    fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// An array whose elements align to `elem_align`: the length excludes the padding
    /// before the first element.
    fn array(&mut self, elem_align: usize, body: impl FnOnce(&mut Writer)) {
        self.align(4);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.align(elem_align);
        let start = self.buf.len();
        body(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    }
    fn variant(&mut self, v: &Value) {
        self.sig(v.signature());
        match v {
            Value::Str(s) => self.str(s),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(n) => self.u32(*n),
            Value::U64(n) => self.u64(*n),
            Value::U32s(ns) => self.array(4, |w| ns.iter().for_each(|n| w.u32(*n))),
        }
    }
    /// `a(sv)`
    fn properties(&mut self, props: &[(&str, Value)]) {
        self.array(8, |w| {
            for (name, value) in props {
                w.align(8);
                w.str(name);
                w.variant(value);
            }
        });
    }
}

/// The body of StartTransientUnit: `ssa(sv)a(sa(sv))`, with no auxiliary units.
fn start_transient_unit_body(name: &str, mode: &str, props: &[(&str, Value)]) -> Vec<u8> {
    let mut w = Writer::default();
    w.str(name);
    w.str(mode);
    w.properties(props);
    w.array(8, |_| {});
    w.buf
}

const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// A method call to the manager: header, padding, body.
fn method_call(serial: u32, member: &str, signature: &str, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(b'l');
    w.u8(METHOD_CALL);
    w.u8(0);
    w.u8(1);
    w.u32(body.len() as u32);
    w.u32(serial);
    w.array(8, |w| {
        let mut field = |code: u8, sig: &str, f: &dyn Fn(&mut Writer)| {
            w.align(8);
            w.u8(code);
            w.sig(sig);
            f(w);
        };
        field(1, "o", &|w| w.str(MANAGER_PATH));
        field(2, "s", &|w| w.str(MANAGER_IFACE));
        field(3, "s", &|w| w.str(member));
        field(6, "s", &|w| w.str("org.freedesktop.systemd1"));
        if !signature.is_empty() {
            field(8, "g", &|w| w.sig(signature));
        }
    });
    w.align(8);
    w.buf.extend_from_slice(body);
    w.buf
}

/// A received message: what the client looks at.
#[derive(Debug, Default, PartialEq)]
struct Message {
    kind: u8,
    reply_serial: Option<u32>,
    member: String,
    error_name: String,
    signature: String,
    body: Vec<u8>,
}

/// Reads little-endian values at offsets from the start of the header or the body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn bad() -> SystemdError {
        SystemdError::Protocol("malformed message".to_string())
    }
    fn align(&mut self, n: usize) {
        self.pos = self.pos.div_ceil(n) * n;
    }
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(Self::bad)?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        self.align(4);
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn str(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        let s = String::from_utf8(self.take(len)?.to_vec()).map_err(|_| Self::bad())?;
        self.take(1)?;
        Ok(s)
    }
    fn sig(&mut self) -> Result<String> {
        let len = self.u8()? as usize;
        let s = String::from_utf8(self.take(len)?.to_vec()).map_err(|_| Self::bad())?;
        self.take(1)?;
        Ok(s)
    }
}

/// Parses one whole message (`buf` holds exactly it) of the types header fields use.
fn parse_message(buf: &[u8]) -> Result<Message> {
    let mut r = Reader { buf, pos: 0 };
    if r.u8()? != b'l' {
        return Err(SystemdError::Protocol("big-endian message".to_string()));
    }
    let mut m = Message { kind: r.u8()?, ..Message::default() };
    r.take(2)?;
    let body_len = r.u32()? as usize;
    r.u32()?;
    let fields_len = r.u32()? as usize;
    let fields_end = r.pos + fields_len;
    while r.pos < fields_end {
        r.align(8);
        let code = r.u8()?;
        let sig = r.sig()?;
        match sig.as_str() {
            "s" | "o" => {
                let s = r.str()?;
                match code {
                    3 => m.member = s,
                    4 => m.error_name = s,
                    _ => {}
                }
            }
            "g" => {
                let s = r.sig()?;
                if code == 8 {
                    m.signature = s;
                }
            }
            "u" => {
                let n = r.u32()?;
                if code == 5 {
                    m.reply_serial = Some(n);
                }
            }
            _ => return Err(SystemdError::Protocol(format!("header field of type {sig}"))),
        }
    }
    r.pos = fields_end;
    r.align(8);
    m.body = r.take(body_len)?.to_vec();
    Ok(m)
}

/// The total size of the message whose first 16 bytes are `head`.
fn message_len(head: &[u8; 16]) -> usize {
    let body = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let fields = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
    (16 + fields).div_ceil(8) * 8 + body
}

/// A connection to systemd's manager.
pub struct Manager {
    sock: UnixStream,
    serial: u32,
    /// Jobs that ended while the client waited for something else: (job path, unit, result).
    removed: Vec<(String, String, String)>,
}

impl Manager {
    /// Connects to systemd's private socket and authenticates as this process's uid.
    pub fn connect() -> Result<Manager> {
        let sock = UnixStream::connect(PRIVATE_SOCKET)?;
        sock.set_read_timeout(Some(CALL_TIMEOUT))?;
        let mut m = Manager { sock, serial: 0, removed: Vec::new() };
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        // The order of sd-bus's own clients (systemctl): AUTH and BEGIN in one write, then the
        // first call only after the server's OK. systemd leaves bytes that arrive in the same
        // read as BEGIN unprocessed until more come, so a call sent with BEGIN, or right after
        // it, can wait for ever.
        m.sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\nBEGIN\r\n").as_bytes())?;
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            let mut b = [0u8; 1];
            if m.sock.read(&mut b)? == 0 {
                return Err(SystemdError::Protocol("connection closed during authentication".to_string()));
            }
            line.push(b[0]);
        }
        if !line.starts_with(b"OK ") {
            return Err(SystemdError::Protocol(format!("authentication refused: {}", String::from_utf8_lossy(&line))));
        }
        // JobRemoved goes only to subscribed clients.
        m.call("Subscribe", "", &[])?;
        Ok(m)
    }

    fn read_message(&mut self) -> Result<Message> {
        let mut head = [0u8; 16];
        self.sock.read_exact(&mut head)?;
        let mut buf = vec![0u8; message_len(&head)];
        buf[..16].copy_from_slice(&head);
        self.sock.read_exact(&mut buf[16..])?;
        parse_message(&buf)
    }

    /// Sends a call and returns its reply's body; signals read meanwhile are kept.
    fn call(&mut self, member: &str, signature: &str, body: &[u8]) -> Result<Message> {
        self.serial += 1;
        let serial = self.serial;
        self.sock.write_all(&method_call(serial, member, signature, body))?;
        self.reply(serial)
    }

    /// Reads until the reply to call `serial`; signals read meanwhile are kept.
    fn reply(&mut self, serial: u32) -> Result<Message> {
        loop {
            let m = self.read_message()?;
            match m.kind {
                SIGNAL => self.note_signal(&m)?,
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => {
                    let message = if m.signature.starts_with('s') {
                        Reader { buf: &m.body, pos: 0 }.str()?
                    } else {
                        String::new()
                    };
                    return Err(SystemdError::Call { name: m.error_name, message });
                }
                _ => {}
            }
        }
    }

    fn note_signal(&mut self, m: &Message) -> Result<()> {
        if m.member == "JobRemoved" && m.signature == "uoss" {
            let mut r = Reader { buf: &m.body, pos: 0 };
            r.u32()?;
            let (job, unit, result) = (r.str()?, r.str()?, r.str()?);
            self.removed.push((job, unit, result));
        }
        Ok(())
    }

    /// Waits for the job to end; an error unless it ended `done`.
    fn wait_job(&mut self, job: &str) -> Result<()> {
        loop {
            if let Some(i) = self.removed.iter().position(|(j, _, _)| j == job) {
                let (_, unit, result) = self.removed.remove(i);
                return if result == "done" { Ok(()) } else { Err(SystemdError::Job { unit, result }) };
            }
            let m = self.read_message()?;
            if m.kind == SIGNAL {
                self.note_signal(&m)?;
            }
        }
    }

    /// Starts the transient scope `name` in `slice` on the running process `pid`, with its
    /// cgroup delegated (the caller writes the limits into it), and waits until it runs.
    /// `limits` go in as unit properties, so that systemd, which writes a unit's own cgroup
    /// files whenever it realizes the unit (at start, on daemon-reload), writes them too.
    pub fn start_scope(
        &mut self,
        name: &str,
        slice: &str,
        pid: u32,
        description: &str,
        limits: &[(&str, Value)],
    ) -> Result<()> {
        let mut props = vec![
            ("Description", Value::Str(description.to_string())),
            ("Slice", Value::Str(slice.to_string())),
            ("Delegate", Value::Bool(true)),
            ("PIDs", Value::U32s(vec![pid])),
            // As runc: no ordering against shutdown targets that would stop it early.
            ("DefaultDependencies", Value::Bool(false)),
        ];
        props.extend(limits.iter().cloned());
        let reply =
            self.call("StartTransientUnit", "ssa(sv)a(sa(sv))", &start_transient_unit_body(name, "fail", &props))?;
        let job = Reader { buf: &reply.body, pos: 0 }.str()?;
        self.wait_job(&job)
    }

    /// Changes properties of a running unit, for its lifetime (runtime=true).
    pub fn set_unit_properties(&mut self, name: &str, props: &[(&str, Value)]) -> Result<()> {
        let mut w = Writer::default();
        w.str(name);
        w.u32(1);
        w.properties(props);
        self.call("SetUnitProperties", "sba(sv)", &w.buf).map(|_| ())
    }

    /// Stops a unit and waits, then forgets a failed one; a unit that is already gone is not
    /// an error.
    pub fn stop_unit(&mut self, name: &str) -> Result<()> {
        let mut w = Writer::default();
        w.str(name);
        w.str("replace");
        match self.call("StopUnit", "ss", &w.buf) {
            Ok(reply) => {
                let job = Reader { buf: &reply.body, pos: 0 }.str()?;
                self.wait_job(&job)?;
            }
            Err(SystemdError::Call { name, .. }) if name == NO_SUCH_UNIT => return Ok(()),
            Err(e) => return Err(e),
        }
        // A failed unit stays loaded, and its name taken, until this.
        let mut w = Writer::default();
        w.str(name);
        match self.call("ResetFailedUnit", "s", &w.buf) {
            Err(SystemdError::Call { name, .. }) if name == NO_SUCH_UNIT => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_by_their_dashes() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("a-b.slice").unwrap(), "/a.slice/a-b.slice");
        assert_eq!(
            expand_slice("kubepods-besteffort-pod12.slice").unwrap(),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "");
        for bad in ["/wharf", "x", ".slice", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice"] {
            let e = expand_slice(bad).unwrap_err().to_string();
            assert!(e.contains("should be a valid slice named as \"xxx.slice\""), "{bad}: {e}");
        }
    }

    #[test]
    fn cgroups_paths_in_runc_systemd_form_name_a_scope() {
        let s = Scope::parse("system.slice:docker:abc").unwrap().unwrap();
        assert_eq!(s, Scope { slice: "system.slice".into(), unit: "docker-abc.scope".into() });
        assert_eq!(s.cgroup_path(), "/system.slice/docker-abc.scope");
        let s = Scope::parse(":cri:x").unwrap().unwrap();
        assert_eq!(s.cgroup_path(), "/system.slice/cri-x.scope");
        let s = Scope::parse("kubepods-besteffort.slice::x").unwrap().unwrap();
        assert_eq!(s.cgroup_path(), "/kubepods.slice/kubepods-besteffort.slice/x.scope");
        assert!(Scope::parse("/wharf/abc").is_none());
        for bad in ["a:b", "a.slice:b:c:d", "system.slice:docker:", "nope:docker:x", "system.slice:d/x:y"] {
            assert!(Scope::parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn start_transient_unit_body_is_marshalled_with_its_padding() {
        let body = start_transient_unit_body("x.scope", "fail", &[("Delegate", Value::Bool(true))]);
        let mut want = Vec::new();
        want.extend_from_slice(&7u32.to_le_bytes());
        want.extend_from_slice(b"x.scope\0");
        want.extend_from_slice(&4u32.to_le_bytes());
        want.extend_from_slice(b"fail\0");
        // a(sv): at offset 21, padded to 24 for the length, to 32 for the first struct.
        want.extend_from_slice(&[0, 0, 0]);
        want.extend_from_slice(&20u32.to_le_bytes());
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(b"Delegate\0");
        want.extend_from_slice(b"\x01b\0");
        want.extend_from_slice(&1u32.to_le_bytes());
        // a(sa(sv)), empty: length 0 at 52, already 8-aligned after it.
        want.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(body, want);
    }

    #[test]
    fn a_call_round_trips_through_the_parser() {
        let body = start_transient_unit_body("x.scope", "fail", &[("PIDs", Value::U32s(vec![1, 2]))]);
        let msg = method_call(7, "StartTransientUnit", "ssa(sv)a(sa(sv))", &body);
        let head: [u8; 16] = msg[..16].try_into().unwrap();
        assert_eq!(message_len(&head), msg.len());
        let m = parse_message(&msg).unwrap();
        assert_eq!(m.kind, METHOD_CALL);
        assert_eq!(m.member, "StartTransientUnit");
        assert_eq!(m.signature, "ssa(sv)a(sa(sv))");
        assert_eq!(m.body, body);
        let mut r = Reader { buf: &m.body, pos: 0 };
        assert_eq!(r.str().unwrap(), "x.scope");
        assert_eq!(r.str().unwrap(), "fail");
    }

    /// Where systemd runs (the guest of `WHARF_V2VM_INIT=systemd scripts/cgroup-v2-vm`): a
    /// scope started on a child lands it in the scope's cgroup, and stopping it kills the child.
    #[test]
    fn a_scope_holds_its_process_where_systemd_runs() {
        // SAFETY: getuid cannot fail.
        if !runs() || unsafe { libc::getuid() } != 0 {
            eprintln!("skipped: systemd is not pid 1 here, or not root");
            return;
        }
        let mut child = std::process::Command::new("sleep")
            .arg("600")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let name = format!("wharf-unit-test-{}.scope", std::process::id());
        let mut m = Manager::connect().unwrap();
        m.start_scope(&name, "wharf-test.slice", child.id(), "wharf unit test", &[("TasksMax", Value::U64(33))])
            .unwrap();
        let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
        assert_eq!(cgroup.trim(), format!("0::/wharf.slice/wharf-test.slice/{name}"));
        let controllers =
            std::fs::read_to_string(format!("/sys/fs/cgroup/wharf.slice/wharf-test.slice/{name}/cgroup.controllers"))
                .unwrap();
        assert!(controllers.contains("memory") && controllers.contains("pids"), "delegated: {controllers}");
        let pids_max =
            std::fs::read_to_string(format!("/sys/fs/cgroup/wharf.slice/wharf-test.slice/{name}/pids.max")).unwrap();
        assert_eq!(pids_max.trim(), "33", "a limit given as a property");
        m.stop_unit(&name).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "stopping the scope kills its process");
        m.stop_unit(&name).unwrap();
        m.stop_unit("wharf-test.slice").unwrap();
    }
}
