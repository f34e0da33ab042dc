//! Authentication as Docker's registry token spec describes it: users with salted PBKDF2
//! password hashes, signed JWT bearer tokens (HS256, a key of this registry's own), and the
//! check of a request's credentials against the access it needs. Nothing here knows HTTP:
//! the handlers pass headers in and map [`Decision`]s to answers.
//!
//! HS256 (a shared secret) suits a single node that both issues and verifies its tokens; a
//! third party verifying them (another registry behind the same token server) would need an
//! asymmetric signature, RS256 or ES256, and a published key.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest as _, Sha256};

use crate::meta::{now, MetaError, Metadata, UserRecord};
use crate::store::random_hex;

pub const ADMIN: &str = "admin";
/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// How long a refresh token (what `docker login` keeps) is good for.
const REFRESH_LIFETIME: Duration = Duration::from_secs(90 * 86400);
/// Clock skew allowed on `nbf` and `exp`.
const LEEWAY: u64 = 30;

// ---------------------------------------------------------------------------------------------
// Primitives

/// HMAC-SHA256 (RFC 2104) with its key's inner and outer states prepared once, so that
/// PBKDF2's many rounds hash only what changes.
#[derive(Clone)]
struct Hmac {
    inner: Sha256,
    outer: Sha256,
}

impl Hmac {
    fn new(key: &[u8]) -> Hmac {
        const BLOCK: usize = 64;
        let mut k = [0u8; BLOCK];
        if key.len() > BLOCK {
            k[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut inner = Sha256::new();
        inner.update(k.map(|b| b ^ 0x36));
        let mut outer = Sha256::new();
        outer.update(k.map(|b| b ^ 0x5c));
        Hmac { inner, outer }
    }

    fn mac(&self, msg: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(msg);
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    Hmac::new(key).mac(msg)
}

/// PBKDF2-HMAC-SHA256 (RFC 8018) with a 32-byte output (one block).
///
/// The rounds after the first hash a 32-byte value each: with the key's inner and outer
/// states computed once, a round is exactly two SHA-256 compressions, done with sha2's raw
/// compression function (which also keeps them fast in an unoptimised build of this crate).
pub fn pbkdf2_sha256(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &first);
    let mut out = u;
    let (inner, outer) = key_states(password);
    for _ in 1..iterations {
        u = finish_block(inner, &u);
        u = finish_block(outer, &u);
        for (o, b) in out.iter_mut().zip(u.iter()) {
            *o ^= b;
        }
    }
    out
}

const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/// The SHA-256 states after the key's ipad and opad blocks.
fn key_states(key: &[u8]) -> ([u32; 8], [u32; 8]) {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let state = |pad: u8| {
        let mut st = SHA256_IV;
        let block = GenericArray::clone_from_slice(&k.map(|b| b ^ pad));
        sha2::compress256(&mut st, &[block]);
        st
    };
    (state(0x36), state(0x5c))
}

/// SHA-256 of (the 64-byte block behind `state`) ‖ `msg`, for a 32-byte `msg`: one padded block.
fn finish_block(mut state: [u32; 8], msg: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(msg);
    block[32] = 0x80;
    block[56..].copy_from_slice(&((64u64 + 32) * 8).to_be_bytes());
    sha2::compress256(&mut state, &[GenericArray::clone_from_slice(&block)]);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// Equal without telling, by its timing, where two strings first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn hash_password(password: &str) -> std::io::Result<UserRecord> {
    let salt = random_hex(16)?;
    let hash = pbkdf2_sha256(password.as_bytes(), salt.as_bytes(), PBKDF2_ITERATIONS);
    Ok(UserRecord {
        id: 0,
        salt,
        hash: wharf_types::digest::to_hex(&hash),
        iterations: PBKDF2_ITERATIONS,
        admin: false,
        created: now(),
        email: String::new(),
        realname: String::new(),
    })
}

/// How long a password that passed PBKDF2 is taken again without it.
const VERIFIED_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// Remembered verifications at most (past it, the expired go, then all).
const VERIFIED_MAX: usize = 4096;

/// Passwords that passed PBKDF2 lately, by a keyed MAC of (stored hash, salt, password) under a
/// key of this process's: Basic credentials on every request (the REST API, curl, skopeo) then
/// cost one PBKDF2 per user a minute instead of one per request (measured: 8 MB/s instead of
/// 140 for blob pushes with Basic on every request, debug build). The stored hash is part of
/// the key, so a changed password misses at once; failures are never remembered, so every
/// wrong guess still pays the full PBKDF2 (and the rate limit).
///
/// One verification of given credentials runs at a time (`running`): a client that opens
/// several connections at once with the same Basic credentials (docker pushes layers four at
/// a time) waits for the first PBKDF2 instead of paying one per connection.
struct Verified {
    key: Vec<u8>,
    seen: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
    running: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
    done: std::sync::Condvar,
}

/// Marks a verification running until dropped, then wakes those waiting on it.
struct Running<'a>(&'a Verified, [u8; 32]);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.1);
        self.0.done.notify_all();
    }
}

