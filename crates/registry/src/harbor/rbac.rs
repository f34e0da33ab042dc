//! Harbor's project permissions: the roles, and for each what it may do on which resource of
//! its project, taken from Harbor's RBAC role table (`src/common/rbac/project/rbac_role.go`)
//! for the resources wharf-registry has; plus what anyone may do on a public project, and
//! what a robot's pull/push/delete permissions stand for.

use serde::{Deserialize, Serialize};

/// A project role, with Harbor's role ids (what `role_id` holds in its API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    ProjectAdmin,
    Developer,
    Guest,
    Maintainer,
    LimitedGuest,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::ProjectAdmin, Role::Maintainer, Role::Developer, Role::Guest, Role::LimitedGuest];

    pub fn id(self) -> i64 {
        match self {
            Role::ProjectAdmin => 1,
            Role::Developer => 2,
            Role::Guest => 3,
            Role::Maintainer => 4,
            Role::LimitedGuest => 5,
        }
    }

    pub fn from_id(id: i64) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.id() == id)
    }

    /// The name Harbor's API gives the role (`role_name`).
    pub fn name(self) -> &'static str {
        match self {
            Role::ProjectAdmin => "projectAdmin",
            Role::Developer => "developer",
            Role::Guest => "guest",
            Role::Maintainer => "maintainer",
            Role::LimitedGuest => "limitedGuest",
        }
    }

    pub fn policies(self) -> &'static [(Resource, Action)] {
        match self {
            Role::ProjectAdmin => PROJECT_ADMIN,
            Role::Maintainer => MAINTAINER,
            Role::Developer => DEVELOPER,
            Role::Guest => GUEST,
            Role::LimitedGuest => LIMITED_GUEST,
        }
    }

    pub fn allows(self, resource: Resource, action: Action) -> bool {
        self.policies().contains(&(resource, action))
    }
}

/// The resources of a project that permissions name (Harbor's `ResourceSelf` is `Project`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Project,
    Member,
    Log,
    Quota,
    Repository,
    Artifact,
    Tag,
    Robot,
    TagRetention,
    ImmutableTag,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Resource::Project => "project",
            Resource::Member => "member",
            Resource::Log => "log",
            Resource::Quota => "quota",
            Resource::Repository => "repository",
            Resource::Artifact => "artifact",
            Resource::Tag => "tag",
            Resource::Robot => "robot",
            Resource::TagRetention => "tag-retention",
            Resource::ImmutableTag => "immutable-tag",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    List,
    Pull,
    Push,
    Operate,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::List => "list",
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Operate => "operate",
        }
    }
}

use Action as A;
use Resource as R;

const PROJECT_ADMIN: &[(Resource, Action)] = &[
    (R::Project, A::Read),
    (R::Project, A::Update),
    (R::Project, A::Delete),
    (R::Member, A::Create),
    (R::Member, A::Read),
    (R::Member, A::Update),
    (R::Member, A::Delete),
    (R::Member, A::List),
    (R::Log, A::List),
    (R::Quota, A::Read),
    (R::Repository, A::Create),
    (R::Repository, A::Read),
    (R::Repository, A::Update),
    (R::Repository, A::Delete),
    (R::Repository, A::List),
    (R::Repository, A::Pull),
    (R::Repository, A::Push),
    (R::TagRetention, A::Create),
    (R::TagRetention, A::Read),
    (R::TagRetention, A::Update),
    (R::TagRetention, A::Delete),
    (R::TagRetention, A::List),
    (R::TagRetention, A::Operate),
    (R::ImmutableTag, A::Create),
    (R::ImmutableTag, A::Update),
    (R::ImmutableTag, A::Delete),
    (R::ImmutableTag, A::List),
    (R::Robot, A::Create),
    (R::Robot, A::Read),
    (R::Robot, A::Update),
    (R::Robot, A::Delete),
    (R::Robot, A::List),
    (R::Artifact, A::Create),
    (R::Artifact, A::Read),
    (R::Artifact, A::Delete),
    (R::Artifact, A::List),
    (R::Tag, A::List),
    (R::Tag, A::Create),
    (R::Tag, A::Delete),
];

