//! Runs a parsed Dockerfile against the engine, as Docker's classic builder does and reports:
//! each stage from its base image, config-only instructions as new image configs (no container,
//! no layer), RUN in a container whose upper dir becomes the layer, COPY/ADD as a tar extracted
//! into a created (never started) container, or written directly as the layer on `scratch`.
//! Every step's result is cached under a key of its parent image and its inputs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc::UnboundedSender;
use wharf_engine::{
    CacheEntry, CommitImage, CreateRequest, Engine, EngineError, ExtractOptions, HostConfig, LogStream, PullEvent,
    PullRequest, TopLayer, WaitCondition,
};
use wharf_types::digest::short_id;
use wharf_types::oci::{ContainerConfig, History, ImageConfig};
use wharf_types::{Digest, ImageRef};

use crate::context::{self, Context, Ownership};
use crate::instructions::{CmdLine, Copy, Dockerfile, Instruction, Kind};

/// A build as the API parsed it.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// A directory of the build's own for its scratch files (removed after the build).
    pub scratch: PathBuf,
    /// Path of the Dockerfile in the context (`Dockerfile` when empty; `dockerfile` also tried).
    pub dockerfile: String,
    pub tags: Vec<ImageRef>,
    /// `--build-arg`: a value, or `None` for "take it from the client's environment" (which
    /// the CLI already did; an unset one stays unset).
    pub build_args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    /// Remove intermediate containers after a successful step (default true).
    pub remove: bool,
    /// Remove them after a failed one too.
    pub force_remove: bool,
    pub quiet: bool,
    /// `default`, `bridge`, `host`, `none`, or a network name.
    pub network_mode: String,
    pub memory: i64,
    pub memory_swap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub auth: Option<wharf_engine::AuthConfig>,
    /// `X-Registry-Config`: credentials by registry, for the images the build pulls.
    pub auths: BTreeMap<String, wharf_engine::AuthConfig>,
    /// `--add-host` for RUN (`host:ip`).
    pub extra_hosts: Vec<String>,
    /// Bytes of /dev/shm in RUN; 0 for the default.
    pub shm_size: i64,
    pub ulimits: Vec<wharf_engine::Ulimit>,
    /// `--cache-from`: local images whose history may serve the steps that miss the cache.
    pub cache_from: Vec<String>,
    /// `--cpuset-cpus` of RUN.
    pub cpuset_cpus: String,
    /// `--cpuset-mems` of RUN.
    pub cpuset_mems: String,
    /// `--cgroup-parent` of RUN's containers; empty for the daemon's.
    pub cgroup_parent: String,
    /// The most bytes the build may bring in at once: each ADD download, each ADD archive
    /// unpacked (the daemon's `max-build-context`).
    pub max_input: u64,
}

/// What a build reports, in order: the API turns these into Docker's JSON lines.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// Text for the user (`Step 1/3 : FROM busybox\n`, RUN output).
    Stream(String),
    /// RUN's standard error.
    Stderr(String),
    /// Pull progress of a base image.
    Pull(PullEvent),
    /// A finished stage's image id.
    Aux(Digest),
}

/// A failed build, with the message Docker gives.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Dockerfile(#[from] crate::Error),
    #[error("{0}")]
    Invalid(String),
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed { command: String, code: i32 },
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Context(#[from] context::ContextError),
    #[error("the build was cancelled")]
    Cancelled,
}

impl BuildError {
    /// Whether the client's request was at fault (a 400 before streaming starts).
    pub fn is_invalid(&self) -> bool {
        matches!(self, BuildError::Dockerfile(_) | BuildError::Invalid(_))
    }
}

/// The result of a stage, or of the steps so far.
#[derive(Debug, Clone)]
struct State {
    /// The image so far; `None` on `scratch` before any step.
    image: Option<Digest>,
    config: ImageConfig,
    /// Layers the image has (a COPY onto none is written as the layer directly).
    layers: usize,
    /// ARGs declared in this stage, with their values.
    args: BTreeMap<String, Option<String>>,
    shell: Vec<String>,
    /// A CMD was set in this stage (a later ENTRYPOINT then keeps it; an inherited one goes).
    cmd_set: bool,
}

impl State {
    fn env(&self) -> Vec<String> {
        self.config.config.as_ref().and_then(|c| c.env.clone()).unwrap_or_default()
    }

    fn cfg(&mut self) -> &mut ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    /// A variable as the Dockerfile sees it: ENV first, then ARGs in scope.
    fn lookup(&self, name: &str) -> Option<String> {
        for e in self.env().iter().rev() {
            if let Some((k, v)) = e.split_once('=') {
                if k == name {
                    return Some(v.to_string());
                }
            }
        }
        self.args.get(name).cloned().flatten()
    }

    fn workdir(&self) -> String {
        self.config.config.as_ref().and_then(|c| c.working_dir.clone()).filter(|w| !w.is_empty()).unwrap_or_default()
    }
}

/// Where a stage's reports go: the build's one channel, tagged with the stage, so that the
/// build can print stages that run at the same time one after the other.
#[derive(Clone)]
struct Sink {
    stage: usize,
    tx: UnboundedSender<(usize, BuildEvent)>,
}

impl Sink {
    fn send(&self, ev: BuildEvent) -> Result<(), ()> {
        self.tx.send((self.stage, ev)).map_err(|_| ())
    }

    fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn closed(&self) {
        self.tx.closed().await
    }
}

/// One stage being built: the engine, where its reports go, and the stages it may use.
struct Build {
    engine: Engine,
    req: Arc<BuildRequest>,
    out: Sink,
    ctx: Arc<Context>,
    step: usize,
    steps: usize,
    used_args: HashSet<String>,
    /// Finished stages this one depends on: index → state.
    stages: HashMap<usize, State>,
    escape: char,
    /// Stage names by index (`COPY --from=name`, `FROM name`).
    names: Arc<Vec<Option<String>>>,
    /// The ARGs before the first FROM (and the automatic platform ones): a stage's `ARG name`
    /// without a value takes its value from here.
    meta: Arc<BTreeMap<String, Option<String>>>,
    /// Once a step missed the cache, every later step of that stage runs.
    missed: bool,
    /// The step this stage is making, claimed so that another build (or stage) that comes
    /// to the same step meanwhile waits for it and takes it from the cache (`cached`).
    claimed: Option<tokio::sync::OwnedMutexGuard<()>>,
}

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The lock of one step's cache key, shared by the builds that are at that step now.
fn step_claim(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    use std::sync::{Mutex, OnceLock, Weak};
    static CLAIMS: OnceLock<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let Ok(mut claims) = CLAIMS.get_or_init(Default::default).lock() else {
        // A poisoned map: the step is made without waiting for another build.
        return Arc::new(tokio::sync::Mutex::new(()));
    };
    claims.retain(|_, w| w.strong_count() > 0);
    if let Some(lock) = claims.get(key).and_then(Weak::upgrade) {
        return lock;
    }
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    claims.insert(key.to_string(), Arc::downgrade(&lock));
    lock
}

/// What a step was made from, kept by its place in the build (tag, Dockerfile, step number), so
/// that the next miss there can say in one line what changed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Note {
    instruction: String,
    parent: Option<String>,
    args: BTreeMap<String, String>,
    /// For copies: each file's digest by destination.
    files: BTreeMap<String, String>,
}

impl Note {
    fn new(instruction: &str, state: &State) -> Note {
        Note {
            instruction: instruction.to_string(),
            parent: state.image.as_ref().map(|d| d.to_string()),
            args: state.args.iter().filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v))).collect(),
            files: BTreeMap::new(),
        }
    }

    /// Why `self` (this build's step) is not what `old` was, in one line.
    fn why(&self, old: &Note) -> String {
        if old.instruction != self.instruction {
            return format!("the instruction changed (was {:?})", old.instruction);
        }
        if old.parent != self.parent {
            return "the image this step builds on changed (an earlier step or the base image)".to_string();
        }
        for (k, v) in &self.args {
            match old.args.get(k) {
                Some(o) if o != v => return format!("build arg {k} changed (was {o:?}, now {v:?})"),
                None => return format!("build arg {k} is new ({v:?})"),
                _ => {}
            }
        }
        if let Some(k) = old.args.keys().find(|k| !self.args.contains_key(*k)) {
            return format!("build arg {k} is no longer set");
        }
        let changed: Vec<&String> =
            self.files.iter().filter(|(p, d)| old.files.get(*p).is_some_and(|o| o != *d)).map(|(p, _)| p).collect();
        let added: Vec<&String> = self.files.keys().filter(|p| !old.files.contains_key(*p)).collect();
        let removed: Vec<&String> = old.files.keys().filter(|p| !self.files.contains_key(*p)).collect();
        let more = |n: usize| if n > 1 { format!(" and {} more", n - 1) } else { String::new() };
        if let Some(p) = changed.first() {
            return format!("file {p} changed{}", more(changed.len() + added.len() + removed.len()));
        }
        if let Some(p) = added.first() {
            return format!("file {p} is new{}", more(added.len() + removed.len()));
        }
        if let Some(p) = removed.first() {
            return format!("file {p} is gone{}", more(removed.len()));
        }
        "its cache entry was pruned".to_string()
    }
}

/// The stages `stage` uses: its base, `COPY --from` and `RUN --mount from=` sources that name
/// an earlier stage (by name or index).
fn stage_deps(df: &Dockerfile, stage: usize) -> HashSet<usize> {
    let find = |name: &str| -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        let i = match lower.parse::<usize>() {
            Ok(i) => Some(i),
            Err(_) => df.stages.iter().position(|s| s.name.as_deref() == Some(lower.as_str())),
        }?;
        (i < stage).then_some(i)
    };
    let s = &df.stages[stage];
    let mut deps = HashSet::new();
    if let Some(i) =
        df.stages[..stage].iter().position(|p| p.name.as_deref() == Some(s.base.to_ascii_lowercase().as_str()))
    {
        deps.insert(i);
    }
    for ins in &s.instructions {
        match &ins.kind {
            Kind::Copy(c) | Kind::Add(c) => deps.extend(c.from.as_deref().and_then(find)),
            Kind::Run(r) => {
                for m in &r.mounts {
                    if let crate::instructions::Mount::Bind { from: Some(f), .. } = m {
                        deps.extend(find(f));
                    }
                }
            }
            _ => {}
        }
    }
    deps
}