impl Verified {
    fn new(key: Vec<u8>) -> Verified {
        Verified { key, seen: Default::default(), running: Default::default(), done: Default::default() }
    }

    fn recent(&self, mac: &[u8; 32]) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(mac).is_some_and(|t| t.elapsed() < VERIFIED_FOR)
    }

    fn remember(&self, mac: [u8; 32]) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= VERIFIED_MAX {
            seen.retain(|_, t| t.elapsed() < VERIFIED_FOR);
            if seen.len() >= VERIFIED_MAX {
                seen.clear();
            }
        }
        seen.insert(mac, std::time::Instant::now());
    }

    /// Whether the credentials behind `mac` pass: remembered, or `check` (the PBKDF2) run once
    /// for all the callers asking at the same moment.
    fn check(&self, mac: [u8; 32], check: impl FnOnce() -> bool) -> bool {
        if self.recent(&mac) {
            return true;
        }
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        while running.contains(&mac) {
            running = self.done.wait(running).unwrap_or_else(|p| p.into_inner());
            if self.recent(&mac) {
                return true;
            }
        }
        running.insert(mac);
        drop(running);
        let _turn = Running(self, mac);
        let ok = check();
        if ok {
            self.remember(mac);
        }
        ok
    }
}

static VERIFIED: std::sync::OnceLock<Option<Verified>> = std::sync::OnceLock::new();

fn verified() -> Option<&'static Verified> {
    VERIFIED.get_or_init(|| random_hex(32).ok().map(|k| Verified::new(k.into_bytes()))).as_ref()
}

fn verified_mac(c: &Verified, user: &UserRecord, password: &str) -> [u8; 32] {
    let msg = [user.hash.as_bytes(), user.salt.as_bytes(), password.as_bytes()].join(&0u8);
    hmac_sha256(&c.key, &msg)
}

pub fn verify_password(user: &UserRecord, password: &str) -> bool {
    let pbkdf2 = || {
        let got = pbkdf2_sha256(password.as_bytes(), user.salt.as_bytes(), user.iterations);
        constant_time_eq(wharf_types::digest::to_hex(&got).as_bytes(), user.hash.as_bytes())
    };
    match verified() {
        Some(c) => c.check(verified_mac(c, user, password), pbkdf2),
        None => pbkdf2(),
    }
}

/// Whether `password` passed [`verify_password`] for `user` lately (no PBKDF2 needed now).
pub fn password_remembered(user: &UserRecord, password: &str) -> bool {
    verified().is_some_and(|c| c.recent(&verified_mac(c, user, password)))
}

// ---------------------------------------------------------------------------------------------
// Access

/// One entry of a token's `access` claim, and one `scope` a client asks for:
/// `repository:library/busybox:pull,push`, `registry:catalog:*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn new(kind: &str, name: &str, actions: &[&str]) -> Access {
        Access { kind: kind.into(), name: name.into(), actions: actions.iter().map(|a| a.to_string()).collect() }
    }

    /// Parses a `scope` value; several are separated by spaces. Ill-formed ones are dropped,
    /// as distribution's token servers do: they grant nothing.
    pub fn parse_scopes(s: &str) -> Vec<Access> {
        s.split(' ')
            .filter_map(|one| {
                // The name may hold a colon (a port in `registry:host:5000/x` is not a thing
                // here, but be exact): type is before the first colon, actions after the last.
                let (kind, rest) = one.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                if kind.is_empty() || name.is_empty() {
                    return None;
                }
                let actions: Vec<String> = actions.split(',').filter(|a| !a.is_empty()).map(str::to_string).collect();
                Some(Access { kind: kind.into(), name: name.into(), actions })
            })
            .collect()
    }

    /// Whether this grant allows `action` on `kind:name`. `*` grants every action, and a
    /// `delete` is allowed by `delete` or `*`, as distribution has it.
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.kind == kind && self.name == name && self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// Who is asking: a user or a robot (checked), or nobody.
#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Anonymous,
    User {
        name: String,
        admin: bool,
    },
    /// A robot account (`robot$<project>+<name>`), enabled and not expired when it was checked.
    Robot {
        name: String,
        project: String,
        permissions: Vec<crate::harbor::rbac::RobotPermission>,
    },
}

