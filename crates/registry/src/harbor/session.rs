//! The web UI's sessions, as Harbor's: `POST /c/login` (form fields `principal`, `password`)
//! sets a session cookie `sid` (HttpOnly, SameSite=Lax, Secure over TLS), `GET /c/log_out`
//! clears it, and the REST API takes the cookie as well as Basic credentials. Requests that
//! change state and are authenticated by the cookie must carry the CSRF token, from the
//! `__csrf` cookie (or the `X-Harbor-CSRF-Token` response header), in the
//! `X-Harbor-CSRF-Token` request header; Basic-authenticated requests are not subject to it.
//!
//! A session is a signed value, not a stored record: `base64url(JSON).base64url(HMAC)` under
//! the registry's token key, which replicas on PostgreSQL share through the index
//! (`registry_keys`), so a session made on one replica is good on every other. It holds the
//! user, a random id made fresh at every login (an id set before login is never promoted:
//! there is nothing to promote, the server only accepts ids it signed at a login), when it
//! was made and last used (idle time-out [`IDLE_TIMEOUT`], renewed at most once a minute
//! through `Set-Cookie`, and at most [`MAX_LIFETIME`] in all), and a fingerprint of the
//! user's password hash, so that a password change ends every session of that user. The
//! CSRF token is an HMAC of the session id: bound to the session, it cannot be planted.
//! Logging out records the id in the index (`IamStore::end_session`) until the session would
//! have expired anyway, so every replica refuses the cookie from then on.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderValue, COOKIE, SET_COOKIE};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::api::HarborError;
use crate::auth::{self, constant_time_eq, Auth, LoginOutcome, Subject, TokenSigner};
use crate::handlers::{block, Reply, Resp};
use crate::meta::now;
use crate::server::Registry;
use crate::store::random_hex;

/// The session cookie's name, as Harbor's.
pub const SESSION_COOKIE: &str = "sid";
/// The CSRF cookie's name and the header the token comes back in, as Harbor's.
pub const CSRF_COOKIE: &str = "__csrf";
pub const CSRF_HEADER: &str = "X-Harbor-CSRF-Token";
/// A session unused for this long is over unless configured (`--session-timeout`,
/// `auth: session_timeout:`), in seconds: Harbor's default session time-out.
pub const IDLE_TIMEOUT: u64 = 60 * 60;
/// A session is over this long after its login, used or not.
pub const MAX_LIFETIME: u64 = 24 * 60 * 60;
/// A session's last use is written back (a fresh cookie) at most this often (and at most a
/// quarter of the idle time-out).
const RENEW_AFTER: u64 = 60;
/// The login form is small.
const MAX_FORM: usize = 8 << 10;

/// The subject a valid session cookie names, put into the request's extensions for the API.
#[derive(Debug, Clone)]
pub struct SessionSubject(pub Subject);

/// What a session cookie carries (short keys: it travels with every request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "u")]
    pub user: String,
    /// The session id: random, made at the login.
    #[serde(rename = "n")]
    pub id: String,
    #[serde(rename = "i")]
    pub issued: u64,
    #[serde(rename = "s")]
    pub seen: u64,
    /// Of the user's password hash when the session was made.
    #[serde(rename = "f")]
    pub fingerprint: String,
}

fn fingerprint(signer: &TokenSigner, user: &str, hash: &str) -> String {
    let mac = signer.mac(format!("wharf-session-password\0{user}\0{hash}").as_bytes());
    wharf_types::digest::to_hex(mac.get(..12).unwrap_or_default())
}

/// The cookie value of `s`.
pub fn sign(signer: &TokenSigner, s: &Session) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(s).unwrap_or_default());
    let mac = signer.mac(format!("wharf-session\0{body}").as_bytes());
    format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac))
}