/// Runs the build; returns the final image id. Tags are applied here too. Stages whose
/// dependencies are built run at the same time; their output is shown one stage after the
/// other, in Dockerfile order.
pub async fn build(
    engine: &Engine,
    req: &BuildRequest,
    ctx: Arc<Context>,
    out: UnboundedSender<BuildEvent>,
) -> Result<Digest, BuildError> {
    let text = read_dockerfile(&ctx, &req.dockerfile)?;
    let df = Arc::new(crate::parse(&text)?);
    let needed = crate::stages_needed(&df, req.target.as_deref())?;
    // The build's labels are one more step, as the classic builder counts them.
    let steps = df.meta_args.len()
        + needed.iter().map(|i| df.stages[*i].instructions.len() + 1).sum::<usize>()
        + usize::from(!req.labels.is_empty());
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, BuildEvent)>();
    let req = Arc::new(req.clone());
    let mut root = Build {
        engine: engine.clone(),
        req: req.clone(),
        out: Sink { stage: usize::MAX, tx: ev_tx.clone() },
        ctx,
        step: 0,
        steps,
        used_args: HashSet::new(),
        stages: HashMap::new(),
        escape: df.escape,
        names: Arc::new(df.stages.iter().map(|s| s.name.clone()).collect()),
        meta: Arc::new(BTreeMap::new()),
        missed: req.no_cache,
        claimed: None,
    };
    let meta = root.meta_args(&df);
    root.meta = Arc::new(meta);
    while let Ok((_, ev)) = ev_rx.try_recv() {
        let _ = out.send(ev);
    }

    // Step numbers are fixed up front, as if the stages ran one after the other.
    let mut offsets = HashMap::new();
    let mut next = root.step;
    for &i in &needed {
        offsets.insert(i, next);
        next += df.stages[i].instructions.len() + 1;
    }
    let deps: HashMap<usize, HashSet<usize>> = needed.iter().map(|&i| (i, stage_deps(&df, i))).collect();
    let mut pending: Vec<usize> = needed.clone();
    let mut done: HashMap<usize, State> = HashMap::new();
    let mut buffered: HashMap<usize, Vec<BuildEvent>> = HashMap::new();
    let mut cursor = 0;
    let mut running = tokio::task::JoinSet::new();
    let mut used_args = root.used_args.clone();
    let mut failure: Option<BuildError> = None;
    loop {
        if failure.is_none() {
            let ready: Vec<usize> =
                pending.iter().copied().filter(|i| deps[i].iter().all(|d| done.contains_key(d))).collect();
            for i in ready {
                pending.retain(|p| *p != i);
                let mut b = Build {
                    out: Sink { stage: i, tx: ev_tx.clone() },
                    step: offsets[&i],
                    stages: deps[&i].iter().map(|d| (*d, done[d].clone())).collect(),
                    used_args: HashSet::new(),
                    engine: root.engine.clone(),
                    req: root.req.clone(),
                    ctx: root.ctx.clone(),
                    steps,
                    escape: root.escape,
                    names: root.names.clone(),
                    meta: root.meta.clone(),
                    missed: req.no_cache,
                    claimed: None,
                };
                let df = df.clone();
                running.spawn(async move {
                    let r = async {
                        let state = b.stage(&df, i).await?;
                        if b.out.is_closed() {
                            return Err(BuildError::Cancelled);
                        }
                        let id = b.ensure_image(&state).await?;
                        b.emit(BuildEvent::Aux(id.clone()));
                        Ok(State { image: Some(id), ..state })
                    }
                    .await;
                    (i, r, b.used_args)
                });
            }
        }
        if running.is_empty() {
            break;
        }
        let open = !ev_rx.is_closed();
        tokio::select! {
            ev = ev_rx.recv(), if open => {
                if let Some((i, ev)) = ev {
                    if needed.get(cursor) == Some(&i) {
                        let _ = out.send(ev);
                    } else {
                        buffered.entry(i).or_default().push(ev);
                    }
                }
            }
            joined = running.join_next() => {
                let Some(joined) = joined else { continue };
                // A finished stage's reports were all sent before it ended.
                while let Ok((i, ev)) = ev_rx.try_recv() {
                    if needed.get(cursor) == Some(&i) {
                        let _ = out.send(ev);
                    } else {
                        buffered.entry(i).or_default().push(ev);
                    }
                }
                match joined {
                    Ok((i, Ok(state), used)) => {
                        used_args.extend(used);
                        done.insert(i, state);
                    }
                    Ok((_, Err(e), _)) => {
                        failure.get_or_insert(e);
                    }
                    Err(e) => {
                        failure.get_or_insert(BuildError::Invalid(format!("build stage: {e}")));
                    }
                }
                while cursor < needed.len() && done.contains_key(&needed[cursor]) {
                    cursor += 1;
                    if let Some(evs) = needed.get(cursor).and_then(|i| buffered.remove(i)) {
                        for ev in evs {
                            let _ = out.send(ev);
                        }
                    }
                }
            }
            _ = out.closed(), if failure.is_none() => {
                failure = Some(BuildError::Cancelled);
            }
        }
        if failure.is_some() && !ev_rx.is_closed() {
            // The other stages stop at their next step (their containers are stopped and
            // removed); the build waits for them, then reports the first failure.
            ev_rx.close();
        }
    }
    if let Some(e) = failure {
        // What the failed stage said before it failed, even if an earlier stage is still shown.
        for i in &needed[cursor.min(needed.len())..] {
            for ev in buffered.remove(i).unwrap_or_default() {
                let _ = out.send(ev);
            }
        }
        return Err(e);
    }
    let last = needed.last().and_then(|i| done.get(i)).and_then(|s| s.image.clone());
    let id = last.ok_or_else(|| BuildError::Invalid("the Dockerfile has no build stage".into()))?;
    let unused: Vec<&String> =
        req.build_args.keys().filter(|k| !used_args.contains(*k) && !is_predefined_arg(k)).collect();
    let say = |s: String| {
        if !req.quiet {
            let _ = out.send(BuildEvent::Stream(s));
        }
    };
    if !unused.is_empty() {
        let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
        say(format!("[Warning] One or more build-args [{}] were not consumed\n", names.join(" ")));
    }
    say(format!("Successfully built {}\n", short(&id)));
    for t in &req.tags {
        engine.tag_image(&id.to_string(), &t.to_string())?;
        say(format!("Successfully tagged {}\n", t.familiar()));
    }
    Ok(id)
}

fn read_dockerfile(ctx: &Context, name: &str) -> Result<String, BuildError> {
    let candidates: Vec<String> =
        if name.is_empty() { vec!["Dockerfile".into(), "dockerfile".into()] } else { vec![context::clean_rel(name)] };
    for c in &candidates {
        if let Some(read) = ctx.read_file(c) {
            let bytes = read.map_err(|e| BuildError::Invalid(format!("cannot read the Dockerfile ({c}): {e}")))?;
            return String::from_utf8(bytes)
                .map_err(|_| BuildError::Invalid(format!("the Dockerfile ({c}) is not UTF-8 text")));
        }
    }
    Err(BuildError::Invalid(format!(
        "Cannot locate specified Dockerfile: {}",
        if name.is_empty() { "Dockerfile" } else { name }
    )))
}

/// The credentials `X-Registry-Config` gives for `registry` (Docker Hub under any of its names).
fn registry_auth(
    auths: &BTreeMap<String, wharf_engine::AuthConfig>,
    registry: &str,
) -> Option<wharf_engine::AuthConfig> {
    let hub = registry == "docker.io" || registry == "registry-1.docker.io" || registry == "index.docker.io";
    auths
        .iter()
        .find(|(k, _)| {
            let host = k.trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or(host);
            host == registry || (hub && matches!(host, "index.docker.io" | "docker.io" | "registry-1.docker.io"))
        })
        .map(|(_, a)| a.clone())
}

/// The proxy ARGs Docker predefines never count as unused.
fn is_predefined_arg(name: &str) -> bool {
    matches!(
        name,
        "HTTP_PROXY"
            | "http_proxy"
            | "HTTPS_PROXY"
            | "https_proxy"
            | "FTP_PROXY"
            | "ftp_proxy"
            | "NO_PROXY"
            | "no_proxy"
            | "ALL_PROXY"
            | "all_proxy"
    )
}

fn short(id: &Digest) -> String {
    id.hex().chars().take(12).collect()
}

fn now() -> String {
    wharf_types::time::rfc3339_nanos(SystemTime::now())
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("sha256:{:x}", h.finalize())
}

impl Build {
    fn emit(&self, ev: BuildEvent) {
        let _ = self.out.send(ev);
    }

    fn stream(&self, s: String) {
        if !self.req.quiet {
            self.emit(BuildEvent::Stream(s));
        }
    }

    fn step_line(&mut self, original: &str) {
        self.step += 1;
        self.stream(format!("Step {}/{} : {}\n", self.step, self.steps, original));
    }

    /// The ARGs before the first FROM, with build-arg overrides: they expand FROM lines only.
    fn meta_args(&mut self, df: &Dockerfile) -> BTreeMap<String, Option<String>> {
        let mut meta: BTreeMap<String, Option<String>> =
            platform_args().into_iter().map(|(k, v)| (k, Some(v))).collect();
        for a in &df.meta_args {
            self.step_line(&format!("ARG {}", arg_text(&a.name, a.default.as_deref())));
            let v = match self.req.build_args.get(&a.name) {
                Some(v) => {
                    self.used_args.insert(a.name.clone());
                    v.clone()
                }
                None => a.default.as_ref().map(|d| {
                    let lookup = |n: &str| meta.get(n).cloned().flatten();
                    crate::shell::expand_word(d, df.escape, &lookup).unwrap_or_else(|_| d.clone())
                }),
            };
            meta.insert(a.name.clone(), v);
        }
        meta
    }

