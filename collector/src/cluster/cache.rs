//! Published splits on a search node's disk: fetched from object storage when a
//! search needs them, kept while they fit in `--cache-size`, the least recently
//! used dropped first. Searches still holding a dropped split keep reading it
//! (its files stay mapped until the last one ends).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tracing::{debug, info, warn};

use super::metastore::SplitRow;
use super::objects::SplitObjects;
use crate::metrics::Metrics;
use crate::store::split::Split;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Objects(#[from] super::objects::ObjectsError),
    #[error("split fetched from object storage: {0}")]
    Store(#[from] StoreError),
    #[error("split cache: {0}")]
    Io(#[from] std::io::Error),
    #[error("split cache worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

struct Entry {
    split: Arc<Split>,
    bytes: u64,
    used: Instant,
}

pub struct SplitCache {
    dir: PathBuf,
    max_bytes: u64,
    objects: SplitObjects,
    entries: Mutex<HashMap<String, Entry>>,
    /// Names the partial download directories apart.
    downloads: AtomicU64,
    metrics: Arc<Metrics>,
}

impl SplitCache {
    /// Opens the cache in `dir`, keeping the splits already there (a restarted
    /// node starts warm); partial downloads are removed.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        objects: SplitObjects,
        metrics: Arc<Metrics>,
    ) -> Result<SplitCache, CacheError> {
        std::fs::create_dir_all(dir)?;
        let mut entries = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if name.ends_with(".partial") {
                std::fs::remove_dir_all(&path)?;
                continue;
            }
            match Split::open(&path) {
                Ok(Some(split)) => {
                    let bytes = crate::store::dir_size(&path);
                    entries.insert(
                        name,
                        Entry {
                            split: Arc::new(split),
                            bytes,
                            used: Instant::now(),
                        },
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(split = %name, error = %e, "cannot read a cached split; removing it (it is fetched again when needed)");
                    std::fs::remove_dir_all(&path)?;
                }
            }
        }
        let bytes: u64 = entries.values().map(|e| e.bytes).sum();
        info!(dir = %dir.display(), splits = entries.len(), bytes, max_bytes, "split cache opened");
        Ok(SplitCache {
            dir: dir.to_path_buf(),
            max_bytes,
            objects,
            entries: Mutex::new(entries),
            downloads: AtomicU64::new(0),
            metrics,
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The splits `rows` name, fetching those not cached. The cache may go over
    /// its size while one search needs more than fits; it shrinks after.
    pub async fn get(&self, rows: &[SplitRow]) -> Result<Vec<Arc<Split>>, CacheError> {
        let mut splits = Vec::with_capacity(rows.len());
        for row in rows {
            let cached = self.entries().get_mut(&row.id).map(|entry| {
                entry.used = Instant::now();
                Arc::clone(&entry.split)
            });
            let split = match cached {
                Some(split) => split,
                None => self.fetch(row).await?,
            };
            splits.push(split);
        }
        let wanted: HashSet<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        self.shrink(&wanted);
        Ok(splits)
    }

    async fn fetch(&self, row: &SplitRow) -> Result<Arc<Split>, CacheError> {
        let started = Instant::now();
        let n = self.downloads.fetch_add(1, Ordering::Relaxed);
        let partial = self.dir.join(format!("{}.{n}.partial", row.id));
        let target = self.dir.join(&row.id);
        if let Err(e) = self.objects.download(row, &partial).await {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(e.into());
        }
        let split = tokio::task::spawn_blocking(move || -> Result<Option<Split>, CacheError> {
            // Another search may have fetched it meanwhile: keep the first.
            if target.exists() {
                std::fs::remove_dir_all(&partial)?;
            } else {
                std::fs::rename(&partial, &target)?;
            }
            Ok(Split::open(&target)?)
        })
        .await??
        .ok_or_else(|| StoreError::Corrupt(format!("split {} holds no commit", row.id)))?;
        self.metrics.cluster.note_fetched(row.bytes);
        debug!(split = %row.id, bytes = row.bytes, elapsed = ?started.elapsed(), "fetched split");
        Ok(self.insert(&row.id, split, row.bytes))
    }

    fn insert(&self, id: &str, split: Split, bytes: u64) -> Arc<Split> {
        let mut entries = self.entries();
        let entry = entries.entry(id.to_string()).or_insert_with(|| Entry {
            split: Arc::new(split),
            bytes,
            used: Instant::now(),
        });
        Arc::clone(&entry.split)
    }

    /// Takes a split this node published into the cache, moving its directory
    /// (no download).
    pub fn adopt(&self, split: &Split) -> Result<(), CacheError> {
        let target = self.dir.join(&split.id);
        if target.exists() {
            std::fs::remove_dir_all(&split.dir)?;
            return Ok(());
        }
        std::fs::rename(&split.dir, &target)?;
        let bytes = crate::store::dir_size(&target);
        if let Some(opened) = Split::open(&target)? {
            self.insert(&split.id, opened, bytes);
        }
        self.shrink(&HashSet::new());
        Ok(())
    }

    /// Drops split `id` (deleted from the cluster).
    pub fn remove(&self, id: &str) {
        if let Some(entry) = self.entries().remove(id) {
            if let Err(e) = std::fs::remove_dir_all(&entry.split.dir) {
                warn!(split = %id, error = %e, "cannot remove a cached split");
            }
        }
    }

    /// The ids of the splits cached now.
    pub fn ids(&self) -> Vec<String> {
        self.entries().keys().cloned().collect()
    }

    /// Bytes on disk now.
    pub fn bytes(&self) -> u64 {
        self.entries().values().map(|e| e.bytes).sum()
    }

    /// Drops the least recently used splits, not those in `keep`, until the
    /// cache fits.
    fn shrink(&self, keep: &HashSet<&str>) {
        let mut entries = self.entries();
        let mut total: u64 = entries.values().map(|e| e.bytes).sum();
        if total <= self.max_bytes {
            return;
        }
        let mut by_age: Vec<(Instant, String)> = entries
            .iter()
            .filter(|(id, _)| !keep.contains(id.as_str()))
            .map(|(id, e)| (e.used, id.clone()))
            .collect();
        by_age.sort();
        for (_, id) in by_age {
            if total <= self.max_bytes {
                break;
            }
            if let Some(entry) = entries.remove(&id) {
                total = total.saturating_sub(entry.bytes);
                if let Err(e) = std::fs::remove_dir_all(&entry.split.dir) {
                    warn!(split = %id, error = %e, "cannot remove a cached split");
                }
                debug!(split = %id, bytes = entry.bytes, "evicted split from cache");
            }
        }
    }
}
