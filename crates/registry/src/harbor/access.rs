//! What a subject (anonymous, a user, a robot) may do in a project, as Harbor evaluates it:
//! system admins everything; members what their role allows; anyone what a public project
//! allows; robots their permissions in their own project, and elsewhere what anyone may. Both front doors use
//! it: the registry protocol (through the token service and `handlers::authorize`) and the
//! REST API.

use super::rbac::{Action, Resource, Role, PUBLIC_PROJECT};
use super::store::{Project, ProjectRecord};
use super::{project_of, LIBRARY};
use crate::auth::Subject;
use crate::meta::{now, Metadata, Result};

/// A subject's standing in one project.
#[derive(Debug, Clone)]
pub struct ProjectAccess {
    pub project: Option<Project>,
    pub role: Option<Role>,
    sysadmin: bool,
    policies: Vec<(Resource, Action)>,
}

impl ProjectAccess {
    pub fn allows(&self, resource: Resource, action: Action) -> bool {
        self.sysadmin || self.policies.contains(&(resource, action))
    }

    /// Whether the subject may see the project at all (Harbor answers 404 for a private
    /// project to someone who may not read it, 403 to a member who may read but not act).
    pub fn visible(&self) -> bool {
        self.project.is_some() && self.allows(Resource::Project, Action::Read)
    }
}

/// Evaluates `subject` on `project`. `anonymous_pull` (part 1's switch) lets anyone pull
/// from every project.
pub fn evaluate(meta: &dyn Metadata, subject: &Subject, project: &str, anonymous_pull: bool) -> Result<ProjectAccess> {
    let found = meta.project(project)?;
    let sysadmin = matches!(subject, Subject::User { admin: true, .. });
    let mut access = ProjectAccess { project: found, role: None, sysadmin, policies: Vec::new() };
    let Some(p) = &access.project else {
        return Ok(access);
    };
    let public = p.record.public;
    match subject {
        Subject::Anonymous => {}
        Subject::User { name, .. } => {
            if let Some(m) = meta.member(project, name)? {
                access.role = Some(m.role);
                access.policies.extend_from_slice(m.role.policies());
            }
        }
        Subject::Robot { project: own, permissions, .. } => {
            // A robot's own permissions hold in its own project only; on a public project it
            // has what everyone has there (Harbor adds the public policies to any visitor).
            if own == project {
                for p in permissions {
                    access.policies.extend_from_slice(p.policies());
                }
            }
        }
    }
    if public {
        access.policies.extend_from_slice(PUBLIC_PROJECT);
    }
    if anonymous_pull {
        access.policies.push((Resource::Repository, Action::Pull));
    }
    Ok(access)
}

/// The permission a registry action needs: pull, push, delete (`*` is all three).
pub fn registry_permission(action: &str) -> Option<(Resource, Action)> {
    match action {
        "pull" => Some((Resource::Repository, Action::Pull)),
        "push" => Some((Resource::Repository, Action::Push)),
        "delete" => Some((Resource::Repository, Action::Delete)),
        _ => None,
    }
}

/// Who `subject` is, for messages: `user "alice"`, `robot "robot$p+ci"`, `anonymous`.
pub fn describe(subject: &Subject) -> String {
    match subject {
        Subject::Anonymous => "anonymous".to_string(),
        Subject::User { name, .. } => format!("user {name:?}"),
        Subject::Robot { name, .. } => format!("robot {name:?}"),
    }
}

/// The registry actions (`pull`, `push`, `delete`, `*`) of `asked` that `subject` may do on
/// repository `repo`, and when it may do none of them, why. A system admin pushing to a
/// project that does not exist creates it (private): part 1's admin could push anywhere, and
/// Harbor's rule, that a push needs its project made first, holds for everyone else.
pub fn registry_actions(
    meta: &dyn Metadata,
    subject: &Subject,
    repo: &str,
    asked: &[String],
    anonymous_pull: bool,
) -> Result<(Vec<String>, Option<String>)> {
    let Some(project) = project_of(repo) else {
        return Ok((Vec::new(), Some(format!("repository {repo:?} is in no project: name it <project>/<repository>"))));
    };
    let mut access = evaluate(meta, subject, project, anonymous_pull)?;
    if access.project.is_none() {
        let pushing = asked.iter().any(|a| a == "push" || a == "*");
        match subject {
            Subject::User { name, admin: true } if pushing && super::valid_project_name(project) => {
                let t = now();
                let record = ProjectRecord {
                    public: false,
                    owner: name.clone(),
                    created: t,
                    updated: t,
                    storage_limit: None,
                    registry_id: None,
                };
                if meta.create_project(project, &record, Some(name))?.is_some() {
                    log::info!("project {project:?} created by {name:?} with its first push");
                }
                access = evaluate(meta, subject, project, anonymous_pull)?;
            }
            _ => return Ok((Vec::new(), Some(format!("project {project:?} does not exist")))),
        }
    }
    let mut granted: Vec<String> = Vec::new();
    let mut missing = None;
    for a in asked {
        let ok = match a.as_str() {
            "*" => ["pull", "push", "delete"]
                .iter()
                .all(|x| registry_permission(x).is_some_and(|(r, act)| access.allows(r, act))),
            other => registry_permission(other).is_some_and(|(r, act)| access.allows(r, act)),
        };
        if ok {
            if !granted.contains(a) {
                granted.push(a.clone());
            }
        } else if missing.is_none() {
            missing = Some(denial(subject, &access, project, repo, a));
        }
    }
    Ok((granted, missing))
}

/// Says which permission is missing and what the subject has in the project.
fn denial(subject: &Subject, access: &ProjectAccess, project: &str, repo: &str, action: &str) -> String {
    let standing = match (subject, access.role) {
        (Subject::Robot { project: own, .. }, _) if own != project => format!("a robot of project {own:?}"),
        (Subject::Robot { permissions, .. }, _) => {
            let names: Vec<&str> = permissions.iter().map(|p| p.name()).collect();
            format!("a robot with permissions [{}]", names.join(", "))
        }
        (_, Some(role)) => format!("{} of project {project:?}", role.name()),
        (Subject::Anonymous, None) => "not logged in".to_string(),
        (_, None) => format!("no member of project {project:?}"),
    };
    let need = match action {
        "*" => "repository:pull, repository:push and repository:delete".to_string(),
        a => format!("repository:{a}"),
    };
    format!("{} ({standing}) lacks the {need} permission on {repo:?}", describe(subject))
}

/// Makes the public `library` project on first start, owned by `owner` (the admin).
pub fn ensure_library(meta: &dyn Metadata, owner: &str) -> Result<()> {
    if meta.project(LIBRARY)?.is_some() {
        return Ok(());
    }
    let t = now();
    let record = ProjectRecord {
        public: true,
        owner: owner.to_string(),
        created: t,
        updated: t,
        storage_limit: None,
        registry_id: None,
    };
    meta.create_project(LIBRARY, &record, Some(owner))?;
    Ok(())
}