    async fn stage(&mut self, df: &Dockerfile, index: usize) -> Result<State, BuildError> {
        let stage = &df.stages[index];
        self.missed = self.req.no_cache;
        let meta = self.meta.clone();
        let lookup = |n: &str| meta.get(n).cloned().flatten();
        let base = crate::shell::expand_word(&stage.base, df.escape, &lookup)?;
        if let Some(p) = &stage.platform {
            // This builder builds for the host: `--platform=$BUILDPLATFORM` (or the host's own
            // name) is fine, another platform is said to be unsupported, not ignored.
            let p = crate::shell::expand_word(p, df.escape, &lookup)?;
            let (host, parts) = host_platform();
            if !p.is_empty() && p != host && p != format!("{}/{}", parts.os, parts.architecture) {
                return Err(BuildError::Invalid(format!(
                    "Dockerfile line {}: FROM --platform={p} is not supported: this builder builds for {host}",
                    stage.line
                )));
            }
        }
        let from_line = match &stage.name {
            Some(n) => format!("FROM {} AS {n}", base),
            None => format!("FROM {base}"),
        };
        self.step_line(&from_line);
        let mut state = self.base_state(df, &base).await?;
        match &state.image {
            Some(id) => self.stream(format!(" ---> {}\n", short(id))),
            None => self.stream(" ---> \n".to_string()),
        }
        // ONBUILD triggers of the base run first, in the child build.
        let triggers = state.cfg().on_build.take().unwrap_or_default();
        if !triggers.is_empty() {
            self.stream(format!(
                "# Executing {} build trigger{}\n",
                triggers.len(),
                if triggers.len() == 1 { "" } else { "s" }
            ));
            let parsed = crate::parse(&format!("FROM scratch\n{}\n", triggers.join("\n")))?;
            for ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                self.instruction(&mut state, &ins, true).await?;
                self.claimed = None;
            }
        }
        for ins in &stage.instructions {
            self.step_line(&ins.original);
            let t0 = std::time::Instant::now();
            self.instruction(&mut state, ins, false).await?;
            self.claimed = None;
            log::debug!("build: step {} ({}) took {:?}", self.step, ins.original, t0.elapsed());
        }
        if index == *crate::stages_needed(df, self.req.target.as_deref())?.last().unwrap_or(&index)
            && !self.req.labels.is_empty()
        {
            // As the classic builder: a LABEL step of their own after the last instruction.
            let labels = self.req.labels.clone();
            let text =
                format!("LABEL {}", labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
            self.step_line(&text);
            let l = state.cfg().labels.get_or_insert_with(Default::default);
            l.extend(labels);
            let created_by = nop(&state.shell, &text);
            let id = self.config_step(&mut state, created_by).await?;
            state.image = Some(id);
        }
        Ok(state)
    }

    /// The state a stage starts from: a previous stage, `scratch`, or an image (pulled when
    /// missing or when the build asks for it).
    async fn base_state(&mut self, df: &Dockerfile, base: &str) -> Result<State, BuildError> {
        let lower = base.to_ascii_lowercase();
        let _ = df;
        if let Some(i) = self.names.iter().position(|n| n.as_deref() == Some(lower.as_str())) {
            if let Some(s) = self.stages.get(&i) {
                return Ok(State { args: BTreeMap::new(), cmd_set: false, ..s.clone() });
            }
        }
        if lower == "scratch" {
            let config = ImageConfig {
                architecture: wharf_types::oci::Platform::host().architecture,
                os: "linux".into(),
                config: Some(ContainerConfig {
                    env: Some(vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            return Ok(State {
                image: None,
                config,
                layers: 0,
                args: BTreeMap::new(),
                shell: shell_default(),
                cmd_set: false,
            });
        }
        let reference =
            ImageRef::parse(base).map_err(|e| BuildError::Invalid(format!("invalid FROM {base:?}: {e}")))?;
        let local = self.engine.find_image(&reference.to_string()).or_else(|_| self.engine.find_image(base));
        let record = match (local, self.req.pull) {
            (Ok(r), false) => r,
            _ => self.pull(reference).await?,
        };
        let config = self.engine.image_config(&record)?;
        let shell = config.config.as_ref().and_then(|c| c.shell.clone()).unwrap_or_else(shell_default);
        Ok(State {
            image: Some(record.id.clone()),
            layers: record.diff_ids.len(),
            config,
            args: BTreeMap::new(),
            shell,
            cmd_set: false,
        })
    }

    async fn pull(&mut self, reference: ImageRef) -> Result<wharf_engine::ImageRecord, BuildError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let engine = self.engine.clone();
        let auth = registry_auth(&self.req.auths, &reference.registry).or_else(|| self.req.auth.clone());
        let mut task =
            tokio::spawn(async move { engine.pull(PullRequest { reference, platform: None, auth }, tx).await });
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => self.emit(BuildEvent::Pull(ev)),
                    None => break,
                },
                r = &mut task => {
                    while let Ok(ev) = rx.try_recv() { self.emit(BuildEvent::Pull(ev)); }
                    return r.map_err(|e| BuildError::Invalid(format!("pull: {e}")))?.map_err(BuildError::from);
                }
            }
        }
        task.await.map_err(|e| BuildError::Invalid(format!("pull: {e}")))?.map_err(BuildError::from)
    }

    async fn instruction(&mut self, state: &mut State, ins: &Instruction, trigger: bool) -> Result<(), BuildError> {
        if self.out.is_closed() {
            return Err(BuildError::Cancelled);
        }
        let _ = trigger;
        // ARG first: it changes what the others expand.
        if let Kind::Arg(decls) = &ins.kind {
            for a in decls {
                let value = match self.req.build_args.get(&a.name) {
                    Some(v) => {
                        self.used_args.insert(a.name.clone());
                        v.clone()
                    }
                    None => match &a.default {
                        Some(d) => Some(crate::shell::expand_word(d, self.escape, &|n| state.lookup(n))?),
                        // `ARG NAME` in a stage inherits the global ARG (or the platform's).
                        None => self.meta.get(&a.name).cloned().flatten(),
                    },
                };
                state.args.insert(a.name.clone(), value);
            }
            // The classic builder commits ARG as a step of its own (an empty layer), the default
            // as expanded in its text.
            let mut text = String::from("ARG");
            for a in decls {
                text.push(' ');
                text.push_str(&a.name);
                if let Some(d) = &a.default {
                    let v =
                        crate::shell::expand_word(d, self.escape, &|n| state.lookup(n)).unwrap_or_else(|_| d.clone());
                    text.push('=');
                    text.push_str(&v);
                }
            }
            let created_by = nop(&state.shell, &text);
            let id = self.config_step(state, created_by).await?;
            state.image = Some(id);
            return Ok(());
        }
        let snapshot = state.clone();
        // EXPOSE's ports are sorted as written, before expansion, as the classic builder does.
        let mut sorted;
        let ins = match &ins.kind {
            Kind::Expose(ports) => {
                let mut ports = ports.clone();
                ports.sort();
                sorted = ins.clone();
                sorted.kind = Kind::Expose(ports);
                &sorted
            }
            _ => ins,
        };
        let ins = ins.expand(self.escape, &|n| snapshot.lookup(n))?;
        match &ins.kind {
            Kind::Run(run) => self.run(state, &ins, run).await?,
            Kind::Copy(c) => self.copy(state, &ins, c, "COPY").await?,
            Kind::Add(c) => self.copy(state, &ins, c, "ADD").await?,
            Kind::Arg(_) => unreachable!("handled above"),
            Kind::Workdir(_) => {
                let text = self.apply_config(state, &ins.kind)?;
                // WORKDIR's history has one space after `#(nop)`, as the classic builder's.
                let created_by = format!("{} #(nop) {text}", state.shell.join(" "));
                self.workdir(state, created_by).await?;
            }
            other => {
                let text = self.apply_config(state, other)?;
                let created_by = nop(&state.shell, &text);
                let id = self.config_step(state, created_by).await?;
                state.image = Some(id);
            }
        }
        Ok(())
    }