impl Subject {
    /// The token's `sub`: the account name, empty for anonymous.
    pub fn name(&self) -> &str {
        match self {
            Subject::Anonymous => "",
            Subject::User { name, .. } | Subject::Robot { name, .. } => name,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
    /// `refresh` marks a refresh token, which is never accepted as an access token (and the
    /// other way round).
    #[serde(rename = "wharf_use")]
    pub token_use: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token signature is invalid")]
    Signature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token is for {0:?}, not this registry")]
    Audience(String),
    #[error("token was issued by {0:?}, not this registry")]
    Issuer(String),
    #[error("a {0} token is not usable here")]
    Use(String),
}

/// A key file's key; `None` when there is no file.
fn read_key(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match fs::read_to_string(path) {
        Ok(s) if s.trim().len() >= 64 => Ok(Some(s.trim().as_bytes().to_vec())),
        Ok(_) => Err(std::io::Error::other(format!("{} is too short to be a key", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Meta(#[from] MetaError),
}

/// Signs and checks this registry's tokens.
pub struct TokenSigner {
    key: Vec<u8>,
    pub issuer: String,
    pub service: String,
    pub lifetime: Duration,
}

impl TokenSigner {
    pub fn new(key: Vec<u8>, issuer: String, service: String, lifetime: Duration) -> TokenSigner {
        TokenSigner { key, issuer, service, lifetime }
    }

    /// The key kept in `dir/token.key` (0600), made on first use. Replicas that share the data
    /// dir may start together: each writes a candidate and links it into place, which only the
    /// first can do, and every one of them then signs with the key that won.
    pub fn load_key(dir: &Path) -> std::io::Result<Vec<u8>> {
        let path = dir.join("token.key");
        if let Some(key) = read_key(&path)? {
            return Ok(key);
        }
        let tmp = dir.join(format!("token.key.{}", random_hex(8)?));
        let made = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(random_hex(32)?.as_bytes())?;
            f.sync_all()?;
            match fs::hard_link(&tmp, &path) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
                _ => Ok(()),
            }
        })();
        let _ = fs::remove_file(&tmp);
        made?;
        read_key(&path)?.ok_or_else(|| std::io::Error::other(format!("{} vanished after it was made", path.display())))
    }

    /// The key a replica offers an index shared with others ([`Metadata::shared_token_key`]):
    /// `dir/token.key` when there is one, so that tokens (and the refresh tokens `docker login`
    /// keeps) issued before the key moved into the index stay good; else a new one.
    pub fn seed_key(dir: &Path) -> std::io::Result<Vec<u8>> {
        match read_key(&dir.join("token.key"))? {
            Some(key) => Ok(key),
            None => Ok(random_hex(32)?.into_bytes()),
        }
    }

    /// The signing key of a registry on `meta` with data dir `dir`: the index's when other
    /// replicas share it (their data dirs need not be shared, e.g. on S3), else the data dir's.
    pub fn key_for(meta: &dyn Metadata, dir: &Path) -> Result<Vec<u8>, KeyError> {
        match meta.shared_token_key(&TokenSigner::seed_key(dir)?)? {
            Some(key) => Ok(key),
            None => Ok(TokenSigner::load_key(dir)?),
        }
    }

    /// HMAC-SHA256 of `msg` under the signing key, for other signed values of this registry
    /// (the UI's sessions); callers put a purpose of their own in front of `msg`.
    pub fn mac(&self, msg: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.key, msg)
    }

    fn sign_claims(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{body}");
        let sig = URL_SAFE_NO_PAD.encode(hmac_sha256(&self.key, signing_input.as_bytes()));
        format!("{signing_input}.{sig}")
    }

    fn claims(&self, sub: &str, access: Vec<Access>, lifetime: Duration, token_use: &str) -> Claims {
        let t = now();
        Claims {
            iss: self.issuer.clone(),
            sub: sub.to_string(),
            aud: self.service.clone(),
            exp: t.saturating_add(lifetime.as_secs()),
            nbf: t,
            iat: t,
            jti: random_hex(16).unwrap_or_default(),
            access,
            token_use: token_use.to_string(),
        }
    }

    /// An access token; `sub` is empty for anonymous.
    pub fn access_token(&self, sub: &str, access: Vec<Access>) -> (String, Claims) {
        let c = self.claims(sub, access, self.lifetime, "access");
        (self.sign_claims(&c), c)
    }

    pub fn refresh_token(&self, sub: &str) -> String {
        self.sign_claims(&self.claims(sub, Vec::new(), REFRESH_LIFETIME, "refresh"))
    }

    /// Checks signature, issuer, audience, times and use; the claims when all hold.
    pub fn verify(&self, token: &str, token_use: &str) -> Result<Claims, TokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(b), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .ok_or(TokenError::Malformed)?;
        // Only our algorithm: `none` or another one named by the token is refused.
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Signature);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenError::Malformed)?;
        let want = hmac_sha256(&self.key, format!("{h}.{b}").as_bytes());
        if !constant_time_eq(&sig, &want) {
            return Err(TokenError::Signature);
        }
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(b)
            .ok()
            .and_then(|v| serde_json::from_slice(&v).ok())
            .ok_or(TokenError::Malformed)?;
        let t = now();
        if t > claims.exp.saturating_add(LEEWAY) {
            return Err(TokenError::Expired);
        }
        if claims.nbf > t.saturating_add(LEEWAY) {
            return Err(TokenError::NotYetValid);
        }
        if claims.aud != self.service {
            return Err(TokenError::Audience(claims.aud));
        }
        if claims.iss != self.issuer {
            return Err(TokenError::Issuer(claims.iss));
        }
        if claims.token_use != token_use {
            return Err(TokenError::Use(claims.token_use));
        }
        Ok(claims)
    }
}

