//! Tag retention, as Harbor has it: a project's policy is a list of "retain" rules, each a
//! template (`latestPushedK`, `latestPulledN`, `nDaysSinceLastPush`, `nDaysSinceLastPull`,
//! `always`) over the artifacts its selectors pick (a doublestar repository pattern,
//! `repoMatches`/`repoExcludes`; a doublestar tag pattern, `matches`/`excludes`, and whether
//! untagged artifacts are included). A run goes through the project's repositories that
//! some enabled rule's repository selector picks; in each, an artifact no applicable rule
//! retains is deleted (with its tags), except one an immutability rule protects, which is
//! kept as in Harbor. A dry run records the same verdicts and deletes nothing. Every run
//! (execution) records one task per repository with its counts and a log of each verdict.
//!
//! Artifacts are a repository's top-level manifests: an index's children and referrers
//! (Harbor's accessories) go with what they belong to, through GC's untagged pass. The
//! registry records no pull times, so every artifact counts as never pulled: `latestPulledN`
//! orders by push time, `nDaysSinceLastPull` retains nothing (Harbor's answer for artifacts
//! never pulled).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use wharf_types::Digest;

use super::immutable::glob_match;
use super::jobs;
use crate::meta::{now, Metadata, Result};
use crate::server::Registry;

/// At most this many rules per policy (Harbor's limit).
pub const MAX_RULES: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Template {
    #[serde(rename = "latestPushedK")]
    LatestPushedK,
    #[serde(rename = "latestPulledN")]
    LatestPulledN,
    #[serde(rename = "nDaysSinceLastPush")]
    NDaysSinceLastPush,
    #[serde(rename = "nDaysSinceLastPull")]
    NDaysSinceLastPull,
    #[serde(rename = "always")]
    Always,
}

impl Template {
    pub const ALL: [Template; 5] = [
        Template::LatestPushedK,
        Template::LatestPulledN,
        Template::NDaysSinceLastPush,
        Template::NDaysSinceLastPull,
        Template::Always,
    ];

