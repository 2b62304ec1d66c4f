//! A service's own SQLite database. Every statement runs on the blocking pool inside a
//! `db.*` client span (database semantic conventions).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::Connection;
use tracing::Instrument as _;

#[derive(Clone)]
pub struct Db {
    connection: Arc<Mutex<Connection>>,
    name: String,
    /// Added to every statement, inside its span: the network between a service
    /// and a database server, which an embedded SQLite does not have.
    round_trip: Duration,
}

impl Db {
    /// Opens `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:` and runs `schema`.
    pub fn open(url: &str, schema: &str) -> anyhow::Result<Db> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .with_context(|| format!("unsupported database URL '{url}': use sqlite:PATH"))?;
        let connection = if path == ":memory:" {
            Connection::open_in_memory()
        } else {
            Connection::open(path)
        }
        .with_context(|| format!("cannot open database {url}"))?;
        // WAL and a busy timeout: replicas of a service may share one database file.
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;")
            .context("cannot configure the database")?;
        connection
            .execute_batch(schema)
            .context("cannot create the schema")?;
        let name = std::path::Path::new(path)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "memory".into());
        Ok(Db {
            connection: Arc::new(Mutex::new(connection)),
            name,
            round_trip: Duration::ZERO,
        })
    }

    /// This database as if it were a server `round_trip` away (each statement
    /// waits that long first, without holding the connection).
    pub fn with_round_trip(self, round_trip: Duration) -> Db {
        Db { round_trip, ..self }
    }

    /// Runs `work` with the connection and `statement`, in a span named
    /// `{operation} {table}` whose `db.query.text` is `statement`. The SQL is written
    /// once: `work` runs the statement it is given, e.g.
    /// `move |c, sql| c.execute(sql, params![a, b])` or
    /// `|c, sql| { let mut s = c.prepare_cached(sql)?; ... }`.
    pub async fn call<T: Send + 'static>(
        &self,
        operation: &'static str,
        table: &'static str,
        statement: &'static str,
        work: impl FnOnce(&Connection, &str) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let span = tracing::info_span!(
            "db",
            otel.name = %format!("{operation} {table}"),
            otel.kind = "client",
            db.system.name = "sqlite",
            db.namespace = %self.name,
            db.operation.name = operation,
            db.collection.name = table,
            db.query.text = statement,
        );
        if !self.round_trip.is_zero() {
            tokio::time::sleep(self.round_trip)
                .instrument(span.clone())
                .await;
        }
        let connection = Arc::clone(&self.connection);
        let result = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let guard = connection
                .lock()
                .map_err(|_| anyhow::anyhow!("database lock poisoned"))?;
            work(&guard, statement).map_err(|e| {
                crate::mark_error(&tracing::Span::current(), e.to_string());
                anyhow::Error::from(e)
            })
        })
        .await
        .context("database worker failed")?;
        result
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> bool {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            connection
                .lock()
                .map(|c| c.query_row("SELECT 1", [], |_| Ok(())).is_ok())
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false)
    }
}