    /// Applies a config-only instruction; returns its history text.
    fn apply_config(&mut self, state: &mut State, kind: &Kind) -> Result<String, BuildError> {
        let shell = state.shell.clone();
        let workdir = state.workdir();
        let cmd_was_set = state.cmd_set;
        let mut sets_cmd = false;
        let cfg = state.cfg();
        let text = match kind {
            Kind::Cmd(c) => {
                let argv = command(c, &shell);
                let text = format!("CMD {}", go_quote_list(&argv));
                cfg.cmd = Some(argv).filter(|a| !a.is_empty());
                sets_cmd = true;
                text
            }
            Kind::Entrypoint(c) => {
                let argv = command(c, &shell);
                let text = format!("ENTRYPOINT {}", go_quote_list(&argv));
                cfg.entrypoint = Some(argv).filter(|a| !a.is_empty());
                // A new ENTRYPOINT drops an inherited CMD, not one this stage set, as Docker.
                if !cmd_was_set {
                    cfg.cmd = None;
                }
                text
            }
            Kind::Env(pairs) => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                // A name already set keeps its place: Docker replaces it there.
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env.iter().position(|e| e.split('=').next() == Some(k.as_str())) {
                        Some(i) => env[i] = entry,
                        None => env.push(entry),
                    }
                }
                format!("ENV {}", pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            }
            Kind::Label(pairs) => {
                let labels = cfg.labels.get_or_insert_with(Default::default);
                for (k, v) in pairs {
                    labels.insert(k.clone(), v.clone());
                }
                format!("LABEL {}", pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            }
            Kind::Maintainer(m) => {
                state.config.author = Some(m.clone());
                format!("MAINTAINER {m}")
            }
            Kind::Expose(ports) => {
                let map = cfg.exposed_ports.get_or_insert_with(Default::default);
                for p in ports {
                    for port in expand_port_range(p)? {
                        map.insert(port, serde_json::json!({}));
                    }
                }
                // History keeps the ports as written, as the classic builder's.
                format!("EXPOSE {}", ports.join(" "))
            }
            Kind::Volume(vols) => {
                let map = cfg.volumes.get_or_insert_with(Default::default);
                for v in vols {
                    if v.trim().is_empty() {
                        return Err(BuildError::Invalid("VOLUME specified can not be an empty string".into()));
                    }
                    map.insert(v.clone(), serde_json::json!({}));
                }
                format!("VOLUME [{}]", vols.join(" "))
            }
            Kind::Workdir(w) => {
                let new = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{w}", if workdir.is_empty() { "" } else { workdir.trim_end_matches('/') })
                };
                let new = normalize_abs(&new);
                cfg.working_dir = Some(new.clone());
                format!("WORKDIR {new}")
            }
            Kind::User(u) => {
                cfg.user = Some(u.clone());
                format!("USER {u}")
            }
            Kind::Shell(s) => {
                cfg.shell = Some(s.clone());
                state.shell = s.clone();
                format!("SHELL [{}]", s.join(" "))
            }
            Kind::StopSignal(s) => {
                wharf_engine::parse_signal(s).map_err(|_| BuildError::Invalid(format!("Invalid signal: {s}")))?;
                cfg.stop_signal = Some(s.clone());
                format!("STOPSIGNAL {s}")
            }
            Kind::Healthcheck(h) => {
                // A field left at zero keeps the value of the healthcheck before (dockerd merges
                // each commit's config with the image's), even under NONE.
                let prev = cfg.healthcheck.clone().unwrap_or(serde_json::Value::Null);
                let old = |k: &str| prev.get(k).and_then(|v| v.as_u64()).filter(|v| *v > 0);
                let mut v = serde_json::json!({ "Test": h.docker_test() });
                let mut shown = Vec::new();
                for (k, d) in [("Interval", h.interval), ("Timeout", h.timeout), ("StartPeriod", h.start_period)] {
                    // History shows the instruction's own values; the config the merged ones.
                    shown.push(format!("{:?}", go_duration(d.unwrap_or(0))));
                    if let Some(d) = d.filter(|d| *d > 0).or_else(|| old(k)) {
                        v[k] = serde_json::json!(d);
                    }
                }
                if let Some(d) = h.start_interval.filter(|d| *d > 0).or_else(|| old("StartInterval")) {
                    v["StartInterval"] = serde_json::json!(d);
                }
                let retries = h.retries.filter(|r| *r > 0).map(u64::from).or_else(|| old("Retries"));
                if let Some(r) = retries {
                    v["Retries"] = serde_json::json!(r);
                }
                let text = format!(
                    "HEALTHCHECK &{{{} {} {}}}",
                    go_quote_list(&h.docker_test()),
                    shown.join(" "),
                    go_quote_rune(h.retries.map(u64::from).unwrap_or(0))
                );
                cfg.healthcheck = Some(v);
                text
            }
            Kind::Onbuild(t) => {
                cfg.on_build.get_or_insert_with(Vec::new).push(t.clone());
                format!("ONBUILD {t}")
            }
            Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Arg(_) => unreachable!("not a config-only instruction"),
        };
        state.cmd_set |= sets_cmd;
        Ok(text)
    }

    /// WORKDIR: the directory is made (root's, 0755) in a layer of its own when the image lacks
    /// it, as the classic builder does; otherwise the step changes the config only.
    async fn workdir(&mut self, state: &mut State, created_by: String) -> Result<(), BuildError> {
        let dir = state.workdir();
        let exists = match &state.image {
            Some(image) => self.engine.image_stat(image, &dir)?.is_some(),
            None => false,
        };
        if exists || dir == "/" {
            let id = self.config_step(state, created_by).await?;
            state.image = Some(id);
            return Ok(());
        }
        let parent = state.image.as_ref().map(|d| d.to_string()).unwrap_or_default();
        let cfg_json = serde_json::to_string(&state.config.config).unwrap_or_default();
        let key = sha(&["workdir", &parent, &created_by, &cfg_json]);
        let note = Note { args: BTreeMap::new(), ..Note::new(&created_by, state) };
        if let Some(hit) = self.cached(&key, &note).await? {
            return self.adopt(state, hit);
        }
        let missing = self.missing_dirs(state, &dir)?;
        // Written as the layer itself unless a symlink of the image is on the way.
        let (keep_dirs, plain) = self.present_dirs(state, &dir)?;
        let direct = state.layers == 0 || plain;
        let plan = context::CopyTar {
            keep_dirs: if direct { keep_dirs } else { Vec::new() },
            make_dirs: missing,
            parents: state.layers == 0,
            ..Default::default()
        };
        let (tar, writer) = TarPipe::start(move |out| plan.write(&[], out))?;
        let result = self.commit_tar(state, Box::new(tar), created_by, direct).await;
        let id = writer.finish(result)?;
        self.remember(&key, &id, &note, state.image.as_ref())?;
        self.stream(format!(" ---> {}\n", short(&id)));
        self.adopt(state, id)
    }

    /// The directories from `/` down to `dir` (included) that the image has, top first, with
    /// their owner, mode and time; and whether none of them is reached through a symlink.
    fn present_dirs(&self, state: &State, dir: &str) -> Result<(Vec<(String, context::DirMeta)>, bool), BuildError> {
        let mut out = Vec::new();
        let Some(image) = &state.image else { return Ok((out, true)) };
        let mut cur = String::new();
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(c);
            match self.engine.image_stat(image, &cur)? {
                Some(i) if i.through_link || i.kind != wharf_engine::PathKind::Dir => return Ok((out, false)),
                Some(i) => {
                    out.push((cur.clone(), context::DirMeta { uid: i.uid, gid: i.gid, mode: i.mode, mtime: i.mtime }))
                }
                None => break,
            }
        }
        Ok((out, true))
    }

    /// The directories strictly below `dest_dir` on the way to selected entries that the
    /// selection has no entry for: those the image has (kept as they are) and those it lacks (to
    /// make). `None` when one is not a plain directory of the image.
    #[allow(clippy::type_complexity)]
    fn implied_dirs(
        &self,
        state: &State,
        selected: &[context::Selected],
        dest_dir: &str,
    ) -> Result<Option<(Vec<(String, context::DirMeta)>, Vec<String>)>, BuildError> {
        let listed: HashSet<&str> = selected
            .iter()
            .filter(|s| s.entry.kind == context::EntryKind::Dir)
            .map(|s| s.dest.trim_end_matches('/'))
            .collect();
        let floor = dest_dir.trim_end_matches('/');
        let mut implied = std::collections::BTreeSet::new();
        for s in selected {
            let mut p = Path::new(&s.dest).parent();
            while let Some(dir) = p {
                let d = dir.to_string_lossy().to_string();
                if d.len() <= floor.len() || !d.starts_with(floor) {
                    break;
                }
                if !listed.contains(d.as_str()) {
                    implied.insert(d);
                }
                p = dir.parent();
            }
        }
        let (mut keep, mut make) = (Vec::new(), Vec::new());
        let Some(image) = &state.image else {
            make.extend(implied);
            return Ok(Some((keep, make)));
        };
        for d in implied {
            match self.engine.image_stat(image, &d)? {
                Some(i) if i.through_link || i.kind != wharf_engine::PathKind::Dir => return Ok(None),
                Some(i) => keep.push((d, context::DirMeta { uid: i.uid, gid: i.gid, mode: i.mode, mtime: i.mtime })),
                // Made as extracting the copy would make it: root's, 0755.
                None => keep.push((d, context::DirMeta { uid: 0, gid: 0, mode: 0o755, mtime: 0 })),
            }
        }
        Ok(Some((keep, make)))
    }

    /// Whether every directory a copy writes is, in the image, absent or a directory reached
    /// without a symlink (so the new layer's directory merges with it as the copy would).
    fn dirs_are_dirs(&self, state: &State, selected: &[context::Selected]) -> Result<bool, BuildError> {
        let Some(image) = &state.image else { return Ok(true) };
        for s in selected {
            if s.entry.kind != context::EntryKind::Dir {
                continue;
            }
            if let Some(i) = self.engine.image_stat(image, &s.dest)? {
                if i.through_link || i.kind != wharf_engine::PathKind::Dir {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The directories from `/` down to `dir` (included) that the image does not have, top
    /// first.
    fn missing_dirs(&self, state: &State, dir: &str) -> Result<Vec<String>, BuildError> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut missing = state.image.is_none();
        for c in dir.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(c);
            if !missing {
                if let Some(image) = &state.image {
                    missing = self.engine.image_stat(image, &cur)?.is_none();
                }
            }
            if missing {
                out.push(cur.clone());
            }
        }
        Ok(out)
    }

    /// Records a config-only step (or takes it from the cache): a new image with no new layer.
    async fn config_step(&mut self, state: &mut State, created_by: String) -> Result<Digest, BuildError> {
        let parent = state.image.as_ref().map(|d| d.to_string()).unwrap_or_default();
        let cfg_json = serde_json::to_string(&state.config.config).unwrap_or_default();
        let key = sha(&["config", &parent, &created_by, &cfg_json]);
        // Build args reach a config step only through its (expanded) text.
        let note = Note { args: BTreeMap::new(), ..Note::new(&created_by, state) };
        if let Some(hit) = self.cached(&key, &note).await? {
            return Ok(hit);
        }
        if let Some(id) = self.cached_from(state, &created_by).await? {
            let rec = self.engine.find_image(&id.to_string())?;
            state.config = self.engine.image_config(&rec)?;
            self.remember(&key, &id, &note, state.image.as_ref())?;
            return Ok(id);
        }
        let mut config = state.config.clone();
        config.created = Some(now());
        config.history.push(History {
            created: config.created.clone(),
            created_by: Some(created_by.clone()),
            empty_layer: true,
            ..Default::default()
        });
        let id = self
            .engine
            .commit_image(CommitImage { base: state.image.clone(), layer: TopLayer::None, config: config.clone() })
            .await?;
        state.config = config;
        self.remember(&key, &id, &note, state.image.as_ref())?;
        self.stream(format!(" ---> {}\n", short(&id)));
        Ok(id)
    }

    /// A cache hit for `key`, unless the build or an earlier miss says not to look. The first
    /// miss of a stage says why, from the note of the step's last build.
    async fn cached(&mut self, key: &str, note: &Note) -> Result<Option<Digest>, BuildError> {
        // Two builds at the same step at once: the first makes it, the second waits for it,
        // then finds it here, even after a miss of its own (its parent may be the same image
        // all the same). Held until the step is done (`stage`), never while waiting for
        // another, so no two claims wait on each other.
        let mut waited = false;
        if !self.req.no_cache {
            self.claimed = None;
            let claim = step_claim(key);
            self.claimed = Some(match claim.clone().try_lock_owned() {
                Ok(free) => free,
                Err(_) => {
                    waited = true;
                    claim.lock_owned().await
                }
            });
        }
        if self.missed && !waited {
            return Ok(None);
        }
        if let Some(hit) = self.engine.build_cache_get(key)? {
            self.stream(" ---> Using cache\n".to_string());
            self.stream(format!(" ---> {}\n", short(&hit.image)));
            return Ok(Some(hit.image));
        }
        if self.missed {
            return Ok(None);
        }
        self.missed = true;
        if !self.req.no_cache {
            let old: Option<Note> =
                self.engine.build_note_get(&self.note_key())?.and_then(|v| serde_json::from_value(v).ok());
            let why = match old {
                Some(old) => note.why(&old),
                None => "no earlier build ran this step here".to_string(),
            };
            self.stream(format!(" ---> Cache miss: {why}\n"));
        }
        Ok(None)
    }

    /// Where this step's note is kept: the repository of the build's first tag (not the tag:
    /// `app:2` is the next build of `app:1`), its Dockerfile and the step number.
    fn note_key(&self) -> String {
        let tag = self.req.tags.first().map(|t| t.name()).unwrap_or_default();
        sha(&["note", &tag, &self.req.dockerfile, &self.step.to_string()])
    }

    fn remember(&self, key: &str, id: &Digest, note: &Note, parent: Option<&Digest>) -> Result<(), BuildError> {
        let entry = CacheEntry {
            image: id.clone(),
            description: note.instruction.clone(),
            created: now(),
            parent: parent.cloned(),
        };
        self.engine.build_cache_put(key, &entry)?;
        let value = serde_json::to_value(note).map_err(|e| BuildError::Invalid(format!("build note: {e}")))?;
        self.engine.build_note_put(&self.note_key(), &value)?;
        Ok(())
    }

    /// A layer step that missed the cache, served by a `--cache-from` image instead: one whose
    /// history and layers start as the state's do and whose next history entry is this step
    /// (`created_by`), as the classic builder matches them. The new image takes the state's
    /// config with that history entry and that layer.
    async fn cached_from(&mut self, state: &State, created_by: &str) -> Result<Option<Digest>, BuildError> {
        if self.req.cache_from.is_empty() {
            return Ok(None);
        }
        let Some(parent) = &state.image else { return Ok(None) };
        let history = &state.config.history;
        let layers = &state.config.rootfs.diff_ids;
        for name in &self.req.cache_from {
            let Ok(rec) = self.engine.find_image(name) else { continue };
            let Ok(cfg) = self.engine.image_config(&rec) else { continue };
            let same_prefix = cfg.history.len() > history.len()
                && cfg.history[..history.len()]
                    .iter()
                    .zip(history)
                    .all(|(a, b)| a.created_by == b.created_by && a.empty_layer == b.empty_layer)
                && cfg.rootfs.diff_ids.get(..layers.len()) == Some(&layers[..]);
            let next = cfg.history.get(history.len());
            if !same_prefix || next.and_then(|h| h.created_by.as_deref()) != Some(created_by) {
                log::debug!(
                    "build: --cache-from {name} does not serve {created_by:?} (same start: {same_prefix}, next: {:?})",
                    next.and_then(|h| h.created_by.as_deref())
                );
                continue;
            }
            let Some(entry) = next.cloned() else { continue };
            let mut config = state.config.clone();
            config.created = entry.created.clone();
            config.history.push(entry.clone());
            let layer = if entry.empty_layer {
                TopLayer::None
            } else if cfg.rootfs.diff_ids.len() > layers.len() {
                TopLayer::OfImage { from: rec.id.clone(), index: layers.len() }
            } else {
                continue;
            };
            let id = self.engine.commit_image(CommitImage { base: Some(parent.clone()), layer, config }).await?;
            self.stream(format!(" ---> Using cache (from {name})\n"));
            self.stream(format!(" ---> {}\n", short(&id)));
            return Ok(Some(id));
        }
        Ok(None)
    }

    /// After a cache hit, the state takes the cached image's config.
    fn adopt(&self, state: &mut State, id: Digest) -> Result<(), BuildError> {
        let rec = self.engine.find_image(&id.to_string())?;
        state.config = self.engine.image_config(&rec)?;
        state.layers = rec.diff_ids.len();
        state.image = Some(id);
        Ok(())
    }

    /// Makes sure a stage's result is an image (a stage of `FROM scratch` alone is not yet).
    async fn ensure_image(&mut self, state: &State) -> Result<Digest, BuildError> {
        match &state.image {
            Some(id) => Ok(id.clone()),
            None => {
                let mut s = state.clone();
                self.config_step(&mut s, "/bin/sh -c #(nop) FROM scratch".into()).await
            }
        }
    }

    async fn run(
        &mut self,
        state: &mut State,
        ins: &Instruction,
        run: &crate::instructions::Run,
    ) -> Result<(), BuildError> {
        if run.security.is_some() {
            return Err(BuildError::Invalid(format!("Dockerfile line {}: RUN --security is not supported", ins.line)));
        }
        let argv = match &run.cmd {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(s) => {
                let mut script = s.clone();
                // A heredoc is part of the script the shell reads (`RUN <<EOF` alone runs the
                // body; `RUN cat <<EOF > f` feeds it), exactly as sh treats it.
                for h in &run.heredocs {
                    // The shell expands the body (or not, for a quoted marker) as it reads the script.
                    let body = h.content.clone();
                    if script.trim() == format!("<<{}", h.name) || script.trim() == format!("<<-{}", h.name) {
                        script = body;
                    } else {
                        script = format!("{script}\n{body}{}", h.name);
                    }
                }
                state.shell.iter().cloned().chain(std::iter::once(script)).collect()
            }
        };
        let args_in_scope: Vec<String> = state
            .args
            .iter()
            .filter(|(k, v)| v.is_some() && !state.env().iter().any(|e| e.split('=').next() == Some(k.as_str())))
            .map(|(k, v)| format!("{k}={}", v.clone().unwrap_or_default()))
            .collect();
        let shown = argv.join(" ");
        let created_by = if args_in_scope.is_empty() {
            shown.clone()
        } else {
            format!("|{} {} {}", args_in_scope.len(), args_in_scope.join(" "), shown)
        };
        let parent = state.image.as_ref().map(|d| d.to_string()).unwrap_or_default();
        let network = run.network.clone().unwrap_or_default();
        // The mounts are part of the step as written, so a changed mount misses the cache; so
        // is what a bind mount shows (the context's files, a stage's or image's id).
        let binds = self.bind_inputs(run)?;
        let key = sha(&["run", &parent, &created_by, &network, &format!("{:?}", run.mounts), &binds]);
        let note = Note::new(&ins.original, state);
        if let Some(hit) = self.cached(&key, &note).await? {
            return self.adopt(state, hit);
        }
        if let Some(id) = self.cached_from(state, &created_by).await? {
            self.remember(&key, &id, &note, state.image.as_ref())?;
            return self.adopt(state, id);
        }
        let image = state.image.clone().ok_or_else(|| {
            BuildError::Invalid(format!(
                "Dockerfile line {}: RUN needs an image to run in (FROM scratch has none)",
                ins.line
            ))
        })?;
        let mut env = state.env();
        env.extend(args_in_scope.iter().cloned());
        // The proxy build args reach RUN without an ARG (and stay out of history), as Docker.
        for (k, v) in &self.req.build_args {
            if let (true, Some(v)) = (is_predefined_arg(k), v) {
                if !state.args.contains_key(k) && !env.iter().any(|e| e.split('=').next() == Some(k.as_str())) {
                    env.push(format!("{k}={v}"));
                    self.used_args.insert(k.clone());
                }
            }
        }
        let network_mode = match network.as_str() {
            "" | "default" => self.req.network_mode.clone(),
            "none" | "host" => network.clone(),
            other => {
                return Err(BuildError::Invalid(format!(
                    "RUN --network={other} is not supported: use none, host or default"
                )))
            }
        };
        // The file systems bind mounts come from: the context, stages, images.
        let mut exported = Vec::new();
        let mut roots = HashMap::new();
        if run.mounts.iter().any(|m| matches!(m, crate::instructions::Mount::Bind { from: None, .. })) {
            let scratch = self.req.scratch.clone();
            let ctx = self.ctx.clone();
            let dir = tokio::task::spawn_blocking(move || ctx.materialize(&scratch))
                .await
                .map_err(|e| BuildError::Invalid(format!("build: {e}")))??;
            roots.insert(None, dir);
        }
        for m in &run.mounts {
            if let crate::instructions::Mount::Bind { from: Some(from), .. } = m {
                if let std::collections::hash_map::Entry::Vacant(slot) = roots.entry(Some(from.clone())) {
                    let dir = self.export_from(from).await?;
                    slot.insert(dir.path().to_path_buf());
                    exported.push(dir);
                }
            }
        }
        let scratch = tempdir::Dir::new(self.scratch_file("mounts"))?;
        let prepared = crate::mounts::prepare(
            &run.mounts,
            &self.engine.config().data_root,
            scratch.path(),
            &state.workdir(),
            &roots,
        )
        .await
        .map_err(|e| BuildError::Invalid(format!("Dockerfile line {}: {e}", ins.line)))?;
        let t_start = std::time::Instant::now();
        let mut host_config = self.host_config(network_mode);
        host_config.binds = prepared.binds.clone();
        host_config.tmpfs = prepared.tmpfs.clone();
        let rec = self
            .engine
            .create_container(CreateRequest {
                image: image.to_string(),
                cmd: Some(argv),
                entrypoint: Some(Vec::new()),
                env,
                working_dir: Some(state.workdir()).filter(|w| !w.is_empty()),
                user: state.config.config.as_ref().and_then(|c| c.user.clone()),
                attach_stdout: true,
                attach_stderr: true,
                labels: BTreeMap::from([(wharf_engine::EPHEMERAL_LABEL.to_string(), "build-run".to_string())]),
                host_config,
                ..Default::default()
            })
            .await?;
        self.stream(format!(" ---> Running in {}\n", short_id(&rec.id)));
        let t_created = t_start.elapsed();
        let result = self.run_container(&rec.id).await;
        let t_ran = t_start.elapsed();
        let code = match result {
            Ok(code) => code,
            Err(e) => {
                self.remove(&rec.id).await;
                return Err(e);
            }
        };
        drop(prepared);
        drop(exported);
        drop(scratch);
        if code != 0 {
            if self.req.force_remove {
                self.remove(&rec.id).await;
            }
            return Err(BuildError::RunFailed { command: shown, code });
        }
        let mut config = state.config.clone();
        config.created = Some(now());
        let empty = self.engine.container_changes_empty(&rec.id)?;
        config.history.push(History {
            created: config.created.clone(),
            created_by: Some(created_by.clone()),
            empty_layer: empty,
            ..Default::default()
        });
        let layer = if empty { TopLayer::None } else { TopLayer::Container(rec.id.clone()) };
        let t_checked = t_start.elapsed();
        let committed =
            self.engine.commit_image(CommitImage { base: Some(image), layer, config: config.clone() }).await;
        let t_committed = t_start.elapsed();
        if self.req.remove || self.req.force_remove {
            self.stream(format!("Removing intermediate container {}\n", short_id(&rec.id)));
            self.remove(&rec.id).await;
        }
        let id = committed?;
        self.remember(&key, &id, &note, state.image.as_ref())?;
        log::debug!(
            "build: RUN phases: created at {t_created:?}, exited at {t_ran:?}, changes read at {t_checked:?}, \
             committed at {t_committed:?}, removed and cached at {:?}",
            t_start.elapsed()
        );
        self.stream(format!(" ---> {}\n", short(&id)));
        self.adopt(state, id)
    }

    fn host_config(&self, network_mode: String) -> HostConfig {
        let mut security = wharf_engine::SecurityOptions::default();
        if self.req.shm_size > 0 {
            security.shm_size = self.req.shm_size;
        }
        security.ulimits = self.req.ulimits.clone();
        let net = wharf_engine::NetOptions { extra_hosts: self.req.extra_hosts.clone(), ..Default::default() };
        HostConfig {
            security,
            net,
            network_mode: if network_mode.is_empty() { "default".into() } else { network_mode },
            memory: self.req.memory,
            memory_swap: self.req.memory_swap,
            cpu_shares: self.req.cpu_shares,
            cpu_period: self.req.cpu_period,
            cpu_quota: self.req.cpu_quota,
            cpuset_cpus: self.req.cpuset_cpus.clone(),
            cpuset_mems: self.req.cpuset_mems.clone(),
            cgroup_parent: self.req.cgroup_parent.clone(),
            ..Default::default()
        }
    }

    /// Starts the step's container, streams its output, and returns its exit code. A client
    /// that goes away stops it.
    async fn run_container(&mut self, id: &str) -> Result<i32, BuildError> {
        let mut output = self.engine.attach_output(id, true, true)?;
        let wait = self.engine.wait_future(id, WaitCondition::NextExit)?;
        self.engine.start_container(id).await?;
        let mut wait = Box::pin(wait);
        loop {
            tokio::select! {
                chunk = output.recv() => match chunk {
                    Some(c) => {
                        let text = String::from_utf8_lossy(&c.data).into_owned();
                        match c.stream {
                            LogStream::Stdout => self.stream(text),
                            LogStream::Stderr => if !self.req.quiet { self.emit(BuildEvent::Stderr(text)) },
                        }
                    }
                    None => break,
                },
                _ = self.out.closed() => {
                    let _ = self.engine.kill_container(id, Some("SIGKILL")).await;
                    return Err(BuildError::Cancelled);
                }
            }
        }
        let (code, _) = (&mut wait).await;
        Ok(code)
    }

    async fn remove(&self, id: &str) {
        if let Err(e) = self.engine.remove_container(id, true).await {
            log::warn!("build: remove container {id}: {e}");
        }
    }

    async fn copy(&mut self, state: &mut State, ins: &Instruction, c: &Copy, what: &str) -> Result<(), BuildError> {
        // `--link` changes how BuildKit stores the layer, not what it holds: the same copy here.
        if c.keep_git_dir {
            return Err(BuildError::Invalid(format!(
                "Dockerfile line {}: {what} --keep-git-dir is not supported (git sources are not)",
                ins.line
            )));
        }
        let is_url = |s: &String| s.starts_with("http://") || s.starts_with("https://");
        let urls: Vec<String> = c.sources.iter().filter(|s| is_url(s)).cloned().collect();
        let locals: Vec<String> = c.sources.iter().filter(|s| !is_url(s)).cloned().collect();
        if what == "COPY" && !urls.is_empty() {
            return Err(BuildError::Invalid(format!(
                "Dockerfile line {}: COPY cannot copy from a URL ({}): use ADD",
                ins.line, urls[0]
            )));
        }
        if c.checksum.is_some() && (urls.len() != 1 || !locals.is_empty()) {
            return Err(BuildError::Invalid(format!(
                "Dockerfile line {}: ADD --checksum needs exactly one source, a URL",
                ins.line
            )));
        }
        let workdir = state.workdir();
        let mut dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            format!("{}/{}", if workdir.is_empty() { "" } else { workdir.trim_end_matches('/') }, c.dest)
        };
        if c.dest == "." || c.dest.ends_with("/.") {
            dest.push('/');
        }
        let many = c.sources.len() + c.heredocs.len() > 1 || c.sources.iter().any(|s| context::has_wildcard(s));
        let dest_is_dir = dest.ends_with('/') || many;
        if many && !dest.ends_with('/') {
            return Err(BuildError::Invalid(format!(
                "When using {what} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let dest_abs = normalize_abs(&dest);
        let own = self.ownership(state, c).await?;
        // A single source onto a directory the image has goes into it, as Docker copies.
        let mut dest_is_dir = dest_is_dir;
        if !dest_is_dir {
            if let Some(image) = &state.image {
                dest_is_dir =
                    self.engine.image_stat(image, &dest_abs)?.is_some_and(|i| i.kind == wharf_engine::PathKind::Dir);
            }
        }
        // The directories the copy makes (the destination and its parents the image lacks) are
        // the --chown user's.
        let dest_dir = if dest_is_dir {
            dest_abs.clone()
        } else {
            Path::new(&dest_abs).parent().map(|p| p.to_string_lossy().to_string()).unwrap_or_default()
        };
        let make_dirs = self.missing_dirs(state, &dest_dir)?;
        // The directories above the destination that the image has: written into the layer as
        // they are when the layer is made without a container (`direct`).
        let (keep_dirs, plain_path) = self.present_dirs(state, &dest_dir)?;

        // Where the files come from: the context, or another stage's or image's file system.
        let mut archives: Vec<(context::Entry, String)> = Vec::new();
        let mut from_single_dir = false;
        let (mut selected, source_dir, cleanup): (Vec<context::Selected>, String, Option<tempdir::Dir>) = match &c.from
        {
            None => {
                let sources = if locals.is_empty() {
                    Vec::new()
                } else {
                    self.ctx.resolve(&locals, what).map_err(BuildError::Invalid)?
                };
                // ADD unpacks the local archives it names (not archives inside a directory).
                let (unpack, plain): (Vec<String>, Vec<String>) = if what == "ADD" {
                    let mut unpack = Vec::new();
                    let mut plain = Vec::new();
                    for src in sources {
                        match self.ctx.entry(&src).and_then(archive_kind) {
                            Some(Ok(())) => unpack.push(src),
                            Some(Err(kind)) => {
                                return Err(BuildError::Invalid(format!(
                                "Dockerfile line {}: ADD {src}: {kind} archives are not supported: use gzip or none",
                                ins.line
                            )))
                            }
                            None => plain.push(src),
                        }
                    }
                    (unpack, plain)
                } else {
                    (Vec::new(), sources)
                };
                archives =
                    unpack.iter().filter_map(|a| self.ctx.entry(a).map(|e| (e.clone(), dest_abs.clone()))).collect();
                (self.ctx.select(&plain, &dest_abs, dest_is_dir, c.parents), "context".into(), None)
            }
            Some(from) => {
                let (src_ctx, dir) = self.index_from(from).await?;
                let sources: Vec<String> = c.sources.to_vec();
                let resolved = src_ctx.resolve(&sources, what).map_err(BuildError::Invalid)?;
                from_single_dir = match sources.as_slice() {
                    [one] if !context::has_wildcard(one) => {
                        let rel = context::clean_rel(one);
                        rel.is_empty() || src_ctx.entry(&rel).is_some_and(|e| e.kind == context::EntryKind::Dir)
                    }
                    _ => false,
                };
                let sel = src_ctx.select(&resolved, &dest_abs, dest_is_dir, c.parents);
                (sel, format!("from {from}"), Some(dir))
            }
        };
        // Downloads: a file each, mode 0600 and the server's Last-Modified as mtime, as Docker.
        let downloads = if urls.is_empty() { None } else { Some(tempdir::Dir::new(self.scratch_file("downloads"))?) };
        for (n, url) in urls.iter().enumerate() {
            let dir = downloads.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
            let file = dir.join(format!("{n}"));
            let (u, f, limit) = (url.clone(), file.clone(), self.req.max_input);
            self.stream(format!("Downloading {url}\n"));
            let got = tokio::task::spawn_blocking(move || crate::fetch::fetch(&u, &f, limit))
                .await
                .map_err(|e| BuildError::Invalid(format!("ADD {url}: {e}")))?
                .map_err(|e| BuildError::Invalid(format!("ADD failed: {e}")))?;
            if let Some(want) = &c.checksum {
                if *want != got.digest {
                    return Err(BuildError::Invalid(format!(
                        "Dockerfile line {}: ADD {url}: digest mismatch: expected {want}, got {}",
                        ins.line, got.digest
                    )));
                }
            }
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            if let Some(t) = got.modified {
                if let Ok(f) = std::fs::File::options().write(true).open(&file) {
                    let _ = f.set_modified(t);
                }
            }
            let to =
                if dest_is_dir { format!("{}/{}", dest_abs.trim_end_matches('/'), got.name) } else { dest_abs.clone() };
            let entry = context::Entry::from_path(&file).map_err(|e| BuildError::Invalid(format!("ADD {url}: {e}")))?;
            selected.push(context::Selected { rel: String::new(), entry, dest: to });
        }
        let selected = exclude(selected, &c.exclude)?;
        let mut extra = BTreeMap::new();
        for h in &c.heredocs {
            let to =
                if dest_is_dir { format!("{}/{}", dest_abs.trim_end_matches('/'), h.name) } else { dest_abs.clone() };
            extra.insert(to, h.content.clone().into_bytes());
        }
        let hashed: Vec<context::Selected> = selected
            .iter()
            .cloned()
            .chain(archives.iter().map(|(a, d)| context::Selected {
                rel: String::new(),
                entry: a.clone(),
                dest: format!("{d} (unpacked)"),
            }))
            .collect();
        let (digest, files) = context::digest(&hashed, own)?;
        let mut hd = Sha256::new();
        for (k, v) in &extra {
            hd.update(k.as_bytes());
            hd.update(v);
        }
        // Heredoc files are part of what the history's digest names (`--cache-from` matches it).
        let digest = if extra.is_empty() {
            digest
        } else {
            let both = sha(&[&digest, &format!("{:x}", hd.clone().finalize())]);
            both.strip_prefix("sha256:").unwrap_or(&both).to_string()
        };
        // As the classic builder writes it: `dir:` for one directory, `file:` for one file or
        // archive, `multi:` for more; the destination as written; `--chown` shown.
        let single_dir = from_single_dir
            || (c.sources.len() == 1 && c.heredocs.is_empty() && locals.len() == 1 && archives.is_empty() && {
                let rel = context::clean_rel(&locals[0]);
                c.from.is_none()
                    && (rel.is_empty() || self.ctx.entry(&rel).is_some_and(|e| e.kind == context::EntryKind::Dir))
            });
        let kind = if single_dir {
            "dir"
        } else if c.sources.len() + c.heredocs.len() == 1 && !c.sources.iter().any(|s| context::has_wildcard(s)) {
            "file"
        } else {
            "multi"
        };
        // Without a space before the kind, exactly as dockerd writes it.
        let chown = c.chown.as_ref().map(|o| format!("--chown={o}")).unwrap_or_default();
        let created_by = format!("{} #(nop) {what} {chown}{kind}:{digest} in {} ", state.shell.join(" "), c.dest);
        let parent = state.image.as_ref().map(|d| d.to_string()).unwrap_or_default();
        let key = sha(&["copy", &parent, &created_by, &source_dir, &format!("{:x}", hd.finalize())]);
        let note = Note { files, args: BTreeMap::new(), ..Note::new(&ins.original, state) };
        if let Some(hit) = self.cached(&key, &note).await? {
            drop(cleanup);
            return self.adopt(state, hit);
        }
        if let Some(id) = self.cached_from(state, &created_by).await? {
            self.remember(&key, &id, &note, state.image.as_ref())?;
            return self.adopt(state, id);
        }
        // Straight to a layer, unless a symlink of the image is on a directory's way (Docker's
        // copy follows it: a container's extraction does the same).
        // An archive's entries may go anywhere below the destination, through a symlink of the
        // image (`/bin` on a merged-/usr base): those are extracted, never written directly.
        let mut direct =
            state.layers == 0 || (archives.is_empty() && plain_path && self.dirs_are_dirs(state, &selected)?);
        // Directories below the destination that the selection implies without an entry of its
        // own (a `.dockerignore` re-include under an excluded directory, `--parents`): written
        // as the image has them, or made, so the layer does not bring root 0755 ones instead.
        let (mut keep_dirs, mut make_dirs) = (keep_dirs, make_dirs);
        if direct && state.layers > 0 {
            match self.implied_dirs(state, &selected, &dest_dir)? {
                Some((keep, make)) => {
                    keep_dirs.extend(keep);
                    make_dirs.extend(make);
                }
                None => direct = false,
            }
        }
        {
            // Docker makes the directory an archive unpacks into as root's, whatever --chown says.
            let dir_owner = if selected.is_empty() && extra.is_empty() && !archives.is_empty() {
                Ownership { uid: 0, gid: 0, mode: own.mode, keep: false }
            } else {
                own
            };
            let plan = context::CopyTar {
                own,
                dir_owner,
                keep_dirs: if direct { keep_dirs } else { Vec::new() },
                make_dirs,
                parents: state.layers == 0,
                extra,
                archives,
                archive_limit: Some(self.req.max_input),
            };
            // The tar goes straight from a writer thread into the layer (or the container).
            let (tar, writer) = TarPipe::start(move |out| plan.write(&selected, out))?;
            let result = self.commit_tar(state, Box::new(tar), created_by.clone(), direct).await;
            let id = writer.finish(result);
            drop(cleanup);
            let id = id?;
            self.remember(&key, &id, &note, state.image.as_ref())?;
            self.stream(format!(" ---> {}\n", short(&id)));
            self.adopt(state, id)
        }
    }

    /// Puts a tar into a new layer on top of the state. `direct`: the tar is the layer as it
    /// is (nothing below it, or a copy whose every directory the image has as a directory, with
    /// their entries in the tar); else it is extracted into a created container, so that
    /// symlinks of the image are followed as Docker's copy follows them.
    async fn commit_tar(
        &mut self,
        state: &State,
        tar: Box<dyn std::io::Read + Send>,
        created_by: String,
        direct: bool,
    ) -> Result<Digest, BuildError> {
        let mut config = state.config.clone();
        config.created = Some(now());
        config.history.push(History {
            created: config.created.clone(),
            created_by: Some(created_by),
            ..Default::default()
        });
        let file = tar;
        let Some(image) = state.image.clone().filter(|_| state.layers > 0 && !direct) else {
            let id = self
                .engine
                .commit_image(CommitImage { base: state.image.clone(), layer: TopLayer::Tar(file), config })
                .await?;
            return Ok(id);
        };
        let rec = self
            .engine
            .create_container(CreateRequest {
                image: image.to_string(),
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), "#(nop) COPY".into()]),
                entrypoint: Some(Vec::new()),
                labels: BTreeMap::from([(wharf_engine::EPHEMERAL_LABEL.to_string(), "build-copy".to_string())]),
                host_config: self.host_config("none".into()),
                ..Default::default()
            })
            .await?;
        let extracted = self
            .engine
            .container_extract(
                &rec.id,
                "/",
                ExtractOptions { no_overwrite_dir_non_dir: false, copy_uid_gid: true },
                file,
            )
            .await;
        let committed = match extracted {
            Ok(()) => {
                self.engine
                    .commit_image(CommitImage { base: Some(image), layer: TopLayer::Container(rec.id.clone()), config })
                    .await
            }
            Err(e) => Err(e),
        };
        self.remove(&rec.id).await;
        Ok(committed?)
    }

    /// What the bind mounts of a RUN show, as one string for its cache key: the digest of the
    /// context files below each context source, the image of each `from=`.
    fn bind_inputs(&self, run: &crate::instructions::Run) -> Result<String, BuildError> {
        let mut out = String::new();
        for m in &run.mounts {
            let crate::instructions::Mount::Bind { source, from, .. } = m else { continue };
            let rel = context::clean_rel(source.as_deref().unwrap_or("/"));
            match from {
                None => {
                    let selected = self.ctx.select(std::slice::from_ref(&rel), "/m", true, false);
                    let (digest, _) = context::digest(&selected, Ownership::default())?;
                    out.push_str(&format!("ctx:{rel}:{digest};"));
                }
                Some(f) => {
                    let image = match self.stage_image(&f.to_ascii_lowercase()) {
                        Some(id) => id.to_string(),
                        None => self.engine.find_image(f).map(|r| r.id.to_string()).unwrap_or_else(|_| f.clone()),
                    };
                    out.push_str(&format!("from:{f}:{image}:{rel};"));
                }
            }
        }
        Ok(out)
    }

    /// A path in the build's scratch directory, of this step.
    fn scratch_file(&self, name: &str) -> PathBuf {
        self.req.scratch.join(format!("step{}-{name}", self.step))
    }

    /// The file system of a stage, an image, or a stage index, copied out into a directory
    /// (`RUN --mount=type=bind,from=`).
    async fn export_from(&mut self, from: &str) -> Result<tempdir::Dir, BuildError> {
        let dir = tempdir::Dir::new(self.scratch_file("from"))?;
        let target = dir.path().to_path_buf();
        self.archive_from(from, move |tar| context::unpack(tar, &target, u64::MAX)).await?;
        Ok(dir)
    }

    /// The file system of a stage, an image, or a stage index as an index over a spool of its
    /// tar (`COPY --from`): owners and modes as the image has them, and no file of it on the
    /// host (a setuid binary of the image never becomes one there).
    async fn index_from(&mut self, from: &str) -> Result<(Context, tempdir::Dir), BuildError> {
        let dir = tempdir::Dir::new(self.scratch_file("from"))?;
        let spool = dir.path().join("fs.spool");
        let ctx = self.archive_from(from, move |tar| Context::receive_tree(tar, &spool)).await?;
        Ok((ctx, dir))
    }

    /// Streams the tar of `from`'s root file system (through a created, never started
    /// container) into `take`.
    async fn archive_from<T: Send + 'static>(
        &mut self,
        from: &str,
        take: impl FnOnce(std::io::PipeReader) -> Result<T, context::ContextError> + Send + 'static,
    ) -> Result<T, BuildError> {
        let lower = from.to_ascii_lowercase();
        let image = match self.stage_image(&lower) {
            Some(id) => id,
            None => {
                let reference =
                    ImageRef::parse(from).map_err(|e| BuildError::Invalid(format!("invalid --from {from:?}: {e}")))?;
                match self.engine.find_image(&reference.to_string()) {
                    Ok(r) if !self.req.pull => r.id,
                    _ => self.pull(reference).await?.id,
                }
            }
        };
        let rec = self
            .engine
            .create_container(CreateRequest {
                image: image.to_string(),
                cmd: Some(vec!["/bin/sh".into(), "-c".into(), "#(nop) COPY --from".into()]),
                entrypoint: Some(Vec::new()),
                labels: BTreeMap::from([(wharf_engine::EPHEMERAL_LABEL.to_string(), "build-copy-from".to_string())]),
                host_config: self.host_config("none".into()),
                ..Default::default()
            })
            .await?;
        let result = async {
            let (reader, writer) = std::io::pipe().map_err(|e| BuildError::Invalid(format!("build: pipe: {e}")))?;
            let taken = tokio::task::spawn_blocking(move || take(reader));
            let archived = self.engine.container_archive(&rec.id, "/", Box::new(writer)).await;
            let taken = taken.await.map_err(|e| BuildError::Invalid(format!("build: {e}")))?;
            archived?;
            taken.map_err(BuildError::from)
        }
        .await;
        self.remove(&rec.id).await;
        result
    }

    /// A finished stage named `name`, or numbered so.
    fn stage_image(&self, name: &str) -> Option<Digest> {
        let index = match name.parse::<usize>() {
            Ok(i) => Some(i),
            Err(_) => self.names.iter().position(|n| n.as_deref() == Some(name)),
        }?;
        self.stages.get(&index).and_then(|s| s.image.clone())
    }

    /// `--chown` resolved against the image's passwd and group files (numbers pass as they are).
    async fn ownership(&mut self, state: &State, c: &Copy) -> Result<Ownership, BuildError> {
        let mode = match &c.chmod {
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .map_err(|_| BuildError::Invalid(format!("invalid --chmod={m}: must be octal")))?,
            ),
            None => None,
        };
        // As the classic builder: a copy out of a stage or an image keeps its owners, one out of
        // the context is root's.
        let Some(spec) = &c.chown else { return Ok(Ownership { uid: 0, gid: 0, mode, keep: c.from.is_some() }) };
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u.to_string(), Some(g.to_string())),
            None => (spec.clone(), None),
        };
        let numeric = |s: &str| s.parse::<u32>().ok();
        if let (Some(u), g) = (numeric(&user), group.as_deref().map(numeric)) {
            if g.is_none() || g.flatten().is_some() {
                return Ok(Ownership { uid: u, gid: g.flatten().unwrap_or(u), mode, keep: false });
            }
        }
        let image = state.image.clone().ok_or_else(|| {
            BuildError::Invalid(format!("unable to convert uid/gid chown string to host mapping: no such user: {user}"))
        })?;
        let (uid, gid) = self
            .engine
            .resolve_user_in_image(&image, &user, group.as_deref())
            .map_err(|e| BuildError::Invalid(format!("unable to convert uid/gid chown string to host mapping: {e}")))?;
        Ok(Ownership { uid, gid, mode, keep: false })
    }
}

