//! The users table: every statement through [`Db::call`], and the row mapping.

use telemetry::db::Db;

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE
);";

#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) email: String,
}

fn row_to_user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        name: row.get(1)?,
        email: row.get(2)?,
    })
}

pub(crate) async fn find_user(db: &Db, id: i64) -> anyhow::Result<Option<User>> {
    db.call(
        "SELECT",
        "users",
        "SELECT id, name, email FROM users WHERE id = ?1",
        move |c, sql| {
            let mut statement = c.prepare_cached(sql)?;
            let mut rows = statement.query_map([id], row_to_user)?;
            rows.next().transpose()
        },
    )
    .await
}

/// Inserts a user; returns its id. A taken e-mail address fails with SQLite's
/// `UNIQUE constraint failed` error.
pub(crate) async fn insert_user(db: &Db, name: String, email: String) -> anyhow::Result<i64> {
    db.call(
        "INSERT",
        "users",
        "INSERT INTO users (name, email) VALUES (?1, ?2)",
        move |c, sql| {
            c.execute(sql, [&name, &email])?;
            Ok(c.last_insert_rowid())
        },
    )
    .await
}

pub(crate) async fn list_users(db: &Db) -> anyhow::Result<Vec<User>> {
    db.call(
        "SELECT",
        "users",
        "SELECT id, name, email FROM users ORDER BY id LIMIT 1000",
        |c, sql| {
            let mut statement = c.prepare_cached(sql)?;
            let rows = statement.query_map([], row_to_user)?;
            rows.collect::<Result<Vec<_>, _>>()
        },
    )
    .await
}