const MAINTAINER: &[(Resource, Action)] = &[
    (R::Project, A::Read),
    (R::Member, A::Read),
    (R::Member, A::List),
    (R::Log, A::List),
    (R::Quota, A::Read),
    (R::Repository, A::Create),
    (R::Repository, A::Read),
    (R::Repository, A::Update),
    (R::Repository, A::Delete),
    (R::Repository, A::List),
    (R::Repository, A::Push),
    (R::Repository, A::Pull),
    (R::TagRetention, A::Create),
    (R::TagRetention, A::Read),
    (R::TagRetention, A::Update),
    (R::TagRetention, A::Delete),
    (R::TagRetention, A::List),
    (R::TagRetention, A::Operate),
    (R::ImmutableTag, A::Create),
    (R::ImmutableTag, A::Update),
    (R::ImmutableTag, A::Delete),
    (R::ImmutableTag, A::List),
    (R::Robot, A::Read),
    (R::Robot, A::List),
    (R::Artifact, A::Create),
    (R::Artifact, A::Read),
    (R::Artifact, A::Delete),
    (R::Artifact, A::List),
    (R::Tag, A::List),
    (R::Tag, A::Create),
    (R::Tag, A::Delete),
];

const DEVELOPER: &[(Resource, Action)] = &[
    (R::Project, A::Read),
    (R::Member, A::Read),
    (R::Member, A::List),
    (R::Log, A::List),
    (R::Quota, A::Read),
    (R::Repository, A::Create),
    (R::Repository, A::Read),
    (R::Repository, A::Update),
    (R::Repository, A::List),
    (R::Repository, A::Push),
    (R::Repository, A::Pull),
    (R::TagRetention, A::Create),
    (R::TagRetention, A::Read),
    (R::TagRetention, A::Update),
    (R::TagRetention, A::Delete),
    (R::TagRetention, A::List),
    (R::TagRetention, A::Operate),
    (R::Robot, A::Read),
    (R::Robot, A::List),
    (R::Artifact, A::Create),
    (R::Artifact, A::Read),
    (R::Artifact, A::List),
    (R::Tag, A::List),
    (R::Tag, A::Create),
];

const GUEST: &[(Resource, Action)] = &[
    (R::Project, A::Read),
    (R::Member, A::Read),
    (R::Member, A::List),
    (R::Log, A::List),
    (R::Quota, A::Read),
    (R::Repository, A::Read),
    (R::Repository, A::List),
    (R::Repository, A::Pull),
    (R::Robot, A::Read),
    (R::Robot, A::List),
    (R::Tag, A::List),
    (R::Artifact, A::Read),
    (R::Artifact, A::List),
];

const LIMITED_GUEST: &[(Resource, Action)] = &[
    (R::Project, A::Read),
    (R::Quota, A::Read),
    (R::Repository, A::List),
    (R::Repository, A::Pull),
    (R::Tag, A::List),
    (R::Artifact, A::Read),
    (R::Artifact, A::List),
];

/// What anyone, anonymous included, may do on a public project (Harbor's public project
/// policies).
pub const PUBLIC_PROJECT: &[(Resource, Action)] = &[
    (R::Project, A::Read),
    (R::Repository, A::List),
    (R::Repository, A::Pull),
    (R::Artifact, A::Read),
    (R::Artifact, A::List),
    (R::Tag, A::List),
];

/// A robot account's permission on its project, as the brief of a CI account needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RobotPermission {
    Pull,
    Push,
    Delete,
}

