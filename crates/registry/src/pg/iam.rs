//! Harbor's model ([`IamStore`]) in PostgreSQL: the `projects`, `members` and `robots` tables
//! and the users' ids and profiles (schema version 3). A project's members and robots go
//! with it, and a user's memberships with the user, by `ON DELETE CASCADE`.
//! The policies' job records and the schedules' claimed slots are the `job_records` and
//! `schedule_claims` tables (schema version 4).

use super::meta::{db, decode_json, user_of, PgMetadata, USER_COLUMNS};
use super::wire::{Row, TextArray, ToSql};
use crate::harbor::audit::AuditRecord;
use crate::harbor::immutable::ImmutableRule;
use crate::harbor::proxy::{RegistryEndpoint, RegistryRecord};
use crate::harbor::rbac::Role;
use crate::harbor::store::{IamStore, Member, Project, ProjectRecord, Robot, RobotRecord};
use crate::meta::{ManifestRecord, MetaError, Result, UserRecord};
use wharf_types::Digest;

const PROJECT_COLUMNS: &str = "name, id, public, owner, created, updated, storage_limit, registry_id";

fn project_of(r: &Row) -> Result<Project> {
    Ok(Project {
        name: r.text(0).map_err(db)?.to_string(),
        id: r.uint(1).map_err(db)?,
        record: ProjectRecord {
            public: r.boolean(2).map_err(db)?,
            owner: r.text(3).map_err(db)?.to_string(),
            created: r.uint(4).map_err(db)?,
            updated: r.uint(5).map_err(db)?,
            storage_limit: r
                .opt(6)
                .map(|v| v.parse::<u64>())
                .transpose()
                .map_err(|e| MetaError::Decode { key: "projects.storage_limit".into(), message: e.to_string() })?,
            registry_id: r
                .opt(7)
                .map(|v| v.parse::<u64>())
                .transpose()
                .map_err(|e| MetaError::Decode { key: "projects.registry_id".into(), message: e.to_string() })?,
        },
    })
}

fn member_of(r: &Row) -> Result<Member> {
    let role = r.int(3).map_err(db)?;
    Ok(Member {
        project: r.text(0).map_err(db)?.to_string(),
        user: r.text(1).map_err(db)?.to_string(),
        id: r.uint(2).map_err(db)?,
        role: Role::from_id(role)
            .ok_or_else(|| MetaError::Decode { key: "members.role".into(), message: format!("no role {role}") })?,
    })
}

fn robot_of(r: &Row) -> Result<Robot> {
    let name = r.text(0).map_err(db)?.to_string();
    let record = decode_json(&name, r.text(2).map_err(db)?)?;
    Ok(Robot { id: r.uint(1).map_err(db)?, name, record })
}

fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| MetaError::Db(format!("encode record: {e}")))
}

impl IamStore for PgMetadata {
    fn create_project(&self, name: &str, record: &ProjectRecord, admin: Option<&str>) -> Result<Option<u64>> {
        self.run(|c| {
            let params: [&dyn ToSql; 7] = [
                &name,
                &record.public,
                &record.owner,
                &record.created,
                &record.updated,
                &record.storage_limit,
                &record.registry_id,
            ];
            let out = c.batch(&[
                ("BEGIN", &[]),
                (
                    "INSERT INTO projects (name, public, owner, created, updated, storage_limit, registry_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING RETURNING id",
                    &params,
                ),
            ])?;
            let Some(row) = out.get(1).and_then(|r| r.rows.first()) else {
                c.simple("ROLLBACK")?;
                return Ok(None);
            };
            let id = row.uint(0)?;
            if let Some(user) = admin {
                let role = Role::ProjectAdmin.id();
                c.execute("INSERT INTO members (project, username, role) VALUES ($1, $2, $3)", &[&name, &user, &role])?;
            }
            c.simple("COMMIT")?;
            Ok(Some(id))
        })
    }

