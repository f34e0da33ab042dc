//! The REST API of the policies' jobs, in Harbor's shapes: tag retention (`/retentions`,
//! its metadata, executions, tasks and their logs; Harbor's `tag-retention` permissions of
//! the policy's project) and GC (`/system/gc`, its schedule, history and logs; system
//! admins only). Bodies are parsed here into [`retention::Policy`] and
//! [`system_gc::GcSchedule`]; runs are recorded `Pending` and the scheduler runs them.

use serde_json::{json, Value};

use super::{bad, not_found, opt_bool, opt_int, opt_str, time, Call, HarborError, Result};
use crate::handlers::Reply;
use crate::harbor::cron::Cron;
use crate::harbor::jobs;
use crate::harbor::rbac::{Action, Resource};
use crate::harbor::retention::{
    self, Execution, Policy, RepoSelector, Rule, TagSelector, Task, Template, MAX_RULES, PENDING,
};
use crate::harbor::store::Project;
use crate::harbor::system_gc::{self, GcParams, GcRun, GcSchedule};
use crate::meta::now;

/// A cron of a body: Harbor's six fields, and it must fire some day.
fn check_cron(cron: &str) -> Result<()> {
    let c = Cron::parse(cron).map_err(bad)?;
    if c.next_after(now()).is_none() {
        return Err(bad(format!("cron {cron:?} never fires")));
    }
    Ok(())
}

fn next_run(cron: &str) -> Value {
    match Cron::parse(cron).ok().and_then(|c| c.next_after(now())) {
        Some(t) => json!(time(t)),
        None => Value::Null,
    }
}

/// The one doublestar selector of a list: (pattern, excludes, its `extras`).
pub(super) fn selector<'v>(
    list: Option<&'v Value>,
    what: &str,
    plain: &str,
    negated: &str,
) -> Result<(String, bool, &'v Value)> {
    let Some([one]) = list.and_then(Value::as_array).map(Vec::as_slice) else {
        return Err(bad(format!("{what} must hold exactly one selector")));
    };
    if opt_str(one, "kind")?.unwrap_or("doublestar") != "doublestar" {
        return Err(bad(format!("{what}: only doublestar selectors are supported")));
    }
    let excludes = match opt_str(one, "decoration")?.unwrap_or(plain) {
        d if d == plain => false,
        d if d == negated => true,
        d => return Err(bad(format!("{what}: decoration {d:?} is neither {plain} nor {negated}"))),
    };
    let pattern = opt_str(one, "pattern")?.ok_or_else(|| bad(format!("{what}: pattern is required")))?;
    crate::harbor::immutable::check_pattern(pattern).map_err(|e| bad(format!("{what}: {e}")))?;
    Ok((pattern.to_string(), excludes, one.get("extras").unwrap_or(&Value::Null)))
}

/// Harbor's `extras` of a tag selector: a JSON string (or object) with `untagged`.
fn untagged_of(extras: &Value, what: &str) -> Result<bool> {
    let parsed;
    let obj = match extras {
        Value::Null => return Ok(false),
        Value::String(s) if s.trim().is_empty() => return Ok(false),
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|e| bad(format!("{what}.extras is not JSON: {e}")))?;
            &parsed
        }
        v => v,
    };
    opt_bool(obj, "untagged").map(|u| u.unwrap_or(false)).map_err(|e| bad(format!("{what}.extras: {}", e.message)))
}

fn rule_of(v: &Value, i: usize) -> Result<Rule> {
    let what = format!("rules[{i}]");
    match opt_str(v, "action")?.unwrap_or("retain") {
        "retain" => {}
        a => return Err(bad(format!("{what}: action {a:?} is not supported: retain"))),
    }
    let name = opt_str(v, "template")?.ok_or_else(|| bad(format!("{what}: template is required")))?;
    let template = Template::from_name(name).ok_or_else(|| {
        let all: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
        bad(format!("{what}: template {name:?} is not one of {}", all.join(", ")))
    })?;
    let param = match template.unit() {
        None => 0,
        Some(_) => {
            let p = v.get("params").and_then(|p| p.get(name));
            let n = match p {
                Some(Value::Number(n)) => n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64),
                Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            n.ok_or_else(|| bad(format!("{what}: params.{name} is required: a whole number, 0 or more")))?
        }
    };
    let (tag_pattern, tag_excludes, extras) =
        selector(v.get("tag_selectors"), &format!("{what}.tag_selectors"), "matches", "excludes")?;
    let untagged = untagged_of(extras, &format!("{what}.tag_selectors[0]"))?;
    let (repo_pattern, repo_excludes, _) = selector(
        v.get("scope_selectors").and_then(|s| s.get("repository")),
        &format!("{what}.scope_selectors.repository"),
        "repoMatches",
        "repoExcludes",
    )?;
    Ok(Rule {
        disabled: opt_bool(v, "disabled")?.unwrap_or(false),
        priority: opt_int(v, "priority")?.unwrap_or(0),
        template,
        param,
        tag: TagSelector { pattern: tag_pattern, excludes: tag_excludes, untagged },
        repo: RepoSelector { pattern: repo_pattern, excludes: repo_excludes },
    })
}