// ---------------------------------------------------------------------------------------------
// Users and requests

/// The registry's authentication state.
pub struct Auth {
    pub signer: TokenSigner,
    /// Part 1's switch: anyone may pull from every project, private ones included.
    pub anonymous_pull: bool,
    /// The token endpoint's URL when configured; else derived from each request's Host.
    pub realm: Option<String>,
    /// Whether anyone may sign up (`POST /api/v2.0/users` without credentials).
    pub self_registration: bool,
    /// Whether only system admins may create projects (Harbor's `adminonly`).
    pub project_creation_admin_only: bool,
    /// How long a web UI session may go unused ([`crate::harbor::session`]).
    pub session_idle: Duration,
}

/// The outcome of checking a request.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Allow,
    /// No or bad credentials, or a token that does not cover the request: a 401 with a
    /// challenge (`insufficient_scope` when the token was good but too narrow).
    Challenge {
        detail: String,
        insufficient_scope: bool,
    },
    /// Good credentials that may not do this: a 403.
    Deny(String),
    /// Too many failed logins lately: a 429, to be tried again after `retry_after` seconds.
    Limited {
        detail: String,
        retry_after: u64,
    },
}

/// Which user or robot `Basic` credentials name, when the password (secret) is right.
pub fn basic_user(meta: &dyn Metadata, header: &str) -> Result<Option<Subject>, crate::meta::MetaError> {
    let Some((user, password)) = parse_basic(header) else {
        return Ok(None);
    };
    login(meta, &user, &password)
}

/// What a password check under the rate limit ([`crate::login_limit`]) came to.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginOutcome {
    Subject(Subject),
    /// Wrong name or password (secret).
    Refused,
    /// Too many failures lately: not checked; the caller may try again after this long.
    Limited(Duration),
}

impl LoginOutcome {
    /// The message of a refusal for `user`.
    pub fn limited_message(user: &str, wait: Duration) -> String {
        format!("too many failed logins for {user:?}: try again in {} s", crate::login_limit::whole_secs(wait))
    }
}

