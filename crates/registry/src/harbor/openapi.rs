//! The OpenAPI 3 document of the REST API as implemented: what `GET /api/v2.0/openapi.json`
//! (and `swagger.json`, where Harbor's API explorer looks) serves. [`ENDPOINTS`] is the one
//! list; a test holds it to the route table in `api.rs`, so neither can grow alone.

use serde_json::{json, Map, Value};

/// (method, path under `/api/v2.0`, tag, summary). Path parameters in braces, named as
/// Harbor's document names them.
pub const ENDPOINTS: &[(&str, &str, &str, &str)] = &[
    ("GET", "/ping", "ping", "Answers Pong"),
    ("GET", "/health", "health", "The health of the registry's components"),
    ("GET", "/systeminfo", "systeminfo", "What this registry is and how it is configured"),
    ("GET", "/openapi.json", "openapi", "This document"),
    ("GET", "/swagger.json", "openapi", "This document, where Harbor's API explorer looks for it"),
    ("GET", "/projects", "project", "List the projects the caller may see (q, name, public, paging)"),
    ("HEAD", "/projects", "project", "Whether a project exists (project_name)"),
    ("POST", "/projects", "project", "Create a project (a proxy cache with registry_id)"),
    ("GET", "/projects/{project_name_or_id}", "project", "A project"),
    ("PUT", "/projects/{project_name_or_id}", "project", "Change a project's metadata and quota"),
    ("DELETE", "/projects/{project_name_or_id}", "project", "Delete an empty project"),
    ("GET", "/projects/{project_name_or_id}/summary", "project", "A project's counts and quota usage"),
    ("GET", "/projects/{project_name_or_id}/members", "member", "A project's members"),
    ("POST", "/projects/{project_name_or_id}/members", "member", "Add a member with a role"),
    ("GET", "/projects/{project_name_or_id}/members/{mid}", "member", "A member"),
    ("PUT", "/projects/{project_name_or_id}/members/{mid}", "member", "Change a member's role"),
    ("DELETE", "/projects/{project_name_or_id}/members/{mid}", "member", "Remove a member"),
    ("GET", "/projects/{project_name_or_id}/robots", "robot", "A project's robot accounts"),
    ("GET", "/projects/{project_name_or_id}/immutabletagrules", "immutable", "A project's tag immutability rules"),
    ("POST", "/projects/{project_name_or_id}/immutabletagrules", "immutable", "Add a tag immutability rule"),
    (
        "PUT",
        "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}",
        "immutable",
        "Change or disable a rule",
    ),
    ("DELETE", "/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}", "immutable", "Delete a rule"),
    ("GET", "/projects/{project_name}/repositories", "repository", "A project's repositories (q, paging)"),
    ("GET", "/projects/{project_name}/repositories/{repository_name}", "repository", "A repository"),
    (
        "PUT",
        "/projects/{project_name}/repositories/{repository_name}",
        "repository",
        "Change a repository's description",
    ),
    (
        "DELETE",
        "/projects/{project_name}/repositories/{repository_name}",
        "repository",
        "Delete a repository: every artifact and tag (refused when an immutable tag is in it)",
    ),
    ("GET", "/projects/{project_name_or_id}/logs", "auditlog", "A project's audit log (q, sort, paging)"),
    ("GET", "/audit-logs", "auditlog", "The audit log of every project the caller may read (q, sort, paging)"),
    ("GET", "/search", "search", "Projects and repositories matching q that the caller may see"),
    (
        "GET",
        "/projects/{project_name}/repositories/{repository_name}/artifacts",
        "artifact",
        "A repository's artifacts with tags, size, media types, push and pull time",
    ),
    ("GET", "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}", "artifact", "An artifact"),
    (
        "DELETE",
        "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}",
        "artifact",
        "Delete an artifact and its tags",
    ),
    (
        "GET",
        "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
        "artifact",
        "An artifact's tags",
    ),
    (
        "POST",
        "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags",
        "artifact",
        "Tag an artifact",
    ),
    (
        "DELETE",
        "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags/{tag_name}",
        "artifact",
        "Delete a tag",
    ),
    ("GET", "/users", "user", "List users (system admins)"),
    ("POST", "/users", "user", "Create a user"),
    ("GET", "/users/current", "user", "The caller's own profile"),
    ("GET", "/users/search", "user", "Find users by name"),
    ("GET", "/users/{user_id}", "user", "A user"),
    ("PUT", "/users/{user_id}", "user", "Change a user's profile"),
    ("DELETE", "/users/{user_id}", "user", "Delete a user"),
    ("PUT", "/users/{user_id}/password", "user", "Change a password"),
    ("PUT", "/users/{user_id}/sysadmin", "user", "Make a user a system admin or not"),
    ("GET", "/quotas", "quota", "Every project's quota and usage"),
    ("GET", "/quotas/{id}", "quota", "A quota"),
    ("PUT", "/quotas/{id}", "quota", "Change a quota's hard limit"),
    ("GET", "/robots", "robot", "List robot accounts"),
    ("POST", "/robots", "robot", "Create a robot account (its secret shown once)"),
    ("GET", "/robots/{robot_id}", "robot", "A robot account"),
    ("PUT", "/robots/{robot_id}", "robot", "Change, disable or enable a robot"),
    ("PATCH", "/robots/{robot_id}", "robot", "Refresh a robot's secret"),
    ("DELETE", "/robots/{robot_id}", "robot", "Delete a robot"),
    ("GET", "/registries", "registry", "Upstream registry endpoints (system admins)"),
    ("POST", "/registries", "registry", "Add an upstream registry endpoint"),
    ("POST", "/registries/ping", "registry", "Check that an endpoint answers with its credentials"),
    ("GET", "/registries/{id}", "registry", "An endpoint (its secret masked)"),
    ("PUT", "/registries/{id}", "registry", "Change an endpoint"),
    ("DELETE", "/registries/{id}", "registry", "Delete an endpoint no project uses"),
    ("POST", "/retentions", "retention", "Create a project's tag retention policy"),
    ("GET", "/retentions/metadatas", "retention", "The rule templates and selectors retention knows"),
    ("GET", "/retentions/{id}", "retention", "A retention policy"),
    ("PUT", "/retentions/{id}", "retention", "Change a retention policy (rules, schedule)"),
    ("DELETE", "/retentions/{id}", "retention", "Delete a retention policy"),
    ("POST", "/retentions/{id}/executions", "retention", "Run a policy now (dry_run lists, deletes nothing)"),
    ("GET", "/retentions/{id}/executions", "retention", "A policy's runs"),
    ("PATCH", "/retentions/{id}/executions/{eid}", "retention", "Stop a run"),
    ("GET", "/retentions/{id}/executions/{eid}/tasks", "retention", "A run's tasks, one per repository"),
    ("GET", "/retentions/{id}/executions/{eid}/tasks/{tid}", "retention", "A task's log"),
    ("GET", "/system/gc/schedule", "gc", "The GC schedule"),
    ("POST", "/system/gc/schedule", "gc", "Set the GC schedule, or run GC now (Manual)"),
    ("PUT", "/system/gc/schedule", "gc", "Change the GC schedule"),
    ("GET", "/system/gc", "gc", "GC runs"),
    ("GET", "/system/gc/{gc_id}", "gc", "A GC run"),
    ("GET", "/system/gc/{gc_id}/log", "gc", "A GC run's log"),
    (
        "GET",
        "/users/current/permissions",
        "user",
        "What the caller may do in a project (scope=/project/{id}, relative)",
    ),
];

