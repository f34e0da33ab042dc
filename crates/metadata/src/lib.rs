//! The embedded transactional metadata database (redb): images, tags, containers and names.
//!
//! Values are JSON documents owned by the engine; this crate only knows tables, keys and
//! transactions. Every change the engine makes is one write transaction, so a `kill -9` at any
//! instant leaves either the old or the new state, never a mix.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wharf_types::ErrorKind;

/// The tables wharf keeps. Keys are strings; values are JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// image id (config digest, `sha256:<hex>`) → image record
    Images,
    /// fully qualified reference (`registry/repo:tag` or `registry/repo@digest`) → image id
    Tags,
    /// container id (64 hex) → container record
    Containers,
    /// container name (without the leading `/`) → container id
    Names,
    /// volume name → volume record
    Volumes,
    /// `<container id>/<network id>` (`bridge`, `none` for the predefined networks) → the
    /// container's endpoint on that network while it runs (namespace, interface, address, veth,
    /// ports); records keyed by the container id alone are the previous version's, migrated by
    /// the engine at daemon start
    Endpoints,
    /// network id (64 hex) → user-defined network record
    Networks,
    /// build cache key (`sha256:<hex>` of a step's parent and inputs) → the image the step made
    BuildCache,
    /// a step's place in a build (`sha256:<hex>` of the tag, Dockerfile and step) → what it was
    /// made from last time, for the builder to say why a step missed the cache
    BuildNotes,
    /// a table's name (`containers`, `images`, `endpoints`, …: every other table) → the
    /// version of the form its values are stored in, for the engine's migrations at open;
    /// absent in a data root from before versions
    Formats,
}

const ALL: [Table; 10] = [
    Table::Images,
    Table::Tags,
    Table::Containers,
    Table::Names,
    Table::Volumes,
    Table::Endpoints,
    Table::Networks,
    Table::BuildCache,
    Table::BuildNotes,
    Table::Formats,
];

impl Table {
    fn def(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Table::Images => TableDefinition::new("images"),
            Table::Tags => TableDefinition::new("tags"),
            Table::Containers => TableDefinition::new("containers"),
            Table::Names => TableDefinition::new("names"),
            Table::Endpoints => TableDefinition::new("endpoints"),
            Table::Volumes => TableDefinition::new("volumes"),
            Table::Networks => TableDefinition::new("networks"),
            Table::BuildCache => TableDefinition::new("build_cache"),
            Table::BuildNotes => TableDefinition::new("build_notes"),
            Table::Formats => TableDefinition::new("formats"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata database {path}: {message}")]
    Open { path: String, message: String },
    #[error("metadata database: {0}")]
    Db(String),
    #[error("metadata record {table:?}/{key}: {source}")]
    Decode { table: Table, key: String, source: serde_json::Error },
    #[error("metadata record {table:?}/{key}: encode: {source}")]
    Encode { table: Table, key: String, source: serde_json::Error },
}

impl MetadataError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

fn db_err(e: impl std::fmt::Display) -> MetadataError {
    MetadataError::Db(e.to_string())
}

pub struct Db {
    db: Database,
}

/// The pages redb keeps in memory. Its default is 1 GiB, which the daemon's memory then grows
/// towards as containers come and go (about 700 B per container under load); the records are
/// small and the kernel's page cache holds the file anyway.
const CACHE_BYTES: usize = 16 << 20;

impl Db {
    /// Opens (or creates) the database file and makes sure every table exists.
    pub fn open(path: &Path) -> Result<Db, MetadataError> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .map_err(|e| MetadataError::Open { path: path.display().to_string(), message: e.to_string() })?;
        let tx = db.begin_write().map_err(db_err)?;
        for t in ALL {
            tx.open_table(t.def()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        Ok(Db { db })
    }

    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, MetadataError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(table.def()).map_err(db_err)?;
        let value = t.get(key).map_err(db_err)?;
        match value {
            None => Ok(None),
            Some(v) => decode(table, key, v.value()).map(Some),
        }
    }

    /// Every record of a table, in key order.
    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, MetadataError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(table.def()).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let key = k.value().to_string();
            let value = decode(table, &key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Runs `f` in one write transaction; it commits only when `f` returns `Ok`.
    pub fn write<R, E>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<R, E>) -> Result<R, E>
    where
        E: From<MetadataError>,
    {
        let tx = self.db.begin_write().map_err(db_err)?;
        let mut w = WriteTx { tx: &tx };
        let r = f(&mut w)?;
        tx.commit().map_err(db_err)?;
        Ok(r)
    }
}

pub struct WriteTx<'a> {
    tx: &'a redb::WriteTransaction,
}

impl WriteTx<'_> {
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, MetadataError> {
        let t = self.tx.open_table(table.def()).map_err(db_err)?;
        let value = t.get(key).map_err(db_err)?;
        match value {
            None => Ok(None),
            Some(v) => decode(table, key, v.value()).map(Some),
        }
    }

    pub fn put<T: Serialize>(&mut self, table: Table, key: &str, value: &T) -> Result<(), MetadataError> {
        let bytes = serde_json::to_vec(value).map_err(|source| MetadataError::Encode {
            table,
            key: key.to_string(),
            source,
        })?;
        let mut t = self.tx.open_table(table.def()).map_err(db_err)?;
        t.insert(key, bytes.as_slice()).map_err(db_err)?;
        Ok(())
    }

    /// Removes a record; returns whether it existed.
    pub fn delete(&mut self, table: Table, key: &str) -> Result<bool, MetadataError> {
        let mut t = self.tx.open_table(table.def()).map_err(db_err)?;
        let old = t.remove(key).map_err(db_err)?;
        Ok(old.is_some())
    }

    pub fn list<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<(String, T)>, MetadataError> {
        let t = self.tx.open_table(table.def()).map_err(db_err)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let key = k.value().to_string();
            let value = decode(table, &key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }
}

fn decode<T: DeserializeOwned>(table: Table, key: &str, bytes: &[u8]) -> Result<T, MetadataError> {
    serde_json::from_slice(bytes).map_err(|source| MetadataError::Decode { table, key: key.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db() -> (std::path::PathBuf, Db) {
        let dir =
            std::env::temp_dir().join(format!("wharf-meta-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = Db::open(&dir.join("wharf.db")).unwrap();
        (dir, db)
    }

    #[test]
    fn writes_commit_together_or_not_at_all() {
        let (dir, db) = temp_db();
        db.write(|tx| -> Result<(), MetadataError> {
            tx.put(Table::Names, "web", &"id1")?;
            tx.put(Table::Containers, "id1", &serde_json::json!({"name": "web"}))
        })
        .unwrap();
        let failed: Result<(), MetadataError> = db.write(|tx| {
            tx.put(Table::Names, "db", &"id2")?;
            Err(MetadataError::Db("boom".into()))
        });
        assert!(failed.is_err());
        assert_eq!(db.get::<String>(Table::Names, "web").unwrap().as_deref(), Some("id1"));
        assert_eq!(db.get::<String>(Table::Names, "db").unwrap(), None);
        assert_eq!(db.list::<serde_json::Value>(Table::Containers).unwrap().len(), 1);
        db.write(|tx| tx.delete(Table::Names, "web")).unwrap();
        assert_eq!(db.get::<String>(Table::Names, "web").unwrap(), None);
        drop(db);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
