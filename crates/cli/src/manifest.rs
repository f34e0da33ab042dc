//! `wharf manifest inspect|create|annotate|push|rm`: manifest lists, made and pushed by the CLI
//! itself (no daemon), as the docker CLI does.
//!
//! Local lists live where the docker CLI keeps them, so both CLIs see the same ones:
//! `<docker config dir>/manifests/<list ref>/<manifest ref>`, each reference made file-safe
//! (`:` → `-`, `/` → `_`), each file the compact JSON of docker's `ImageManifest`
//! (`Ref`, `Descriptor` with the platform, `Raw` base64, and the parsed `SchemaV2Manifest` or
//! `OCIManifest`). The registry is spoken to with `wharf-distribution`, credentials come from the
//! docker config. JSON is written with docker's field order and indentation (the pushed list is
//! docker's canonical form, so the same entries give the same list digest).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use clap::Subcommand;
use serde::{Deserialize, Serialize};
use wharf_distribution::{AuthConfig, DistributionError, Mount, RegistryClient, RegistryConfig, Resolved};
use wharf_types::oci::{self, Platform};
use wharf_types::{Digest, ImageRef};

use crate::Exit;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Image configs are small; docker's own limit for them is in this range.
const MAX_CONFIG: u64 = 8 << 20;

#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Add additional information to a local image manifest
    Annotate {
        /// Set architecture
        #[arg(long)]
        arch: Option<String>,
        /// Set operating system
        #[arg(long)]
        os: Option<String>,
        /// Set operating system feature
        #[arg(long = "os-features", value_delimiter = ',')]
        os_features: Option<Vec<String>>,
        /// Set operating system version
        #[arg(long = "os-version")]
        os_version: Option<String>,
        /// Set architecture variant
        #[arg(long)]
        variant: Option<String>,
        #[arg(value_name = "MANIFEST_LIST")]
        list: String,
        #[arg(value_name = "MANIFEST")]
        manifest: String,
    },
    /// Create a local manifest list for annotating and pushing to a registry
    Create {
        /// Amend an existing manifest list
        #[arg(short = 'a', long)]
        amend: bool,
        /// Allow communication with an insecure registry
        #[arg(long)]
        insecure: bool,
        #[arg(value_name = "MANIFEST_LIST")]
        list: String,
        #[arg(value_name = "MANIFEST", required = true)]
        manifests: Vec<String>,
    },
    /// Display an image manifest, or manifest list
    Inspect {
        /// Allow communication with an insecure registry
        #[arg(long)]
        insecure: bool,
        /// Output additional info including layers and platform
        #[arg(short = 'v', long)]
        verbose: bool,
        /// `[MANIFEST_LIST] MANIFEST`
        #[arg(value_name = "[MANIFEST_LIST] MANIFEST", num_args = 1..=2, required = true)]
        refs: Vec<String>,
    },
    /// Push a manifest list to a repository
    Push {
        /// Allow push to an insecure registry
        #[arg(long)]
        insecure: bool,
        /// Remove the local manifest list after push
        #[arg(short = 'p', long)]
        purge: bool,
        #[arg(value_name = "MANIFEST_LIST")]
        list: String,
    },
    /// Delete one or more manifest lists from local storage
    Rm {
        #[arg(value_name = "MANIFEST_LIST", required = true)]
        lists: Vec<String>,
    },
}

pub fn run(cmd: ManifestCommand) -> Result<()> {
    match cmd {
        ManifestCommand::Inspect { insecure, verbose, refs } => inspect(&refs, insecure, verbose),
        ManifestCommand::Create { amend, insecure, list, manifests } => create(&list, &manifests, amend, insecure),
        ManifestCommand::Annotate { arch, os, os_features, os_version, variant, list, manifest } => {
            let a = Annotation { arch, os, os_features, os_version, variant };
            annotate(&list, &manifest, a)
        }
        ManifestCommand::Push { insecure, purge, list } => push(&list, insecure, purge),
        ManifestCommand::Rm { lists } => rm(&lists),
    }
}

