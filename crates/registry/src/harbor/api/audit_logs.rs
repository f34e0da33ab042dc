//! The audit log through the REST API: `GET /audit-logs` (a system admin sees every entry;
//! anyone else logged in, those of the projects where its role has Harbor's `log:list`, as
//! Harbor filters it) and `GET /projects/{p}/logs` (`log:list` in the project), with Harbor's
//! `q`, `sort` and paging; and [`Call::audit`], which records what a REST call changed.

use super::*;
use crate::harbor::audit::{self, AuditRecord, Event, Query};

impl Call<'_> {
    /// Records that the caller did `operation` on `resource` (of `resource_type`), in
    /// `project` when it belongs to one.
    pub(super) fn audit(
        &self,
        project: Option<&Project>,
        resource_type: &'static str,
        resource: impl Into<String>,
        operation: &'static str,
    ) {
        if let Some(log) = &self.reg.audit {
            log.record(Event {
                project: project.map(|p| p.name.clone()),
                project_id: Some(project.map(|p| p.id).unwrap_or(0)),
                username: audit::username(&self.subject),
                resource: resource.into(),
                resource_type,
                operation,
                op_time: now(),
            });
        }
    }

    fn audit_query(&self) -> Result<Query> {
        Query::parse(self.query.get("q").map(String::as_str).unwrap_or(""), self.query.get("sort").map(String::as_str))
            .map_err(bad)
    }

    /// What this process queued is written before the log is read.
    fn audit_flushed(&self) -> Result<()> {
        match &self.reg.audit {
            Some(log) => {
                log.flush();
                Ok(())
            }
            None => Err(not_found("the audit log is off")),
        }
    }

    pub(super) fn list_audit_logs(&self) -> Result<Reply> {
        if self.subject == Subject::Anonymous {
            return Err(HarborError::new(401, "authentication required: log in first"));
        }
        let query = self.audit_query()?;
        self.audit_flushed()?;
        let mut records = self.meta().audit_records(None)?;
        if !self.sysadmin() {
            let mut mine = std::collections::HashSet::new();
            for p in self.meta().projects()? {
                if self.access(&p.name)?.allows(Resource::Log, Action::List) {
                    mine.insert(p.id);
                }
            }
            records.retain(|(_, r)| mine.contains(&r.project_id));
        }
        self.audit_page("/api/v2.0/audit-logs", query.apply(records))
    }

    pub(super) fn project_logs(&self, p: &str) -> Result<Reply> {
        let (project, _) = self.require(p, Resource::Log, Action::List)?;
        let query = self.audit_query()?;
        self.audit_flushed()?;
        let records = self.meta().audit_records(Some(project.id))?;
        self.audit_page(&format!("/api/v2.0/projects/{}/logs", project.name), query.apply(records))
    }

    /// One page of entries, with `X-Total-Count` and a `Link` that keeps `q` and `sort`.
    fn audit_page(&self, path: &str, items: Vec<(u64, AuditRecord)>) -> Result<Reply> {
        let mut keep = String::new();
        for key in ["q", "sort"] {
            if let Some(v) = self.query.get(key) {
                keep.push_str(&format!("&{key}={}", wharf_types::percent::encode(v)));
            }
        }
        self.paged_keeping(path, &keep, items, |(id, r)| {
            Ok(json!({
                "id": id,
                "username": r.username,
                "resource": r.resource,
                "resource_type": r.resource_type,
                "operation": r.operation,
                "op_time": time(r.op_time),
            }))
        })
    }
}
