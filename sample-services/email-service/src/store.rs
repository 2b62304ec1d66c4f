//! The emails table: every statement through [`Db::call`], and the row mapping.

use serde::Serialize;
use telemetry::db::Db;

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS emails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id INTEGER NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL
);";

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Email {
    id: i64,
    order_id: i64,
    recipient: String,
    subject: String,
    status: String,
}

/// Records an e-mail (`status`: `sent` or `failed`).
pub(crate) async fn insert_email(
    db: &Db,
    order_id: i64,
    recipient: String,
    subject: String,
    status: &'static str,
) -> anyhow::Result<()> {
    db.call(
        "INSERT",
        "emails",
        "INSERT INTO emails (order_id, recipient, subject, status) VALUES (?1, ?2, ?3, ?4)",
        move |c, sql| {
            c.execute(sql, rusqlite::params![order_id, recipient, subject, status])?;
            Ok(())
        },
    )
    .await
}

/// The last 100 e-mails, newest first.
pub(crate) async fn list_emails(db: &Db) -> anyhow::Result<Vec<Email>> {
    db.call(
        "SELECT",
        "emails",
        "SELECT id, order_id, recipient, subject, status FROM emails ORDER BY id DESC LIMIT 100",
        |c, sql| {
            let mut statement = c.prepare_cached(sql)?;
            let rows = statement.query_map([], |row| {
                Ok(Email {
                    id: row.get(0)?,
                    order_id: row.get(1)?,
                    recipient: row.get(2)?,
                    subject: row.get(3)?,
                    status: row.get(4)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()
        },
    )
    .await
}
