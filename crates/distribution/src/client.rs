//! The registry client: endpoint fallback, the authentication dance, manifests and blobs.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use wharf_http::{Body, Connector, ConnectorOptions, HttpError, Request, Response, Scheme, Url};
use wharf_types::oci::{self, Descriptor, Manifest, ManifestKind, Platform};
use wharf_types::{Digest, ImageRef};

use crate::auth::{basic_header, challenges_of, Challenge, TokenCache, TokenResponse};
use crate::endpoint::{origin_urls, InsecureList};
use crate::range::ContentRange;
use crate::{AuthConfig, DistributionError, Endpoint, RegistryConfig};

/// The `Accept` header of a manifest request: every manifest and index type we can use.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

const MAX_REDIRECTS: usize = 10;
/// Error bodies and token responses are small; anything bigger is not worth reading.
const MAX_SMALL_BODY: u64 = 1 << 20;
/// How long a Basic `Authorization` value is reused without a new challenge.
const BASIC_LIFETIME: Duration = Duration::from_secs(3600);

/// What a tag or digest resolved to, for one platform.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The digest of what the reference points to (index or manifest): the RepoDigest.
    pub digest: Digest,
    /// The digest of the platform-specific image manifest.
    pub manifest_digest: Digest,
    pub manifest: Manifest,
    pub manifest_raw: Vec<u8>,
    /// The media type of the image manifest.
    pub media_type: String,
    /// The index (digest and body) when the reference pointed to one.
    pub index: Option<(Digest, Vec<u8>)>,
    /// Where it came from: fetch the blobs there.
    pub endpoint: Endpoint,
}

/// A registry client. `Send + Sync`; caches bearer tokens per (registry, scope) and which scheme
/// an insecure registry speaks.
pub struct RegistryClient {
    pub(crate) user_agent: String,
    mirrors: Vec<Url>,
    insecure: InsecureList,
    pub(crate) connector: Connector,
    pub(crate) tokens: TokenCache,
    schemes: Mutex<HashMap<String, Scheme>>,
}

/// The operation being done, for error messages and the auth scope.
pub(crate) struct Op<'a> {
    /// `pull 127.0.0.1:5000/x:1`
    pub(crate) what: String,
    /// `127.0.0.1:5000/x`
    pub(crate) name: String,
    pub(crate) repo: &'a str,
    pub(crate) auth: Option<&'a AuthConfig>,
    /// The actions of the token scope: `pull`, or `pull,push`.
    pub(crate) actions: &'static str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    Manifest,
    Blob,
}

impl RegistryClient {
    /// A client with the default time-outs: 10 s to connect, 30 s without progress on a read.
    pub fn new(cfg: RegistryConfig) -> Result<RegistryClient, DistributionError> {
        Self::with_timeouts(cfg, Duration::from_secs(10), Duration::from_secs(30))
    }

    pub fn with_timeouts(
        cfg: RegistryConfig,
        connect: Duration,
        idle: Duration,
    ) -> Result<RegistryClient, DistributionError> {
        let mut mirrors = Vec::new();
        for m in &cfg.mirrors {
            let url =
                Url::parse(m.trim()).map_err(|e| DistributionError::Config(format!("registry mirror {m:?}: {e}")))?;
            mirrors.push(url);
        }
        let insecure = InsecureList::parse(&cfg.insecure)?;
        let opts = ConnectorOptions {
            connect_timeout: connect,
            io_timeout: Some(idle),
            certs_dir: cfg.certs_dir.clone(),
            proxy: cfg.proxy.clone(),
            ..ConnectorOptions::default()
        };
        let connector = Connector::new(opts).map_err(|e| DistributionError::Config(e.to_string()))?;
        let user_agent = if cfg.user_agent.is_empty() { "wharf".to_string() } else { cfg.user_agent };
        Ok(RegistryClient {
            user_agent,
            mirrors,
            insecure,
            connector,
            tokens: TokenCache::default(),
            schemes: Mutex::new(HashMap::new()),
        })
    }

