//! The token endpoint of Docker's registry token spec, `/token` on the registry itself:
//! `GET` with optional Basic credentials, `service`, `scope` (repeated, or space-separated)
//! and `offline_token=true` (then a refresh token too), and `POST` with an OAuth2 form
//! (`grant_type=password` or `grant_type=refresh_token`). The HTTP side of [`crate::auth`].

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde_json::json;

use crate::auth::{self, Access, Auth, Subject};
use crate::error::{ApiError, Code};
use crate::handlers::{block, Reply, Resp, Result};
use crate::server::Registry;

/// An OAuth2 form is a few fields; anything longer is refused.
const MAX_FORM: usize = 64 << 10;

/// The realm clients are sent to: configured, or this registry's `/token` at the Host the
/// request came to. A Host with characters no host name has is not echoed back.
pub fn realm(reg: &Registry, auth: &Auth, req: &Request<Incoming>) -> String {
    if let Some(r) = &auth.realm {
        return r.clone();
    }
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)))
        .unwrap_or("localhost");
    let scheme = if reg.https { "https" } else { "http" };
    format!("{scheme}://{host}/token")
}

/// `a=b&c=d` of a query or form: `+` is a space here (the form encoding, which clients use
/// for the spaces between scopes), keys may repeat.
fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (wharf_types::percent::decode(k, true), wharf_types::percent::decode(v, true))
        })
        .collect()
}

fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn scopes(pairs: &[(String, String)]) -> Vec<Access> {
    pairs.iter().filter(|(k, _)| k == "scope").flat_map(|(_, v)| Access::parse_scopes(v)).collect()
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(Code::Unauthorized, detail)
}

pub async fn token(reg: &Registry, req: Request<Incoming>) -> Result<Resp> {
    let Some(auth) = &reg.auth else {
        return Err(
            ApiError::new(Code::Unsupported, "this registry has no authentication: no tokens needed").with_status(404)
        );
    };
    let reply = match *req.method() {
        Method::GET => get_token(reg, auth, &req)?,
        Method::POST => post_token(reg, auth, req).await?,
        _ => return Err(ApiError::new(Code::Unsupported, "the token endpoint answers GET and POST")),
    };
    Ok(reply.header("Cache-Control", "no-store").into_response())
}

fn check_service(auth: &Auth, pairs: &[(String, String)]) -> Result<()> {
    match field(pairs, "service") {
        Some(s) if !s.is_empty() && s != auth.signer.service => Err(ApiError::new(
            Code::Denied,
            format!("service {s:?} is not this registry's ({:?})", auth.signer.service),
        )
        .with_status(400)),
        _ => Ok(()),
    }
}

fn get_token(reg: &Registry, auth: &Auth, req: &Request<Incoming>) -> Result<Reply> {
    let pairs = form_pairs(req.uri().query().unwrap_or(""));
    check_service(auth, &pairs)?;
    let client = crate::login_limit::client_of(req);
    let subject = match req.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        None => Subject::Anonymous,
        Some(h) => match block(|| auth::basic_user_from(reg.meta.as_ref(), h, client))? {
            Some((user, outcome)) => limited_login(&user, outcome)?,
            None => return Err(unauthorized("invalid username or password")),
        },
    };
    let offline = field(&pairs, "offline_token") == Some("true");
    issue(reg, auth, &subject, &scopes(&pairs), offline)
}

/// The subject of a password check, or a 401 (wrong) or 429 (rate limited, with `Retry-After`).
fn limited_login(user: &str, outcome: auth::LoginOutcome) -> Result<Subject> {
    match outcome {
        auth::LoginOutcome::Subject(s) => Ok(s),
        auth::LoginOutcome::Refused => Err(unauthorized("invalid username or password")),
        auth::LoginOutcome::Limited(wait) => {
            Err(ApiError::new(Code::TooManyRequests, auth::LoginOutcome::limited_message(user, wait))
                .with_status(429)
                .with_header("Retry-After", crate::login_limit::whole_secs(wait).to_string()))
        }
    }
}

async fn post_token(reg: &Registry, auth: &Auth, req: Request<Incoming>) -> Result<Reply> {
    let client = crate::login_limit::client_of(&req);
    let body = read_form(reg, req).await?;
    let pairs = form_pairs(&body);
    check_service(auth, &pairs)?;
    let (subject, offline) = match field(&pairs, "grant_type") {
        Some("password") => {
            let user = field(&pairs, "username").unwrap_or("");
            let password = field(&pairs, "password").unwrap_or("");
            let outcome = block(|| auth::login_from(reg.meta.as_ref(), user, password, client))?;
            let subject = limited_login(user, outcome)?;
            (subject, field(&pairs, "access_type") == Some("offline"))
        }
        Some("refresh_token") => {
            let token = field(&pairs, "refresh_token").unwrap_or("");
            let claims = auth
                .signer
                .verify(token, "refresh")
                .map_err(|e| unauthorized(&format!("invalid refresh token: {e}")))?;
            // The account may have gone (or a robot been disabled) since the token was issued.
            let subject = block(|| auth::subject_of(reg.meta.as_ref(), &claims.sub))?
                .filter(|s| *s != Subject::Anonymous)
                .ok_or_else(|| unauthorized(&format!("account {:?} no longer exists or is disabled", claims.sub)))?;
            (subject, false)
        }
        other => {
            return Err(ApiError::new(
                Code::Unsupported,
                format!("grant_type {:?}: only password and refresh_token are supported", other.unwrap_or("")),
            )
            .with_status(400))
        }
    };
    issue(reg, auth, &subject, &scopes(&pairs), offline)
}

/// The answer of both methods: the token under both names clients read, its lifetime and
/// time of issue, and a refresh token when asked for one. Anonymous callers that would be
/// granted nothing are told to authenticate instead (a private project, or none).
fn issue(reg: &Registry, auth: &Auth, subject: &Subject, asked: &[Access], offline: bool) -> Result<Reply> {
    let granted = block(|| auth.grant(reg.meta.as_ref(), asked, subject))?;
    if *subject == Subject::Anonymous && granted.is_empty() {
        return Err(unauthorized("authentication required: anonymous access grants nothing here"));
    }
    let sub = subject.name();
    let (token, claims) = auth.signer.access_token(sub, granted);
    let mut body = json!({
        "token": token,
        "access_token": token,
        "expires_in": claims.exp.saturating_sub(claims.iat),
        "issued_at": rfc3339(claims.iat),
    });
    if offline && !sub.is_empty() {
        body["refresh_token"] = json!(auth.signer.refresh_token(sub));
    }
    Ok(Reply::new(200).json(body))
}

async fn read_form(reg: &Registry, req: Request<Incoming>) -> Result<String> {
    let mut body = req.into_body();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(reg.options.idle_timeout, body.frame()).await {
            Err(_) => return Err(ApiError::new(Code::Unsupported, "the form stalled").with_status(400)),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::new(Code::Unsupported, format!("reading the form: {e}")).with_status(400))
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                    if out.len() > MAX_FORM {
                        return Err(ApiError::new(Code::Unsupported, "the form is too long").with_status(413));
                    }
                }
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::new(Code::Unsupported, "the form is not UTF-8").with_status(400))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: u64) -> String {
    wharf_types::time::rfc3339_secs(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn forms() {
        let p = form_pairs("grant_type=password&scope=repository%3Aa%3Apull+registry:catalog:*&scope=x:y:z&e");
        assert_eq!(field(&p, "grant_type"), Some("password"));
        assert_eq!(scopes(&p).len(), 3);
        assert_eq!(field(&p, "e"), Some(""));
    }
}