/// The host's platform as `os/arch[/variant]`, and its parts.
fn host_platform() -> (String, wharf_types::oci::Platform) {
    let p = wharf_types::oci::Platform::host();
    let name = match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    };
    (name, p)
}

/// The ARGs every build defines in the global scope: the platform built on and built for (the
/// same here: this builder builds for the host).
fn platform_args() -> Vec<(String, String)> {
    let (platform, p) = host_platform();
    let mut out = Vec::new();
    for side in ["TARGET", "BUILD"] {
        out.push((format!("{side}PLATFORM"), platform.clone()));
        out.push((format!("{side}OS"), p.os.clone()));
        out.push((format!("{side}ARCH"), p.architecture.clone()));
        out.push((format!("{side}VARIANT"), p.variant.clone().unwrap_or_default()));
    }
    out
}

fn shell_default() -> Vec<String> {
    DEFAULT_SHELL.iter().map(|s| s.to_string()).collect()
}

fn arg_text(name: &str, default: Option<&str>) -> String {
    match default {
        Some(d) => format!("{name}={d}"),
        None => name.to_string(),
    }
}

fn command(c: &CmdLine, shell: &[String]) -> Vec<String> {
    match c {
        CmdLine::Exec(v) => v.clone(),
        CmdLine::Shell(s) => shell.iter().cloned().chain(std::iter::once(s.clone())).collect(),
    }
}