/// A policy body: (project id, rules, cron).
fn policy_of(body: &Value) -> Result<(u64, Vec<Rule>, Option<String>)> {
    if !body.is_object() {
        return Err(bad("the body must be a retention policy object"));
    }
    match opt_str(body, "algorithm")?.unwrap_or("or") {
        "or" => {}
        a => return Err(bad(format!("algorithm {a:?} is not supported: or"))),
    }
    let scope = body.get("scope").filter(|s| !s.is_null()).ok_or_else(|| bad("scope is required"))?;
    match opt_str(scope, "level")? {
        Some("project") => {}
        Some(l) => return Err(bad(format!("scope.level {l:?} is not supported: project"))),
        None => return Err(bad("scope.level is required: project")),
    }
    let project = match opt_int(scope, "ref")? {
        Some(n) if n > 0 => n as u64,
        Some(n) => return Err(bad(format!("invalid project id {n}"))),
        None => return Err(bad("scope.ref is required: the project's id")),
    };
    let rules = match body.get("rules") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, r)| rule_of(r, i)).collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(bad("rules must be a list")),
    };
    if rules.len() > MAX_RULES {
        return Err(bad(format!("{} rules: only {MAX_RULES} rules are allowed at most", rules.len())));
    }
    for (i, r) in rules.iter().enumerate() {
        if let Some(j) = rules[..i].iter().position(|o| o == r) {
            return Err(HarborError::new(409, format!("rule {i} is conflict with rule {j}: they are the same")));
        }
    }
    let cron = match body.get("trigger").filter(|t| !t.is_null()) {
        None => None,
        Some(t) => {
            match opt_str(t, "kind")?.unwrap_or("Schedule") {
                "Schedule" => {}
                k => return Err(bad(format!("trigger.kind {k:?} is not supported: Schedule"))),
            }
            match t.get("settings").and_then(|s| s.get("cron")) {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if c.trim().is_empty() => None,
                Some(Value::String(c)) => {
                    check_cron(c)?;
                    Some(c.trim().to_string())
                }
                Some(_) => return Err(bad("trigger.settings.cron must be a string")),
            }
        }
    };
    Ok((project, rules, cron))
}

fn policy_json(id: u64, p: &Policy) -> Value {
    let rules: Vec<Value> = p
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let params = match r.template.unit() {
                None => json!({}),
                Some(_) => json!({ r.template.name(): r.param }),
            };
            json!({
                "id": i + 1,
                "priority": r.priority,
                "disabled": r.disabled,
                "action": "retain",
                "template": r.template.name(),
                "params": params,
                "tag_selectors": [{
                    "kind": "doublestar",
                    "decoration": if r.tag.excludes { "excludes" } else { "matches" },
                    "pattern": r.tag.pattern,
                    "extras": json!({ "untagged": r.tag.untagged }).to_string(),
                }],
                "scope_selectors": { "repository": [{
                    "kind": "doublestar",
                    "decoration": if r.repo.excludes { "repoExcludes" } else { "repoMatches" },
                    "pattern": r.repo.pattern,
                }]},
            })
        })
        .collect();
    let mut trigger =
        json!({ "kind": "Schedule", "settings": { "cron": p.cron.clone().unwrap_or_default() }, "references": {} });
    if let Some(c) = &p.cron {
        trigger["settings"]["next_scheduled_time"] = next_run(c);
    }
    json!({
        "id": id,
        "algorithm": "or",
        "rules": rules,
        "trigger": trigger,
        "scope": { "level": "project", "ref": p.project_id },
        "creation_time": time(p.created),
        "update_time": time(p.updated),
    })
}