// ---------------------------------------------------------------------------------------------
// Docker's JSON shapes, fields in the order docker writes them.

/// A platform (`ocispec.Platform`; docker's list `PlatformSpec` adds `features`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Plat {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    os_version: String,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    variant: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    features: Vec<String>,
}

/// A descriptor inside a manifest or list (distribution's order: mediaType, size, digest).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ListDesc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    size: u64,
    digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Plat>,
}

/// The `Descriptor` of a stored entry (`ocispec.Descriptor`: mediaType, digest, size).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OciDesc {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Plat>,
}

/// An image manifest as docker re-marshals it (schema2 or OCI).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageManifestDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "String::is_empty")]
    media_type: String,
    config: ListDesc,
    #[serde(default)]
    layers: Vec<ListDesc>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Docker's `types.ImageManifest`: one stored entry of a local list, and what
/// `inspect --verbose` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "Ref")]
    reference: String,
    #[serde(rename = "Descriptor")]
    descriptor: OciDesc,
    #[serde(rename = "Raw", with = "b64")]
    raw: Vec<u8>,
    #[serde(rename = "SchemaV2Manifest", default, skip_serializing_if = "Option::is_none")]
    schema_v2: Option<ImageManifestDoc>,
    #[serde(rename = "OCIManifest", default, skip_serializing_if = "Option::is_none")]
    oci: Option<ImageManifestDoc>,
}

/// A manifest list / index in docker's canonical form.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ListDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: String,
    manifests: Vec<ListDesc>,
}

/// Go marshals `[]byte` as standard base64.
mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

impl Entry {
    fn manifest(&self) -> Option<&ImageManifestDoc> {
        self.oci.as_ref().or(self.schema_v2.as_ref())
    }

    fn list_desc(&self) -> ListDesc {
        let d = &self.descriptor;
        ListDesc {
            media_type: d.media_type.clone(),
            size: d.size,
            digest: d.digest.clone(),
            urls: d.urls.clone(),
            annotations: d.annotations.clone(),
            platform: d.platform.clone(),
        }
    }
}

/// JSON with a given indent (`"\t"` or three spaces, as docker's two `MarshalIndent`s).
fn to_indented<T: Serialize>(v: &T, indent: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(indent));
    v.serialize(&mut ser)?;
    Ok(out)
}

/// Re-indents JSON bytes with tabs keeping the key order, as Go's `json.Indent` (docker prints
/// a single manifest's raw bytes so).
fn indent_raw(raw: &[u8]) -> String {
    crate::inspect::indent_json_with(raw, 0, "\t")
}

// ---------------------------------------------------------------------------------------------
// The local store.

fn store_root() -> Result<PathBuf> {
    let config = crate::dockercfg::config_path()?;
    let dir = config.parent().ok_or_else(|| anyhow!("no docker config directory"))?;
    Ok(dir.join("manifests"))
}

/// Docker's file-safe form of a reference.
fn filesafe(r: &ImageRef) -> String {
    r.to_string().replace(':', "-").replace('/', "_")
}

fn list_dir(list: &ImageRef) -> Result<PathBuf> {
    Ok(store_root()?.join(filesafe(list)))
}

/// The entries of a local list, in file-name order (docker reads the directory sorted);
/// `None` when there is no such list.
fn read_list(list: &ImageRef) -> Result<Option<Vec<Entry>>> {
    let dir = list_dir(list)?;
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", dir.display()))),
    };
    let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    names.sort();
    let mut entries = Vec::new();
    for p in names {
        entries.push(read_entry(&p)?);
    }
    Ok(Some(entries))
}

fn read_entry(p: &Path) -> Result<Entry> {
    let data = fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("{} is not a manifest entry", p.display()))
}