/// The document, for a registry reached at `host`.
pub fn document(host: &str) -> Value {
    let mut paths = Map::new();
    for (method, path, tag, summary) in ENDPOINTS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "tags": [tag],
            "responses": {
                "200": {"description": "Success"},
                "401": {"description": "Unauthorized", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}}},
                "403": {"description": "Forbidden: the permission missing is named"},
                "404": {"description": "Not found"},
            },
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if matches!(*method, "POST" | "PUT" | "PATCH") {
            op["requestBody"] = json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wharf-registry: Harbor's API",
            "description": "The part of Harbor's /api/v2.0 that wharf-registry implements, in Harbor's shapes.",
            "version": "2.0",
        },
        "servers": [{"url": format!("//{host}/api/v2.0")}],
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
            "schemas": {"Errors": {"type": "object", "properties": {"errors": {"type": "array", "items": {
                "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}
            }}}}},
        },
        "security": [{"basic": []}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `/projects/{}/members` from a path with named parameters.
    fn shape(path: &str) -> String {
        path.split('/').map(|s| if s.starts_with('{') { "{}" } else { s }).collect::<Vec<_>>().join("/")
    }

    /// The route table's (method, shape) pairs, read from `api.rs`'s match arms
    /// `(["projects", p, "summary"], &Method::GET)`.
    fn routes() -> BTreeSet<(String, String)> {
        let src = include_str!("api.rs");
        let mut out = BTreeSet::new();
        for line in src.lines().map(str::trim).filter_map(|l| l.strip_prefix("([")) {
            let Some((segs, rest)) = line.split_once("], &Method::") else { continue };
            let method: String = rest.chars().take_while(|c| c.is_ascii_uppercase()).collect();
            let path: String = segs
                .split(',')
                .map(str::trim)
                .map(|s| match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Some(lit) => format!("/{lit}"),
                    None => "/{}".to_string(),
                })
                .collect();
            out.insert((method, path));
        }
        out
    }

    #[test]
    fn the_document_lists_exactly_the_routes_api_rs_serves() {
        let documented: BTreeSet<(String, String)> =
            ENDPOINTS.iter().map(|(m, p, _, _)| (m.to_string(), shape(p))).collect();
        let served = routes();
        assert!(served.len() > 40, "the route table was not found: {served:?}");
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(undocumented.is_empty(), "routes missing from openapi.rs ENDPOINTS: {undocumented:?}");
        assert!(unserved.is_empty(), "openapi.rs ENDPOINTS that api.rs does not serve: {unserved:?}");
    }

    #[test]
    fn the_document_is_openapi_3() {
        let d = document("127.0.0.1:5000");
        assert_eq!(d["openapi"], "3.0.3");
        let p = &d["paths"]["/projects/{project_name_or_id}/members/{mid}"];
        assert!(p["get"].is_object() && p["put"].is_object() && p["delete"].is_object(), "{p}");
        assert_eq!(p["get"]["parameters"].as_array().map(Vec::len), Some(2));
    }
}
