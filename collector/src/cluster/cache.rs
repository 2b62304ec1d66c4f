//! Published splits on a search node's disk: fetched from object storage when a
//! search needs them, kept while they fit in `--cache-size`, the least recently
//! used dropped first. Searches still holding a dropped split keep reading it
//! (its files stay mapped until the last one ends).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
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
    /// The partial download directories being written now (registered before
    /// they are made).
    in_flight: Arc<Mutex<HashSet<PathBuf>>>,
    /// A fetch ended without finishing: [`Self::sweep`] before the next.
    abandoned: AtomicBool,
    /// The splits being fetched now, each with the lock its fetch holds.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Arc<Metrics>,
}

/// Splits fetched at once for one search.
const SPLITS_IN_FLIGHT: usize = 4;

/// One fetch's partial download directory, in flight until [`Self::finished`];
/// dropped before (a failed download, or a search that ran out of time or whose
/// client left), it asks for a sweep: its file writes may still be running on
/// the blocking pool, so it is not removed here.
struct Download<'a> {
    cache: &'a SplitCache,
    partial: PathBuf,
    done: bool,
}

impl<'a> Download<'a> {
    fn start(cache: &'a SplitCache, partial: PathBuf) -> Download<'a> {
        cache
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(partial.clone());
        Download {
            cache,
            partial,
            done: false,
        }
    }

    /// The split was moved into place.
    fn finished(mut self) {
        self.done = true;
    }
}

impl Drop for Download<'_> {
    fn drop(&mut self) {
        self.cache
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.partial);
        if !self.done {
            self.cache.abandoned.store(true, Ordering::Release);
        }
    }
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
            in_flight: Arc::default(),
            abandoned: AtomicBool::new(false),
            fetching: Mutex::default(),
            metrics,
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The splits `rows` name, in that order, fetching those not cached (a few
    /// at once). The cache may go over its size while one search needs more
    /// than fits; it shrinks after.
    pub async fn get(&self, rows: &[SplitRow]) -> Result<Vec<Arc<Split>>, CacheError> {
        if self.abandoned.swap(false, Ordering::AcqRel) {
            self.sweep().await;
        }
        // In order, a few at once (no closures: they trip the compiler's proof
        // that the handler's future is Send).
        let mut rows_left = rows.iter();
        let mut fetching = FuturesOrdered::new();
        for row in rows_left.by_ref().take(SPLITS_IN_FLIGHT) {
            fetching.push_back(self.split(row));
        }
        let mut splits = Vec::with_capacity(rows.len());
        while let Some(split) = fetching.next().await {
            splits.push(split?);
            if let Some(row) = rows_left.next() {
                fetching.push_back(self.split(row));
            }
        }
        let wanted: HashSet<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        let evicted = self.shrink(&wanted);
        if !evicted.is_empty() {
            tokio::task::spawn_blocking(move || remove_dirs(&evicted)).await?;
        }
        Ok(splits)
    }

    /// The split `row` names, from the cache or fetched.
    async fn split(&self, row: &SplitRow) -> Result<Arc<Split>, CacheError> {
        if let Some(split) = self.cached(&row.id) {
            return Ok(split);
        }
        // One fetch of a split at a time: a search that needs a split another
        // is fetching waits for it, then finds it cached (or, if that fetch
        // failed or was dropped, fetches it itself).
        let turn = Arc::clone(self.fetching().entry(row.id.clone()).or_default());
        let fetched = {
            let _turn = turn.lock().await;
            match self.cached(&row.id) {
                Some(split) => Ok(split),
                None => self.fetch(row).await,
            }
        };
        // An entry left by a search dropped while it waited or fetched goes with
        // the next fetch of that split.
        let mut fetching = self.fetching();
        if fetching
            .get(&row.id)
            .is_some_and(|held| Arc::ptr_eq(held, &turn) && Arc::strong_count(held) <= 2)
        {
            // Nobody else waits for this split.
            fetching.remove(&row.id);
        }
        fetched
    }

    /// Split `id` if it is cached, marked as just used.
    fn cached(&self, id: &str) -> Option<Arc<Split>> {
        self.entries().get_mut(id).map(|entry| {
            entry.used = Instant::now();
            Arc::clone(&entry.split)
        })
    }

    fn fetching(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
        self.fetching.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the partial downloads that no fetch is writing any more: those
    /// of fetches dropped half way (their search ran out of time, or its client
    /// left), whose file writes may have finished after the fetch was dropped.
    async fn sweep(&self) {
        let in_flight = Arc::clone(&self.in_flight);
        let dir = self.dir.clone();
        let swept = tokio::task::spawn_blocking(move || {
            let (mut removed, mut left) = (0, 0);
            for entry in std::fs::read_dir(&dir)?.flatten() {
                let path = entry.path();
                let partial = path.extension().is_some_and(|ext| ext == "partial");
                // Asked for each one: a fetch that starts meanwhile is
                // registered before its directory exists.
                let writing = || {
                    in_flight
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .contains(&path)
                };
                if !partial || writing() {
                    continue;
                }
                // A write of the dropped fetch may still race with this.
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => removed += 1,
                    Err(e) => {
                        left += 1;
                        debug!(dir = %path.display(), error = %e, "cannot remove a partial download yet");
                    }
                }
            }
            std::io::Result::Ok((removed, left))
        })
        .await;
        match swept {
            Ok(Ok((removed, left))) => {
                debug!(removed, left, "removed abandoned partial downloads");
                if left > 0 {
                    // Tried again before the next search.
                    self.abandoned.store(true, Ordering::Release);
                }
            }
            Ok(Err(e)) => warn!(error = %e, "cannot list the split cache for partial downloads"),
            Err(e) => warn!(error = %e, "the sweep of partial downloads failed"),
        }
    }

    async fn fetch(&self, row: &SplitRow) -> Result<Arc<Split>, CacheError> {
        let started = Instant::now();
        let n = self.downloads.fetch_add(1, Ordering::Relaxed);
        let partial = self.dir.join(format!("{}.{n}.partial", row.id));
        let target = self.dir.join(&row.id);
        let download = Download::start(self, partial.clone());
        self.objects.download(row, &partial).await?;
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
        download.finished();
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
        remove_dirs(&self.shrink(&HashSet::new()));
        Ok(())
    }

    /// Drops split `id` (deleted from the cluster).
    pub async fn remove(&self, id: &str) {
        let Some(entry) = self.entries().remove(id) else {
            return;
        };
        let dir = entry.split.dir.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || remove_dirs(&[dir])).await {
            warn!(split = %id, error = %e, "cannot remove a cached split");
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
    /// cache fits; returns their directories, for the caller to remove off the
    /// runtime's threads (searches still holding one keep reading it).
    fn shrink(&self, keep: &HashSet<&str>) -> Vec<PathBuf> {
        let mut entries = self.entries();
        let mut total: u64 = entries.values().map(|e| e.bytes).sum();
        let mut evicted = Vec::new();
        if total <= self.max_bytes {
            return evicted;
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
                debug!(split = %id, bytes = entry.bytes, "evicted split from cache");
                evicted.push(entry.split.dir.clone());
            }
        }
        evicted
    }
}