/// Writes an entry through a temporary file and a rename: a reader never sees half of one.
fn write_entry(dir: &Path, r: &ImageRef, e: &Entry) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(filesafe(r));
    let tmp = dir.join(format!(".{}.tmp", filesafe(r)));
    fs::write(&tmp, serde_json::to_vec(e)?).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn no_such(r: &ImageRef) -> anyhow::Error {
    Exit::new(1, format!("No such manifest: {r}")).into()
}

fn parse_ref(s: &str) -> Result<ImageRef> {
    ImageRef::parse(s).map_err(|e| Exit::new(1, format!("{e}")).into())
}

// ---------------------------------------------------------------------------------------------
// The registry.

struct Remote {
    client: RegistryClient,
    config: serde_json::Value,
}

impl Remote {
    fn new(registry: &str, insecure: bool) -> Result<Remote> {
        let cfg = RegistryConfig {
            insecure: if insecure { vec![registry.to_string()] } else { Vec::new() },
            certs_dir: Some(PathBuf::from("/etc/docker/certs.d")),
            user_agent: format!("wharf/{}", env!("CARGO_PKG_VERSION")),
            ..RegistryConfig::default()
        };
        let client = RegistryClient::new(cfg).map_err(|e| anyhow!("{e}"))?;
        let config = crate::dockercfg::read_config().unwrap_or(serde_json::Value::Null);
        Ok(Remote { client, config })
    }

    fn auth(&self, registry: &str) -> Result<Option<AuthConfig>> {
        let Some(c) = crate::dockercfg::get(&self.config, registry)? else { return Ok(None) };
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Ok(Some(AuthConfig {
            username: some(&c.username),
            password: some(&c.password),
            identitytoken: some(&c.identity_token),
            ..AuthConfig::default()
        }))
    }

    /// What `r` points to, index or manifest, without choosing a platform for the caller: the
    /// client resolves to a platform, so an index that lacks the host's is asked again for one
    /// it names.
    fn fetch(&self, r: &ImageRef) -> Result<Resolved> {
        let auth = self.auth(&r.registry)?;
        match self.client.resolve(r, &Platform::host(), auth.as_ref()) {
            Err(DistributionError::NoMatchingPlatform { available, .. }) => {
                let first = available.split(", ").next().and_then(Platform::parse);
                match first {
                    Some(p) => self.client.resolve(r, &p, auth.as_ref()).map_err(|e| remote_error(r, e)),
                    None => Err(anyhow!("{r}: an index that names no platform")),
                }
            }
            other => other.map_err(|e| remote_error(r, e)),
        }
    }

    /// The platform of an image manifest, from its config (as `docker manifest create` does).
    fn platform_of(&self, r: &ImageRef, got: &Resolved) -> Result<Plat> {
        let auth = self.auth(&r.registry)?;
        let cfg = self
            .client
            .fetch_blob(r, &got.endpoint, &got.manifest.config, MAX_CONFIG, auth.as_ref())
            .map_err(|e| remote_error(r, e))?;
        let v: serde_json::Value = serde_json::from_slice(&cfg).with_context(|| format!("{r}: image config"))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
        let features = v
            .get("os.features")
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(Plat {
            architecture: s("architecture"),
            os: s("os"),
            os_version: s("os.version"),
            os_features: features,
            variant: s("variant"),
            features: Vec::new(),
        })
    }
}

fn remote_error(r: &ImageRef, e: DistributionError) -> anyhow::Error {
    match e {
        DistributionError::ManifestUnknown { .. } | DistributionError::RepositoryNotFound { .. } => {
            Exit::new(1, format!("no such manifest: {r}")).into()
        }
        e => Exit::new(1, format!("{e}")).into(),
    }
}

