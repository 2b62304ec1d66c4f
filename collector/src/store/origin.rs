//! Origins: the resource and instrumentation scope records came from, kept once per
//! split instead of once per record.
//!
//! A service sends thousands of records with the same resource (service name, host,
//! pod, SDK version, ...) and the same scope. Indexing those attributes as terms of
//! every record cost about a fifth of the indexing CPU, and storing them with every
//! record cost bytes even after compression. Instead, each split keeps the table of
//! its distinct origins in a file beside the index (`origins`), and each document
//! holds its origin's number in the `origin` field (a column, and indexed): a search
//! for a resource attribute finds the matching origins in the table, then their
//! documents by number.
//!
//! The file is a sequence of frames, `length (u32 LE) | crc32 (u32 LE) | postcard`,
//! appended and synced before the commit whose documents refer to them. A crash
//! can leave a torn last frame, which no committed document refers to: reading
//! stops there.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::terms::attribute_terms;
use crate::model::{Resource, Scope, Str};

/// The file of a split's origins.
pub const FILE_NAME: &str = "origins";

/// A split seals early once it holds this many origins, so that the table a search
/// scans stays small even when a client sends a distinct resource with every record.
pub const MAX_ORIGINS_PER_SPLIT: usize = 20_000;

/// Where records came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// `service.name` of the resource, or `unknown_service`.
    pub service_name: Str,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

#[derive(Serialize)]
struct OriginRef<'a> {
    service_name: &'a str,
    resource: &'a Resource,
    scope: &'a Scope,
}

/// A split's origins, numbered in the order they were first seen.
#[derive(Debug, Default)]
pub struct Origins {
    entries: RwLock<Vec<Arc<Origin>>>,
    /// `None`: kept in memory only (the benchmark's raw-tantivy baseline).
    path: Option<PathBuf>,
}

impl Origins {
    /// An empty table of a new split in `dir`.
    pub fn create(dir: &Path) -> Origins {
        Origins {
            entries: RwLock::default(),
            path: Some(dir.join(FILE_NAME)),
        }
    }

    /// A table that is never written to disk.
    pub fn in_memory() -> Origins {
        Origins::default()
    }

