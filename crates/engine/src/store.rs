//! The container records and the names they hold, owned by one service.
//!
//! Kept in memory and written through to the database (its `containers` and `names` tables,
//! which nothing else touches): a lookup by name or id and a `ps` read no JSON, and with ten
//! thousand containers decoding every record for each list was most of a `ps`. The database
//! stays the truth across restarts; the maps are loaded from it at open.
//!
//! Invariants:
//! - A change is in the maps only once the database committed it, so a reader never sees what
//!   a crash would lose; readers see the state before a change until it has committed.
//! - Writers are serialized from their first read to the update of the maps, so a
//!   read-modify-write (`write`) is atomic against every other writer. Readers never wait for a
//!   commit, only for the short update of the maps.
//! - The two maps agree: `names` maps each name to the id of a record in `records` that holds it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use wharf_metadata::{Db, Table};

use crate::formats::StoredForm;
use crate::{ContainerRecord, EngineError};

pub(crate) struct ContainerStore {
    db: Arc<Db>,
    /// Held by a writer for the whole of `write`. Lock order: `writer`, then `maps`.
    writer: Mutex<()>,
    maps: RwLock<Maps>,
}

#[derive(Default)]
struct Maps {
    records: HashMap<String, Arc<ContainerRecord>>,
    names: HashMap<String, String>,
}

impl ContainerStore {
    /// Loads every record and name from the database, whose tables `formats::migrate` has
    /// brought to their current forms.
    pub(crate) fn load(db: Arc<Db>) -> Result<ContainerStore, EngineError> {
        let mut maps = Maps::default();
        for (id, rec) in db.list::<ContainerRecord>(Table::Containers)? {
            maps.records.insert(id, Arc::new(rec));
        }
        for (name, id) in db.list::<String>(Table::Names)? {
            maps.names.insert(name, id);
        }
        Ok(ContainerStore { db, writer: Mutex::new(()), maps: RwLock::new(maps) })
    }

    fn maps(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        crate::sync::read(&self.maps)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<ContainerRecord>> {
        self.maps().records.get(id).cloned()
    }

    /// The id of the container that holds `name` (without the leading `/`).
    pub(crate) fn holder_of(&self, name: &str) -> Option<String> {
        self.maps().names.get(name).cloned()
    }

    /// Every record, in no particular order.
    pub(crate) fn list(&self) -> Vec<Arc<ContainerRecord>> {
        self.maps().records.values().cloned().collect()
    }

    /// The records whose id starts with `prefix`.
    pub(crate) fn with_id_prefix(&self, prefix: &str) -> Vec<Arc<ContainerRecord>> {
        self.maps().records.iter().filter(|(id, _)| id.starts_with(prefix)).map(|(_, r)| r.clone()).collect()
    }

    /// Runs `f` as one atomic change: what it stages is committed to the database in one
    /// transaction, then made visible, only when it returns `Ok`.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut ContainerTx<'_>) -> Result<R, EngineError>,
    ) -> Result<R, EngineError> {
        let _writer = crate::sync::lock(&self.writer);
        let mut tx = ContainerTx { store: self, records: BTreeMap::new(), names: BTreeMap::new() };
        let out = f(&mut tx)?;
        let ContainerTx { records, names, .. } = tx;
        if records.is_empty() && names.is_empty() {
            return Ok(out);
        }
        // Creates, starts and stops commit from async handlers: the fsync stays off the worker.
        crate::sync::blocking_section(|| {
            self.db.write(|db| {
                for (id, rec) in &records {
                    match rec {
                        Some(rec) => db.put(Table::Containers, id, rec)?,
                        None => {
                            db.delete(Table::Containers, id)?;
                        }
                    }
                }
                for (name, id) in &names {
                    match id {
                        Some(id) => db.put(Table::Names, name, id)?,
                        None => {
                            db.delete(Table::Names, name)?;
                        }
                    }
                }
                Ok::<_, EngineError>(())
            })
        })?;
        let mut maps = crate::sync::write(&self.maps);
        for (id, rec) in records {
            match rec {
                Some(rec) => maps.records.insert(id, Arc::new(rec)),
                None => maps.records.remove(&id),
            };
        }
        for (name, id) in names {
            match id {
                Some(id) => maps.names.insert(name, id),
                None => maps.names.remove(&name),
            };
        }
        Ok(out)
    }