/// A stored entry for one fetched image manifest.
fn entry_for(reference: &ImageRef, got: &Resolved, platform: Plat) -> Result<Entry> {
    let doc: ImageManifestDoc =
        serde_json::from_slice(&got.manifest_raw).with_context(|| format!("{reference}: unreadable image manifest"))?;
    let oci_kind = got.media_type == OCI_MANIFEST;
    Ok(Entry {
        reference: reference.to_string(),
        descriptor: OciDesc {
            media_type: got.media_type.clone(),
            digest: got.manifest_digest.to_string(),
            size: got.manifest_raw.len() as u64,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: Some(platform),
        },
        raw: got.manifest_raw.clone(),
        schema_v2: (!oci_kind).then(|| doc.clone()),
        oci: oci_kind.then_some(doc),
    })
}

/// The list docker builds from local entries: an OCI index when the first entry is OCI.
fn list_of(entries: &[Entry]) -> ListDoc {
    let media_type = match entries.first() {
        Some(e) if e.oci.is_some() => OCI_INDEX,
        _ => DOCKER_LIST,
    };
    ListDoc {
        schema_version: 2,
        media_type: media_type.to_string(),
        manifests: entries.iter().map(Entry::list_desc).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// The commands.

fn inspect(refs: &[String], insecure: bool, verbose: bool) -> Result<()> {
    if let [list, manifest] = refs {
        // One entry of a local list.
        let list = parse_ref(list)?;
        let manifest = parse_ref(manifest)?;
        let path = list_dir(&list)?.join(filesafe(&manifest));
        if !path.is_file() {
            return Err(no_such(&manifest));
        }
        let e = read_entry(&path)?;
        return print_entry(&e, verbose);
    }
    let r = parse_ref(&refs[0])?;
    if let Some(entries) = read_list(&r)? {
        return print_list(&entries, &list_of(&entries), verbose);
    }
    let remote = Remote::new(&r.registry, insecure)?;
    let got = remote.fetch(&r)?;
    match &got.index {
        None => {
            let platform = remote.platform_of(&r, &got)?;
            print_entry(&entry_for(&r, &got, platform)?, verbose)
        }
        Some((_, raw)) => {
            let list: ListDoc =
                serde_json::from_slice(raw).with_context(|| format!("{r}: unreadable manifest list"))?;
            let mut entries = Vec::new();
            if verbose {
                for d in &list.manifests {
                    let digest: Digest =
                        d.digest.parse().map_err(|e| anyhow!("{r}: entry digest {}: {e}", d.digest))?;
                    let child = r.with_digest(digest);
                    let got = remote.fetch(&child)?;
                    // Docker names each as the list's reference with the entry's digest.
                    let mut e = entry_for(&child, &got, d.platform.clone().unwrap_or_default())?;
                    e.reference = format!("{r}@{}", d.digest);
                    e.descriptor.annotations = d.annotations.clone();
                    entries.push(e);
                }
            }
            print_list(&entries, &ListDoc { schema_version: 2, ..list }, verbose)
        }
    }
}

fn print_entry(e: &Entry, verbose: bool) -> Result<()> {
    if verbose {
        println!("{}", String::from_utf8(to_indented(e, b"\t")?)?);
    } else {
        println!("{}", indent_raw(&e.raw));
    }
    Ok(())
}

fn print_list(entries: &[Entry], list: &ListDoc, verbose: bool) -> Result<()> {
    if verbose {
        println!("{}", String::from_utf8(to_indented(&entries, b"\t")?)?);
    } else {
        println!("{}", String::from_utf8(to_indented(list, b"   ")?)?);
    }
    Ok(())
}

fn create(list: &str, manifests: &[String], amend: bool, insecure: bool) -> Result<()> {
    let list_ref =
        ImageRef::parse(list).map_err(|e| Exit::new(1, format!("error parsing name for manifest list {list}: {e}")))?;
    let dir = list_dir(&list_ref)?;
    if dir.exists() && !amend {
        return Err(Exit::new(1, "refusing to amend an existing manifest list with no --amend flag".to_string()).into());
    }
    // Everything is fetched before anything is written: a failure leaves no partial list.
    let mut fetched = Vec::new();
    for m in manifests {
        let r = parse_ref(m)?;
        // Each from its own registry (a list of another registry's images is refused at push,
        // as docker's is).
        let remote = Remote::new(&r.registry, insecure)?;
        let got = remote.fetch(&r)?;
        if got.index.is_some() {
            return Err(Exit::new(1, format!("{r} is a manifest list")).into());
        }
        let platform = remote.platform_of(&r, &got)?;
        fetched.push((r.clone(), entry_for(&r, &got, platform)?));
    }
    for (r, e) in &fetched {
        write_entry(&dir, r, e)?;
    }
    println!("Created manifest list {list_ref}");
    Ok(())
}

struct Annotation {
    arch: Option<String>,
    os: Option<String>,
    os_features: Option<Vec<String>>,
    os_version: Option<String>,
    variant: Option<String>,
}

/// Go's GOOS and GOARCH values: docker refuses an os/arch outside them.
const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "illumos",
    "ios",
    "js",
    "linux",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
];
const KNOWN_ARCH: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64",
    "s390x", "wasm",
];

