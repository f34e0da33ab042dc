//! Typed Dockerfile instructions from raw nodes, with Docker's checks and messages, and the
//! expansion of each instruction's fields that Docker expands.

use crate::error::{Error, Result};
use crate::parser::{self, heredoc_marker, json_array, split_words, Heredoc, Node, Parsed};
use crate::shell::{expand_heredoc, expand_word, expand_words};

/// A whole Dockerfile: directives, the ARGs before the first FROM, and the stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    pub meta_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The `AS` name, lowercased as Docker does.
    pub name: Option<String>,
    /// The base image or stage, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    pub line: usize,
    /// The instruction as written, continuations joined (history and cache keys).
    pub original: String,
    pub kind: Kind,
}

/// A command line in shell form (run through the SHELL) or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdLine {
    Shell(String),
    Exec(Vec<String>),
}

/// `ARG name[=default]`; the default is unexpanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// What an instruction does.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Run(Run),
    Cmd(CmdLine),
    Entrypoint(CmdLine),
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Workdir(String),
    User(String),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger text (`RUN make`), checked to be a valid instruction.
    Onbuild(String),
    Maintainer(String),
    Copy(Copy),
    Add(Copy),
}

/// `RUN [--mount=...] [--network=...] [--security=...] cmd`.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub cmd: CmdLine,
    pub heredocs: Vec<Heredoc>,
    pub mounts: Vec<Mount>,
    /// `none`, `host` or `default`.
    pub network: Option<String>,
    /// `insecure` or `sandbox`.
    pub security: Option<String>,
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// One `RUN --mount=...`. Secret and ssh mounts are parsed; the executor refuses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    Bind {
        target: String,
        source: Option<String>,
        from: Option<String>,
        rw: bool,
    },
    Cache {
        id: Option<String>,
        target: String,
        sharing: Sharing,
        from: Option<String>,
        source: Option<String>,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        ro: bool,
    },
    Tmpfs {
        target: String,
        size: Option<u64>,
    },
    Secret {
        id: Option<String>,
        source: Option<String>,
        target: Option<String>,
        env: Option<String>,
        required: bool,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
    Ssh {
        id: Option<String>,
        target: Option<String>,
        required: bool,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
    },
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Copy {
    /// Source paths (heredoc markers are in `heredocs` instead).
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// Heredoc sources, in order: each becomes a file named after the heredoc.
    pub heredocs: Vec<Heredoc>,
}

/// HEALTHCHECK. Durations are nanoseconds; 0 or absent means "inherit", as Docker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    /// None for `HEALTHCHECK NONE` (Docker stores `["NONE"]`, see [`Healthcheck::docker_test`]);
    /// `["CMD", args...]` for the exec form, `["CMD-SHELL", cmd]` for the shell form.
    pub test: Option<Vec<String>>,
    pub interval: Option<u64>,
    pub timeout: Option<u64>,
    pub start_period: Option<u64>,
    pub start_interval: Option<u64>,
    pub retries: Option<u32>,
}

impl Healthcheck {
    /// The `Test` value of the image config, as Docker stores it.
    pub fn docker_test(&self) -> Vec<String> {
        self.test.clone().unwrap_or_else(|| vec!["NONE".to_string()])
    }
}

/// Types the nodes of a parsed Dockerfile into stages.
pub fn from_parsed(parsed: Parsed) -> Result<Dockerfile> {
    if parsed.nodes.is_empty() {
        return Err(Error::Empty);
    }
    let escape = parsed.escape;
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &parsed.nodes {
        match typed(node, escape).map_err(|m| Error::at(node.line, m))? {
            Typed::From(stage) => {
                if let Some(name) = &stage.name {
                    if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                        return Err(Error::at(node.line, format!("duplicate stage name \"{name}\"")));
                    }
                }
                stages.push(stage);
            }
            Typed::Instruction(instruction) => match stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None => match instruction.kind {
                    Kind::Arg(args) => meta_args.extend(args),
                    _ => return Err(Error::at(node.line, "no build stage in current context")),
                },
            },
        }
    }
    if stages.is_empty() {
        return Err(Error::NoStages);
    }
    Ok(Dockerfile { escape, syntax: parsed.syntax, meta_args, stages })
}