/// `/a/./b/../c/` → `/a/c`.
fn normalize_abs(p: &str) -> String {
    format!("/{}", context::clean_rel(p))
}

/// Drops what `--exclude` patterns match (as `.dockerignore` lines, against the path in the
/// context, or below the copied directory).
fn exclude(selected: Vec<context::Selected>, patterns: &[String]) -> Result<Vec<context::Selected>, BuildError> {
    if patterns.is_empty() {
        return Ok(selected);
    }
    let ignore =
        crate::Ignore::new(&patterns.join("\n")).map_err(|e| BuildError::Invalid(format!("--exclude: {e}")))?;
    Ok(selected
        .into_iter()
        .filter(|s| {
            let name = s.rel.rsplit('/').next().unwrap_or_default();
            !((!s.rel.is_empty() && ignore.matches(&s.rel))
                || (!name.is_empty() && ignore.matches(name))
                || ignore.matches(s.dest.trim_start_matches('/')))
        })
        .collect())
}

/// Whether ADD unpacks this file: `Some(Ok)` for a tar, plain or gzip-compressed, recognised
/// by content; `Some(Err(kind))` for an archive of a compression this builder cannot read.
fn archive_kind(entry: &context::Entry) -> Option<Result<(), &'static str>> {
    if entry.kind != context::EntryKind::File {
        return None;
    }
    let head = entry.head(512);
    let n = head.len();
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(Ok(()));
    }
    if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Some(Ok(()));
    }
    (n >= 262 && &head[257..262] == b"ustar").then_some(Ok(()))
}