fn annotate(list: &str, manifest: &str, a: Annotation) -> Result<()> {
    let list_ref = parse_ref(list)?;
    let r = parse_ref(manifest)?;
    let path = list_dir(&list_ref)?.join(filesafe(&r));
    if !path.is_file() {
        return Err(Exit::new(1, format!("manifest for image {r} does not exist in {list_ref}")).into());
    }
    let mut e = read_entry(&path)?;
    let mut p = e.descriptor.platform.clone().unwrap_or_default();
    if let Some(os) = a.os {
        p.os = os;
    }
    if let Some(arch) = a.arch {
        p.architecture = arch;
    }
    if let Some(v) = a.variant {
        p.variant = v;
    }
    if let Some(v) = a.os_version {
        p.os_version = v;
    }
    if let Some(f) = a.os_features {
        p.os_features = f.into_iter().filter(|s| !s.is_empty()).collect();
    }
    if !KNOWN_OS.contains(&p.os.as_str()) || !KNOWN_ARCH.contains(&p.architecture.as_str()) {
        return Err(Exit::new(
            1,
            format!(
                "manifest entry for image has unsupported os/arch or os/arch/variant combination: {}/{}/{}",
                p.os, p.architecture, p.variant
            ),
        )
        .into());
    }
    e.descriptor.platform = Some(p);
    write_entry(&list_dir(&list_ref)?, &r, &e)
}