/// Removes split directories dropped from the cache.
fn remove_dirs(dirs: &[PathBuf]) {
    for dir in dirs {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            warn!(dir = %dir.display(), error = %e, "cannot remove a cached split");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClusterSettings;
    use crate::model::Signal;
    use std::time::Duration;

    /// A split cache in a temporary directory whose object store is a port that
    /// accepts connections and never answers: every fetch hangs until it is
    /// dropped. The listener and the directory live as long as the cache is used.
    fn hanging_cache() -> (std::net::TcpListener, tempfile::TempDir, SplitCache) {
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test-secret");
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = silent.local_addr().expect("port").port();
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = ClusterSettings {
            bucket: "hopline".into(),
            prefix: String::new(),
            s3_endpoint: Some(format!("http://127.0.0.1:{port}")),
            s3_region: Some("us-east-1".into()),
            metastore: String::new(),
            publish_interval: Duration::from_secs(30),
            cache_size: 1 << 30,
            node_id: "test".into(),
            advertise_addr: None,
            tls: false,
            cluster_ca: None,
            token: None,
        };
        let objects = SplitObjects::s3(&settings).expect("object store client");
        let cache = SplitCache::open(dir.path(), 1 << 30, objects, Arc::new(Metrics::default()))
            .expect("cache");
        (silent, dir, cache)
    }

    /// Waits until the dropped fetch's blocking file work made `file`.
    async fn made(file: &Path) -> bool {
        for _ in 0..100 {
            if file.exists() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        file.exists()
    }

    fn row(id: &str) -> SplitRow {
        SplitRow {
            id: id.into(),
            signal: Signal::Logs,
            tenant: "default".into(),
            node: "test".into(),
            min_time: 0,
            max_time: 0,
            num_docs: 1,
            bytes: 10,
            files: vec![("meta.json".into(), 10)],
            services: Vec::new(),
            levels: Vec::new(),
            trace_filter: Default::default(),
        }
    }

    fn partial_downloads(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .expect("cache dir")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "partial"))
            .collect()
    }

    #[tokio::test]
    async fn a_fetch_cut_short_leaves_no_partial_download_behind() {
        let (_silent, dir, cache) = hanging_cache();

        // The search's time runs out while the store does not answer.
        let cut =
            tokio::time::timeout(Duration::from_millis(300), cache.get(&[row("split-a")])).await;
        assert!(cut.is_err(), "the fetch should hang until it is dropped");
        // Its partial directory and file were made before the request went out.
        let partial = dir.path().join("split-a.0.partial");
        assert!(
            made(&partial.join("meta.json.partial")).await,
            "the dropped fetch made no partial download"
        );

        // The next search sweeps it away.
        let splits = cache.get(&[]).await.expect("nothing to fetch");
        assert!(splits.is_empty());
        assert_eq!(partial_downloads(dir.path()), Vec::<PathBuf>::new());
    }

    #[tokio::test]
    async fn two_searches_that_need_the_same_split_fetch_it_once() {
        let (_silent, dir, cache) = hanging_cache();

        let rows = [row("split-b")];
        let both = async { tokio::join!(cache.get(&rows), cache.get(&rows)) };
        let cut = tokio::time::timeout(Duration::from_millis(300), both).await;
        assert!(cut.is_err(), "the fetch should hang until it is dropped");
        // The second search waited for the first's download instead of
        // starting one of its own.
        let first = dir.path().join("split-b.0.partial");
        assert!(
            made(&first.join("meta.json.partial")).await,
            "the first search made no partial download"
        );
        assert_eq!(partial_downloads(dir.path()), vec![first]);
    }
}