/// The comment a config-only step leaves in history, as the classic builder words it: the
/// stage's shell, `#(nop)`, two spaces, the instruction.
fn nop(shell: &[String], text: &str) -> String {
    format!("{} #(nop)  {text}", shell.join(" "))
}

/// Go's `%q` of a string slice: `["a" "b c"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%q` of an integer (a rune): `'\x03'`, `'A'`.
fn go_quote_rune(n: u64) -> String {
    match char::from_u32(n as u32) {
        Some(c) if (' '..='~').contains(&c) && c != '\'' && c != '\\' => format!("'{c}'"),
        Some('\'') => "'\\''".to_string(),
        Some('\\') => "'\\\\'".to_string(),
        Some('\u{7}') => "'\\a'".to_string(),
        Some('\u{8}') => "'\\b'".to_string(),
        Some('\t') => "'\\t'".to_string(),
        Some('\n') => "'\\n'".to_string(),
        Some('\u{b}') => "'\\v'".to_string(),
        Some('\u{c}') => "'\\f'".to_string(),
        Some('\r') => "'\\r'".to_string(),
        _ if n < 0x100 => format!("'\\x{n:02x}'"),
        _ => format!("'\\u{n:04x}'"),
    }
}

/// Go's `time.Duration.String()` of nanoseconds: `0s`, `500ms`, `1.5s`, `1m30s`, `1h0m0s`.
fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = (unit as f64).log10().round() as usize;
        let s = format!("{rest:0digits$}");
        format!("{whole}.{}", s.trim_end_matches('0'))
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 1_000_000));
    }
    let (h, rem) = (ns / 3_600_000_000_000, ns % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let secs = frac(rem, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// `EXPOSE 9000-9002/udp` → each port of the range, with its protocol (tcp by default).
fn expand_port_range(spec: &str) -> Result<Vec<String>, BuildError> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    let bad = || BuildError::Invalid(format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A tar written by a thread into a pipe: the reader's end of file is an error unless the
/// writer finished, so a copy cut short can never pass for a complete (shorter) layer.
struct TarPipe {
    reader: std::io::PipeReader,
    done: Arc<std::sync::atomic::AtomicBool>,
    /// Set when the reader met the end before the writer finished: the writer failed first.
    cut: Arc<std::sync::atomic::AtomicBool>,
}

struct TarWriter {
    thread: std::thread::JoinHandle<Result<(), context::ContextError>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl TarPipe {
    fn start(
        write: impl FnOnce(&mut std::io::BufWriter<std::io::PipeWriter>) -> Result<(), context::ContextError>
            + Send
            + 'static,
    ) -> Result<(TarPipe, TarWriter), BuildError> {
        let (reader, writer) = std::io::pipe().map_err(|e| BuildError::Invalid(format!("build: pipe: {e}")))?;
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, writer);
            write(&mut out)?;
            std::io::Write::flush(&mut out)
                .map_err(|source| context::ContextError::Io { what: "write tar".into(), source })?;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            drop(out);
            Ok(())
        });
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Ok((TarPipe { reader, done, cut: cut.clone() }, TarWriter { thread, cut }))
    }
}

impl std::io::Read for TarPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done.load(std::sync::atomic::Ordering::SeqCst) {
            self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(std::io::Error::other("the copy's tar was cut short"));
        }
        Ok(n)
    }
}