    /// Reads the table of the split in `dir`; a missing file is an empty table.
    pub fn open(dir: &Path) -> io::Result<Origins> {
        let path = dir.join(FILE_NAME);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut entries = Vec::new();
        let mut rest = &bytes[..];
        while let Some((frame, tail)) = next_frame(rest) {
            match postcard::from_bytes::<Origin>(frame) {
                Ok(origin) => entries.push(Arc::new(origin)),
                Err(_) => break,
            }
            rest = tail;
        }
        Ok(Origins {
            entries: RwLock::new(entries),
            path: Some(path),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.read().map_or(0, |entries| entries.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The origin numbered `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Origin>> {
        let entries = self.entries.read().ok()?;
        entries.get(usize::try_from(id).ok()?).cloned()
    }

    /// The numbers of the origins whose resource has the attribute term `term`
    /// (`key=value`, as the tag and attribute fields index them).
    pub fn with_resource_term(&self, term: &str) -> Vec<u64> {
        let Ok(entries) = self.entries.read() else {
            return Vec::new();
        };
        let mut scratch = String::new();
        let mut ids = Vec::new();
        for (id, origin) in entries.iter().enumerate() {
            let mut found = false;
            attribute_terms(&mut scratch, &origin.resource.attributes, |candidate| {
                found |= candidate == term;
            });
            if found {
                ids.push(id as u64);
            }
        }
        ids
    }

    fn push(&self, origin: Origin) -> u64 {
        match self.entries.write() {
            Ok(mut entries) => {
                entries.push(Arc::new(origin));
                entries.len() as u64 - 1
            }
            Err(poisoned) => {
                let mut entries = poisoned.into_inner();
                entries.push(Arc::new(origin));
                entries.len() as u64 - 1
            }
        }
    }
}

fn next_frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = bytes.get(..8)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let frame = bytes.get(8..8 + len)?;
    (crc32fast::hash(frame) == crc).then(|| (frame, &bytes[8 + len..]))
}

/// Numbers the origins of a split's records while the writer indexes them, and
/// saves the new ones before each commit.
#[derive(Debug)]
pub struct OriginIds {
    origins: Arc<Origins>,
    /// The postcard bytes of every origin of the split, to its number.
    by_bytes: HashMap<Vec<u8>, u64>,
    /// The last origin looked up, by pointer: records of one request share theirs.
    last: Option<(Arc<Resource>, Arc<Scope>, u64)>,
    /// Frames not yet on disk.
    unsaved: Vec<u8>,
    /// Bytes of the file that hold complete, synced frames.
    saved_len: u64,
}

impl OriginIds {
    /// Numbers origins into `origins`, which must be empty (a new split).
    pub fn new(origins: Arc<Origins>) -> OriginIds {
        OriginIds {
            origins,
            by_bytes: HashMap::new(),
            last: None,
            unsaved: Vec::new(),
            saved_len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.by_bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_bytes.is_empty()
    }

    /// The number of a record's origin, adding it to the table when it is new.
    pub fn id(
        &mut self,
        service_name: &str,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> Result<u64, postcard::Error> {
        if let Some((last_resource, last_scope, id)) = &self.last {
            if Arc::ptr_eq(last_resource, resource) && Arc::ptr_eq(last_scope, scope) {
                return Ok(*id);
            }
        }
        let bytes = postcard::to_stdvec(&OriginRef {
            service_name,
            resource,
            scope,
        })?;
        let id = match self.by_bytes.get(&bytes) {
            Some(&id) => id,
            None => {
                // The table lives as long as the split: its strings are copied
                // out of the request buffer they may share (`Str`).
                let id = self.origins.push(Origin {
                    service_name: Str::from(service_name),
                    resource: Arc::new(resource.detached()),
                    scope: Arc::new(scope.detached()),
                });
                self.unsaved
                    .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                self.unsaved
                    .extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
                self.unsaved.extend_from_slice(&bytes);
                self.by_bytes.insert(bytes, id);
                id
            }
        };
        self.last = Some((Arc::clone(resource), Arc::clone(scope), id));
        Ok(id)
    }

    /// Appends the origins added since the last call to the split's file and syncs
    /// it: called before every commit.
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = &self.origins.path else {
            self.unsaved.clear();
            return Ok(());
        };
        if self.unsaved.is_empty() {
            return Ok(());
        }
        let new_file = self.saved_len == 0;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        // A write that failed half-way left a torn frame: write over it.
        file.set_len(self.saved_len)?;
        file.seek(SeekFrom::Start(self.saved_len))?;
        file.write_all(&self.unsaved)?;
        file.sync_data()?;
        if new_file {
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        self.saved_len += self.unsaved.len() as u64;
        self.unsaved.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AnyValue, KeyValue};

    fn resource(host: &str) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![
                KeyValue::new("service.name", AnyValue::Str("checkout".into())),
                KeyValue::new("host.name", AnyValue::Str(host.into())),
                KeyValue::new("process.pid", AnyValue::Int(42)),
            ],
            dropped_attributes_count: 0,
        })
    }

    #[test]
    fn origins_are_numbered_once_saved_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origins = Arc::new(Origins::create(dir.path()));
        let mut ids = OriginIds::new(Arc::clone(&origins));
        let scope = Arc::new(Scope::default());
        let a = resource("a");
        assert_eq!(ids.id("checkout", &a, &scope).expect("id"), 0);
        // Equal by value, not by pointer: the same number.
        assert_eq!(ids.id("checkout", &resource("a"), &scope).expect("id"), 0);
        assert_eq!(ids.id("checkout", &resource("b"), &scope).expect("id"), 1);
        let other_scope = Arc::new(Scope {
            name: "db".into(),
            ..Scope::default()
        });
        assert_eq!(ids.id("checkout", &a, &other_scope).expect("id"), 2);
        ids.save().expect("save");
        assert_eq!(ids.id("checkout", &resource("c"), &scope).expect("id"), 3);
        ids.save().expect("save");

        let back = Origins::open(dir.path()).expect("open");
        assert_eq!(back.len(), 4);
        for id in 0..4 {
            assert_eq!(back.get(id), origins.get(id), "origin {id}");
        }
        assert_eq!(back.get(4), None);
        assert_eq!(back.with_resource_term("host.name=b"), vec![1]);
        assert_eq!(back.with_resource_term("process.pid=42"), vec![0, 1, 2, 3]);
        assert!(back.with_resource_term("host.name=z").is_empty());
    }

    #[test]
    fn a_torn_last_frame_is_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let origins = Arc::new(Origins::create(dir.path()));
        let mut ids = OriginIds::new(origins);
        let scope = Arc::new(Scope::default());
        ids.id("checkout", &resource("a"), &scope).expect("id");
        ids.id("checkout", &resource("b"), &scope).expect("id");
        ids.save().expect("save");
        let path = dir.path().join(FILE_NAME);
        let len = std::fs::metadata(&path).expect("metadata").len();
        let file = OpenOptions::new().write(true).open(&path).expect("open");
        file.set_len(len - 3).expect("truncate");
        let back = Origins::open(dir.path()).expect("open");
        assert_eq!(back.len(), 1);
        assert_eq!(back.get(0).expect("origin").resource, resource("a"));

        // Flipped bytes inside a frame end the table there too.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[10] ^= 0xff;
        std::fs::write(&path, bytes).expect("write");
        assert_eq!(Origins::open(dir.path()).expect("open").len(), 0);
    }
}