    /// Resolves a tag or digest to the image manifest for `platform`, verifying digests.
    pub fn resolve(
        &self,
        r: &ImageRef,
        platform: &Platform,
        auth: Option<&AuthConfig>,
    ) -> Result<Resolved, DistributionError> {
        let op = op_for(r, auth);
        let reference = match (&r.digest, &r.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => wharf_types::reference::DEFAULT_TAG.to_string(),
        };
        self.with_endpoints(r, true, |ep| self.resolve_at(&op, ep, r, &reference, platform))
    }

    /// Fetches a small blob (an image config) whole, verifying its size and digest.
    pub fn fetch_blob(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        desc: &Descriptor,
        max_size: u64,
        auth: Option<&AuthConfig>,
    ) -> Result<Vec<u8>, DistributionError> {
        let op = op_for(r, auth);
        let what = format!("blob {}", desc.digest);
        if desc.size > max_size {
            return Err(DistributionError::TooLarge { op: op.what, what, limit: max_size });
        }
        let mut body = self.open_blob(r, ep, desc, 0, auth)?;
        let mut data = Vec::new();
        body.by_ref().take(max_size.saturating_add(1)).read_to_end(&mut data).map_err(|e| DistributionError::Http {
            op: op.what.clone(),
            url: what.clone(),
            source: HttpError::io("read", e),
        })?;
        verify(&op, &what, &data, &desc.digest, desc.size)?;
        Ok(data)
    }

    /// Opens a blob for streaming from `offset` on. Follows redirects (without sending the
    /// registry's credentials to another host). When a mirror fails, the origin is tried. The
    /// caller verifies the digest.
    pub fn open_blob(
        &self,
        r: &ImageRef,
        ep: &Endpoint,
        desc: &Descriptor,
        offset: u64,
        auth: Option<&AuthConfig>,
    ) -> Result<Box<dyn Read + Send>, DistributionError> {
        let op = op_for(r, auth);
        match self.open_blob_at(&op, ep, desc, offset) {
            Ok(body) => Ok(body),
            Err(e) if ep.mirror => {
                log::warn!("{e}; trying the origin registry");
                self.with_endpoints(r, false, |origin| self.open_blob_at(&op, origin, desc, offset))
            }
            Err(e) => Err(e),
        }
    }

