//! `GET /v2/<name>/tags/list`: every tag of a repository, what `pull --all-tags` pulls. The
//! registry may page the list (`Link: <...>; rel="next"`); each page is followed.

use wharf_http::Body;
use wharf_types::ImageRef;

use crate::client::{status_error, Op, RegistryClient, Subject};
use crate::{AuthConfig, DistributionError};

/// A page of tags is small; a larger one is refused rather than held.
const MAX_TAGS_PAGE: u64 = 4 << 20;
/// Pages followed at most: a registry that links back to itself would otherwise never end.
const MAX_PAGES: usize = 1000;

#[derive(serde::Deserialize)]
struct TagsPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The target of a `Link` header's `rel="next"` entry: a path on the same registry (the
/// distribution registry sends `</v2/...>`; an absolute URL is taken from its `/v2/` on).
fn next_target(link: &str) -> Option<String> {
    link.split(',').find(|l| l.contains("rel=\"next\"")).and_then(|l| {
        let inner = l.split_once('<')?.1.split_once('>')?.0;
        inner.split_once("/v2/").map(|(_, rest)| format!("/v2/{rest}"))
    })
}

impl RegistryClient {
    /// Every tag of `r`'s repository, in the registry's order, over the same endpoints (and
    /// credentials) as a pull.
    pub fn tags(&self, r: &ImageRef, auth: Option<&AuthConfig>) -> Result<Vec<String>, DistributionError> {
        let op = Op { what: format!("pull {}", r.name()), name: r.name(), repo: &r.repository, auth, actions: "pull" };
        self.with_endpoints(r, true, |ep| {
            let mut tags = Vec::new();
            let mut target = format!("/v2/{}/tags/list", r.repository);
            for _ in 0..MAX_PAGES {
                let (url, resp) =
                    self.registry_send(&op, ep, "GET", ep.url_for(&target), &[], &mut || Ok(Body::Empty))?;
                if resp.status != 200 {
                    return Err(status_error(&op, &url, resp, Subject::Manifest, None));
                }
                let next = resp.header("Link").and_then(next_target);
                let body = resp.read_body(MAX_TAGS_PAGE).map_err(|source| DistributionError::Http {
                    op: op.what.clone(),
                    url: url.to_string(),
                    source,
                })?;
                let page: TagsPage = serde_json::from_slice(&body).map_err(|e| DistributionError::Registry {
                    op: op.what.clone(),
                    url: url.to_string(),
                    status: 200,
                    message: format!("invalid tag list: {e}"),
                })?;
                tags.extend(page.tags.unwrap_or_default());
                match next {
                    Some(n) => target = n,
                    None => return Ok(tags),
                }
            }
            Err(DistributionError::Registry {
                op: op.what.clone(),
                url: target,
                status: 200,
                message: format!("tag list longer than {MAX_PAGES} pages"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_from_link_header() {
        assert_eq!(
            next_target("</v2/a/b/tags/list?n=2&last=x>; rel=\"next\"").as_deref(),
            Some("/v2/a/b/tags/list?n=2&last=x")
        );
        assert_eq!(
            next_target("<https://r.example/v2/a/tags/list?last=y>; rel=\"next\"").as_deref(),
            Some("/v2/a/tags/list?last=y")
        );
        assert_eq!(next_target("</v2/a/tags/list>; rel=\"prev\""), None);
    }
}
