//! `GET /search?q=`: the projects and repositories whose names hold `q`, among those the
//! caller may see (public ones, its own, every one for a system admin), in Harbor's shape
//! (`project` and `repository` arrays).

use super::*;

impl Call<'_> {
    pub(super) fn search(&self) -> Result<Reply> {
        let q = self.query.get("q").cloned().unwrap_or_default();
        let ids = self.user_ids()?;
        let (mut projects, mut repositories) = (Vec::new(), Vec::new());
        for p in self.meta().projects()? {
            if !self.access(&p.name)?.visible() {
                continue;
            }
            if p.name.contains(q.as_str()) {
                projects.push(self.project_json(&p, &ids)?);
            }
            for r in self.project_repos(&p.name)? {
                if r.contains(q.as_str()) {
                    repositories.push(json!({
                        "project_id": p.id,
                        "project_name": p.name,
                        "project_public": p.record.public,
                        "repository_name": r,
                        "pull_count": 0,
                        "artifact_count": self.meta().repo_manifests(&r)?.len(),
                    }));
                }
            }
        }
        Ok(Reply::new(200).json(json!({ "project": projects, "repository": repositories })))
    }
}