    /// Harbor's template name, also the key of its parameter in `params`.
    pub fn name(self) -> &'static str {
        match self {
            Template::LatestPushedK => "latestPushedK",
            Template::LatestPulledN => "latestPulledN",
            Template::NDaysSinceLastPush => "nDaysSinceLastPush",
            Template::NDaysSinceLastPull => "nDaysSinceLastPull",
            Template::Always => "always",
        }
    }

    pub fn from_name(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What Harbor's metadata shows for it.
    pub fn display(self) -> &'static str {
        match self {
            Template::LatestPushedK => "the most recently pushed # artifacts",
            Template::LatestPulledN => "the most recently pulled # artifacts",
            Template::NDaysSinceLastPush => "pushed within the last # days",
            Template::NDaysSinceLastPull => "pulled within the last # days",
            Template::Always => "always",
        }
    }

    /// The unit of its one parameter; `None` when it takes none.
    pub fn unit(self) -> Option<&'static str> {
        match self {
            Template::LatestPushedK | Template::LatestPulledN => Some("COUNT"),
            Template::NDaysSinceLastPush | Template::NDaysSinceLastPull => Some("DAYS"),
            Template::Always => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagSelector {
    pub pattern: String,
    /// `excludes`: artifacts none of whose tags match.
    pub excludes: bool,
    /// Untagged artifacts are selected too (Harbor's `extras: {"untagged": true}`).
    pub untagged: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoSelector {
    /// Matched against the repository's name inside its project.
    pub pattern: String,
    pub excludes: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub disabled: bool,
    pub priority: i64,
    pub template: Template,
    /// The template's count or days; 0 for `always`.
    pub param: u64,
    pub tag: TagSelector,
    pub repo: RepoSelector,
}

impl Rule {
    fn applies_to(&self, repo: &str) -> bool {
        !self.disabled && glob_match(&self.repo.pattern, repo) != self.repo.excludes
    }

    fn selects(&self, c: &Candidate) -> bool {
        if c.tags.is_empty() {
            return self.tag.untagged;
        }
        let any = c.tags.iter().any(|t| glob_match(&self.tag.pattern, t));
        any != self.tag.excludes
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Harbor's `scope.ref`: the project's id (a project made again under the old name is
    /// another project, without this policy).
    pub project_id: u64,
    pub rules: Vec<Rule>,
    /// `trigger.settings.cron`; `None` runs only by hand.
    pub cron: Option<String>,
    pub created: u64,
    pub updated: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub policy_id: u64,
    /// `Pending` until a scheduler picks it up, then [`jobs::RUNNING`] and one of the ends.
    pub status: String,
    pub trigger: String,
    pub dry_run: bool,
    pub start: u64,
    pub end: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub execution_id: u64,
    pub repository: String,
    pub status: String,
    pub start: u64,
    pub end: Option<u64>,
    /// Artifacts in the repository, and those kept.
    pub total: u64,
    pub retained: u64,
    /// One line per artifact: digest, tags, verdict (`RETAIN`, `IMMUTABLE`, `DELETE`, or
    /// `DELETE (dry run)`).
    pub log: String,
}

pub const PENDING: &str = "Pending";

/// An artifact as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed: u64,
    /// 0: never pulled.
    pub pulled: u64,
}

/// The candidates (by index) that the rules applicable to a repository retain, their union
/// (Harbor's `or` algorithm).
pub fn retained(rules: &[&Rule], cands: &[Candidate], now: u64) -> HashSet<usize> {
    let mut keep = HashSet::new();
    for rule in rules {
        let mut picked: Vec<usize> = (0..cands.len()).filter(|&i| rule.selects(&cands[i])).collect();
        let days = |n: u64| now.saturating_sub(n.saturating_mul(86400));
        match rule.template {
            Template::Always => keep.extend(picked),
            Template::LatestPushedK | Template::LatestPulledN => {
                // Push times have second resolution: a tie goes to the smaller digest, so
                // that a run is repeatable.
                let key = |i: usize| {
                    let c = &cands[i];
                    let when =
                        if rule.template == Template::LatestPulledN { (c.pulled, c.pushed) } else { (c.pushed, 0) };
                    (std::cmp::Reverse(when), c.digest.to_string())
                };
                picked.sort_by_key(|&i| key(i));
                keep.extend(picked.into_iter().take(rule.param as usize));
            }
            Template::NDaysSinceLastPush => {
                keep.extend(picked.into_iter().filter(|&i| cands[i].pushed >= days(rule.param)))
            }
            Template::NDaysSinceLastPull => {
                keep.extend(picked.into_iter().filter(|&i| cands[i].pulled > 0 && cands[i].pulled >= days(rule.param)))
            }
        }
    }
    keep
}

/// Every repository of a project, in name order.
pub fn project_repos(meta: &dyn Metadata, project: &str) -> Result<Vec<String>> {
    let prefix = format!("{project}/");
    let mut out = Vec::new();
    let mut last = prefix.clone();
    loop {
        let page = meta.catalog(Some(&last), 1000)?;
        let n = page.len();
        for r in page {
            if !r.starts_with(&prefix) {
                return Ok(out);
            }
            last = r.clone();
            out.push(r);
        }
        if n < 1000 {
            return Ok(out);
        }
    }
}

/// The artifacts of a repository: its manifests that no other of its manifests holds as an
/// index child, and that refer to no other (referrers go with their subject).
fn candidates(meta: &dyn Metadata, repo: &str) -> Result<Vec<Candidate>> {
    let manifests = meta.repo_manifests(repo)?;
    let children: HashSet<Digest> = manifests.iter().flat_map(|(_, m)| m.manifests.iter().cloned()).collect();
    let mut tags: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
    for (t, d) in meta.repo_tags(repo)? {
        tags.entry(d).or_default().push(t);
    }
    Ok(manifests
        .into_iter()
        .filter(|(d, m)| !children.contains(d) && m.subject.is_none())
        .map(|(d, m)| Candidate { tags: tags.remove(&d).unwrap_or_default(), digest: d, pushed: m.created, pulled: 0 })
        .collect())
}

/// Records a new execution of policy `id`, `Pending` for a scheduler to pick up, and
/// forgets the policy's finished executions beyond [`jobs::HISTORY`]; its id.
pub fn enqueue(meta: &dyn Metadata, policy_id: u64, trigger: &str, dry_run: bool) -> Result<u64> {
    let exec =
        Execution { policy_id, status: PENDING.into(), trigger: trigger.into(), dry_run, start: now(), end: None };
    let id = jobs::create(meta, jobs::RETENTION_EXECUTION, &exec)?;
    let mine: Vec<(u64, Execution)> = jobs::all::<Execution>(meta, jobs::RETENTION_EXECUTION)?
        .into_iter()
        .filter(|(_, e)| e.policy_id == policy_id)
        .collect();
    let excess = mine.len().saturating_sub(jobs::HISTORY);
    let doomed: HashSet<u64> = mine.iter().filter(|(_, e)| e.end.is_some()).take(excess).map(|(id, _)| *id).collect();
    if !doomed.is_empty() {
        for (tid, t) in jobs::all::<Task>(meta, jobs::RETENTION_TASK)? {
            if doomed.contains(&t.execution_id) {
                meta.delete_job_record(jobs::RETENTION_TASK, tid)?;
            }
        }
        for eid in doomed {
            meta.delete_job_record(jobs::RETENTION_EXECUTION, eid)?;
        }
    }
    Ok(id)
}

/// Whether an execution was stopped (through the API, on any replica) since it started.
fn stopped(meta: &dyn Metadata, exec_id: u64) -> Result<bool> {
    Ok(jobs::get::<Execution>(meta, jobs::RETENTION_EXECUTION, exec_id)?.is_none_or(|e| e.status == jobs::STOPPED))
}

/// Runs execution `exec_id` (claimed by the caller): every repository some rule applies
/// to, one task each. Synchronous.
pub fn execute(reg: &Registry, exec_id: u64) -> Result<()> {
    let meta = reg.meta.as_ref();
    let Some(mut exec) = jobs::get::<Execution>(meta, jobs::RETENTION_EXECUTION, exec_id)? else {
        return Ok(());
    };
    if exec.status != PENDING {
        return Ok(());
    }
    exec.status = jobs::RUNNING.into();
    jobs::update(meta, jobs::RETENTION_EXECUTION, exec_id, &exec)?;
    let outcome = run_repositories(reg, exec_id, &exec);
    // A stop that came meanwhile stands; else the outcome.
    let mut last = jobs::get::<Execution>(meta, jobs::RETENTION_EXECUTION, exec_id)?.unwrap_or(exec);
    if last.status != jobs::STOPPED {
        last.status = match &outcome {
            Ok(true) => jobs::SUCCESS.into(),
            Ok(false) | Err(_) => jobs::ERROR.into(),
        };
    }
    last.end = Some(now());
    jobs::update(meta, jobs::RETENTION_EXECUTION, exec_id, &last)?;
    outcome.map(|_| ())
}

/// Whether every task succeeded.
fn run_repositories(reg: &Registry, exec_id: u64, exec: &Execution) -> Result<bool> {
    let meta = reg.meta.as_ref();
    let Some(policy) = jobs::get::<Policy>(meta, jobs::RETENTION_POLICY, exec.policy_id)? else {
        log::warn!("retention execution {exec_id}: policy {} is gone", exec.policy_id);
        return Ok(false);
    };
    let Some(project) = meta.projects()?.into_iter().find(|p| p.id == policy.project_id) else {
        log::warn!("retention execution {exec_id}: project {} is gone", policy.project_id);
        return Ok(false);
    };
    let mut all_ok = true;
    for repo in project_repos(meta, &project.name)? {
        let inside = repo.get(project.name.len() + 1..).unwrap_or("");
        let rules: Vec<&Rule> = policy.rules.iter().filter(|r| r.applies_to(inside)).collect();
        if rules.is_empty() {
            continue;
        }
        if stopped(meta, exec_id)? {
            return Ok(true);
        }
        let mut task = Task {
            execution_id: exec_id,
            repository: repo.clone(),
            status: jobs::RUNNING.into(),
            start: now(),
            end: None,
            total: 0,
            retained: 0,
            log: String::new(),
        };
        let tid = jobs::create(meta, jobs::RETENTION_TASK, &task)?;
        match run_repository(meta, &repo, &rules, exec.dry_run, &mut task) {
            Ok(()) => task.status = jobs::SUCCESS.into(),
            Err(e) => {
                all_ok = false;
                task.status = jobs::ERROR.into();
                task.log.push_str(&format!("error: {e}\n"));
            }
        }
        task.end = Some(now());
        jobs::update(meta, jobs::RETENTION_TASK, tid, &task)?;
    }
    Ok(all_ok)
}

fn run_repository(meta: &dyn Metadata, repo: &str, rules: &[&Rule], dry_run: bool, task: &mut Task) -> Result<()> {
    let cands = candidates(meta, repo)?;
    let keep = retained(rules, &cands, now());
    task.total = cands.len() as u64;
    for (i, c) in cands.iter().enumerate() {
        let mut verdict = "RETAIN";
        if !keep.contains(&i) {
            let mut immutable = false;
            for t in &c.tags {
                immutable = immutable || super::immutable::protected(meta, repo, t)?.is_some();
            }
            verdict = if immutable {
                "IMMUTABLE"
            } else if dry_run {
                "DELETE (dry run)"
            } else {
                meta.delete_manifest(repo, &c.digest)?;
                "DELETE"
            };
        }
        if !verdict.starts_with("DELETE") {
            task.retained += 1;
        }
        let tags = if c.tags.is_empty() { "<untagged>".to_string() } else { c.tags.join(",") };
        task.log.push_str(&format!("{} {repo}:{tags} {verdict}\n", c.digest));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(template: Template, param: u64, tag: &str) -> Rule {
        Rule {
            disabled: false,
            priority: 0,
            template,
            param,
            tag: TagSelector { pattern: tag.into(), excludes: false, untagged: false },
            repo: RepoSelector { pattern: "**".into(), excludes: false },
        }
    }

    fn cand(n: u8, tags: &[&str], pushed: u64) -> Candidate {
        Candidate { digest: Digest::of(&[n]), tags: tags.iter().map(|t| t.to_string()).collect(), pushed, pulled: 0 }
    }

    fn kept(rules: &[Rule], cands: &[Candidate]) -> Vec<String> {
        let refs: Vec<&Rule> = rules.iter().collect();
        let mut out: Vec<String> = retained(&refs, cands, 100 * 86400)
            .into_iter()
            .map(|i| if cands[i].tags.is_empty() { "untagged".into() } else { cands[i].tags.join(",") })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn templates_and_selectors() {
        let day = 86400;
        let cands = [
            cand(1, &["v1"], 90 * day),
            cand(2, &["v2", "stable"], 95 * day),
            cand(3, &["v3"], 99 * day),
            cand(4, &["dev"], 99 * day + 5),
            cand(5, &[], 99 * day + 9),
        ];
        assert_eq!(kept(&[rule(Template::LatestPushedK, 2, "v*")], &cands), ["v2,stable", "v3"]);
        assert_eq!(kept(&[rule(Template::LatestPushedK, 0, "v*")], &cands), Vec::<String>::new());
        assert_eq!(kept(&[rule(Template::NDaysSinceLastPush, 7, "**")], &cands), ["dev", "v2,stable", "v3"]);
        assert_eq!(kept(&[rule(Template::Always, 0, "stable")], &cands), ["v2,stable"]);
        // Excludes: artifacts none of whose tags match; untagged only when asked for.
        let mut ex = rule(Template::Always, 0, "v*");
        ex.tag.excludes = true;
        assert_eq!(kept(&[ex.clone()], &cands), ["dev"]);
        ex.tag.untagged = true;
        assert_eq!(kept(&[ex], &cands), ["dev", "untagged"]);
        let mut untagged = rule(Template::LatestPushedK, 1, "nothing");
        untagged.tag.untagged = true;
        assert_eq!(kept(&[untagged], &cands), ["untagged"]);
        // Never pulled: nDaysSinceLastPull keeps nothing, latestPulledN falls back on push.
        assert!(kept(&[rule(Template::NDaysSinceLastPull, 30, "**")], &cands).is_empty());
        assert_eq!(kept(&[rule(Template::LatestPulledN, 1, "v*")], &cands), ["v3"]);
        // Rules add up (or).
        assert_eq!(
            kept(&[rule(Template::LatestPushedK, 1, "v*"), rule(Template::Always, 0, "dev")], &cands),
            ["dev", "v3"]
        );
    }

    /// A run over a real index: per repository, exactly what no rule keeps goes, an immutable
    /// tag stays, a dry run and a stopped execution delete nothing, and the tasks say so.
    #[test]
    fn runs_over_an_index() {
        use crate::harbor::immutable::ImmutableRule;
        use crate::harbor::store::ProjectRecord;
        use crate::meta::ManifestRecord;

        let dir = std::env::temp_dir().join(format!("wharf-retention-{}", crate::store::random_hex(8).unwrap()));
        let reg = Registry::open(&dir, Default::default()).unwrap();
        let m = reg.meta.as_ref();
        let rec = ProjectRecord {
            public: false,
            owner: "a".into(),
            created: 1,
            updated: 1,
            storage_limit: None,
            registry_id: None,
        };
        let pid = m.create_project("p", &rec, None).unwrap().unwrap();
        let put = |repo: &str, tag: &str, created: u64| {
            let layer = Digest::of(format!("{repo}:{tag}").as_bytes());
            m.link_blob(repo, &layer, 1).unwrap();
            let man = ManifestRecord {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 1,
                artifact_type: None,
                subject: None,
                annotations: Default::default(),
                blobs: vec![layer],
                manifests: vec![],
                created,
            };
            m.put_manifest(repo, &Digest::of(format!("m {repo}:{tag}").as_bytes()), Some(tag), &man).unwrap().unwrap();
        };
        for (i, t) in ["v1", "v2", "v3"].iter().enumerate() {
            put("p/app", t, 10 + i as u64);
            put("p/lib", t, 10 + i as u64);
        }
        let immutable = ImmutableRule {
            disabled: false,
            priority: 0,
            repo_pattern: "app".into(),
            repo_excludes: false,
            tag_pattern: "v2".into(),
            tag_excludes: false,
        };
        m.create_immutable_rule("p", &immutable).unwrap().unwrap();
        let mut keep_one = rule(Template::LatestPushedK, 1, "v*");
        keep_one.repo.pattern = "app".into();
        let policy = Policy { project_id: pid, rules: vec![keep_one], cron: None, created: 1, updated: 1 };
        let id = jobs::create(m, jobs::RETENTION_POLICY, &policy).unwrap();
        let tags = |repo: &str| m.repo_tags(repo).unwrap().into_iter().map(|(t, _)| t).collect::<Vec<_>>();
        let tasks = |eid: u64| {
            jobs::all::<Task>(m, jobs::RETENTION_TASK)
                .unwrap()
                .into_iter()
                .filter(|(_, t)| t.execution_id == eid)
                .map(|(_, t)| t)
                .collect::<Vec<_>>()
        };

        // Stopped while pending: nothing runs.
        let stopped_run = enqueue(m, id, jobs::MANUAL, false).unwrap();
        let mut e: Execution = jobs::get(m, jobs::RETENTION_EXECUTION, stopped_run).unwrap().unwrap();
        e.status = jobs::STOPPED.into();
        jobs::update(m, jobs::RETENTION_EXECUTION, stopped_run, &e).unwrap();
        execute(&reg, stopped_run).unwrap();
        assert!(tasks(stopped_run).is_empty());
        assert_eq!(tags("p/app"), ["v1", "v2", "v3"]);

        let dry = enqueue(m, id, jobs::MANUAL, true).unwrap();
        execute(&reg, dry).unwrap();
        let t = tasks(dry);
        assert_eq!(t.len(), 1, "lib is no rule's: {t:?}");
        assert_eq!((t[0].repository.as_str(), t[0].total, t[0].retained), ("p/app", 3, 2));
        assert!(
            t[0].log.contains("p/app:v1 DELETE (dry run)") && t[0].log.contains("p/app:v2 IMMUTABLE"),
            "{}",
            t[0].log
        );
        assert_eq!(tags("p/app"), ["v1", "v2", "v3"]);

        let real = enqueue(m, id, jobs::SCHEDULE, false).unwrap();
        execute(&reg, real).unwrap();
        let e: Execution = jobs::get(m, jobs::RETENTION_EXECUTION, real).unwrap().unwrap();
        assert_eq!((e.status.as_str(), e.end.is_some()), (jobs::SUCCESS, true));
        assert_eq!(tags("p/app"), ["v2", "v3"]);
        assert_eq!(tags("p/lib"), ["v1", "v2", "v3"]);
        drop(reg);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn repository_selectors() {
        let mut r = rule(Template::Always, 0, "**");
        r.repo.pattern = "app*".into();
        assert!(r.applies_to("app1") && r.applies_to("app") && !r.applies_to("other") && !r.applies_to("app/x"));
        r.repo.excludes = true;
        assert!(!r.applies_to("app1") && r.applies_to("other"));
        r.repo.excludes = false;
        r.disabled = true;
        assert!(!r.applies_to("app1"));
    }
}
