//! `GET /users/current/permissions?scope=/project/{id}&relative=true`: what the caller may do
//! in a project, as Harbor's UI asks before it shows a button: each `{resource, action}` of
//! the project's permission table that [`super::access`] grants the caller there (every one
//! for a system admin). `relative=false` names resources in full (`/project/1/repository`).
//! A scope that names no project the caller may see answers an empty list, as Harbor does.

use super::*;

/// Every (resource, action) a project knows: the project admin's table holds them all, and
/// the public-project policies are a part of it.
fn project_policies() -> Vec<(Resource, Action)> {
    let mut all: Vec<(Resource, Action)> = Role::ProjectAdmin.policies().to_vec();
    for p in super::super::rbac::PUBLIC_PROJECT {
        if !all.contains(p) {
            all.push(*p);
        }
    }
    all
}

/// The project part of a scope: `/project/{id}` (a name when `X-Is-Resource-Name` says so).
fn project_of_scope(scope: &str) -> Option<&str> {
    let rest = scope.trim_end_matches('/').strip_prefix("/project/")?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

impl Call<'_> {
    pub(super) fn current_user_permissions(&self) -> Result<Reply> {
        if matches!(self.subject, Subject::Anonymous) {
            return Err(HarborError::new(401, "authentication required: log in first"));
        }
        let scope = self.query.get("scope").map(String::as_str).unwrap_or("");
        let relative = match self.query.get("relative").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(bad(format!("relative {v:?} must be true or false"))),
        };
        let Some(p) = project_of_scope(scope) else {
            return Ok(Reply::new(200).json(json!([])));
        };
        let Some(project) = self.resolve_project(p)? else {
            return Ok(Reply::new(200).json(json!([])));
        };
        let access = self.access(&project.name)?;
        if !access.visible() {
            return Ok(Reply::new(200).json(json!([])));
        }
        let items: Vec<Value> = project_policies()
            .into_iter()
            .filter(|(r, a)| access.allows(*r, *a))
            .map(|(r, a)| {
                let resource =
                    if relative { r.name().to_string() } else { format!("/project/{}/{}", project.id, r.name()) };
                json!({ "resource": resource, "action": a.name() })
            })
            .collect();
        Ok(Reply::new(200).json(Value::Array(items)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        for (scope, want) in [
            ("/project/1", Some("1")),
            ("/project/12/", Some("12")),
            ("/project/", None),
            ("/project/1/repository", None),
            ("/system", None),
            ("", None),
            ("project/1", None),
        ] {
            assert_eq!(project_of_scope(scope), want, "{scope:?}");
        }
    }

    #[test]
    fn the_project_table_holds_every_role_and_the_public_policies() {
        let all = project_policies();
        for role in Role::ALL {
            for p in role.policies() {
                assert!(all.contains(p), "{role:?}: {p:?}");
            }
        }
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "each permission once");
    }
}