    fn project(&self, name: &str) -> Result<Option<Project>> {
        self.one(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE name = $1"), &[&name], project_of)
    }

    fn projects(&self) -> Result<Vec<Project>> {
        let rows = self.run(|c| c.query(&format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name"), &[]))?;
        rows.iter().map(project_of).collect()
    }

    fn update_project(&self, name: &str, r: &ProjectRecord) -> Result<bool> {
        let n = self.run(|c| {
            c.execute(
                "UPDATE projects SET public = $2, owner = $3, created = $4, updated = $5, storage_limit = $6, \
                 registry_id = $7 WHERE name = $1",
                &[&name, &r.public, &r.owner, &r.created, &r.updated, &r.storage_limit, &r.registry_id],
            )
        })?;
        Ok(n > 0)
    }

    fn delete_project(&self, name: &str) -> Result<bool> {
        Ok(self.run(|c| c.execute("DELETE FROM projects WHERE name = $1", &[&name]))? > 0)
    }

    fn put_member(&self, project: &str, user: &str, role: Role) -> Result<Option<u64>> {
        let role = role.id();
        let rows = self.run(|c| {
            c.query(
                "INSERT INTO members (project, username, role) SELECT $1, $2, $3 \
                 WHERE EXISTS (SELECT 1 FROM projects WHERE name = $1) AND EXISTS (SELECT 1 FROM users WHERE name = $2) \
                 ON CONFLICT (project, username) DO UPDATE SET role = EXCLUDED.role RETURNING id",
                &[&project, &user, &role],
            )
        })?;
        rows.first().map(|r| r.uint(0).map_err(db)).transpose()
    }

    fn member(&self, project: &str, user: &str) -> Result<Option<Member>> {
        self.one(
            "SELECT project, username, id, role FROM members WHERE project = $1 AND username = $2",
            &[&project, &user],
            member_of,
        )
    }

    fn members(&self, project: &str) -> Result<Vec<Member>> {
        let rows = self.run(|c| {
            c.query("SELECT project, username, id, role FROM members WHERE project = $1 ORDER BY username", &[&project])
        })?;
        rows.iter().map(member_of).collect()
    }

    fn delete_member(&self, project: &str, user: &str) -> Result<bool> {
        let n =
            self.run(|c| c.execute("DELETE FROM members WHERE project = $1 AND username = $2", &[&project, &user]))?;
        Ok(n > 0)
    }

    fn users(&self) -> Result<Vec<(String, UserRecord)>> {
        let rows = self.run(|c| c.query(&format!("SELECT {USER_COLUMNS}, name FROM users ORDER BY name"), &[]))?;
        rows.iter().map(|r| Ok((r.text(8).map_err(db)?.to_string(), user_of(r)?))).collect()
    }

    fn update_user(&self, name: &str, u: &UserRecord) -> Result<bool> {
        let n = self.run(|c| {
            c.execute(
                "UPDATE users SET salt = $2, hash = $3, iterations = $4, admin = $5, email = $6, realname = $7 \
                 WHERE name = $1",
                &[&name, &u.salt, &u.hash, &u.iterations, &u.admin, &u.email, &u.realname],
            )
        })?;
        Ok(n > 0)
    }

    fn delete_user(&self, name: &str) -> Result<bool> {
        Ok(self.run(|c| c.execute("DELETE FROM users WHERE name = $1", &[&name]))? > 0)
    }

    fn create_robot(&self, name: &str, record: &RobotRecord) -> Result<Option<u64>> {
        let text = json(record)?;
        let rows = self.run(|c| {
            c.query(
                "INSERT INTO robots (name, project, record) SELECT $1, $2, $3::jsonb \
                 WHERE EXISTS (SELECT 1 FROM projects WHERE name = $2) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &record.project, &text],
            )
        })?;
        rows.first().map(|r| r.uint(0).map_err(db)).transpose()
    }

    fn robot(&self, name: &str) -> Result<Option<Robot>> {
        self.one("SELECT name, id, record FROM robots WHERE name = $1", &[&name], robot_of)
    }

    fn robots(&self) -> Result<Vec<Robot>> {
        let rows = self.run(|c| c.query("SELECT name, id, record FROM robots ORDER BY name", &[]))?;
        rows.iter().map(robot_of).collect()
    }

    fn update_robot(&self, name: &str, record: &RobotRecord) -> Result<bool> {
        let text = json(record)?;
        Ok(self.run(|c| c.execute("UPDATE robots SET record = $2::jsonb WHERE name = $1", &[&name, &text]))? > 0)
    }

    fn delete_robot(&self, name: &str) -> Result<bool> {
        Ok(self.run(|c| c.execute("DELETE FROM robots WHERE name = $1", &[&name]))? > 0)
    }

    fn repo_manifests(&self, repo: &str) -> Result<Vec<(Digest, ManifestRecord)>> {
        let rows =
            self.run(|c| c.query("SELECT digest, record FROM manifests WHERE repo = $1 ORDER BY digest", &[&repo]))?;
        rows.iter()
            .map(|r| {
                let d = r.text(0).map_err(db)?;
                Ok((digest_of(d)?, decode_json(d, r.text(1).map_err(db)?)?))
            })
            .collect()
    }

    fn create_immutable_rule(&self, project: &str, rule: &ImmutableRule) -> Result<Option<u64>> {
        let text = json(rule)?;
        let rows = self.run(|c| {
            c.query(
                "INSERT INTO immutable_rules (project, record) SELECT $1, $2::jsonb \
                 WHERE EXISTS (SELECT 1 FROM projects WHERE name = $1) RETURNING id",
                &[&project, &text],
            )
        })?;
        rows.first().map(|r| r.uint(0).map_err(db)).transpose()
    }

    fn immutable_rules(&self, project: &str) -> Result<Vec<(u64, ImmutableRule)>> {
        let rows = self
            .run(|c| c.query("SELECT id, record FROM immutable_rules WHERE project = $1 ORDER BY id", &[&project]))?;
        rows.iter()
            .map(|r| {
                let id = r.uint(0).map_err(db)?;
                Ok((id, decode_json(&format!("immutable rule {id}"), r.text(1).map_err(db)?)?))
            })
            .collect()
    }

    fn update_immutable_rule(&self, project: &str, id: u64, rule: &ImmutableRule) -> Result<bool> {
        let text = json(rule)?;
        let n = self.run(|c| {
            c.execute(
                "UPDATE immutable_rules SET record = $3::jsonb WHERE project = $1 AND id = $2",
                &[&project, &id, &text],
            )
        })?;
        Ok(n > 0)
    }

    fn delete_immutable_rule(&self, project: &str, id: u64) -> Result<bool> {
        let n =
            self.run(|c| c.execute("DELETE FROM immutable_rules WHERE project = $1 AND id = $2", &[&project, &id]))?;
        Ok(n > 0)
    }

    fn create_registry(&self, name: &str, record: &RegistryRecord) -> Result<Option<u64>> {
        let text = json(record)?;
        let rows = self.run(|c| {
            c.query(
                "INSERT INTO registries (name, record) VALUES ($1, $2::jsonb) ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &text],
            )
        })?;
        rows.first().map(|r| r.uint(0).map_err(db)).transpose()
    }

    fn registries(&self) -> Result<Vec<RegistryEndpoint>> {
        let rows = self.run(|c| c.query("SELECT id, name, record FROM registries ORDER BY id", &[]))?;
        rows.iter()
            .map(|r| {
                let name = r.text(1).map_err(db)?.to_string();
                let record = decode_json(&name, r.text(2).map_err(db)?)?;
                Ok(RegistryEndpoint { id: r.uint(0).map_err(db)?, name, record })
            })
            .collect()
    }

    fn update_registry(&self, id: u64, name: &str, record: &RegistryRecord) -> Result<bool> {
        let text = json(record)?;
        let n = self.run(|c| {
            c.execute("UPDATE registries SET name = $2, record = $3::jsonb WHERE id = $1", &[&id, &name, &text])
        })?;
        Ok(n > 0)
    }

    fn create_job_record(&self, kind: &str, doc: &[u8]) -> Result<u64> {
        let text = job_text(doc)?;
        let rows = self.run(|c| {
            c.query("INSERT INTO job_records (kind, record) VALUES ($1, $2::jsonb) RETURNING id", &[&kind, &text])
        })?;
        rows.first().ok_or_else(|| MetaError::Db("INSERT ... RETURNING gave no row".into()))?.uint(0).map_err(db)
    }

    fn job_record(&self, kind: &str, id: u64) -> Result<Option<Vec<u8>>> {
        let rows =
            self.run(|c| c.query("SELECT record FROM job_records WHERE kind = $1 AND id = $2", &[&kind, &id]))?;
        rows.first().map(|r| Ok(r.text(0).map_err(db)?.as_bytes().to_vec())).transpose()
    }

    fn job_records(&self, kind: &str) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows = self.run(|c| c.query("SELECT id, record FROM job_records WHERE kind = $1 ORDER BY id", &[&kind]))?;
        rows.iter().map(|r| Ok((r.uint(0).map_err(db)?, r.text(1).map_err(db)?.as_bytes().to_vec()))).collect()
    }

    fn update_job_record(&self, kind: &str, id: u64, doc: &[u8]) -> Result<bool> {
        let text = job_text(doc)?;
        let n = self.run(|c| {
            c.execute("UPDATE job_records SET record = $3::jsonb WHERE kind = $1 AND id = $2", &[&kind, &id, &text])
        })?;
        Ok(n > 0)
    }

    fn delete_registry(&self, id: u64) -> Result<bool> {
        Ok(self.run(|c| c.execute("DELETE FROM registries WHERE id = $1", &[&id]))? > 0)
    }

    fn delete_job_record(&self, kind: &str, id: u64) -> Result<bool> {
        let n = self.run(|c| c.execute("DELETE FROM job_records WHERE kind = $1 AND id = $2", &[&kind, &id]))?;
        Ok(n > 0)
    }

    /// A row claim: the upsert changes the row (and returns it) only for a later slot, and
    /// PostgreSQL serializes concurrent upserts of one key, so one replica wins a slot.
    fn claim_scheduled_run(&self, name: &str, due: u64) -> Result<bool> {
        let rows = self.run(|c| {
            c.query(
                "INSERT INTO schedule_claims (name, due) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET due = EXCLUDED.due WHERE schedule_claims.due < EXCLUDED.due \
                 RETURNING name",
                &[&name, &due],
            )
        })?;
        Ok(!rows.is_empty())
    }

    fn project_storage(&self, project: &str) -> Result<Vec<(Digest, u64)>> {
        // `p/` .. `p0` ('0' follows '/', byte order under COLLATE "C") is project p's.
        let (from, to) = (format!("{project}/"), format!("{project}0"));
        let rows = self.run(|c| {
            c.query(
                "SELECT DISTINCT ON (digest) digest, size FROM ( \
                     SELECT digest, size FROM links WHERE repo >= $1 AND repo < $2 \
                     UNION ALL \
                     SELECT digest, (record->>'size')::bigint FROM manifests WHERE repo >= $1 AND repo < $2 \
                 ) u ORDER BY digest",
                &[&from, &to],
            )
        })?;
        rows.iter().map(|r| Ok((digest_of(r.text(0).map_err(db)?)?, r.uint(1).map_err(db)?))).collect()
    }

    fn repo_tags(&self, repo: &str) -> Result<Vec<(String, Digest)>> {
        let rows = self.run(|c| c.query("SELECT tag, digest FROM tags WHERE repo = $1 ORDER BY tag", &[&repo]))?;
        rows.iter().map(|r| Ok((r.text(0).map_err(db)?.to_string(), digest_of(r.text(1).map_err(db)?)?))).collect()
    }

    fn project_repos(&self, project: &str) -> Result<Vec<String>> {
        // Keys are `COLLATE "C"`: `project/` up to `project0` is every name under the project.
        let (from, to) = (format!("{project}/"), format!("{project}0"));
        let rows = self.run(|c| {
            c.query(
                "SELECT DISTINCT repo FROM manifests WHERE repo >= $1 AND repo < $2 ORDER BY repo",
                &[&from.as_str(), &to.as_str()],
            )
        })?;
        rows.iter().map(|r| Ok(r.text(0).map_err(db)?.to_string())).collect()
    }
    fn delete_repository(&self, repo: &str) -> Result<usize> {
        // Tags and uses go with the manifests (ON DELETE CASCADE); one transaction.
        let out = self.run(|c| {
            c.batch(&[
                ("BEGIN", &[]),
                ("DELETE FROM manifests WHERE repo = $1", &[&repo]),
                ("DELETE FROM repo_descriptions WHERE repo = $1", &[&repo]),
                ("COMMIT", &[]),
            ])
        })?;
        Ok(out.get(1).map(|r| r.affected).unwrap_or(0) as usize)
    }

    fn repo_description(&self, repo: &str) -> Result<Option<String>> {
        self.one("SELECT description FROM repo_descriptions WHERE repo = $1", &[&repo], |r| {
            Ok(r.text(0).map_err(db)?.to_string())
        })
    }

    fn set_repo_description(&self, repo: &str, description: &str) -> Result<()> {
        self.run(|c| {
            c.execute(
                "INSERT INTO repo_descriptions (repo, description) VALUES ($1, $2) \
                 ON CONFLICT (repo) DO UPDATE SET description = EXCLUDED.description",
                &[&repo, &description],
            )
        })?;
        Ok(())
    }

    fn append_audit(&self, records: &[AuditRecord], max_records: u64, keep_from: Option<u64>) -> Result<()> {
        let pids: Vec<u64> = records.iter().map(|r| r.project_id).collect();
        let users: Vec<&str> = records.iter().map(|r| r.username.as_str()).collect();
        let resources: Vec<&str> = records.iter().map(|r| r.resource.as_str()).collect();
        let types: Vec<&str> = records.iter().map(|r| r.resource_type.as_str()).collect();
        let ops: Vec<&str> = records.iter().map(|r| r.operation.as_str()).collect();
        let times: Vec<u64> = records.iter().map(|r| r.op_time).collect();
        let (p, u, re, t, o, ti) = (
            TextArray(&pids),
            TextArray(&users),
            TextArray(&resources),
            TextArray(&types),
            TextArray(&ops),
            TextArray(&times),
        );
        let keep = i64::try_from(max_records).unwrap_or(i64::MAX);
        let from = keep_from.unwrap_or(0);
        self.run(|c| {
            c.batch(&[
                ("BEGIN", &[]),
                (
                    // WITH ORDINALITY keeps the records' order in their ids.
                    "INSERT INTO audit_logs (project_id, username, resource, resource_type, operation, op_time) \
                     SELECT a, b, c, d, e, f FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], \
                     $5::text[], $6::bigint[]) WITH ORDINALITY AS x(a, b, c, d, e, f, n) ORDER BY n",
                    &[&p, &u, &re, &t, &o, &ti],
                ),
                ("DELETE FROM audit_logs WHERE op_time < $1", &[&from]),
                (
                    "DELETE FROM audit_logs WHERE id <= (SELECT id FROM audit_logs ORDER BY id DESC OFFSET $1 LIMIT 1)",
                    &[&keep],
                ),
                ("COMMIT", &[]),
            ])
        })?;
        Ok(())
    }

    fn audit_records(&self, project_id: Option<u64>) -> Result<Vec<(u64, AuditRecord)>> {
        const COLUMNS: &str = "id, project_id, username, resource, resource_type, operation, op_time";
        let rows = self.run(|c| match project_id {
            None => c.query(&format!("SELECT {COLUMNS} FROM audit_logs ORDER BY id"), &[]),
            Some(p) => c.query(&format!("SELECT {COLUMNS} FROM audit_logs WHERE project_id = $1 ORDER BY id"), &[&p]),
        })?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.uint(0).map_err(db)?,
                    AuditRecord {
                        project_id: r.uint(1).map_err(db)?,
                        username: r.text(2).map_err(db)?.to_string(),
                        resource: r.text(3).map_err(db)?.to_string(),
                        resource_type: r.text(4).map_err(db)?.to_string(),
                        operation: r.text(5).map_err(db)?.to_string(),
                        op_time: r.uint(6).map_err(db)?,
                    },
                ))
            })
            .collect()
    }

    fn end_session(&self, id: &str, until: u64, now: u64) -> Result<()> {
        self.run(|c| {
            c.batch(&[
                ("BEGIN", &[]),
                ("DELETE FROM ended_sessions WHERE until <= $1", &[&now]),
                (
                    "INSERT INTO ended_sessions (id, until) VALUES ($1, $2) \
                     ON CONFLICT (id) DO UPDATE SET until = EXCLUDED.until",
                    &[&id, &until],
                ),
                ("COMMIT", &[]),
            ])
        })?;
        Ok(())
    }

    fn session_ended(&self, id: &str) -> Result<bool> {
        Ok(self.one("SELECT 1 FROM ended_sessions WHERE id = $1", &[&id], |_| Ok(()))?.is_some())
    }

    /// One upsert: replicas counting failures of one key at the same moment each add theirs.
    fn add_login_failure(&self, key: &str, now: u64, stale_before: u64) -> Result<u32> {
        let out = self.run(|c| {
            c.batch(&[
                ("BEGIN", &[]),
                ("DELETE FROM login_failures WHERE last < $1 AND key <> $2", &[&stale_before, &key]),
                (
                    "INSERT INTO login_failures (key, failures, last) VALUES ($1, 1, $2) \
                     ON CONFLICT (key) DO UPDATE SET last = EXCLUDED.last, failures = CASE \
                       WHEN login_failures.last < $3 THEN 1 ELSE login_failures.failures + 1 END \
                     RETURNING failures",
                    &[&key, &now, &stale_before],
                ),
                ("COMMIT", &[]),
            ])
        })?;
        let row = out
            .get(2)
            .and_then(|r| r.rows.first())
            .ok_or_else(|| MetaError::Db("the failure count was not returned".into()))?;
        Ok(row.uint(0).map_err(db)?.min(u32::MAX as u64) as u32)
    }

    fn login_failures(&self, key: &str) -> Result<Option<(u32, u64)>> {
        self.one("SELECT failures, last FROM login_failures WHERE key = $1", &[&key], |r| {
            Ok((r.uint(0).map_err(db)?.min(u32::MAX as u64) as u32, r.uint(1).map_err(db)?))
        })
    }

    fn clear_login_failures(&self, key: &str) -> Result<()> {
        self.run(|c| c.execute("DELETE FROM login_failures WHERE key = $1", &[&key]))?;
        Ok(())
    }
}

fn job_text(doc: &[u8]) -> Result<&str> {
    std::str::from_utf8(doc).map_err(|e| MetaError::Db(format!("job record: {e}")))
}

fn digest_of(text: &str) -> Result<Digest> {
    text.parse()
        .map_err(|e: wharf_types::DigestError| MetaError::Decode { key: text.to_string(), message: e.to_string() })
}
