//! Harbor's model on top of the registry: projects (a repository's first path component),
//! local users, members with Harbor's project roles, and robot accounts. [`rbac`] is the
//! permission table, [`store`] the records and the [`store::IamStore`] role both index
//! backends implement, [`access`] who a request comes from and what it may do, and [`api`]
//! the REST API (`/api/v2.0`) in Harbor's shapes. [`retention`] and [`system_gc`] are the
//! policies' jobs (records in [`jobs`]), run when [`scheduler`] finds their [`cron`] slot
//! or a run the API recorded. Nothing but `api` knows HTTP.

pub mod access;
pub mod api;
pub mod audit;
pub mod cron;
pub mod immutable;
pub mod jobs;
pub mod openapi;
pub mod proxy;
pub mod quota;
pub mod rbac;
pub mod retention;
pub mod scheduler;
pub mod session;
pub mod store;
pub mod system_gc;

/// The project every registry has from its first start, public, as Harbor's `library`.
pub const LIBRARY: &str = "library";

/// Robot account names: `robot$<project>+<name>`, as Harbor names project robots.
pub const ROBOT_PREFIX: &str = "robot$";

/// A project name as Harbor takes it: lower-case letters and digits, separated by single
/// `.`, `_` or `-`, 1 to 255 characters. It is also a valid first component of a
/// repository name, so every project can hold repositories.
pub fn valid_project_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut prev_sep = true; // a separator may not start the name
    for c in name.chars() {
        match c {
            'a'..='z' | '0'..='9' => prev_sep = false,
            '.' | '_' | '-' if !prev_sep => prev_sep = true,
            _ => return false,
        }
    }
    !prev_sep
}

/// The project of a repository name: its first path component. A name with one component
/// is in no project (Harbor wants `<project>/<repository>`).
pub fn project_of(repo: &str) -> Option<&str> {
    repo.split_once('/').map(|(p, _)| p).filter(|p| !p.is_empty())
}

/// `robot$<project>+<name>` → (project, name).
pub fn parse_robot_name(full: &str) -> Option<(&str, &str)> {
    let rest = full.strip_prefix(ROBOT_PREFIX)?;
    let (project, name) = rest.split_once('+')?;
    (!project.is_empty() && !name.is_empty()).then_some((project, name))
}

/// A robot's own name part: what `valid_project_name` allows, as Harbor's robot names.
pub fn valid_robot_name(name: &str) -> bool {
    valid_project_name(name) && name.len() <= 128
}

/// A local user's name: 1 to 255 characters, none of Harbor's forbidden ones (`,"~#$%`),
/// no control characters, and not a robot's prefix.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(ROBOT_PREFIX)
        && name.chars().all(|c| !c.is_control() && !",\"~#$%:/ ".contains(c))
}

/// Harbor's password policy: 8 to 128 characters with at least one upper-case letter, one
/// lower-case letter and one digit. The message says what is missing.
pub fn check_password_policy(p: &str) -> Result<(), String> {
    let n = p.chars().count();
    if !(8..=128).contains(&n) {
        return Err(format!("the password has {n} characters: it needs 8 to 128"));
    }
    let mut missing = Vec::new();
    if !p.chars().any(|c| c.is_ascii_uppercase()) {
        missing.push("an upper-case letter");
    }
    if !p.chars().any(|c| c.is_ascii_lowercase()) {
        missing.push("a lower-case letter");
    }
    if !p.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("the password needs {}", missing.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["library", "a", "my-proj", "a.b_c-d", "x9"] {
            assert!(valid_project_name(ok), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a--b", "a/b", "a b", "é", &"a".repeat(256)] {
            assert!(!valid_project_name(bad), "{bad}");
        }
        assert_eq!(project_of("library/busybox"), Some("library"));
        assert_eq!(project_of("a/b/c"), Some("a"));
        assert_eq!(project_of("busybox"), None);
        assert_eq!(parse_robot_name("robot$p+ci"), Some(("p", "ci")));
        assert_eq!(parse_robot_name("robot$p"), None);
        assert_eq!(parse_robot_name("robot$+ci"), None);
        assert_eq!(parse_robot_name("p+ci"), None);
        assert!(valid_user_name("alice") && valid_user_name("a.b@c"));
        assert!(
            !valid_user_name("robot$x") && !valid_user_name("a,b") && !valid_user_name("") && !valid_user_name("a:b")
        );
    }

    #[test]
    fn password_policy() {
        assert!(check_password_policy("Harbor12345").is_ok());
        assert_eq!(check_password_policy("Short1").unwrap_err(), "the password has 6 characters: it needs 8 to 128");
        assert_eq!(check_password_policy("alllowercase1").unwrap_err(), "the password needs an upper-case letter");
        assert_eq!(check_password_policy("NoDigitsHere").unwrap_err(), "the password needs a digit");
    }
}