enum Typed {
    From(Stage),
    Instruction(Instruction),
}

type Msg<T> = std::result::Result<T, String>;

fn typed(node: &Node, escape: char) -> Msg<Typed> {
    if node.name == "from" {
        return parse_from(node).map(Typed::From);
    }
    let kind = kind(node, escape)?;
    Ok(Typed::Instruction(Instruction { line: node.line, original: node.original.clone(), kind }))
}

fn kind(node: &Node, escape: char) -> Msg<Kind> {
    let rest = node.rest.as_str();
    Ok(match node.name.as_str() {
        "run" => Kind::Run(parse_run(node)?),
        "cmd" => {
            flags(node, &[])?;
            Kind::Cmd(cmd_line(rest)?)
        }
        "entrypoint" => {
            flags(node, &[])?;
            Kind::Entrypoint(cmd_line(rest)?)
        }
        "env" => {
            flags(node, &[])?;
            Kind::Env(name_values(rest, "ENV", escape)?)
        }
        "label" => {
            flags(node, &[])?;
            Kind::Label(name_values(rest, "LABEL", escape)?)
        }
        "arg" => {
            flags(node, &[])?;
            Kind::Arg(parse_arg(rest, escape)?)
        }
        "expose" => {
            flags(node, &[])?;
            let ports: Vec<String> = rest.split_whitespace().map(String::from).collect();
            if ports.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            Kind::Expose(ports)
        }
        "volume" => {
            flags(node, &[])?;
            let volumes = match json_array(rest)? {
                Some(v) => v,
                None => rest.split_whitespace().map(String::from).collect(),
            };
            if volumes.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            if volumes.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(volumes.iter().map(|v| v.trim().to_string()).collect())
        }
        "workdir" => Kind::Workdir(one_argument(node, "WORKDIR")?),
        "user" => Kind::User(one_argument(node, "USER")?),
        "stopsignal" => Kind::StopSignal(one_argument(node, "STOPSIGNAL")?),
        "maintainer" => Kind::Maintainer(one_argument(node, "MAINTAINER")?),
        "shell" => {
            flags(node, &[])?;
            match json_array(rest)? {
                Some(v) if v.is_empty() => return Err(at_least_one("SHELL")),
                Some(v) => Kind::Shell(v),
                None if rest.is_empty() => return Err(at_least_one("SHELL")),
                None => return Err("SHELL requires the arguments to be in JSON form".into()),
            }
        }
        "healthcheck" => Kind::Healthcheck(parse_healthcheck(node)?),
        "onbuild" => Kind::Onbuild(parse_onbuild(node, escape)?),
        "copy" => Kind::Copy(parse_copy(node, false, escape)?),
        "add" => Kind::Add(parse_copy(node, true, escape)?),
        other => return Err(format!("unknown instruction: {}", other.to_uppercase())),
    })
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn one_argument(node: &Node, cmd: &str) -> Msg<String> {
    flags(node, &[])?;
    if node.rest.is_empty() {
        return Err(format!("{cmd} requires exactly one argument"));
    }
    Ok(node.rest.clone())
}

fn cmd_line(rest: &str) -> Msg<CmdLine> {
    Ok(match json_array(rest)? {
        Some(v) => CmdLine::Exec(v),
        None => CmdLine::Shell(rest.to_string()),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    Str,
    Bool,
    List,
}

/// The flags an instruction was given, checked against those it supports.
struct Flags {
    values: Vec<(&'static str, Vec<String>)>,
}

impl Flags {
    fn values(&self, name: &str) -> &[String] {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_slice()).unwrap_or(&[])
    }

    /// A string flag; `--from=` counts as not given, as Docker.
    fn string(&self, name: &str) -> Option<String> {
        self.values(name).first().filter(|v| !v.is_empty()).cloned()
    }

    fn bool(&self, name: &str) -> bool {
        self.values(name).first().is_some_and(|v| v == "true")
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.values(name).to_vec()
    }
}

fn flags(node: &Node, spec: &[(&'static str, FlagKind)]) -> Msg<Flags> {
    let mut values: Vec<(&'static str, Vec<String>)> = spec.iter().map(|(n, _)| (*n, Vec::new())).collect();
    for raw in &node.flags {
        let (name, value) = match raw.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (raw.as_str(), None),
        };
        let Some(index) = spec.iter().position(|(n, _)| *n == name) else {
            return Err(format!("unknown flag: {name}"));
        };
        let slot = &mut values[index].1;
        match spec[index].1 {
            FlagKind::Str | FlagKind::List => {
                let Some(value) = value else {
                    return Err(format!("missing a value on flag: {name}"));
                };
                if spec[index].1 == FlagKind::Str && !slot.is_empty() {
                    return Err(format!("duplicate flag specified: {name}"));
                }
                slot.push(value.to_string());
            }
            FlagKind::Bool => {
                let value = match value {
                    None => "true",
                    Some(v) if v.eq_ignore_ascii_case("true") => "true",
                    Some(v) if v.eq_ignore_ascii_case("false") => "false",
                    Some(v) => return Err(format!("expecting boolean value for flag {name}, not: {v}")),
                };
                if !slot.is_empty() {
                    return Err(format!("duplicate flag specified: {name}"));
                }
                slot.push(value.to_string());
            }
        }
    }
    Ok(Flags { values })
}

fn parse_from(node: &Node) -> Msg<Stage> {
    let args: Vec<&str> = node.rest.split_whitespace().collect();
    let name = match args.as_slice() {
        [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !valid_stage_name(&lower) {
                return Err(format!(
                    "invalid name for build stage: \"{name}\", name can't start with a number or contain symbols"
                ));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let flags = flags(node, &[("platform", FlagKind::Str)])?;
    Ok(Stage {
        name,
        base: args[0].to_string(),
        platform: flags.string("platform"),
        line: node.line,
        instructions: Vec::new(),
    })
}

/// `^[a-z][a-z0-9-_.]*$`, as BuildKit.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn parse_run(node: &Node) -> Msg<Run> {
    let flags = flags(node, &[("mount", FlagKind::List), ("network", FlagKind::Str), ("security", FlagKind::Str)])?;
    let network = flags.string("network");
    if let Some(n) = &network {
        if !matches!(n.as_str(), "none" | "host" | "default") {
            return Err(format!("unsupported network mode \"{n}\""));
        }
    }
    let security = flags.string("security");
    if let Some(s) = &security {
        if !matches!(s.as_str(), "insecure" | "sandbox") {
            return Err(format!("unsupported security mode \"{s}\""));
        }
    }
    let mounts = flags.list("mount").iter().map(|m| parse_mount(m)).collect::<Msg<Vec<_>>>()?;
    Ok(Run { cmd: cmd_line(&node.rest)?, heredocs: node.heredocs.clone(), mounts, network, security })
}

/// One `--mount` value: comma-separated `key=value` fields (BuildKit's run mount syntax).
pub fn parse_mount(value: &str) -> Msg<Mount> {
    let mut fields: Vec<(String, Option<&str>, &str)> = Vec::new();
    let mut typ = "bind".to_string();
    for field in value.split(',').filter(|f| !f.is_empty()) {
        let (key, v) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        if key == "type" {
            let Some(v) = v else {
                return Err(format!("invalid field '{field}' must be a key=value pair"));
            };
            typ = v.to_ascii_lowercase();
            if !matches!(typ.as_str(), "bind" | "cache" | "tmpfs" | "secret" | "ssh") {
                return Err(format!("unsupported mount type \"{v}\""));
            }
        } else {
            fields.push((key, v, field));
        }
    }
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut id = None;
    let mut env = None;
    let mut ro: Option<bool> = None;
    let mut required = false;
    let mut sharing = None;
    let (mut mode, mut uid, mut gid, mut size) = (None, None, None, None);
    let file_info = matches!(typ.as_str(), "cache" | "secret" | "ssh");
    for (key, v, field) in fields {
        let flag = |v: Option<&str>| -> Msg<bool> {
            match v {
                None => Ok(true),
                Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                Some(other) => Err(format!("invalid value for {key}: {other}")),
            }
        };
        let unexpected = || format!("unexpected key '{key}' for mount type '{typ}'");
        match key.as_str() {
            "readonly" | "ro" => ro = Some(flag(v)?),
            "readwrite" | "rw" => ro = Some(!flag(v)?),
            "required" => {
                if typ != "secret" && typ != "ssh" {
                    return Err(unexpected());
                }
                required = flag(v)?;
            }
            _ => {
                let Some(v) = v else {
                    return Err(format!("invalid field '{field}' must be a key=value pair"));
                };
                let number =
                    |radix: u32| u32::from_str_radix(v, radix).map_err(|_| format!("invalid value {v} for {key}"));
                match key.as_str() {
                    "target" | "dst" | "destination" => target = Some(v.to_string()),
                    "source" | "src" => source = Some(v.to_string()),
                    "from" => {
                        if v.contains('$') {
                            return Err("'from' doesn't support variable expansion, define alias stage instead".into());
                        }
                        from = Some(v.to_string());
                    }
                    "id" => id = Some(v.to_string()),
                    "env" if typ == "secret" => env = Some(v.to_string()),
                    "sharing" => {
                        sharing = Some(match v.to_ascii_lowercase().as_str() {
                            "shared" => Sharing::Shared,
                            "private" => Sharing::Private,
                            "locked" => Sharing::Locked,
                            _ => return Err(format!("unsupported sharing value \"{v}\"")),
                        })
                    }
                    "mode" | "uid" | "gid" if !file_info => {
                        return Err(format!("{key} not allowed for \"{typ}\" type mounts"))
                    }
                    "mode" => mode = Some(number(8)?),
                    "uid" => uid = Some(number(10)?),
                    "gid" => gid = Some(number(10)?),
                    "size" if typ == "tmpfs" => {
                        size = Some(parse_size(v).ok_or_else(|| format!("invalid value for size: {v}"))?)
                    }
                    "size" => return Err(unexpected()),
                    _ => return Err(format!("unexpected key '{key}' in '{field}'")),
                }
            }
        }
    }
    if sharing.is_some() && typ != "cache" {
        return Err(format!("invalid cache sharing set for {typ} mount"));
    }
    let need_target = |t: Option<String>| t.ok_or_else(|| "mount target is required".to_string());
    Ok(match typ.as_str() {
        "bind" => Mount::Bind { target: need_target(target)?, source, from, rw: ro == Some(false) },
        "cache" => Mount::Cache {
            id,
            target: need_target(target)?,
            sharing: sharing.unwrap_or_default(),
            from,
            source,
            mode,
            uid,
            gid,
            ro: ro == Some(true),
        },
        "tmpfs" => Mount::Tmpfs { target: need_target(target)?, size },
        "secret" => {
            if from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if source.is_none() && target.is_none() && id.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            Mount::Secret { id, source, target, env, required, mode, uid, gid }
        }
        _ => Mount::Ssh { id, target, required, mode, uid, gid },
    })
}

/// Sizes as Docker's `RAMInBytes`: `64m`, `1g`, `512kb`, `100` (binary multiples).
fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    // `find` gives a char boundary, where split_at cannot panic.
    let (number, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(v.len()));
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// ENV and LABEL: `k=v ...`, or the legacy `k v` (the rest of the line is the value).
fn name_values(rest: &str, cmd: &str, escape: char) -> Msg<Vec<(String, String)>> {
    let words = split_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(at_least_one(cmd));
    };
    if !first.contains('=') {
        let Some((name, value)) = rest.split_once(char::is_whitespace) else {
            return Err(format!("{cmd} must have two arguments"));
        };
        return Ok(vec![(name.to_string(), value.trim_start().to_string())]);
    }
    words
        .iter()
        .map(|word| {
            let Some((k, v)) = word.split_once('=') else {
                return Err(format!("syntax error - can't find = in {word:?}. Must be of the form: name=value"));
            };
            if k.is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

fn parse_arg(rest: &str, escape: char) -> Msg<Vec<ArgDecl>> {
    let words = split_words(rest, escape);
    if words.is_empty() {
        return Err(at_least_one("ARG"));
    }
    words
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".to_string()),
            Some((k, v)) => Ok(ArgDecl { name: k.to_string(), default: Some(v.to_string()) }),
            None => Ok(ArgDecl { name: word, default: None }),
        })
        .collect()
}

fn parse_healthcheck(node: &Node) -> Msg<Healthcheck> {
    let rest = node.rest.as_str();
    let (typ, args) = match rest.split_once(char::is_whitespace) {
        Some((typ, args)) => (typ, args.trim_start()),
        None => (rest, ""),
    };
    if typ.is_empty() {
        return Err(at_least_one("HEALTHCHECK"));
    }
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        flags(node, &[])?;
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::default());
    }
    let flags = flags(
        node,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("unknown type \"{typ}\" in HEALTHCHECK (try CMD)"));
    }
    let test = match json_array(args)? {
        Some(v) if v.is_empty() => return Err("missing command after HEALTHCHECK CMD".into()),
        Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        None if args.is_empty() => return Err("missing command after HEALTHCHECK CMD".into()),
        None => vec!["CMD-SHELL".to_string(), args.to_string()],
    };
    let interval = |name: &str| -> Msg<Option<u64>> {
        let Some(v) = flags.string(name) else {
            return Ok(None);
        };
        let d = parse_duration(&v)?;
        if d == 0 {
            return Ok(None);
        }
        if d < 1_000_000 {
            return Err(format!("interval \"{name}\" cannot be less than 1ms"));
        }
        Ok(Some(d as u64))
    };
    let retries = match flags.string("retries") {
        None => None,
        Some(v) => {
            let n: i64 = v.parse().map_err(|_| format!("invalid value {v:?} for --retries"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(u32::try_from(n).map_err(|_| format!("invalid value {v:?} for --retries"))?)
        }
    };
    Ok(Healthcheck {
        test: Some(test),
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

/// A Go duration (`1m30s`, `500ms`, `1.5h`, `-2s`) in nanoseconds, with Go's messages.
pub fn parse_duration(text: &str) -> Msg<i128> {
    wharf_types::time::parse_go_duration(text).map(i128::from)
}

fn parse_onbuild(node: &Node, escape: char) -> Msg<String> {
    flags(node, &[])?;
    let rest = node.rest.trim();
    let trigger = rest.split_whitespace().next().unwrap_or("").to_uppercase();
    match trigger.as_str() {
        "" => return Err(at_least_one("ONBUILD")),
        "ONBUILD" => return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => return Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
        _ => {}
    }
    let sub = parser::parse_line(rest, node.line).map_err(|e| e.to_string())?;
    kind(&sub, escape)?;
    Ok(rest.to_string())
}

fn parse_copy(node: &Node, add: bool, escape: char) -> Msg<Copy> {
    let cmd = if add { "ADD" } else { "COPY" };
    let flags = if add {
        flags(
            node,
            &[
                ("chown", FlagKind::Str),
                ("chmod", FlagKind::Str),
                ("link", FlagKind::Bool),
                ("keep-git-dir", FlagKind::Bool),
                ("checksum", FlagKind::Str),
                ("exclude", FlagKind::List),
            ],
        )?
    } else {
        flags(
            node,
            &[
                ("from", FlagKind::Str),
                ("chown", FlagKind::Str),
                ("chmod", FlagKind::Str),
                ("link", FlagKind::Bool),
                ("parents", FlagKind::Bool),
                ("exclude", FlagKind::List),
            ],
        )?
    };
    let (mut args, json) = match json_array(&node.rest)? {
        Some(v) => (v, true),
        None => (split_words(&node.rest, escape), false),
    };
    if args.len() < 2 {
        return Err(format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let dest = args.pop().unwrap_or_default();
    if !json && heredoc_marker(&dest).is_some() {
        return Err(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut copy = Copy {
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.list("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        ..Copy::default()
    };
    for src in args {
        match heredoc_marker(&src).filter(|_| !json) {
            Some((name, _, _)) => {
                if let Some(h) = node.heredocs.iter().find(|h| h.name == name) {
                    copy.heredocs.push(h.clone());
                }
            }
            None => copy.sources.push(src),
        }
    }
    Ok(copy)
}

impl Instruction {
    /// The instruction with every field Docker expands expanded against `lookup` (the build
    /// args and environment as they are before this instruction). RUN, CMD, ENTRYPOINT,
    /// SHELL, HEALTHCHECK, ONBUILD and MAINTAINER are left as written: the shell, or a later
    /// build, sees them.
    pub fn expand(&self, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Instruction> {
        let line = self.line;
        let word = |s: &str| expand_word(s, escape, lookup).map_err(|e| e.on_line(line));
        let opt = |s: &Option<String>| s.as_deref().map(word).transpose();
        let pairs = |p: &[(String, String)]| -> Result<Vec<(String, String)>> {
            p.iter().map(|(k, v)| Ok((word(k)?, word(v)?))).collect()
        };
        let copy = |c: &Copy| -> Result<Copy> {
            Ok(Copy {
                sources: c.sources.iter().map(|s| word(s)).collect::<Result<_>>()?,
                dest: word(&c.dest)?,
                from: opt(&c.from)?,
                chown: opt(&c.chown)?,
                chmod: opt(&c.chmod)?,
                exclude: c.exclude.iter().map(|s| word(s)).collect::<Result<_>>()?,
                checksum: opt(&c.checksum)?,
                heredocs: c
                    .heredocs
                    .iter()
                    .map(|h| {
                        let content = if h.expand {
                            expand_heredoc(&h.content, escape, lookup).map_err(|e| e.on_line(line))?
                        } else {
                            h.content.clone()
                        };
                        Ok(Heredoc { content, ..h.clone() })
                    })
                    .collect::<Result<_>>()?,
                ..c.clone()
            })
        };
        let kind = match &self.kind {
            Kind::Run(run) => {
                let mounts = run.mounts.iter().map(|m| expand_mount(m, &word, &opt)).collect::<Result<_>>()?;
                Kind::Run(Run { mounts, ..run.clone() })
            }
            Kind::Env(p) => Kind::Env(pairs(p)?),
            Kind::Label(p) => Kind::Label(pairs(p)?),
            Kind::Arg(args) => Kind::Arg(
                args.iter()
                    .map(|a| Ok(ArgDecl { name: a.name.clone(), default: opt(&a.default)? }))
                    .collect::<Result<_>>()?,
            ),
            Kind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(expand_words(p, escape, lookup).map_err(|e| e.on_line(line))?);
                }
                Kind::Expose(out)
            }
            Kind::Volume(v) => Kind::Volume(v.iter().map(|s| word(s)).collect::<Result<_>>()?),
            Kind::Workdir(s) => Kind::Workdir(word(s)?),
            Kind::User(s) => Kind::User(word(s)?),
            Kind::StopSignal(s) => Kind::StopSignal(word(s)?),
            Kind::Copy(c) => Kind::Copy(copy(c)?),
            Kind::Add(c) => Kind::Add(copy(c)?),
            other => other.clone(),
        };
        Ok(Instruction { line, original: self.original.clone(), kind })
    }
}

fn expand_mount(
    m: &Mount,
    word: &dyn Fn(&str) -> Result<String>,
    opt: &dyn Fn(&Option<String>) -> Result<Option<String>>,
) -> Result<Mount> {
    Ok(match m {
        Mount::Bind { target, source, from, rw } => {
            Mount::Bind { target: word(target)?, source: opt(source)?, from: from.clone(), rw: *rw }
        }
        Mount::Cache { id, target, source, .. } => {
            let mut out = m.clone();
            if let Mount::Cache { id: i, target: t, source: s, .. } = &mut out {
                *i = opt(id)?;
                *t = word(target)?;
                *s = opt(source)?;
            }
            out
        }
        Mount::Tmpfs { target, size } => Mount::Tmpfs { target: word(target)?, size: *size },
        Mount::Secret { .. } | Mount::Ssh { .. } => {
            let mut out = m.clone();
            match &mut out {
                Mount::Secret { id, source, target, env, .. } => {
                    *id = opt(id)?;
                    *source = opt(source)?;
                    *target = opt(target)?;
                    *env = opt(env)?;
                }
                Mount::Ssh { id, target, .. } => {
                    *id = opt(id)?;
                    *target = opt(target)?;
                }
                _ => {}
            }
            out
        }
    })
}

impl Stage {
    /// The base image (or stage) name expanded with the meta args.
    pub fn expand_base(&self, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String> {
        expand_word(&self.base, escape, lookup).map_err(|e| e.on_line(self.line))
    }

    /// `--platform` expanded (`$BUILDPLATFORM`, `$TARGETPLATFORM` come from `lookup`).
    pub fn expand_platform(&self, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
        self.platform.as_deref().map(|p| expand_word(p, escape, lookup).map_err(|e| e.on_line(self.line))).transpose()
    }
}