/// `Basic` credentials checked under the rate limit, counted for `client`; `None` when the
/// header is not Basic credentials.
pub fn basic_user_from(
    meta: &dyn Metadata,
    header: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Option<(String, LoginOutcome)>, crate::meta::MetaError> {
    let Some((user, password)) = parse_basic(header) else {
        return Ok(None);
    };
    let outcome = login_from(meta, &user, &password, client)?;
    Ok(Some((user, outcome)))
}

/// [`login`] under the rate limit, failures counted for `user` from `client`: this
/// process's counts first, then, before a password is hashed, every replica's.
pub fn login_from(
    meta: &dyn Metadata,
    user: &str,
    password: &str,
    client: Option<std::net::IpAddr>,
) -> Result<LoginOutcome, crate::meta::MetaError> {
    use crate::login_limit as limit;
    let limiter = limit::LoginLimiter::global();
    if let Some(wait) = limiter.wait(user, client, std::time::Instant::now()) {
        return Ok(LoginOutcome::Limited(wait));
    }
    let account_failed = std::cell::Cell::new(false);
    let gate = || -> Result<Option<Duration>, crate::meta::MetaError> {
        let (wait, failed) = limit::shared_wait(meta, user, client)?;
        account_failed.set(failed);
        Ok(wait)
    };
    let outcome = check_login(meta, user, password, &gate)?;
    match &outcome {
        LoginOutcome::Subject(_) => {
            // The index's count is cleared when it was read with failures, or when this
            // process counted some (a remembered password skips the read).
            if limiter.success(user, client) | account_failed.get() {
                limit::shared_success(meta, user, client)?;
            }
        }
        LoginOutcome::Refused => {
            limiter.failure(user, client, std::time::Instant::now());
            limit::shared_failure(meta, user, client)?;
        }
        LoginOutcome::Limited(_) => {}
    }
    Ok(outcome)
}

/// Checks a name and password: a user's password, or a robot's secret (the robot enabled and
/// not expired). Under the rate limit, counted with no client address: a limited attempt is
/// refused like a wrong password (callers that can say 429 use [`login_from`]).
pub fn login(meta: &dyn Metadata, user: &str, password: &str) -> Result<Option<Subject>, crate::meta::MetaError> {
    Ok(match login_from(meta, user, password, None)? {
        LoginOutcome::Subject(s) => Some(s),
        LoginOutcome::Refused | LoginOutcome::Limited(_) => None,
    })
}

/// `gate` runs before a password is hashed (not for a remembered one, nor a robot's secret,
/// whose check is one HMAC of 128 random bits): a wait it gives refuses the attempt unchecked.
fn check_login(
    meta: &dyn Metadata,
    user: &str,
    password: &str,
    gate: &dyn Fn() -> Result<Option<Duration>, crate::meta::MetaError>,
) -> Result<LoginOutcome, crate::meta::MetaError> {
    if user.starts_with(crate::harbor::ROBOT_PREFIX) {
        let Some(robot) = meta.robot(user)? else {
            return Ok(LoginOutcome::Refused);
        };
        if !verify_robot_secret(&robot.record, password) || robot_unusable(&robot.record).is_some() {
            return Ok(LoginOutcome::Refused);
        }
        return Ok(LoginOutcome::Subject(robot_subject(robot)));
    }
    let record = meta.user(user)?;
    if !record.as_ref().is_some_and(|r| password_remembered(r, password)) {
        if let Some(wait) = gate()? {
            return Ok(LoginOutcome::Limited(wait));
        }
    }
    let Some(record) = record else {
        // The same work as for a known user, so that timing does not say which names exist.
        let _ = pbkdf2_sha256(password.as_bytes(), b"wharf-registry-no-such-user", PBKDF2_ITERATIONS);
        return Ok(LoginOutcome::Refused);
    };
    Ok(match verify_password(&record, password) {
        true => LoginOutcome::Subject(Subject::User { name: user.to_string(), admin: record.admin }),
        false => LoginOutcome::Refused,
    })
}

fn robot_subject(robot: crate::harbor::store::Robot) -> Subject {
    Subject::Robot { name: robot.name, project: robot.record.project, permissions: robot.record.permissions }
}

/// Why a robot may not log in now: disabled or expired.
pub fn robot_unusable(r: &crate::harbor::store::RobotRecord) -> Option<&'static str> {
    if r.disabled {
        return Some("disabled");
    }
    match r.expires_at {
        Some(t) if now() >= t => Some("expired"),
        _ => None,
    }
}