/// The session a cookie value holds when this registry signed it (times not checked).
pub fn verify(signer: &TokenSigner, value: &str) -> Option<Session> {
    let (body, mac) = value.split_once('.')?;
    let want = signer.mac(format!("wharf-session\0{body}").as_bytes());
    let got = URL_SAFE_NO_PAD.decode(mac).ok()?;
    if !constant_time_eq(&got, &want) {
        return None;
    }
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// The CSRF token of a session.
pub fn csrf_token(signer: &TokenSigner, session_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(signer.mac(format!("wharf-csrf\0{session_id}").as_bytes()))
}

/// Why a session is not usable at `t` with an idle time-out of `idle` seconds, if it is not.
pub fn expired(s: &Session, t: u64, idle: u64) -> Option<&'static str> {
    if t.saturating_sub(s.seen) >= idle {
        Some("the session was idle too long")
    } else if t.saturating_sub(s.issued) >= MAX_LIFETIME {
        Some("the session is too old")
    } else if s.seen > t.saturating_add(60) || s.issued > s.seen {
        Some("the session's times are wrong")
    } else {
        None
    }
}

/// Ends a session for every replica: the index keeps its id until it would have expired
/// anyway.
fn end(reg: &Registry, s: &Session) -> Result<(), HarborError> {
    let t = now();
    block(|| reg.meta.end_session(&s.id, s.issued.saturating_add(MAX_LIFETIME), t))?;
    Ok(())
}

/// The cookies of a request, by name (the first of a name wins, as browsers send the most
/// specific first).
pub fn cookies<B>(req: &Request<B>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for h in req.headers().get_all(COOKIE) {
        let Ok(h) = h.to_str() else { continue };
        for pair in h.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                out.entry(k.trim().to_string()).or_insert_with(|| v.trim().to_string());
            }
        }
    }
    out
}

fn cookie_header(reg: &Registry, name: &str, value: &str, http_only: bool, clear: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; SameSite={}", if http_only { "Lax" } else { "Strict" });
    if http_only {
        c.push_str("; HttpOnly");
    }
    if reg.https {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    c
}

fn add_header(resp: &mut Resp, name: http::header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().append(name, v);
    }
}

fn set_session(reg: &Registry, auth: &Auth, s: &Session, resp: &mut Resp) {
    add_header(resp, SET_COOKIE, &cookie_header(reg, SESSION_COOKIE, &sign(&auth.signer, s), true, false));
    let csrf = csrf_token(&auth.signer, &s.id);
    add_header(resp, SET_COOKIE, &cookie_header(reg, CSRF_COOKIE, &csrf, false, false));
}

fn clear_session(reg: &Registry, resp: &mut Resp) {
    add_header(resp, SET_COOKIE, &cookie_header(reg, SESSION_COOKIE, "", true, true));
    add_header(resp, SET_COOKIE, &cookie_header(reg, CSRF_COOKIE, "", false, true));
}

/// The session of a cookie value and its user as the index has them now, when every check
/// passes: signature, times, not logged out, the user there with the same password.
fn resolve(reg: &Registry, auth: &Auth, value: &str) -> Result<Option<(Session, Subject)>, HarborError> {
    let Some(s) = verify(&auth.signer, value) else {
        return Ok(None);
    };
    if expired(&s, now(), idle_secs(auth)).is_some() || block(|| reg.meta.session_ended(&s.id))? {
        return Ok(None);
    }
    let Some(user) = block(|| reg.meta.user(&s.user))? else {
        return Ok(None);
    };
    if fingerprint(&auth.signer, &s.user, &user.hash) != s.fingerprint {
        return Ok(None);
    }
    let subject = Subject::User { name: s.user.clone(), admin: user.admin };
    Ok(Some((s, subject)))
}

fn idle_secs(auth: &Auth) -> u64 {
    auth.session_idle.as_secs().max(1)
}

