//! `GET /v1/search?q=&n=&page=`: the search API `docker search HOST/TERM` asks (Docker Hub's
//! v1 shape; distribution has none and answers 404). A result is a repository whose name or
//! description holds the term, case-insensitively, in name order:
//! `{"name", "description", "star_count": 0, "is_official": false, "is_automated": false}`,
//! with `num_results`, `num_pages`, `page`, `page_size` and `query` around them.
//!
//! The open registry lists every repository. With the Harbor model on, only what the caller
//! may pull: anonymous callers see public projects' repositories, users also their projects',
//! robots their own project's (by its pull permission), system admins everything. Credentials
//! are Basic (what dockerd sends a registry's v1 search) or a bearer token from `/token`;
//! wrong ones are a 401, not an anonymous search.

use std::collections::HashMap;

use serde_json::json;

use crate::auth::{self, Subject};
use crate::error::{ApiError, Code};
use crate::handlers::{block, Reply, Result};
use crate::harbor::rbac::{Action, Resource};
use crate::server::Registry;

/// Results per page unless `n` says otherwise, and the most `n` may ask (Docker Hub's and the
/// docker CLI's range).
const DEFAULT_PAGE: usize = 25;
const MAX_PAGE: usize = 100;

pub(crate) fn search(
    reg: &Registry,
    authorization: Option<&str>,
    client: Option<std::net::IpAddr>,
    query: &HashMap<String, String>,
) -> Result<Reply> {
    let term = query.get("q").map(|q| q.trim().to_string()).unwrap_or_default();
    let number = |key: &str, default: usize| -> Result<usize> {
        match query.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                ApiError::new(Code::PaginationNumberInvalid, format!("invalid {key} {v:?}: a number from 1"))
            }),
        }
    };
    let page_size = number("n", DEFAULT_PAGE)?;
    if page_size > MAX_PAGE {
        return Err(ApiError::new(
            Code::PaginationNumberInvalid,
            format!("n {page_size} is outside the range of [1, {MAX_PAGE}]"),
        ));
    }
    let page = number("page", 1)?;
    let names = block(|| visible_matches(reg, authorization, client, &term.to_lowercase()))?;
    let total = names.len();
    let results: Vec<_> = names
        .into_iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|(name, description)| {
            json!({
                "name": name,
                "description": description,
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        })
        .collect();
    Ok(Reply::new(200).json(json!({
        "num_results": total,
        "num_pages": total.div_ceil(page_size),
        "page": page,
        "page_size": page_size,
        "query": term,
        "results": results,
    })))
}

/// The repositories the caller may pull whose name or description holds `term` (lower
/// case), with their descriptions, in name order.
fn visible_matches(
    reg: &Registry,
    authorization: Option<&str>,
    client: Option<std::net::IpAddr>,
    term: &str,
) -> Result<Vec<(String, String)>> {
    let meta = reg.meta.as_ref();
    let matches =
        |name: &str, description: &str| name.to_lowercase().contains(term) || description.to_lowercase().contains(term);
    let Some(a) = &reg.auth else {
        let mut out = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let batch = meta.catalog(last.as_deref(), 1000)?;
            let Some(end) = batch.last().cloned() else { break };
            for name in batch {
                let description = meta.repo_description(&name)?.unwrap_or_default();
                if matches(&name, &description) {
                    out.push((name, description));
                }
            }
            last = Some(end);
        }
        return Ok(out);
    };
    let subject = caller(reg, a, authorization, client)?;
    let mut out = Vec::new();
    let mut projects = meta.projects()?;
    projects.sort_by(|x, y| x.name.cmp(&y.name));
    for p in projects {
        let access = crate::harbor::access::evaluate(meta, &subject, &p.name, a.anonymous_pull)?;
        if !access.allows(Resource::Repository, Action::Pull) {
            continue;
        }
        for name in meta.project_repos(&p.name)? {
            let description = meta.repo_description(&name)?.unwrap_or_default();
            if matches(&name, &description) {
                out.push((name, description));
            }
        }
    }
    Ok(out)
}

/// Who asks: anonymous without credentials; a 401 for credentials that do not hold (a 429
/// while the rate limit holds them back).
fn caller(
    reg: &Registry,
    a: &auth::Auth,
    authorization: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Result<Subject> {
    let Some(header) = authorization else {
        return Ok(Subject::Anonymous);
    };
    let meta = reg.meta.as_ref();
    let unauthorized = |detail: String| ApiError::new(Code::Unauthorized, detail);
    if let Some((scheme, token)) = header.trim().split_once(' ') {
        if scheme.eq_ignore_ascii_case("bearer") {
            let claims = a.signer.verify(token.trim(), "access").map_err(|e| unauthorized(e.to_string()))?;
            return auth::subject_of(meta, &claims.sub)?
                .ok_or_else(|| unauthorized(format!("account {:?} no longer exists or is disabled", claims.sub)));
        }
    }
    match auth::basic_user_from(meta, header, client)? {
        Some((_, auth::LoginOutcome::Subject(s))) => Ok(s),
        Some((user, auth::LoginOutcome::Limited(wait))) => {
            Err(ApiError::new(Code::TooManyRequests, auth::LoginOutcome::limited_message(&user, wait))
                .with_status(429)
                .with_header("Retry-After", crate::login_limit::whole_secs(wait).to_string()))
        }
        Some((_, auth::LoginOutcome::Refused)) | None => Err(unauthorized("invalid username or password".into())),
    }
}