fn execution_json(id: u64, e: &Execution) -> Value {
    json!({
        "id": id,
        "policy_id": e.policy_id,
        "start_time": time(e.start),
        "end_time": e.end.map(time).unwrap_or_default(),
        "status": e.status,
        "trigger": e.trigger,
        "dry_run": e.dry_run,
    })
}

fn task_json(id: u64, t: &Task) -> Value {
    json!({
        "id": id,
        "execution_id": t.execution_id,
        "repository": t.repository,
        "job_id": "",
        "status": t.status,
        "status_code": 0,
        "status_revision": 0,
        "start_time": time(t.start),
        "end_time": t.end.map(time).unwrap_or_default(),
        "total": t.total,
        "retained": t.retained,
    })
}

fn gc_run_json(id: u64, r: &GcRun) -> Value {
    json!({
        "id": id,
        "job_name": "GARBAGE_COLLECTION",
        "job_kind": r.trigger,
        "job_parameters": json!({ "delete_untagged": r.params.delete_untagged, "dry_run": r.params.dry_run }).to_string(),
        "schedule": { "type": r.trigger },
        "job_status": r.status,
        "deleted": false,
        "creation_time": time(r.start),
        "update_time": time(r.end.unwrap_or(r.start)),
    })
}

fn number(s: &str, what: &str) -> Result<u64> {
    s.parse().map_err(|_| bad(format!("{what} {s:?} is not a number")))
}

fn text(body: String) -> Reply {
    Reply::new(200).header("Content-Type", "text/plain; charset=utf-8").body(body)
}