fn changes_state(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The REST API with sessions: a request without an `Authorization` header but with a valid
/// session cookie is the session's user, once its CSRF token is checked where it changes
/// state; the cookie is renewed as it is used.
pub async fn api(reg: &Registry, mut req: Request<Incoming>) -> Resp {
    let Some(auth) = &reg.auth else {
        return super::api::handle(reg, req).await;
    };
    if req.headers().contains_key("authorization") {
        return super::api::handle(reg, req).await;
    }
    let jar = cookies(&req);
    let Some(value) = jar.get(SESSION_COOKIE) else {
        return super::api::handle(reg, req).await;
    };
    let (session, subject) = match resolve(reg, auth, value) {
        Err(e) => return e.into_response(),
        Ok(None) => {
            // Not a session of ours any more (or never): anonymous, and the browser drops it.
            let mut resp = super::api::handle(reg, req).await;
            clear_session(reg, &mut resp);
            return resp;
        }
        Ok(Some(found)) => found,
    };
    let want = csrf_token(&auth.signer, &session.id);
    if changes_state(req.method()) {
        let got = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let why = match got {
            None => Some(format!(
                "CSRF token not found in request: a {} with a session cookie needs the {CSRF_HEADER} header",
                req.method()
            )),
            Some(t) if !constant_time_eq(t.as_bytes(), want.as_bytes()) => {
                Some(format!("CSRF token invalid: the {CSRF_HEADER} header does not match this session's token"))
            }
            Some(_) => None,
        };
        if let Some(message) = why {
            return HarborError::new(403, message).into_response();
        }
    }
    req.extensions_mut().insert(SessionSubject(subject));
    let mut resp = super::api::handle(reg, req).await;
    let t = now();
    if t.saturating_sub(session.seen) >= RENEW_AFTER.min(idle_secs(auth) / 4) {
        let renewed = Session { seen: t, ..session };
        add_header(
            &mut resp,
            SET_COOKIE,
            &cookie_header(reg, SESSION_COOKIE, &sign(&auth.signer, &renewed), true, false),
        );
    }
    add_header(&mut resp, http::header::HeaderName::from_static("x-harbor-csrf-token"), &want);
    resp
}

/// `/c/login` and `/c/log_out`.
pub async fn handle(reg: &Registry, req: Request<Incoming>) -> Resp {
    let Some(auth) = &reg.auth else {
        return HarborError::new(404, "the web UI's login needs authentication on (serve --auth)").into_response();
    };
    let path = req.uri().path().to_string();
    match (path.as_str(), req.method().clone()) {
        ("/c/login", Method::POST) => match login(reg, auth, req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        ("/c/log_out", Method::GET | Method::POST) => {
            if let Some(s) = cookies(&req).get(SESSION_COOKIE).and_then(|v| verify(&auth.signer, v)) {
                if let Err(e) = end(reg, &s) {
                    return e.into_response();
                }
            }
            let mut resp = Reply::new(200).json(json!({})).into_response();
            clear_session(reg, &mut resp);
            resp
        }
        ("/c/login", m) | ("/c/log_out", m) => {
            HarborError::new(405, format!("method {m} is not allowed on {path}")).into_response()
        }
        _ => HarborError::new(404, format!("no endpoint {path}")).into_response(),
    }
}

async fn login(reg: &Registry, auth: &Auth, req: Request<Incoming>) -> Result<Resp, HarborError> {
    let client = crate::login_limit::client_of(&req);
    let form = read_form(reg, req).await?;
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let principal = field("principal").filter(|p| !p.is_empty()).ok_or_else(|| {
        HarborError::new(400, "the login form needs principal and password (application/x-www-form-urlencoded)")
    })?;
    let password = field("password").unwrap_or_default();
    // Robots are for docker login and the API: refused before their secret is even looked at.
    if principal.starts_with(super::ROBOT_PREFIX) {
        return Err(HarborError::new(403, format!("robot account {principal:?} cannot log in to the web UI")));
    }
    let outcome = block(|| auth::login_from(reg.meta.as_ref(), &principal, &password, client))?;
    let admin = match outcome {
        LoginOutcome::Subject(Subject::User { admin, .. }) => admin,
        LoginOutcome::Subject(_) | LoginOutcome::Refused => {
            return Err(HarborError::new(401, "invalid username or password"))
        }
        LoginOutcome::Limited(wait) => {
            let mut resp = HarborError::new(429, LoginOutcome::limited_message(&principal, wait)).into_response();
            add_header(&mut resp, http::header::RETRY_AFTER, &crate::login_limit::whole_secs(wait).to_string());
            return Ok(resp);
        }
    };
    let user =
        block(|| reg.meta.user(&principal))?.ok_or_else(|| HarborError::new(401, "invalid username or password"))?;
    let t = now();
    let session = Session {
        user: principal.clone(),
        id: random_hex(16).map_err(|e| HarborError::new(500, format!("making a session id: {e}")))?,
        issued: t,
        seen: t,
        fingerprint: fingerprint(&auth.signer, &principal, &user.hash),
    };
    let csrf = csrf_token(&auth.signer, &session.id);
    let mut resp = Reply::new(200)
        .header("Cache-Control", "no-store")
        .json(json!({ "username": principal, "sysadmin_flag": admin }))
        .into_response();
    set_session(reg, auth, &session, &mut resp);
    add_header(&mut resp, http::header::HeaderName::from_static("x-harbor-csrf-token"), &csrf);
    Ok(resp)
}

async fn read_form(reg: &Registry, req: Request<Incoming>) -> Result<Vec<(String, String)>, HarborError> {
    let mut body = req.into_body();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(reg.options.idle_timeout, body.frame()).await {
            Err(_) => return Err(HarborError::new(400, "the login form stalled")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(HarborError::new(400, format!("reading the login form: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                    if out.len() > MAX_FORM {
                        return Err(HarborError::new(413, format!("the login form is over {MAX_FORM} bytes")));
                    }
                }
            }
        }
    }
    let text = String::from_utf8(out).map_err(|_| HarborError::new(400, "the login form is not UTF-8"))?;
    Ok(text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (wharf_types::percent::decode(k, true), wharf_types::percent::decode(v, true))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn signer(key: &[u8]) -> TokenSigner {
        TokenSigner::new(key.to_vec(), "iss".into(), "svc".into(), Duration::from_secs(60))
    }

    fn session(t: u64) -> Session {
        Session { user: "alice".into(), id: "0123".into(), issued: t, seen: t, fingerprint: "f".into() }
    }

    #[test]
    fn sessions_are_signed_and_expire() {
        let k = signer(&b"k".repeat(64));
        let t = now();
        let s = session(t);
        let v = sign(&k, &s);
        assert_eq!(verify(&k, &v), Some(s.clone()));
        // Another key (another registry), a changed body, garbage: refused.
        assert_eq!(verify(&signer(&b"x".repeat(64)), &v), None);
        let (_, mac) = v.split_once('.').unwrap();
        let mut other = s.clone();
        other.user = "admin".into();
        let forged = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()));
        assert_eq!(verify(&k, &forged), None);
        for bad in ["", ".", "a.b", "attacker-chosen-id"] {
            assert_eq!(verify(&k, bad), None, "{bad}");
        }
        assert_eq!(expired(&s, t, IDLE_TIMEOUT), None);
        assert_eq!(expired(&s, t + IDLE_TIMEOUT - 1, IDLE_TIMEOUT), None);
        assert!(expired(&s, t + IDLE_TIMEOUT, IDLE_TIMEOUT).is_some());
        assert!(expired(&s, t + 5, 5).is_some(), "a shorter time-out");
        let mut used = session(t);
        used.seen = t + MAX_LIFETIME - 10;
        assert_eq!(expired(&used, t + MAX_LIFETIME - 5, IDLE_TIMEOUT), None);
        assert!(expired(&used, t + MAX_LIFETIME, IDLE_TIMEOUT).is_some(), "renewed, it still ends");
        // CSRF tokens belong to one session and one key.
        assert_ne!(csrf_token(&k, "a"), csrf_token(&k, "b"));
        assert_ne!(csrf_token(&k, "a"), csrf_token(&signer(&b"x".repeat(64)), "a"));
    }
}