/// The subject a token's `sub` names as it stands now: `None` when the account is gone, or
/// a robot that is disabled or expired.
pub fn subject_of(meta: &dyn Metadata, sub: &str) -> Result<Option<Subject>, crate::meta::MetaError> {
    if sub.is_empty() {
        return Ok(Some(Subject::Anonymous));
    }
    if sub.starts_with(crate::harbor::ROBOT_PREFIX) {
        return Ok(meta.robot(sub)?.filter(|r| robot_unusable(&r.record).is_none()).map(robot_subject));
    }
    Ok(meta.user(sub)?.map(|u| Subject::User { name: sub.to_string(), admin: u.admin }))
}

/// A robot's secret as it is stored: HMAC-SHA256 keyed with a random salt (the secret itself
/// is random: see [`crate::harbor::store::RobotRecord`]).
pub fn robot_secret_hash(salt: &str, secret: &str) -> String {
    wharf_types::digest::to_hex(&hmac_sha256(salt.as_bytes(), secret.as_bytes()))
}

pub fn verify_robot_secret(r: &crate::harbor::store::RobotRecord, secret: &str) -> bool {
    constant_time_eq(robot_secret_hash(&r.salt, secret).as_bytes(), r.hash.as_bytes())
}

/// `Basic base64(user:password)` → (user, password).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = STANDARD.decode(value.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

impl Auth {
    /// The intersection of what was asked and what `subject` may do; scopes granting nothing
    /// are left out. A system admin asking to push to a project that does not exist creates
    /// it (see [`crate::harbor::access::registry_actions`]).
    pub fn grant(&self, meta: &dyn Metadata, asked: &[Access], subject: &Subject) -> Result<Vec<Access>, MetaError> {
        let mut out = Vec::new();
        for a in asked {
            let actions = match a.kind.as_str() {
                "repository" if crate::names::valid_name(&a.name) => {
                    crate::harbor::access::registry_actions(meta, subject, &a.name, &a.actions, self.anonymous_pull)?.0
                }
                // The catalog lists every repository: Harbor's system admins only.
                "registry" if a.name == "catalog" && matches!(subject, Subject::User { admin: true, .. }) => {
                    a.actions.iter().filter(|x| *x == "*").take(1).cloned().collect()
                }
                _ => Vec::new(),
            };
            if !actions.is_empty() {
                out.push(Access { kind: a.kind.clone(), name: a.name.clone(), actions });
            }
        }
        Ok(out)
    }

    /// Whether `subject` may do `action` on `kind:name`, and when not, why.
    fn may(
        &self,
        meta: &dyn Metadata,
        subject: &Subject,
        kind: &str,
        name: &str,
        action: &str,
    ) -> Result<Result<(), String>, MetaError> {
        if kind == "registry" {
            return Ok(if matches!(subject, Subject::User { admin: true, .. }) {
                Ok(())
            } else {
                Err(format!(
                    "{} may not list the catalog: it is the system admins'",
                    crate::harbor::access::describe(subject)
                ))
            });
        }
        let (granted, why) =
            crate::harbor::access::registry_actions(meta, subject, name, &[action.to_string()], self.anonymous_pull)?;
        Ok(if granted.is_empty() {
            Err(why.unwrap_or_else(|| format!("{action} on {name:?} is not allowed")))
        } else {
            Ok(())
        })
    }

    /// Checks an `Authorization` header against `need` (`None`: any authenticated caller, as
    /// `GET /v2/` wants).
    ///
    /// A valid token that does not cover the request is a challenge (`insufficient_scope`)
    /// when its subject could get a token that does; when the subject may not do it at all it
    /// is a 403 naming the missing permission (for anonymous, a challenge: logging in may
    /// help).
    pub fn check(
        &self,
        meta: &dyn Metadata,
        authorization: Option<&str>,
        need: Option<(&str, &str, &str)>,
    ) -> Result<Decision, crate::meta::MetaError> {
        self.check_from(meta, authorization, need, None)
    }

