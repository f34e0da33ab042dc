//! A repository's REST calls beyond reading it: `DELETE /projects/{p}/repositories/{r}` (every
//! artifact and tag of it, with Harbor's `repository:delete`; refused with 412, nothing
//! deleted, when an immutability rule protects one of its tags) and `PUT` of its description
//! (`repository:update`). `{r}` is percent-encoded once more, as Harbor's clients send it
//! (`a%252Fb` for `a/b`).

use super::*;

impl Call<'_> {
    pub(super) fn delete_repository(&self, p: &str, r: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Repository, Action::Delete)?;
        let repo = Call::repo_name(&project, r)?;
        if self.meta().repo_manifests(&repo)?.is_empty() {
            return Err(not_found(format!("repository {repo} not found")));
        }
        for (t, _) in self.meta().repo_tags(&repo)? {
            self.refuse_immutable(&repo, &t)?;
        }
        let n = self.meta().delete_repository(&repo)?;
        log::info!("repository {repo} deleted with its {n} artifacts by {}", describe(&self.subject));
        self.audit(Some(&project), "repository", repo, "delete");
        Ok(Reply::new(200))
    }

    pub(super) fn update_repository(&self, p: &str, r: &str, body: &Value) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Repository, Action::Update)?;
        let repo = Call::repo_name(&project, r)?;
        if self.meta().repo_manifests(&repo)?.is_empty() {
            return Err(not_found(format!("repository {repo} not found")));
        }
        let description = opt_str(body, "description")?.ok_or_else(|| bad("description is required"))?;
        self.meta().set_repo_description(&repo, description)?;
        self.audit(Some(&project), "repository", repo, "update");
        Ok(Reply::new(200))
    }
}
