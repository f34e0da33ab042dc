//! `GET /v1/search` of a registry, what `docker search` asks through the daemon. Registries of
//! the distribution project (`docker-registry`) have no such API and answer 404; dockerd then
//! says "Unexpected status code 404", and so does wharfd (from [`SearchAnswer::Status`]).
//! wharf-registry has one, which answers each caller with what it may pull.

use wharf_http::Body;
use wharf_types::ImageRef;

use crate::auth::{basic_header, challenges_of};
use crate::client::{token_key, Op, RegistryClient};
use crate::endpoint::Endpoint;
use crate::{AuthConfig, DistributionError};

/// What a registry answered a search with.
#[derive(Debug)]
pub enum SearchAnswer {
    /// The `{"num_results", "query", "results": [...]}` body, as it came.
    Results(Vec<u8>),
    /// A status other than 200.
    Status(u16),
}

/// The scope dockerd asks a token for when it searches.
const SEARCH_SCOPE: &str = "registry:catalog:search";

/// Search answers are small; a larger one is refused rather than held.
const MAX_SEARCH_BODY: u64 = 4 << 20;

impl RegistryClient {
    /// Searches `registry` (`host[:port]`, `docker.io` for Docker Hub) for `term`, at most
    /// `limit` results, over the same endpoints (HTTPS, then HTTP if insecure) as a pull.
    pub fn search(
        &self,
        registry: &str,
        term: &str,
        limit: u32,
        auth: Option<&AuthConfig>,
    ) -> Result<SearchAnswer, DistributionError> {
        let r = ImageRef { registry: registry.to_string(), repository: String::new(), tag: None, digest: None };
        let op = Op { what: format!("search {registry}"), name: registry.to_string(), repo: "", auth, actions: "" };
        let target = format!("/v1/search?q={}&n={limit}", wharf_types::percent::encode(term));
        // Credentials go with the request itself, as dockerd sends them to a v1 search (a
        // registry that searches what the caller may see answers anonymously otherwise, never
        // with a challenge): Basic ones as they are; a refresh token (what `docker login`
        // keeps when the token server gave one) is exchanged for a bearer token of scope
        // `registry:catalog:search` at the token server `/v2/` names, as dockerd does.
        self.with_endpoints(&r, false, |ep| {
            let authz = match auth {
                _ if ep.mirror => None,
                Some(a) if a.identity_token().is_some() => self.search_token(&op, ep)?,
                Some(a) => a.basic_credentials().map(|(user, password)| basic_header(&user, &password)),
                None => None,
            };
            let (url, resp) = match &authz {
                Some(value) => self.send_following(&op, "GET", ep.url_for(&target), &[], Some(value), Body::Empty)?,
                None => self.registry_send(&op, ep, "GET", ep.url_for(&target), &[], &mut || Ok(Body::Empty))?,
            };
            if resp.status != 200 {
                return Ok(SearchAnswer::Status(resp.status));
            }
            let body = resp.read_body(MAX_SEARCH_BODY).map_err(|source| DistributionError::Http {
                op: op.what.clone(),
                url: url.to_string(),
                source,
            })?;
            Ok(SearchAnswer::Results(body))
        })
    }

    /// A bearer token for a search from the token server of `ep`'s `/v2/` challenge, when it
    /// challenges.
    fn search_token(&self, op: &Op, ep: &Endpoint) -> Result<Option<String>, DistributionError> {
        let (_, resp) = self.send_following(op, "GET", ep.url_for("/v2/"), &[], None, Body::Empty)?;
        if resp.status != 401 {
            return Ok(None);
        }
        let challenges = challenges_of(&resp.headers);
        let unauthorized = |detail: String| DistributionError::Unauthorized {
            op: op.what.clone(),
            registry: ep.base.host_header(),
            detail,
        };
        let registry = token_key(ep, op.auth);
        Ok(Some(self.answer_challenge(op, &registry, SEARCH_SCOPE, &challenges, op.auth, &unauthorized)?))
    }
}