    /// A manifest by tag or digest exactly as the registry serves it: its bytes (checked when
    /// `reference` is a digest) and media type. For a pull-through cache, which passes them on.
    pub fn raw_manifest(
        &self,
        r: &ImageRef,
        reference: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<(Vec<u8>, String), DistributionError> {
        let op = op_for(r, auth);
        let (raw, content_type) = self.with_endpoints(r, false, |ep| self.fetch_manifest(&op, ep, reference))?;
        if let Ok(want) = reference.parse::<Digest>() {
            let got = Digest::of(&raw);
            if got != want {
                return Err(DistributionError::DigestMismatch {
                    op: op.what.clone(),
                    what: "manifest".to_string(),
                    expected: want.to_string(),
                    actual: got.to_string(),
                });
            }
        }
        Ok((raw, content_type))
    }

    /// The digest `reference` names now, from a HEAD request's `Docker-Content-Digest`; `None`
    /// when the registry does not send one.
    pub fn manifest_digest(
        &self,
        r: &ImageRef,
        reference: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<Digest>, DistributionError> {
        let op = op_for(r, auth);
        let target = format!("/v2/{}/manifests/{reference}", op.repo);
        let headers = [("Accept".to_string(), MANIFEST_ACCEPT.to_string())];
        self.with_endpoints(r, false, |ep| {
            let (url, resp) =
                self.registry_send(&op, ep, "HEAD", ep.url_for(&target), &headers, &mut || Ok(Body::Empty))?;
            if resp.status != 200 {
                return Err(status_error(&op, &url, resp, Subject::Manifest, None));
            }
            Ok(resp.header("Docker-Content-Digest").and_then(|d| d.trim().parse().ok()))
        })
    }

    /// Opens a whole blob for streaming when its size is not known beforehand: the reader and
    /// the size the registry declares (`Content-Length`), if it does. The caller verifies it.
    pub fn open_blob_sized(
        &self,
        r: &ImageRef,
        digest: &Digest,
        auth: Option<&AuthConfig>,
    ) -> Result<(Box<dyn Read + Send>, Option<u64>), DistributionError> {
        let op = op_for(r, auth);
        let target = format!("/v2/{}/blobs/{digest}", op.repo);
        self.with_endpoints(r, false, |ep| {
            let (url, resp) = self.registry_get(&op, ep, &target, &[])?;
            if resp.status != 200 {
                return Err(status_error(&op, &url, resp, Subject::Blob, Some(digest)));
            }
            let size = resp.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
            Ok((resp.into_body(), size))
        })
    }

    fn open_blob_at(
        &self,
        op: &Op,
        ep: &Endpoint,
        desc: &Descriptor,
        offset: u64,
    ) -> Result<Box<dyn Read + Send>, DistributionError> {
        let target = format!("/v2/{}/blobs/{}", op.repo, desc.digest);
        let mut headers = Vec::new();
        if offset > 0 {
            headers.push(("Range".to_string(), format!("bytes={offset}-")));
        }
        let (url, resp) = self.registry_get(op, ep, &target, &headers)?;
        match resp.status {
            200 => {
                let mut body = resp.into_body();
                if offset > 0 {
                    // The server ignored the range: skip what the caller already has.
                    let skipped = io::copy(&mut body.by_ref().take(offset), &mut io::sink()).map_err(|e| {
                        DistributionError::Http {
                            op: op.what.clone(),
                            url: url.to_string(),
                            source: HttpError::io("read", e),
                        }
                    })?;
                    if skipped != offset {
                        return Err(DistributionError::SizeMismatch {
                            op: op.what.clone(),
                            what: format!("blob {}", desc.digest),
                            expected: offset,
                            actual: skipped,
                        });
                    }
                }
                Ok(body)
            }
            206 if offset > 0 => {
                let range = resp.header("Content-Range").unwrap_or("");
                if !ContentRange::parse(range).is_some_and(|r| r.is_rest_of(offset, desc.size)) {
                    return Err(DistributionError::Registry {
                        op: op.what.clone(),
                        url: url.to_string(),
                        status: 206,
                        message: format!(
                            "unexpected Content-Range {range:?} for bytes {offset}- of a {}-byte blob",
                            desc.size
                        ),
                    });
                }
                Ok(resp.into_body())
            }
            _ => Err(status_error(op, &url, resp, Subject::Blob, Some(&desc.digest))),
        }
    }

    /// Runs `f` on each endpoint in turn: the mirrors (any failure moves on), then the origin
    /// (HTTPS, then HTTP for an insecure registry when HTTPS cannot be reached; its HTTPS
    /// certificate is not verified).
    pub(crate) fn with_endpoints<T>(
        &self,
        r: &ImageRef,
        mirrors: bool,
        mut f: impl FnMut(&Endpoint) -> Result<T, DistributionError>,
    ) -> Result<T, DistributionError> {
        if mirrors {
            for m in &self.mirrors {
                let ep = Endpoint { base: m.clone(), mirror: true };
                match f(&ep) {
                    Ok(v) => return Ok(v),
                    Err(e) => log::warn!("mirror {}: {e}; trying the next endpoint", m.origin()),
                }
            }
        }
        let known = self.schemes.lock().ok().and_then(|s| s.get(&r.registry).copied());
        let urls = origin_urls(&r.registry, &self.insecure, known)?;
        if self.insecure.allows(&r.registry) {
            // Docker: an insecure registry's HTTPS is tried without verifying its certificate.
            for u in urls.iter().filter(|u| u.scheme == Scheme::Https) {
                self.connector.skip_verification(u);
            }
        }
        let count = urls.len();
        let mut last = None;
        for (i, base) in urls.into_iter().enumerate() {
            let scheme = base.scheme;
            let ep = Endpoint { base, mirror: false };
            match f(&ep) {
                Ok(v) => {
                    if count > 1 {
                        if let Ok(mut s) = self.schemes.lock() {
                            s.insert(r.registry.clone(), scheme);
                        }
                    }
                    return Ok(v);
                }
                Err(e) if i + 1 < count && e.is_transport() => {
                    log::info!("{e}; trying plain http");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DistributionError::Config(format!("no endpoint for registry {}", r.registry))))
    }

    fn resolve_at(
        &self,
        op: &Op,
        ep: &Endpoint,
        r: &ImageRef,
        reference: &str,
        platform: &Platform,
    ) -> Result<Resolved, DistributionError> {
        let (raw, content_type) = self.fetch_manifest(op, ep, reference)?;
        let digest = Digest::of(&raw);
        if let Some(want) = &r.digest {
            if *want != digest {
                return Err(DistributionError::DigestMismatch {
                    op: op.what.clone(),
                    what: "manifest".to_string(),
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let invalid = |message: String| DistributionError::InvalidManifest { op: op.what.clone(), message };
        match oci::parse_manifest(&content_type, &raw).map_err(invalid)? {
            ManifestKind::Manifest(manifest) => {
                let media_type = manifest_media_type(&content_type, &manifest);
                Ok(Resolved {
                    manifest_digest: digest.clone(),
                    digest,
                    manifest,
                    manifest_raw: raw,
                    media_type,
                    index: None,
                    endpoint: ep.clone(),
                })
            }
            ManifestKind::Index(index) => {
                let desc = index.select(platform).ok_or_else(|| {
                    let available: Vec<String> =
                        index.manifests.iter().filter_map(|d| d.platform.as_ref()).map(platform_string).collect();
                    DistributionError::NoMatchingPlatform {
                        op: op.what.clone(),
                        wanted: platform_string(platform),
                        available: if available.is_empty() { "none".to_string() } else { available.join(", ") },
                    }
                })?;
                let (mraw, mct) = self.fetch_manifest(op, ep, &desc.digest.to_string())?;
                verify(op, "manifest", &mraw, &desc.digest, desc.size)?;
                let mt = if desc.media_type.is_empty() { mct } else { desc.media_type.clone() };
                let manifest = match oci::parse_manifest(&mt, &mraw).map_err(invalid)? {
                    ManifestKind::Manifest(m) => m,
                    ManifestKind::Index(_) => {
                        return Err(invalid(format!("index entry {} is itself an index", desc.digest)));
                    }
                };
                let media_type = manifest_media_type(&mt, &manifest);
                Ok(Resolved {
                    digest: digest.clone(),
                    manifest_digest: desc.digest.clone(),
                    manifest,
                    manifest_raw: mraw,
                    media_type,
                    index: Some((digest, raw)),
                    endpoint: ep.clone(),
                })
            }
        }
    }

    /// GETs a manifest body (bounded) and its Content-Type without parameters.
    fn fetch_manifest(&self, op: &Op, ep: &Endpoint, reference: &str) -> Result<(Vec<u8>, String), DistributionError> {
        let target = format!("/v2/{}/manifests/{reference}", op.repo);
        let headers = [("Accept".to_string(), MANIFEST_ACCEPT.to_string())];
        let (url, resp) = self.registry_get(op, ep, &target, &headers)?;
        if resp.status != 200 {
            return Err(status_error(op, &url, resp, Subject::Manifest, None));
        }
        let content_type = resp.header("Content-Type").unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
        let body = resp.read_body(oci::MAX_MANIFEST_SIZE).map_err(|e| match e {
            HttpError::BodyTooLarge(limit) => {
                DistributionError::TooLarge { op: op.what.clone(), what: "manifest".to_string(), limit }
            }
            source => DistributionError::Http { op: op.what.clone(), url: url.to_string(), source },
        })?;
        Ok((body, content_type))
    }

    /// GETs `target` on an endpoint: cached credentials first, and on a 401 one more try after
    /// answering the challenge. Returns the final URL (after redirects) and the response.
    fn registry_get(
        &self,
        op: &Op,
        ep: &Endpoint,
        target: &str,
        headers: &[(String, String)],
    ) -> Result<(Url, Response), DistributionError> {
        self.registry_send(op, ep, "GET", ep.url_for(target), headers, &mut || Ok(Body::Empty))
    }

    /// Sends a request to a registry endpoint: cached credentials first, and on a 401 one more
    /// try after answering the challenge (`body` is called again for it). GET and HEAD follow
    /// redirects. Returns the final URL and the response.
    pub(crate) fn registry_send(
        &self,
        op: &Op,
        ep: &Endpoint,
        method: &str,
        url: Url,
        headers: &[(String, String)],
        body: &mut dyn FnMut() -> Result<Body, DistributionError>,
    ) -> Result<(Url, Response), DistributionError> {
        // A login asks for no repository: its token has no scope.
        let scope = if op.repo.is_empty() { String::new() } else { format!("repository:{}:{}", op.repo, op.actions) };
        // Credentials belong to the origin registry; a mirror gets none of them.
        let auth = if ep.mirror { None } else { op.auth };
        let registry = token_key(ep, auth);
        let mut authz = self.tokens.get(&registry, &scope).or_else(|| self.tokens.get(&registry, ""));
        if authz.is_none() {
            authz = auth.and_then(AuthConfig::registry_token).map(|t| format!("Bearer {t}"));
        }
        let mut answered = false;
        loop {
            let (final_url, resp) = self.send_following(op, method, url.clone(), headers, authz.as_deref(), body()?)?;
            if resp.status != 401 {
                return Ok((final_url, resp));
            }
            let challenges = challenges_of(&resp.headers);
            let unauthorized = |detail: String| DistributionError::Unauthorized {
                op: op.what.clone(),
                registry: ep.base.host_header(),
                detail,
            };
            if answered {
                self.tokens.forget(&registry, &scope);
                self.tokens.forget(&registry, "");
                let message = error_message(resp);
                return Err(unauthorized(if message.is_empty() { String::new() } else { format!(": {message}") }));
            }
            answered = true;
            authz = Some(self.answer_challenge(op, &registry, &scope, &challenges, auth, &unauthorized)?);
        }
    }

    /// Turns a challenge into an `Authorization` value: a bearer token from the token server,
    /// or Basic credentials. Caches it.
    pub(crate) fn answer_challenge(
        &self,
        op: &Op,
        registry: &str,
        scope: &str,
        challenges: &[Challenge],
        auth: Option<&AuthConfig>,
        unauthorized: &dyn Fn(String) -> DistributionError,
    ) -> Result<String, DistributionError> {
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(op, c, scope, auth, false, unauthorized)?;
            let value = format!("Bearer {}", token.bearer().unwrap_or_default());
            self.tokens.put(registry, scope, value.clone(), token.lifetime());
            return Ok(value);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let (user, password) = auth
                .and_then(AuthConfig::basic_credentials)
                .ok_or_else(|| unauthorized(": no credentials given".to_string()))?;
            let value = basic_header(&user, &password);
            self.tokens.put(registry, "", value.clone(), BASIC_LIFETIME);
            return Ok(value);
        }
        Err(unauthorized(": no supported authentication challenge".to_string()))
    }

    /// Asks the token server of a Bearer challenge for a token: an OAuth2 POST when we hold a
    /// refresh (identity) token, else a GET with Basic credentials when given; `offline` asks
    /// for a refresh token too, as `docker login` does.
    pub(crate) fn fetch_token(
        &self,
        op: &Op,
        c: &Challenge,
        scope: &str,
        auth: Option<&AuthConfig>,
        offline: bool,
        unauthorized: &dyn Fn(String) -> DistributionError,
    ) -> Result<TokenResponse, DistributionError> {
        let realm = c.param("realm").unwrap_or("");
        let token_err =
            |message: String| DistributionError::Token { op: op.what.clone(), realm: realm.to_string(), message };
        let realm_url = Url::parse(realm).map_err(|e| token_err(e.to_string()))?;
        let service = c.param("service").unwrap_or("");
        let http_err =
            |url: &Url, source| DistributionError::Http { op: op.what.clone(), url: url.to_string(), source };

        let resp = if let Some(refresh) = auth.and_then(AuthConfig::identity_token) {
            let mut form = format!(
                "grant_type=refresh_token&client_id=wharf&service={}&refresh_token={}",
                wharf_types::percent::encode(service),
                wharf_types::percent::encode(refresh)
            );
            if !scope.is_empty() {
                form.push_str(&format!("&scope={}", wharf_types::percent::encode(scope)));
            }
            let req = Request::new("POST", &realm_url.target)
                .header("User-Agent", &self.user_agent)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(wharf_http::Body::Bytes(form.into_bytes()));
            self.connector.request(&realm_url, req).map_err(|e| http_err(&realm_url, e))?
        } else {
            let creds = auth.and_then(AuthConfig::basic_credentials);
            let mut query = format!("service={}", wharf_types::percent::encode(service));
            if !scope.is_empty() {
                query.push_str(&format!("&scope={}", wharf_types::percent::encode(scope)));
            }
            if let Some((user, _)) = &creds {
                query.push_str(&format!("&account={}", wharf_types::percent::encode(user)));
            }
            if offline {
                query.push_str("&offline_token=true&client_id=wharf");
            }
            let sep = if realm_url.target.contains('?') { '&' } else { '?' };
            let url = realm_url.with_target(&format!("{}{sep}{query}", realm_url.target));
            let authz = creds.map(|(u, p)| basic_header(&u, &p));
            self.send_following(op, "GET", url, &[], authz.as_deref(), Body::Empty)?.1
        };
        match resp.status {
            200 => {}
            401 | 403 => {
                let message = error_message(resp);
                return Err(unauthorized(if message.is_empty() { String::new() } else { format!(": {message}") }));
            }
            status => return Err(token_err(format!("answered {status}: {}", error_message(resp)))),
        }
        let body = resp.read_body(MAX_SMALL_BODY).map_err(|e| http_err(&realm_url, e))?;
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| token_err(format!("malformed token response: {e}")))?;
        if token.bearer().is_none() {
            return Err(token_err("token response holds no token".to_string()));
        }
        Ok(token)
    }

    /// Sends a request; GET and HEAD follow redirects. `authz` goes only to the host the
    /// request started at.
    pub(crate) fn send_following(
        &self,
        op: &Op,
        method: &str,
        start: Url,
        headers: &[(String, String)],
        authz: Option<&str>,
        body: Body,
    ) -> Result<(Url, Response), DistributionError> {
        let mut url = start.clone();
        let mut body = Some(body);
        let follows = matches!(method, "GET" | "HEAD");
        for _ in 0..=MAX_REDIRECTS {
            let http_err = |source| DistributionError::Http { op: op.what.clone(), url: url.to_string(), source };
            let mut req = Request::new(method, &url.target)
                .header("User-Agent", &self.user_agent)
                .body(body.take().unwrap_or(Body::Empty));
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(a) = authz {
                if url.scheme == start.scheme && url.host_port() == start.host_port() {
                    req = req.header("Authorization", a);
                }
            }
            let resp = self.connector.request(&url, req).map_err(http_err)?;
            if !follows || !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
                return Ok((url, resp));
            }
            let next = match resp.header("Location") {
                Some(loc) => url.join(loc).map_err(http_err)?,
                None => {
                    return Err(DistributionError::Registry {
                        op: op.what.clone(),
                        url: url.to_string(),
                        status: resp.status,
                        message: "redirect without a Location".to_string(),
                    })
                }
            };
            log::debug!("{url} redirects to {next}");
            url = next;
        }
        Err(DistributionError::Registry {
            op: op.what.clone(),
            url: url.to_string(),
            status: 310,
            message: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }
}

/// The token cache key of a registry and the credentials a request came with: what one
/// client's credentials earned is never used for another's request.
pub(crate) fn token_key(ep: &Endpoint, auth: Option<&AuthConfig>) -> String {
    let identity = auth.map(|a| {
        let (user, password) = a.basic_credentials().unwrap_or_default();
        let secret =
            format!("{user}\0{password}\0{}\0{}", a.identity_token().unwrap_or(""), a.registry_token().unwrap_or(""));
        Digest::of(secret.as_bytes()).hex_prefix(16).to_string()
    });
    format!("{}#{}", ep.base.host_port(), identity.as_deref().unwrap_or("anonymous"))
}

fn op_for<'a>(r: &'a ImageRef, auth: Option<&'a AuthConfig>) -> Op<'a> {
    Op { what: format!("pull {r}"), name: r.name(), repo: &r.repository, auth, actions: "pull" }
}

fn verify(op: &Op, what: &str, data: &[u8], digest: &Digest, size: u64) -> Result<(), DistributionError> {
    if data.len() as u64 != size {
        return Err(DistributionError::SizeMismatch {
            op: op.what.clone(),
            what: what.to_string(),
            expected: size,
            actual: data.len() as u64,
        });
    }
    let actual = Digest::of(data);
    if actual != *digest {
        return Err(DistributionError::DigestMismatch {
            op: op.what.clone(),
            what: what.to_string(),
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn manifest_media_type(content_type: &str, manifest: &Manifest) -> String {
    match content_type {
        oci::MEDIA_OCI_MANIFEST | oci::MEDIA_DOCKER_MANIFEST => content_type.to_string(),
        _ => manifest.media_type.clone().unwrap_or_else(|| oci::MEDIA_OCI_MANIFEST.to_string()),
    }
}

fn platform_string(p: &Platform) -> String {
    match &p.variant {
        Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
        None => format!("{}/{}", p.os, p.architecture),
    }
}

/// The registry's error body: `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}`.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<RegistryErrorEntry>,
}

#[derive(Deserialize)]
struct RegistryErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

fn error_entries(body: &[u8]) -> Vec<RegistryErrorEntry> {
    serde_json::from_slice::<ErrorBody>(body).map(|b| b.errors).unwrap_or_default()
}

/// A short message from an error response: the registry's error entries, the token server's
/// `details`, or the start of the body.
pub(crate) fn error_message(resp: Response) -> String {
    let body = resp.read_body(MAX_SMALL_BODY).unwrap_or_default();
    let entries = error_entries(&body);
    if !entries.is_empty() {
        return entries
            .iter()
            .map(|e| format!("{}: {}", e.code.to_lowercase().replace('_', " "), e.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    text.chars().take(200).collect()
}

pub(crate) fn status_error(
    op: &Op,
    url: &Url,
    resp: Response,
    subject: Subject,
    digest: Option<&Digest>,
) -> DistributionError {
    let status = resp.status;
    let body = resp.read_body(MAX_SMALL_BODY).unwrap_or_default();
    let entries = error_entries(&body);
    let has = |code: &str| entries.iter().any(|e| e.code == code);
    let message = if entries.is_empty() {
        String::from_utf8_lossy(&body).trim().chars().take(200).collect()
    } else {
        entries.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; ")
    };
    match status {
        404 if has("NAME_UNKNOWN") => {
            DistributionError::RepositoryNotFound { op: op.what.clone(), name: op.name.clone() }
        }
        404 if subject == Subject::Blob || has("BLOB_UNKNOWN") => DistributionError::BlobUnknown {
            op: op.what.clone(),
            digest: digest.map(|d| d.to_string()).unwrap_or_default(),
        },
        404 => DistributionError::ManifestUnknown { op: op.what.clone() },
        403 => DistributionError::Denied {
            op: op.what.clone(),
            registry: url.host_header(),
            message: if message.is_empty() {
                "requested access to the resource is denied".to_string()
            } else {
                message
            },
        },
        _ => DistributionError::Registry { op: op.what.clone(), url: url.to_string(), status, message },
    }
}