impl TarWriter {
    /// The copy's outcome once the writer is done, given what the layer's commit made of its
    /// tar. When both failed, the one that failed first is the cause: the writer, when the
    /// tar was cut short (an ADD archive over the limit); the layer, when the writer only saw
    /// the pipe close.
    fn finish(self, committed: Result<Digest, BuildError>) -> Result<Digest, BuildError> {
        let written = self
            .thread
            .join()
            .map_err(|_| BuildError::Invalid("build: the tar writer panicked".into()))
            .and_then(|r| r.map_err(BuildError::from));
        match (committed, written) {
            (Ok(id), Ok(())) => Ok(id),
            (Err(e), Err(w)) if self.cut.load(std::sync::atomic::Ordering::SeqCst) => {
                log::debug!("build: the layer failed after its tar was cut short: {e}");
                Err(w)
            }
            (Err(e), _) => Err(e),
            (Ok(_), Err(w)) => Err(w),
        }
    }
}

/// A directory removed when dropped.
mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(path: PathBuf) -> Result<Dir, super::BuildError> {
            std::fs::create_dir_all(&path)
                .map_err(|e| super::BuildError::Invalid(format!("build: create {}: {e}", path.display())))?;
            Ok(Dir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A note as the engine's `build_notes` table keeps it (its format 1, with every field
    /// set): a renamed or removed field would make every stored note unreadable, and the
    /// next miss unexplained, until the engine's format is bumped with a step.
    #[test]
    fn the_stored_note_is_pinned() {
        let stored: serde_json::Value =
            serde_json::from_str(include_str!("../../engine/testdata/build-note-1.json")).unwrap();
        let note: Note = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(serde_json::to_value(&note).unwrap(), stored);
        assert!(note.parent.is_some() && !note.args.is_empty() && !note.files.is_empty());
    }
}