impl RobotPermission {
    pub fn name(self) -> &'static str {
        match self {
            RobotPermission::Pull => "pull",
            RobotPermission::Push => "push",
            RobotPermission::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<RobotPermission> {
        match s {
            "pull" => Some(RobotPermission::Pull),
            "push" => Some(RobotPermission::Push),
            "delete" => Some(RobotPermission::Delete),
            _ => None,
        }
    }

    /// The (resource, action) pairs the permission grants: pulling reads the repository,
    /// its artifacts and tags; pushing creates them; deleting removes them.
    pub fn policies(self) -> &'static [(Resource, Action)] {
        match self {
            RobotPermission::Pull => &[
                (R::Repository, A::Pull),
                (R::Repository, A::Read),
                (R::Repository, A::List),
                (R::Artifact, A::Read),
                (R::Artifact, A::List),
                (R::Tag, A::List),
            ],
            RobotPermission::Push => {
                &[(R::Repository, A::Push), (R::Repository, A::Create), (R::Artifact, A::Create), (R::Tag, A::Create)]
            }
            RobotPermission::Delete => &[(R::Repository, A::Delete), (R::Artifact, A::Delete), (R::Tag, A::Delete)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per role: which of the actions people ask about it has. A change to any cell
    /// of the table changes a line.
    #[test]
    fn the_table_as_harbor_has_it() {
        let cells = [
            ("pull", R::Repository, A::Pull),
            ("push", R::Repository, A::Push),
            ("delete-repo", R::Repository, A::Delete),
            ("delete-artifact", R::Artifact, A::Delete),
            ("create-tag", R::Tag, A::Create),
            ("delete-tag", R::Tag, A::Delete),
            ("list-members", R::Member, A::List),
            ("add-member", R::Member, A::Create),
            ("list-robots", R::Robot, A::List),
            ("add-robot", R::Robot, A::Create),
            ("update-project", R::Project, A::Update),
            ("delete-project", R::Project, A::Delete),
            ("immutable-rules", R::ImmutableTag, A::Create),
            ("retention", R::TagRetention, A::Operate),
            ("logs", R::Log, A::List),
        ];
        let line = |has: &dyn Fn(Resource, Action) -> bool| {
            cells.iter().filter(|(_, r, a)| has(*r, *a)).map(|(n, _, _)| *n).collect::<Vec<_>>().join(" ")
        };
        let got: Vec<String> =
            Role::ALL.iter().map(|role| format!("{}: {}", role.name(), line(&|r, a| role.allows(r, a)))).collect();
        assert_eq!(
            got,
            [
                "projectAdmin: pull push delete-repo delete-artifact create-tag delete-tag list-members add-member \
                 list-robots add-robot update-project delete-project immutable-rules retention logs",
                "maintainer: pull push delete-repo delete-artifact create-tag delete-tag list-members list-robots \
                 immutable-rules retention logs",
                "developer: pull push create-tag list-members list-robots retention logs",
                "guest: pull list-members list-robots logs",
                "limitedGuest: pull",
            ]
        );
        assert_eq!(line(&|r, a| PUBLIC_PROJECT.contains(&(r, a))), "pull");
        let robot = |p: RobotPermission| line(&|r, a| p.policies().contains(&(r, a)));
        assert_eq!(robot(RobotPermission::Pull), "pull");
        assert_eq!(robot(RobotPermission::Push), "push create-tag");
        assert_eq!(robot(RobotPermission::Delete), "delete-repo delete-artifact delete-tag");
    }

    #[test]
    fn role_ids_are_harbors() {
        assert_eq!(Role::ALL.map(Role::id), [1, 4, 2, 3, 5]);
        for r in Role::ALL {
            assert_eq!(Role::from_id(r.id()), Some(r));
        }
        assert_eq!(Role::from_id(0), None);
        assert_eq!(Role::from_id(6), None);
        // Every role reads its project and pulls; only the admin manages members and robots.
        for r in Role::ALL {
            assert!(r.allows(R::Project, A::Read) && r.allows(R::Repository, A::Pull), "{r:?}");
            assert_eq!(r.allows(R::Member, A::Update), r == Role::ProjectAdmin);
            assert_eq!(r.allows(R::Robot, A::Delete), r == Role::ProjectAdmin);
        }
    }
}