fn push(list: &str, insecure: bool, purge: bool) -> Result<()> {
    let list_ref = parse_ref(list)?;
    let entries = match read_list(&list_ref)? {
        Some(e) if !e.is_empty() => e,
        _ => return Err(no_such(&list_ref)),
    };
    // Blobs are mounted from the entries' repositories: all must be in the list's registry.
    // Checked before anything is sent.
    for e in &entries {
        let src = parse_ref(&e.reference)?;
        if src.registry != list_ref.registry {
            return Err(Exit::new(
                1,
                format!(
                    "cannot use source images from a different registry than the target image: {} != {}",
                    src.registry, list_ref.registry
                ),
            )
            .into());
        }
    }
    let remote = Remote::new(&list_ref.registry, insecure)?;
    let auth = remote.auth(&list_ref.registry)?;
    let ep = remote.client.push_endpoint(&list_ref, auth.as_ref()).map_err(|e| remote_error(&list_ref, e))?;
    for e in &entries {
        let src = parse_ref(&e.reference)?;
        if src.repository == list_ref.repository {
            continue;
        }
        // An entry from another repository: its blobs are mounted into the list's repository
        // and its manifest put there by digest, as docker does.
        let m = e.manifest().ok_or_else(|| anyhow!("entry {} holds no parsed manifest", e.reference))?;
        for d in std::iter::once(&m.config).chain(&m.layers) {
            push_blob(&remote, &list_ref, &ep, &src, d, auth.as_ref())?;
        }
        let digest = remote
            .client
            .put_manifest(&list_ref, &ep, &e.descriptor.digest, &e.descriptor.media_type, &e.raw, auth.as_ref())
            .map_err(|err| remote_error(&list_ref, err))?;
        println!("Pushed ref {}@{} with digest: {digest}", list_ref.name(), e.descriptor.digest);
    }
    let list_doc = list_of(&entries);
    let raw = to_indented(&list_doc, b"   ")?;
    let reference = match (&list_ref.digest, &list_ref.tag) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.clone(),
        (None, None) => "latest".to_string(),
    };
    let digest = remote
        .client
        .put_manifest(&list_ref, &ep, &reference, &list_doc.media_type, &raw, auth.as_ref())
        .map_err(|e| remote_error(&list_ref, e))?;
    println!("{digest}");
    if purge {
        let dir = list_dir(&list_ref)?;
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Makes a blob of `src` present in the list's repository: already there, mounted, or (when
/// the registry will not mount) copied through this process.
fn push_blob(
    remote: &Remote,
    target: &ImageRef,
    ep: &wharf_distribution::Endpoint,
    src: &ImageRef,
    d: &ListDesc,
    auth: Option<&AuthConfig>,
) -> Result<()> {
    let digest: Digest = d.digest.parse().map_err(|e| anyhow!("blob digest {}: {e}", d.digest))?;
    let err = |e| remote_error(target, e);
    if remote.client.blob_exists(target, ep, &digest, auth).map_err(err)? {
        return Ok(());
    }
    let session = match remote.client.mount_blob(target, ep, &digest, &src.repository, auth).map_err(err)? {
        Mount::Mounted => return Ok(()),
        Mount::Upload(url) => url,
    };
    let desc = oci::Descriptor {
        media_type: d.media_type.clone(),
        digest,
        size: d.size,
        urls: Vec::new(),
        annotations: BTreeMap::new(),
        platform: None,
    };
    let open = || remote.client.open_blob(src, ep, &desc, 0, auth).map_err(|e| std::io::Error::other(e.to_string()));
    let progress: wharf_distribution::UploadProgress = std::sync::Arc::new(|_| {});
    remote.client.upload_blob(target, ep, session, &desc, &open, None, progress, auth).map_err(err)
}

fn rm(lists: &[String]) -> Result<()> {
    let mut failed = false;
    for l in lists {
        let r = match parse_ref(l) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{e}");
                failed = true;
                continue;
            }
        };
        let dir = list_dir(&r)?;
        if dir.is_dir() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        } else {
            eprintln!("No such manifest: {r}");
            failed = true;
        }
    }
    if failed {
        return Err(Exit::silent(1).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indent_raw_is_go_json_indent() {
        let raw = b"{\n   \"a\": [ ],\n \"b\": {\"c\": \"x: {y}, \\\"z\\\"\", \"d\": [1, 2]}}";
        assert_eq!(
            indent_raw(raw),
            "{\n\t\"a\": [],\n\t\"b\": {\n\t\t\"c\": \"x: {y}, \\\"z\\\"\",\n\t\t\"d\": [\n\t\t\t1,\n\t\t\t2\n\t\t]\n\t}\n}"
        );
    }

    #[test]
    fn filesafe_names_as_docker() {
        let r = ImageRef::parse("127.0.0.1:5000/test/ml:v1").unwrap();
        assert_eq!(filesafe(&r), "127.0.0.1-5000_test_ml-v1");
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(filesafe(&r), "docker.io_library_busybox-latest");
    }

    #[test]
    fn platform_fields_in_docker_order() {
        let p = Plat {
            architecture: "arm64".into(),
            os: "linux".into(),
            os_version: "1.0".into(),
            os_features: vec!["f1".into()],
            variant: "v8".into(),
            features: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"architecture":"arm64","os":"linux","os.version":"1.0","os.features":["f1"],"variant":"v8"}"#
        );
    }
}
