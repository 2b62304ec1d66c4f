//! The metastore: split metadata and node heartbeats in PostgreSQL. Its
//! transactions are the cluster's commit points: a split is searchable once its
//! row says `published`, and only after its upload completed; deletion marks the
//! row first and removes it after the objects.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;

use crate::model::Signal;
use crate::store::filter::TraceIdFilter;

/// Migrations in `collector/migrations/`, applied at start (under PostgreSQL's
/// advisory lock, so nodes starting together do not race).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    #[error("metastore: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("metastore migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("metastore holds a split row it cannot read: {0}")]
    Corrupt(String),
}

/// One split as the metastore knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitRow {
    /// Unique in the cluster: the split's directory name, which ends in its node.
    pub id: String,
    pub signal: Signal,
    pub tenant: String,
    pub node: String,
    pub min_time: u64,
    pub max_time: u64,
    pub num_docs: u64,
    /// Bytes of all its files.
    pub bytes: u64,
    /// File names under the split's prefix, with their sizes.
    pub files: Vec<(String, u64)>,
    pub services: Vec<String>,
    pub levels: Vec<String>,
    pub trace_filter: TraceIdFilter,
}

impl SplitRow {
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.min_time <= end && self.max_time >= start
    }
}

/// State of a split row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitState {
    Staged,
    Published,
    MarkedForDeletion,
}

impl SplitState {
    fn as_str(self) -> &'static str {
        match self {
            SplitState::Staged => "staged",
            SplitState::Published => "published",
            SplitState::MarkedForDeletion => "marked_for_deletion",
        }
    }
}

/// A live node, from its heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub role: String,
    pub address: String,
}

#[derive(Clone)]
pub struct Metastore {
    pool: PgPool,
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

const SPLIT_COLUMNS: &str = "id, signal, tenant, node, min_time, max_time, num_docs, bytes, \
     files, file_sizes, services, levels, trace_filter";

fn split_row(row: &sqlx::postgres::PgRow) -> Result<SplitRow, MetastoreError> {
    let signal: String = row.try_get("signal")?;
    let signal = Signal::parse(&signal)
        .ok_or_else(|| MetastoreError::Corrupt(format!("unknown signal '{signal}'")))?;
    let files: Vec<String> = row.try_get("files")?;
    let sizes: Vec<i64> = row.try_get("file_sizes")?;
    if files.len() != sizes.len() {
        return Err(MetastoreError::Corrupt(
            "files and file_sizes differ in length".into(),
        ));
    }
    Ok(SplitRow {
        id: row.try_get("id")?,
        signal,
        tenant: row.try_get("tenant")?,
        node: row.try_get("node")?,
        min_time: to_u64(row.try_get("min_time")?),
        max_time: to_u64(row.try_get("max_time")?),
        num_docs: to_u64(row.try_get("num_docs")?),
        bytes: to_u64(row.try_get("bytes")?),
        files: files
            .into_iter()
            .zip(sizes.into_iter().map(to_u64))
            .collect(),
        services: row.try_get("services")?,
        levels: row.try_get("levels")?,
        trace_filter: TraceIdFilter::from_bytes(row.try_get("trace_filter")?),
    })
}

impl Metastore {
    /// Connects (waiting up to `timeout` for PostgreSQL) and applies the
    /// migrations.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Metastore, MetastoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let pool = loop {
            // A short acquire timeout: while PostgreSQL is down, every caller
            // (publisher, heartbeat, searches) fails fast and says so.
            match PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                .connect(url)
                .await
            {
                Ok(pool) => break pool,
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(error = %e, "metastore does not answer yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        MIGRATOR.run(&pool).await?;
        Ok(Metastore { pool })
    }

    /// Records a split about to be uploaded (state `staged`). A row already
    /// there from an upload that did not finish is staged again; a published one
    /// is left alone (false).
    pub async fn stage(&self, split: &SplitRow) -> Result<bool, MetastoreError> {
        let (files, sizes): (Vec<String>, Vec<i64>) = split
            .files
            .iter()
            .map(|(name, size)| (name.clone(), to_i64(*size)))
            .unzip();
        let done = sqlx::query(
            "INSERT INTO splits (id, signal, tenant, state, node, min_time, max_time, num_docs, bytes, \
                                 files, file_sizes, services, levels, trace_filter) \
             VALUES ($1, $2, $3, 'staged', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET updated_at = now() WHERE splits.state = 'staged'",
        )
        .bind(&split.id)
        .bind(split.signal.as_str())
        .bind(&split.tenant)
        .bind(&split.node)
        .bind(to_i64(split.min_time))
        .bind(to_i64(split.max_time))
        .bind(to_i64(split.num_docs))
        .bind(to_i64(split.bytes))
        .bind(files)
        .bind(sizes)
        .bind(&split.services)
        .bind(&split.levels)
        .bind(split.trace_filter.as_bytes())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes a staged split searchable: the commit point of a publish. False when
    /// the row is not staged (published already, or marked for deletion).
    pub async fn publish(&self, id: &str) -> Result<bool, MetastoreError> {
        let done = sqlx::query(
            "UPDATE splits SET state = 'published', updated_at = now() \
             WHERE id = $1 AND state = 'staged'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The state of split `id`, if it has a row.
    pub async fn state(&self, id: &str) -> Result<Option<SplitState>, MetastoreError> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM splits WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(state.and_then(|state| {
            [
                SplitState::Staged,
                SplitState::Published,
                SplitState::MarkedForDeletion,
            ]
            .into_iter()
            .find(|s| s.as_str() == state)
        }))
    }

    /// The published splits of `tenant`'s `signal` that hold records in
    /// `[start, end]`, oldest first.
    pub async fn published(
        &self,
        tenant: &str,
        signal: Signal,
        start: u64,
        end: u64,
    ) -> Result<Vec<SplitRow>, MetastoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SPLIT_COLUMNS} FROM splits \
             WHERE tenant = $1 AND signal = $2 AND state = 'published' \
               AND max_time >= $3 AND min_time <= $4 \
             ORDER BY min_time, id"
        ))
        .bind(tenant)
        .bind(signal.as_str())
        .bind(to_i64(start))
        .bind(to_i64(end))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(split_row).collect()
    }