    /// [`Auth::check`] with Basic credentials' failures counted for `client` by the rate limit.
    pub fn check_from(
        &self,
        meta: &dyn Metadata,
        authorization: Option<&str>,
        need: Option<(&str, &str, &str)>,
        client: Option<std::net::IpAddr>,
    ) -> Result<Decision, crate::meta::MetaError> {
        let Some(header) = authorization else {
            return Ok(Decision::Challenge { detail: "authentication required".into(), insufficient_scope: false });
        };
        if let Some((scheme, token)) = header.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                let claims = match self.signer.verify(token.trim(), "access") {
                    Ok(c) => c,
                    Err(e) => return Ok(Decision::Challenge { detail: e.to_string(), insufficient_scope: false }),
                };
                let Some((kind, name, action)) = need else {
                    return Ok(Decision::Allow);
                };
                if claims.access.iter().any(|a| a.allows(kind, name, action)) {
                    return Ok(Decision::Allow);
                }
                // Only on this path, the token falling short, is the subject looked up.
                let narrow = Decision::Challenge {
                    detail: format!("the token does not grant {action} on {kind} {name:?}"),
                    insufficient_scope: true,
                };
                return Ok(match subject_of(meta, &claims.sub)? {
                    None => Decision::Challenge {
                        detail: format!("account {:?} no longer exists or is disabled", claims.sub),
                        insufficient_scope: false,
                    },
                    Some(Subject::Anonymous) => narrow,
                    Some(subject) => match self.may(meta, &subject, kind, name, action)? {
                        Ok(()) => narrow,
                        Err(why) => Decision::Deny(why),
                    },
                });
            }
        }
        let subject = match basic_user_from(meta, header, client)? {
            Some((_, LoginOutcome::Subject(s))) => s,
            Some((user, LoginOutcome::Limited(wait))) => {
                return Ok(Decision::Limited {
                    detail: LoginOutcome::limited_message(&user, wait),
                    retry_after: crate::login_limit::whole_secs(wait),
                })
            }
            Some((_, LoginOutcome::Refused)) | None => {
                return Ok(Decision::Challenge {
                    detail: "invalid username or password".into(),
                    insufficient_scope: false,
                })
            }
        };
        Ok(match need {
            None => Decision::Allow,
            Some((kind, name, action)) => match self.may(meta, &subject, kind, name, action)? {
                Ok(()) => Decision::Allow,
                Err(why) => Decision::Deny(why),
            },
        })
    }
}