    /// Writes a whole record (replacing what is stored under its id).
    pub(crate) fn put(&self, rec: &ContainerRecord) -> Result<(), EngineError> {
        self.write(|tx| {
            tx.put(rec);
            Ok(())
        })
    }
}

/// The stored container record: `ContainerRecord` as serde writes it. Engine-internal (the API
/// builds its own JSON from the fields), so the fixture `container-record-1.json` and this
/// format are what keep it: a change that renames, moves or retypes a stored field fails
/// `the_stored_form_is_pinned` until the format is bumped with a step (see `formats`).
pub(crate) const CONTAINERS: StoredForm =
    StoredForm { table: Table::Containers, name: "containers", current: 1, steps: &[] };

/// A container name (without the leading `/`) → the id of the container holding it, a JSON
/// string.
pub(crate) const NAMES: StoredForm = StoredForm { table: Table::Names, name: "names", current: 1, steps: &[] };

/// The changes of one `ContainerStore::write`; reads see them before they are committed.
pub(crate) struct ContainerTx<'a> {
    store: &'a ContainerStore,
    /// `None`: removed.
    records: BTreeMap<String, Option<ContainerRecord>>,
    names: BTreeMap<String, Option<String>>,
}

impl ContainerTx<'_> {
    pub(crate) fn get(&self, id: &str) -> Option<ContainerRecord> {
        match self.records.get(id) {
            Some(staged) => staged.clone(),
            None => self.store.get(id).map(|r| (*r).clone()),
        }
    }

    pub(crate) fn holder_of(&self, name: &str) -> Option<String> {
        match self.names.get(name) {
            Some(staged) => staged.clone(),
            None => self.store.holder_of(name),
        }
    }

    pub(crate) fn put(&mut self, rec: &ContainerRecord) {
        self.records.insert(rec.id.clone(), Some(rec.clone()));
    }

    pub(crate) fn delete(&mut self, id: &str) {
        self.records.insert(id.to_string(), None);
    }

    pub(crate) fn put_name(&mut self, name: &str, id: &str) {
        self.names.insert(name.to_string(), Some(id.to_string()));
    }

    pub(crate) fn delete_name(&mut self, name: &str) {
        self.names.insert(name.to_string(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests::{assert_pinned, TempDb};

    fn record(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.to_string(),
            name: name.to_string(),
            created: "2026-12-04T00:00:00Z".to_string(),
            path: "true".to_string(),
            args: Vec::new(),
            config: Default::default(),
            host_config: Default::default(),
            image_id: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            chain_ids: Vec::new(),
            state: Default::default(),
            restart_count: 0,
            mounts: Vec::new(),
        }
    }

    fn create(store: &ContainerStore, id: &str, name: &str) {
        store
            .write(|tx| {
                tx.put_name(name, id);
                tx.put(&record(id, name));
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_committed_change_is_read_back_and_survives_a_reload() {
        let dir = TempDb::new("reload");
        let store = ContainerStore::load(dir.open()).unwrap();
        create(&store, "c1", "web");
        create(&store, "c2", "db");
        store
            .write(|tx| {
                let mut r = tx.get("c1").unwrap();
                r.state.running = true;
                tx.put(&r);
                Ok(())
            })
            .unwrap();
        assert!(store.get("c1").unwrap().state.running);
        assert_eq!(store.holder_of("db").as_deref(), Some("c2"));
        drop(store);

        let again = ContainerStore::load(dir.open()).unwrap();
        assert_eq!(again.list().len(), 2);
        assert!(again.get("c1").unwrap().state.running);
        assert_eq!(again.holder_of("web").as_deref(), Some("c1"));
        assert_eq!(again.with_id_prefix("c").len(), 2);
    }

    #[test]
    fn a_failed_change_leaves_memory_and_disk_as_they_were() {
        let dir = TempDb::new("failed");
        let store = ContainerStore::load(dir.open()).unwrap();
        create(&store, "c1", "web");
        let err = store
            .write(|tx| {
                tx.delete("c1");
                tx.delete_name("web");
                tx.put_name("other", "c9");
                // The change's own reads see what it staged.
                assert!(tx.get("c1").is_none());
                assert_eq!(tx.holder_of("other").as_deref(), Some("c9"));
                Err::<(), _>(EngineError::Conflict("no".into()))
            })
            .unwrap_err();
        assert!(matches!(err, EngineError::Conflict(_)));
        assert!(store.get("c1").is_some());
        assert_eq!(store.holder_of("web").as_deref(), Some("c1"));
        assert!(store.holder_of("other").is_none());
        drop(store);
        let again = ContainerStore::load(dir.open()).unwrap();
        assert!(again.get("c1").is_some() && again.holder_of("other").is_none());
    }

    #[test]
    fn a_removal_goes_from_memory_and_disk() {
        let dir = TempDb::new("remove");
        let store = ContainerStore::load(dir.open()).unwrap();
        create(&store, "c1", "web");
        store
            .write(|tx| {
                tx.delete("c1");
                tx.delete_name("web");
                Ok(())
            })
            .unwrap();
        assert!(store.get("c1").is_none() && store.holder_of("web").is_none() && store.list().is_empty());
        drop(store);
        assert!(ContainerStore::load(dir.open()).unwrap().list().is_empty());
    }

    /// A record of a container created with most of `docker create`'s flags, as wharfd
    /// stored it in format 1: it must decode and encode to the same JSON. A renamed or removed
    /// field breaks this (the old key is dropped on decode), and so does a new field until the
    /// fixture has it; then bump the format (with a step) if old records need one.
    #[test]
    fn the_stored_form_is_pinned() {
        assert_pinned::<ContainerRecord>(include_str!("../testdata/container-record-1.json"));
        assert_eq!(CONTAINERS.current, 1, "a new format needs a fixture of its own and a test of its step");
    }

    /// Names are JSON strings of the holder's id, keyed without the leading `/`.
    #[test]
    fn the_stored_names_are_pinned() {
        let names: BTreeMap<String, String> = assert_pinned(include_str!("../testdata/names-1.json"));
        for (name, id) in &names {
            assert!(!name.starts_with('/'), "{name}");
            assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        }
        assert_eq!(NAMES.current, 1, "a new format needs a fixture of its own and a test of its step");
    }

    /// The fixture, stored in a data root from before versions, loads once the engine's
    /// migration has marked it.
    #[test]
    fn a_stored_record_of_format_1_loads() {
        let dir = TempDb::new("store-format-1");
        let db = dir.open();
        let rec: serde_json::Value = serde_json::from_str(include_str!("../testdata/container-record-1.json")).unwrap();
        let id = rec["id"].as_str().unwrap().to_string();
        let name = rec["name"].as_str().unwrap().trim_start_matches('/').to_string();
        db.write(|tx| {
            tx.put(Table::Containers, &id, &rec)?;
            tx.put(Table::Names, &name, &id)
        })
        .unwrap();
        crate::formats::migrate(&db, &crate::formats::ALL).unwrap();
        let store = ContainerStore::load(db.clone()).unwrap();
        assert_eq!(store.get(&id).map(|r| r.id.clone()), Some(id.clone()));
        assert_eq!(store.holder_of(&name), Some(id));
        assert_eq!(db.get::<u32>(Table::Formats, "containers").unwrap(), Some(1));
    }

    #[test]
    fn concurrent_read_modify_writes_lose_no_update() {
        let dir = TempDb::new("concurrent");
        let store = Arc::new(ContainerStore::load(dir.open()).unwrap());
        create(&store, "c1", "web");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..25 {
                        store
                            .write(|tx| {
                                let mut r = tx.get("c1").unwrap();
                                r.restart_count += 1;
                                tx.put(&r);
                                Ok(())
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("c1").unwrap().restart_count, 100);
    }
}
