//! `GET /v1/search` of a registry, what `docker search` asks through the daemon. Registries of
//! the distribution project (`docker-registry`) have no such API and answer 404; dockerd then
//! says "Unexpected status code 404", and so does wharfd (from [`SearchAnswer::Status`]).

use wharf_http::Body;
use wharf_types::ImageRef;

use crate::auth::encode_component;
use crate::client::{Op, RegistryClient};
use crate::{AuthConfig, DistributionError};

/// What a registry answered a search with.
#[derive(Debug)]
pub enum SearchAnswer {
    /// The `{"num_results", "query", "results": [...]}` body, as it came.
    Results(Vec<u8>),
    /// A status other than 200.
    Status(u16),
}

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
        let target = format!("/v1/search?q={}&n={limit}", encode_component(term));
        self.with_endpoints(&r, false, |ep| {
            let (url, resp) = self.registry_send(&op, ep, "GET", ep.url_for(&target), &[], &mut || Ok(Body::Empty))?;
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
}
