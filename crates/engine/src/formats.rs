//! The versions of the records the engine stores, and the one place they are checked and
//! upgraded: at `Engine::open`, before anything reads a table.
//!
//! Each table's values are serde's form of an engine type, most fields `#[serde(default)]` so
//! that records from before a field still load. That makes a renamed, moved or retyped field
//! lose its data silently: the old key is dropped on decode and the field reads as empty. So
//! each table has a format number (kept in the `formats` table under the form's name), a
//! fixture of that format in `engine/testdata/` that the form's owner tests decode and encode
//! to the same JSON, and a list of steps that bring older records to the current format.
//!
//! Invariant: a table is read only in its current format. A data root whose `formats` names a
//! newer one is refused before anything is rewritten (this wharfd would misread its records
//! and then overwrite them); older records are upgraded in one transaction with the marks.

use wharf_metadata::{Db, Table};

use crate::EngineError;

/// One upgrade step: a record of format N rewritten, in place, as format N + 1.
pub(crate) type Step = fn(&mut serde_json::Value);

/// A table's stored form, declared next to the type its values are.
pub(crate) struct StoredForm {
    pub(crate) table: Table,
    /// Its key in the `formats` table, and how errors name it (`containers`).
    pub(crate) name: &'static str,
    /// The format this wharfd reads and writes.
    pub(crate) current: u32,
    /// `steps[i]` takes a record of format `i + 1` to `i + 2`: `current - 1` of them. A change
    /// of the form bumps `current`, adds the step, keeps the old fixture and adds the new one.
    pub(crate) steps: &'static [Step],
}

/// Every table the engine stores records in, and so every table `migrate` checks at open.
pub(crate) const ALL: [&StoredForm; 9] = [
    &crate::store::CONTAINERS,
    &crate::store::NAMES,
    &crate::images::IMAGES,
    &crate::images::TAGS,
    &crate::volumes::VOLUMES,
    &crate::network::NETWORKS,
    &crate::network::Endpoint::STORED,
    &crate::build_cache::BUILD_CACHE,
    &crate::build_cache::BUILD_NOTES,
];