impl Call<'_> {
    /// The project of a policy's `scope.ref`, when the caller holds `tag-retention:action`.
    fn retention_project(&self, project_id: u64, action: Action) -> Result<Project> {
        self.logged_in_user()?;
        let project = self
            .meta()
            .projects()?
            .into_iter()
            .find(|p| p.id == project_id)
            .ok_or_else(|| bad(format!("invalid project id {project_id}: no such project")))?;
        self.require_in(project, Resource::TagRetention, action).map(|(p, _)| p)
    }

    /// The policy `id` and its project, when the caller holds `tag-retention:action`.
    fn find_policy(&self, id: &str, action: Action) -> Result<(u64, Policy, Project)> {
        self.logged_in_user()?;
        let n = number(id, "retention id")?;
        let p: Policy = jobs::get(self.meta(), jobs::RETENTION_POLICY, n)?
            .ok_or_else(|| not_found(format!("retention policy {n} not found")))?;
        let project = self.retention_project(p.project_id, action)?;
        Ok((n, p, project))
    }

    fn find_execution(&self, policy: u64, eid: &str) -> Result<(u64, Execution)> {
        let n = number(eid, "execution id")?;
        jobs::get::<Execution>(self.meta(), jobs::RETENTION_EXECUTION, n)?
            .filter(|e| e.policy_id == policy)
            .map(|e| (n, e))
            .ok_or_else(|| not_found(format!("execution {n} of retention policy {policy} not found")))
    }

    /// The id of a project's retention policy (Harbor's project metadata `retention_id`).
    pub(super) fn retention_id(&self, project_id: u64) -> Result<Option<u64>> {
        Ok(jobs::all::<Policy>(self.meta(), jobs::RETENTION_POLICY)?
            .into_iter()
            .find(|(_, p)| p.project_id == project_id)
            .map(|(id, _)| id))
    }

    pub(super) fn retention_metadatas(&self) -> Result<Reply> {
        self.logged_in_user()?;
        let templates: Vec<Value> = Template::ALL
            .iter()
            .map(|t| {
                let params = match t.unit() {
                    None => json!([]),
                    Some(unit) => json!([{ "type": "int", "unit": unit, "required": true }]),
                };
                json!({ "rule_template": t.name(), "display_text": t.display(), "action": "retain", "params": params })
            })
            .collect();
        Ok(Reply::new(200).json(json!({
            "templates": templates,
            "scope_selectors": [{ "display_text": "Repositories", "kind": "doublestar",
                                  "decorations": ["repoMatches", "repoExcludes"] }],
            "tag_selectors": [{ "display_text": "Tags", "kind": "doublestar", "decorations": ["matches", "excludes"] }],
        })))
    }

    pub(super) fn create_retention(&self, body: &Value) -> Result<Reply> {
        self.logged_in_user()?;
        let (project_id, rules, cron) = policy_of(body)?;
        let project = self.retention_project(project_id, Action::Create)?;
        if let Some(old) = self.retention_id(project.id)? {
            return Err(bad(format!("project {} already has retention policy {old}", project.name)));
        }
        let t = now();
        let policy = Policy { project_id, rules, cron, created: t, updated: t };
        let id = jobs::create(self.meta(), jobs::RETENTION_POLICY, &policy)?;
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/retentions/{id}")))
    }

    pub(super) fn get_retention(&self, id: &str) -> Result<Reply> {
        let (n, p, _) = self.find_policy(id, Action::Read)?;
        Ok(Reply::new(200).json(policy_json(n, &p)))
    }

    pub(super) fn update_retention(&self, id: &str, body: &Value) -> Result<Reply> {
        let (n, old, project) = self.find_policy(id, Action::Update)?;
        let (project_id, rules, cron) = policy_of(body)?;
        if project_id != old.project_id {
            return Err(not_found(format!(
                "retention policy {n} is project {}'s, not project {project_id}'s",
                project.name
            )));
        }
        let policy = Policy { project_id, rules, cron, created: old.created, updated: now() };
        jobs::update(self.meta(), jobs::RETENTION_POLICY, n, &policy)?;
        Ok(Reply::new(200))
    }

    pub(super) fn delete_retention(&self, id: &str) -> Result<Reply> {
        let (n, _, _) = self.find_policy(id, Action::Delete)?;
        self.meta().delete_job_record(jobs::RETENTION_POLICY, n)?;
        Ok(Reply::new(200))
    }

    /// `{"dry_run": bool}`: a run, recorded now and started by the scheduler.
    pub(super) fn trigger_retention(&self, id: &str, body: &Value) -> Result<Reply> {
        let (n, _, _) = self.find_policy(id, Action::Update)?;
        let dry_run = opt_bool(body, "dry_run")?.unwrap_or(false);
        let eid = retention::enqueue(self.meta(), n, jobs::MANUAL, dry_run)?;
        Ok(Reply::new(201).header("Location", format!("/api/v2.0/retentions/{n}/executions/{eid}")))
    }

    pub(super) fn list_retention_executions(&self, id: &str) -> Result<Reply> {
        let (n, _, _) = self.find_policy(id, Action::List)?;
        let mut items: Vec<Value> = jobs::all::<Execution>(self.meta(), jobs::RETENTION_EXECUTION)?
            .iter()
            .filter(|(_, e)| e.policy_id == n)
            .map(|(eid, e)| execution_json(*eid, e))
            .collect();
        items.reverse(); // the latest first, as Harbor lists them
        self.paged(&format!("/api/v2.0/retentions/{n}/executions"), items)
    }

    /// `{"action": "stop"}`: a pending or running execution stops before its next repository.
    pub(super) fn stop_retention_execution(&self, id: &str, eid: &str, body: &Value) -> Result<Reply> {
        match opt_str(body, "action")? {
            Some("stop") => {}
            _ => return Err(bad("action should be 'stop'")),
        }
        let (n, _, _) = self.find_policy(id, Action::Update)?;
        let (e, mut exec) = self.find_execution(n, eid)?;
        if exec.end.is_none() {
            if exec.status == PENDING {
                exec.end = Some(now());
            }
            exec.status = jobs::STOPPED.into();
            jobs::update(self.meta(), jobs::RETENTION_EXECUTION, e, &exec)?;
        }
        Ok(Reply::new(200))
    }

    fn tasks_of(&self, eid: u64) -> Result<Vec<(u64, Task)>> {
        Ok(jobs::all::<Task>(self.meta(), jobs::RETENTION_TASK)?
            .into_iter()
            .filter(|(_, t)| t.execution_id == eid)
            .collect())
    }

    pub(super) fn list_retention_tasks(&self, id: &str, eid: &str) -> Result<Reply> {
        let (n, _, _) = self.find_policy(id, Action::List)?;
        let (e, _) = self.find_execution(n, eid)?;
        let items: Vec<Value> = self.tasks_of(e)?.iter().map(|(tid, t)| task_json(*tid, t)).collect();
        self.paged(&format!("/api/v2.0/retentions/{n}/executions/{e}/tasks"), items)
    }

    pub(super) fn retention_task_log(&self, id: &str, eid: &str, tid: &str) -> Result<Reply> {
        let (n, _, _) = self.find_policy(id, Action::Read)?;
        let (e, _) = self.find_execution(n, eid)?;
        let t = number(tid, "task id")?;
        let (_, task) = self
            .tasks_of(e)?
            .into_iter()
            .find(|(i, _)| *i == t)
            .ok_or_else(|| not_found(format!("task {t} of execution {e} not found")))?;
        Ok(text(task.log))
    }

    // -----------------------------------------------------------------------------------------
    // GC

    fn gc_schedule_json(id: u64, s: &GcSchedule) -> Value {
        json!({
            "id": id,
            "schedule": { "type": s.kind, "cron": s.cron, "next_scheduled_time": next_run(&s.cron) },
            "parameters": { "delete_untagged": s.params.delete_untagged, "dry_run": s.params.dry_run },
            "creation_time": time(s.created),
            "update_time": time(s.updated),
        })
    }

    pub(super) fn get_gc_schedule(&self) -> Result<Reply> {
        self.require_sysadmin()?;
        match system_gc::schedule(self.meta())? {
            // Harbor answers 200 with no body when there is no schedule.
            None => Ok(Reply::new(200)),
            Some((id, s)) => Ok(Reply::new(200).json(Call::gc_schedule_json(id, &s))),
        }
    }

    /// POST and PUT: `Manual` runs now (201 with the run's Location for POST), `None`
    /// removes the schedule, the others replace it.
    pub(super) fn kick_gc(&self, body: &Value, created: u16) -> Result<Reply> {
        self.require_sysadmin()?;
        let schedule = body.get("schedule").filter(|s| !s.is_null()).ok_or_else(|| bad("schedule is required"))?;
        let kind = opt_str(schedule, "type")?.ok_or_else(|| bad("schedule.type is required"))?;
        let p = body.get("parameters").filter(|p| !p.is_null()).unwrap_or(&Value::Null);
        let params = GcParams {
            delete_untagged: opt_bool(p, "delete_untagged")?.unwrap_or(false),
            dry_run: opt_bool(p, "dry_run")?.unwrap_or(false),
        };
        match kind {
            "Manual" => {
                let id = system_gc::enqueue(self.meta(), jobs::MANUAL, params, None)?;
                Ok(Reply::new(created).header("Location", format!("/api/v2.0/system/gc/{id}")))
            }
            "None" => {
                system_gc::set_schedule(self.meta(), None)?;
                Ok(Reply::new(created))
            }
            "Hourly" | "Daily" | "Weekly" | "Custom" => {
                let cron = match opt_str(schedule, "cron")?.map(str::trim).filter(|c| !c.is_empty()) {
                    Some(c) => c.to_string(),
                    None => system_gc::preset_cron(kind)
                        .ok_or_else(|| bad("empty cron string for gc schedule"))?
                        .to_string(),
                };
                check_cron(&cron)?;
                let t = now();
                let created_at = system_gc::schedule(self.meta())?.map(|(_, s)| s.created).unwrap_or(t);
                let s = GcSchedule { kind: kind.to_string(), cron, params, created: created_at, updated: t };
                system_gc::set_schedule(self.meta(), Some(s))?;
                Ok(Reply::new(created))
            }
            k => Err(bad(format!("schedule.type {k:?} is not one of Hourly, Daily, Weekly, Custom, Manual, None"))),
        }
    }

    pub(super) fn gc_history(&self) -> Result<Reply> {
        self.require_sysadmin()?;
        let mut items: Vec<Value> =
            jobs::all::<GcRun>(self.meta(), jobs::GC_RUN)?.iter().map(|(id, r)| gc_run_json(*id, r)).collect();
        items.reverse();
        self.paged("/api/v2.0/system/gc", items)
    }

    fn find_gc(&self, id: &str) -> Result<(u64, GcRun)> {
        self.require_sysadmin()?;
        let n = number(id, "gc id")?;
        let run = jobs::get::<GcRun>(self.meta(), jobs::GC_RUN, n)?
            .ok_or_else(|| not_found(format!("garbage collection {n} not found")))?;
        Ok((n, run))
    }

    pub(super) fn get_gc(&self, id: &str) -> Result<Reply> {
        let (n, run) = self.find_gc(id)?;
        Ok(Reply::new(200).json(gc_run_json(n, &run)))
    }

    pub(super) fn gc_log(&self, id: &str) -> Result<Reply> {
        let (_, run) = self.find_gc(id)?;
        Ok(text(run.log))
    }
}
