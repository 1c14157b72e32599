//! The indexer's signals job: the event archive's window into a new signals version, published
//! as a fresh immutable version with `LATEST` moved only when everything is written. (The
//! window and its daily partials are [`crate::window`]; the catalog job is
//! [`crate::catalog_index`].)

use std::collections::HashMap;

use serde::Serialize;
use shopmind_storage::BlobStore;

use crate::cooc::SignalsConfig;
use crate::error::RecsError;
use crate::index::ItemIndex;
use crate::signals_sql::{signals_by_sql, SqlEngine, SqlStats};
use crate::window::{signals_over_window, WindowStats};

/// Where the window's events are aggregated.
#[derive(Debug, Clone, Copy)]
pub enum SignalsEngine<'a> {
    /// In this process, from stored daily partials ([`crate::window`]).
    Window,
    /// By an SQL engine over the archive (Athena), the lists made here.
    Sql(&'a dyn SqlEngine),
}

#[derive(Debug, Clone, Serialize)]
pub struct SignalsReport {
    pub version: String,
    pub events: usize,
    pub sessions: usize,
    pub items_with_neighbours: usize,
    /// `window` or `sql`.
    pub engine: &'static str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub window: Option<WindowStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<SqlStats>,
}

/// Builds co-occurrence, popularity and trending over the window's events and publishes.
/// Categories come from the current item index when there is one.
pub async fn index_signals(
    blobs: &dyn BlobStore,
    cfg: &SignalsConfig,
    engine: SignalsEngine<'_>,
    now: i64,
) -> Result<SignalsReport, RecsError> {
    // Categories only: the item vectors stay in the store.
    let categories: HashMap<String, String> = ItemIndex::load_latest_meta(blobs)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.item_id, m.category))
        .collect();
    let category_of = |id: &str| categories.get(id).cloned();
    let (signals, window, query) = match engine {
        SignalsEngine::Window => {
            let (s, w) = signals_over_window(blobs, &category_of, now, cfg).await?;
            (s, Some(w), None)
        }
        SignalsEngine::Sql(sql) => {
            let (s, q) = signals_by_sql(sql, &category_of, now, cfg).await?;
            (s, None, Some(q))
        }
    };
    let manifest = signals.publish(blobs, now).await?;
    tracing::info!(
        version = manifest.version,
        events = signals.events,
        "signals published"
    );
    Ok(SignalsReport {
        version: manifest.version,
        events: signals.events,
        sessions: signals.sessions,
        items_with_neighbours: signals.neighbours.len(),
        engine: match engine {
            SignalsEngine::Window => "window",
            SignalsEngine::Sql(_) => "sql",
        },
        window,
        query,
    })
}