/// Creates the admin user on first start: with `password`, or a generated one that is
/// returned so that it can be printed once. `None` when the admin already exists.
pub fn ensure_admin(meta: &dyn Metadata, password: Option<&str>) -> anyhow::Result<Option<String>> {
    if meta.user(ADMIN)?.is_some() {
        return Ok(None);
    }
    let password = match password {
        Some(p) if !p.is_empty() => p.to_string(),
        Some(_) => anyhow::bail!("the admin password is empty"),
        None => random_hex(16)?,
    };
    let mut record = hash_password(&password)?;
    record.admin = true;
    if !meta.create_user(ADMIN, &record)? {
        return Ok(None); // another process made it first
    }
    Ok(Some(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        wharf_types::digest::to_hex(b)
    }

    #[test]
    fn replicas_starting_together_share_one_token_key() {
        let dir = std::env::temp_dir().join(format!("wharf-registry-key-{}", random_hex(8).unwrap()));
        fs::create_dir_all(&dir).unwrap();
        let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| TokenSigner::load_key(&dir).unwrap())).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|k| *k == keys[0] && k.len() == 64), "every caller signs with the one key");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no candidate is left behind");
        assert_eq!(TokenSigner::load_key(&dir).unwrap(), keys[0]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hmac_rfc4231() {
        // Test case 1
        let key = [0x0bu8; 20];
        assert_eq!(
            hex(&hmac_sha256(&key, b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let key = [0xaau8; 131];
        assert_eq!(
            hex(&hmac_sha256(&key, b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_remembered_password_is_forgotten_when_it_changes() {
        let old = hash_password("first secret").unwrap();
        assert!(verify_password(&old, "first secret"));
        assert!(verify_password(&old, "first secret"), "remembered");
        assert!(!verify_password(&old, "first secreT"));
        let new = hash_password("second secret").unwrap();
        assert!(!verify_password(&new, "first secret"), "the old password after a change");
        assert!(verify_password(&new, "second secret"));
    }

    #[test]
    fn concurrent_checks_of_the_same_credentials_run_one_pbkdf2() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = super::Verified::new(b"test key".to_vec());
        let runs = AtomicUsize::new(0);
        // A slow check (as PBKDF2 is); six callers at once.
        let slow = |ok: bool| {
            runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            ok
        };
        let all: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..6).map(|_| s.spawn(|| cache.check([1; 32], || slow(true)))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(all, [true; 6]);
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the waiters took the first check's result");
        // Failures are not remembered: each waiter runs its own check, one after another.
        let wrong: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3).map(|_| s.spawn(|| cache.check([2; 32], || slow(false)))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(wrong, [false; 3]);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn pbkdf2_vectors() {
        // RFC 7914 section 11 (PBKDF2-HMAC-SHA256), first 32 bytes.
        assert_eq!(
            hex(&pbkdf2_sha256(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        // A widely published vector: P="password", S="salt", c=4096.
        assert_eq!(
            hex(&pbkdf2_sha256(b"password", b"salt", 4096)),
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"
        );
    }

    #[test]
    fn passwords() {
        let mut r = hash_password("pw").unwrap();
        r.iterations = 10; // fast for the test; the hash below is recomputed
        r.hash = hex(&pbkdf2_sha256(b"pw", r.salt.as_bytes(), 10));
        assert!(verify_password(&r, "pw"));
        assert!(!verify_password(&r, "pW"));
        assert!(!verify_password(&r, ""));
        assert!(constant_time_eq(b"ab", b"ab") && !constant_time_eq(b"ab", b"ac") && !constant_time_eq(b"a", b"ab"));
    }

    #[test]
    fn scopes_and_grants() {
        let s = Access::parse_scopes("repository:a/b:pull,push registry:catalog:* bad repository::pull");
        assert_eq!(
            s,
            vec![Access::new("repository", "a/b", &["pull", "push"]), Access::new("registry", "catalog", &["*"])]
        );
        let a = Access::new("repository", "a", &["pull"]);
        assert!(a.allows("repository", "a", "pull"));
        assert!(!a.allows("repository", "a", "push") && !a.allows("repository", "b", "pull"));
        assert!(Access::new("repository", "a", &["*"]).allows("repository", "a", "delete"));
    }

    #[test]
    fn tokens() {
        let signer = TokenSigner::new(b"k".repeat(32), "iss".into(), "svc".into(), Duration::from_secs(60));
        let (t, c) = signer.access_token("admin", vec![Access::new("repository", "a", &["pull"])]);
        assert_eq!(signer.verify(&t, "access").unwrap(), c);
        assert_eq!(signer.verify(&t, "refresh"), Err(TokenError::Use("access".into())));
        let r = signer.refresh_token("admin");
        assert_eq!(signer.verify(&r, "access"), Err(TokenError::Use("refresh".into())));
        // Another key, service or issuer.
        let other = TokenSigner::new(b"x".repeat(32), "iss".into(), "svc".into(), Duration::from_secs(60));
        assert_eq!(other.verify(&t, "access"), Err(TokenError::Signature));
        let svc = TokenSigner::new(b"k".repeat(32), "iss".into(), "other".into(), Duration::from_secs(60));
        assert_eq!(svc.verify(&t, "access"), Err(TokenError::Audience("svc".into())));
        // Expired.
        let mut old = c.clone();
        old.exp = now() - 3600;
        assert_eq!(signer.verify(&signer.sign_claims(&old), "access"), Err(TokenError::Expired));
        // A changed claim breaks the signature; `alg: none` is refused.
        let parts: Vec<&str> = t.split('.').collect();
        let mut wider = c.clone();
        wider.access = vec![Access::new("repository", "b", &["*"])];
        let forged =
            format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wider).unwrap()), parts[2]);
        assert_eq!(signer.verify(&forged, "access"), Err(TokenError::Signature));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(signer.verify(&none, "access"), Err(TokenError::Signature));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(signer.verify(bad, "access").is_err(), "{bad}");
        }
    }

    #[test]
    fn robots_stop_when_disabled_or_expired() {
        let mut r = crate::harbor::store::RobotRecord {
            project: "p".into(),
            description: String::new(),
            salt: "salt".into(),
            hash: robot_secret_hash("salt", "s3cret"),
            expires_at: None,
            disabled: false,
            permissions: vec![],
            created: 0,
            updated: 0,
        };
        assert!(verify_robot_secret(&r, "s3cret") && !verify_robot_secret(&r, "s3cret "));
        assert_eq!(robot_unusable(&r), None);
        r.expires_at = Some(now() + 60);
        assert_eq!(robot_unusable(&r), None);
        r.expires_at = Some(now().saturating_sub(1));
        assert_eq!(robot_unusable(&r), Some("expired"));
        r.expires_at = None;
        r.disabled = true;
        assert_eq!(robot_unusable(&r), Some("disabled"));
    }

    #[test]
    fn basic_headers() {
        assert_eq!(parse_basic("Basic YWRtaW46cDp3"), Some(("admin".into(), "p:w".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic"), None);
    }
}