    /// The published splits of `tenant`'s `signal` published at least `settled`
    /// ago, oldest first: what the janitor may merge (a split just published may
    /// still be searched on the node that made it).
    pub async fn mergeable(
        &self,
        tenant: &str,
        signal: Signal,
        settled: Duration,
    ) -> Result<Vec<SplitRow>, MetastoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SPLIT_COLUMNS} FROM splits \
             WHERE tenant = $1 AND signal = $2 AND state = 'published' \
               AND updated_at < now() - make_interval(secs => $3) \
             ORDER BY min_time, id"
        ))
        .bind(tenant)
        .bind(signal.as_str())
        .bind(settled.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(split_row).collect()
    }

    /// Publishes staged split `merged` in place of `sources`, in one
    /// transaction: searches see either the sources or the merged split, never
    /// both. False (and nothing changed) when a source is no longer published.
    pub async fn replace(&self, merged: &str, sources: &[String]) -> Result<bool, MetastoreError> {
        let mut transaction = self.pool.begin().await?;
        let marked = sqlx::query(
            "UPDATE splits SET state = 'marked_for_deletion', updated_at = now() \
             WHERE id = ANY($1) AND state = 'published'",
        )
        .bind(sources)
        .execute(&mut *transaction)
        .await?;
        let published = sqlx::query(
            "UPDATE splits SET state = 'published', updated_at = now() \
             WHERE id = $1 AND state = 'staged'",
        )
        .bind(merged)
        .execute(&mut *transaction)
        .await?;
        if marked.rows_affected() != sources.len() as u64 || published.rows_affected() != 1 {
            transaction.rollback().await?;
            return Ok(false);
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// Gives up a staged split (its objects go with the marked ones).
    pub async fn abandon(&self, id: &str) -> Result<(), MetastoreError> {
        sqlx::query(
            "UPDATE splits SET state = 'marked_for_deletion', updated_at = now() \
             WHERE id = $1 AND state = 'staged'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The published splits of `tenant`'s `signal` among `ids`.
    pub async fn published_by_id(
        &self,
        tenant: &str,
        signal: Signal,
        ids: &[String],
    ) -> Result<Vec<SplitRow>, MetastoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SPLIT_COLUMNS} FROM splits \
             WHERE tenant = $1 AND signal = $2 AND state = 'published' AND id = ANY($3) \
             ORDER BY min_time, id"
        ))
        .bind(tenant)
        .bind(signal.as_str())
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(split_row).collect()
    }

    /// Marks every published split of `tenant`'s `signal` whose newest record is
    /// older than `cutoff` for deletion; searches stop seeing them at once.
    /// Returns them.
    pub async fn mark_expired(
        &self,
        tenant: &str,
        signal: Signal,
        cutoff: u64,
    ) -> Result<Vec<SplitRow>, MetastoreError> {
        let rows = sqlx::query(&format!(
            "UPDATE splits SET state = 'marked_for_deletion', updated_at = now() \
             WHERE tenant = $1 AND signal = $2 AND state = 'published' AND max_time < $3 \
             RETURNING {SPLIT_COLUMNS}"
        ))
        .bind(tenant)
        .bind(signal.as_str())
        .bind(to_i64(cutoff))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(split_row).collect()
    }

    /// Splits marked for deletion at least `grace` ago (searches that started
    /// before the mark have ended), whose objects may go.
    pub async fn marked(&self, grace: Duration) -> Result<Vec<SplitRow>, MetastoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SPLIT_COLUMNS} FROM splits \
             WHERE state = 'marked_for_deletion' \
               AND updated_at < now() - make_interval(secs => $1)"
        ))
        .bind(grace.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(split_row).collect()
    }

    /// Which of `ids` are no longer published (marked, deleted or unknown).
    pub async fn gone(&self, ids: &[String]) -> Result<Vec<String>, MetastoreError> {
        Ok(sqlx::query_scalar(
            "SELECT wanted.id FROM unnest($1::text[]) AS wanted(id) \
             WHERE NOT EXISTS \
               (SELECT 1 FROM splits WHERE splits.id = wanted.id AND splits.state = 'published')",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Removes the rows of splits whose objects are gone.
    pub async fn delete(&self, ids: &[String]) -> Result<(), MetastoreError> {
        sqlx::query("DELETE FROM splits WHERE id = ANY($1) AND state = 'marked_for_deletion'")
            .bind(ids)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Says this node is alive, in its role, at `address`.
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<(), MetastoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, role, address, heartbeat) VALUES ($1, $2, $3, now()) \
             ON CONFLICT (id) DO UPDATE SET role = $2, address = $3, heartbeat = now()",
        )
        .bind(&node.id)
        .bind(&node.role)
        .bind(&node.address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Nodes whose last heartbeat is newer than `within`, by id.
    pub async fn live_nodes(&self, within: Duration) -> Result<Vec<NodeRow>, MetastoreError> {
        let rows = sqlx::query(
            "SELECT id, role, address FROM nodes \
             WHERE heartbeat > now() - make_interval(secs => $1) ORDER BY id",
        )
        .bind(within.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeRow {
                    id: row.try_get("id")?,
                    role: row.try_get("role")?,
                    address: row.try_get("address")?,
                })
            })
            .collect()
    }

    /// Runs `work` while holding PostgreSQL advisory lock `key` (one janitor at a
    /// time cluster-wide); `None` when another node holds it. The lock belongs to
    /// a transaction, so it is released however `work` ends, even if this future
    /// is dropped.
    pub async fn with_lock<T>(
        &self,
        key: i64,
        work: impl std::future::Future<Output = T>,
    ) -> Result<Option<T>, MetastoreError> {
        let mut transaction = self.pool.begin().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(key)
            .fetch_one(&mut *transaction)
            .await?;
        if !locked {
            return Ok(None);
        }
        let result = work.await;
        transaction.commit().await?;
        Ok(Some(result))
    }
}