/// Brings every table of `forms` to its current format: refuses the data root if any is
/// marked newer (and then changes nothing), else upgrades what is older and marks every table
/// with its format, all in one transaction. A table with no mark is from a data root from
/// before versions: format 1.
pub(crate) fn migrate(db: &Db, forms: &[&StoredForm]) -> Result<(), EngineError> {
    let mut behind = Vec::new();
    for form in forms {
        let marked = db.get::<u32>(Table::Formats, form.name)?;
        if marked == Some(form.current) {
            continue;
        }
        let stored = marked.unwrap_or(1);
        if stored > form.current {
            return Err(EngineError::Invalid(format!(
                "the data root's {} table is in format {stored}, written by a newer wharfd; this one reads up to format {}",
                form.name, form.current
            )));
        }
        behind.push((*form, stored));
    }
    if behind.is_empty() {
        return Ok(());
    }
    db.write(|tx| {
        for (form, stored) in &behind {
            // Format N reads from `steps[N - 1]` on; no data root holds a format 0.
            let steps = form.steps.get((*stored as usize).saturating_sub(1)..).unwrap_or_default();
            if !steps.is_empty() {
                for (key, mut value) in tx.list::<serde_json::Value>(form.table)? {
                    for step in steps {
                        step(&mut value);
                    }
                    tx.put(form.table, &key, &value)?;
                }
                log::info!("{} records upgraded from format {stored} to {}", form.name, form.current);
            }
            tx.put(Table::Formats, form.name, &form.current)?;
        }
        Ok::<_, EngineError>(())
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// A database in a directory of its own, removed with it.
    pub(crate) struct TempDb(std::path::PathBuf);
    impl TempDb {
        pub(crate) fn new(what: &str) -> TempDb {
            let dir = std::env::temp_dir().join(format!("wharf-formats-{what}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDb(dir)
        }
        pub(crate) fn open(&self) -> Arc<Db> {
            Arc::new(Db::open(&self.0.join("wharf.db")).unwrap())
        }
    }
    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Decodes a fixture as `T` and checks that it encodes back to the same JSON: a field
    /// renamed or removed drops the fixture's key, a new one adds a key the fixture lacks.
    pub(crate) fn assert_pinned<T: serde::de::DeserializeOwned + serde::Serialize>(fixture: &str) -> T {
        let stored: serde_json::Value = serde_json::from_str(fixture).unwrap();
        let rec: T = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(serde_json::to_value(&rec).unwrap(), stored, "the stored form changed: bump its format");
        rec
    }

    #[test]
    fn every_table_the_engine_stores_in_is_versioned_once() {
        let tables: Vec<Table> = ALL.iter().map(|f| f.table).collect();
        for t in [
            Table::Containers,
            Table::Names,
            Table::Images,
            Table::Tags,
            Table::Volumes,
            Table::Networks,
            Table::Endpoints,
            Table::BuildCache,
            Table::BuildNotes,
        ] {
            assert_eq!(tables.iter().filter(|x| **x == t).count(), 1, "{t:?}");
        }
        let mut names: Vec<&str> = ALL.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for form in ALL {
            assert_eq!(form.steps.len() as u32, form.current - 1, "{}: one step per format after the first", form.name);
        }
    }

    #[test]
    fn a_data_root_from_before_versions_is_marked_with_its_records_as_they_were() {
        let dir = TempDb::new("unmarked");
        let db = dir.open();
        let image = serde_json::json!({"id": "sha256:1"});
        db.write(|tx| tx.put(Table::Images, "sha256:1", &image)).unwrap();
        migrate(&db, &ALL).unwrap();
        for form in ALL {
            assert_eq!(db.get::<u32>(Table::Formats, form.name).unwrap(), Some(form.current), "{}", form.name);
        }
        assert_eq!(db.get::<serde_json::Value>(Table::Images, "sha256:1").unwrap(), Some(image));
        // Marked, a second open has nothing to do.
        migrate(&db, &ALL).unwrap();
    }

    #[test]
    fn a_table_marked_by_a_newer_wharfd_is_refused_by_name_and_nothing_is_marked() {
        for form in ALL {
            let dir = TempDb::new(&format!("newer-{}", form.name));
            let db = dir.open();
            let rec = serde_json::json!({"written": "by a newer wharfd"});
            db.write(|tx| {
                tx.put(form.table, "k", &rec)?;
                tx.put(Table::Formats, form.name, &(form.current + 1))
            })
            .unwrap();
            let err = migrate(&db, &ALL).unwrap_err().to_string();
            assert!(err.contains(&format!("{} table is in format {}", form.name, form.current + 1)), "{err}");
            assert!(err.contains("newer wharfd"), "{err}");
            let marks = db.list::<u32>(Table::Formats).unwrap();
            assert_eq!(marks, vec![(form.name.to_string(), form.current + 1)], "nothing else is marked");
            assert_eq!(db.get::<serde_json::Value>(form.table, "k").unwrap(), Some(rec), "nor rewritten");
        }
    }

    #[test]
    fn older_records_go_through_the_steps_from_their_format_on_once() {
        fn to_2(v: &mut serde_json::Value) {
            if let Some(old) = v.as_object_mut().and_then(|o| o.remove("old")) {
                v["new"] = old;
            }
        }
        fn to_3(v: &mut serde_json::Value) {
            v["steps"] = serde_json::json!(v["steps"].as_u64().unwrap_or(0) + 1);
        }
        static FORM: StoredForm = StoredForm { table: Table::Volumes, name: "test", current: 3, steps: &[to_2, to_3] };

        // Marked 2: only the last step.
        let dir = TempDb::new("steps-2");
        let db = dir.open();
        db.write(|tx| {
            tx.put(Table::Volumes, "b", &serde_json::json!({"new": "y", "steps": 1}))?;
            tx.put(Table::Formats, "test", &2u32)
        })
        .unwrap();
        migrate(&db, &[&FORM]).unwrap();
        assert_eq!(
            db.get::<serde_json::Value>(Table::Volumes, "b").unwrap(),
            Some(serde_json::json!({"new": "y", "steps": 2}))
        );
        assert_eq!(db.get::<u32>(Table::Formats, "test").unwrap(), Some(3));

        // Unmarked: format 1, both steps; a second open changes nothing.
        let dir = TempDb::new("steps-1");
        let db = dir.open();
        db.write(|tx| tx.put(Table::Volumes, "a", &serde_json::json!({"old": "x"}))).unwrap();
        migrate(&db, &[&FORM]).unwrap();
        migrate(&db, &[&FORM]).unwrap();
        assert_eq!(
            db.get::<serde_json::Value>(Table::Volumes, "a").unwrap(),
            Some(serde_json::json!({"new": "x", "steps": 1}))
        );
        assert_eq!(db.get::<u32>(Table::Formats, "test").unwrap(), Some(3));
    }
}
