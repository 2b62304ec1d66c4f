//! The orders table: every statement through [`Db::call`], and the row mapping (an
//! order's items are stored as a JSON array).

use serde::{Deserialize, Serialize};
use telemetry::db::Db;

pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    items TEXT NOT NULL,
    total REAL NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id);";

/// The parts catalogue: what a `BUNDLE-n` item is made of (parts 1 to 50).
pub(crate) const CATALOGUE_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS parts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
INSERT OR IGNORE INTO parts (id, name)
    WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < 50)
    SELECT id, 'part ' || id FROM n;";

/// Parts a bundle may have.
pub(crate) const MAX_BUNDLE_PARTS: i64 = 50;

/// One part of a bundle, by id: called once per part (the N+1 the demo has on
/// purpose), where one `WHERE id IN (...)` would do.
pub(crate) async fn find_part(catalogue: &Db, id: i64) -> anyhow::Result<Option<String>> {
    catalogue
        .call(
            "SELECT",
            "parts",
            "SELECT name FROM parts WHERE id = ?1",
            move |c, sql| {
                let mut statement = c.prepare_cached(sql)?;
                let mut rows = statement.query_map([id], |row| row.get(0))?;
                rows.next().transpose()
            },
        )
        .await
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Item {
    pub(crate) sku: String,
    pub(crate) quantity: u32,
    pub(crate) price: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Order {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) items: Vec<Item>,
    pub(crate) total: f64,
    pub(crate) status: String,
}

fn row_to_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    let items: String = row.get(2)?;
    Ok(Order {
        id: row.get(0)?,
        user_id: row.get(1)?,
        items: serde_json::from_str(&items).unwrap_or_default(),
        total: row.get(3)?,
        status: row.get(4)?,
    })
}

/// Inserts an order with status `created`; returns its id.
pub(crate) async fn insert_order(
    db: &Db,
    user_id: i64,
    items: &[Item],
    total: f64,
) -> anyhow::Result<i64> {
    let items_json = serde_json::to_string(items).unwrap_or_else(|_| "[]".into());
    db.call(
        "INSERT",
        "orders",
        "INSERT INTO orders (user_id, items, total, status) VALUES (?1, ?2, ?3, 'created')",
        move |c, sql| {
            c.execute(sql, rusqlite::params![user_id, items_json, total])?;
            Ok(c.last_insert_rowid())
        },
    )
    .await
}

/// The last 100 orders, newest first, of one user or of all.
pub(crate) async fn list_orders(db: &Db, user_id: Option<i64>) -> anyhow::Result<Vec<Order>> {
    db.call(
        "SELECT",
        "orders",
        "SELECT id, user_id, items, total, status FROM orders WHERE (?1 IS NULL OR user_id = ?1) ORDER BY id DESC LIMIT 100",
        move |c, sql| {
            let mut statement = c.prepare_cached(sql)?;
            let rows = statement.query_map([user_id], row_to_order)?;
            rows.collect::<Result<Vec<_>, _>>()
        },
    )
    .await
}

pub(crate) async fn find_order(db: &Db, id: i64) -> anyhow::Result<Option<Order>> {
    db.call(
        "SELECT",
        "orders",
        "SELECT id, user_id, items, total, status FROM orders WHERE id = ?1",
        move |c, sql| {
            let mut statement = c.prepare_cached(sql)?;
            let mut rows = statement.query_map([id], row_to_order)?;
            rows.next().transpose()
        },
    )
    .await
}
