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
use crate::window::{signals_over_window, WindowStats};

#[derive(Debug, Clone, Serialize)]
pub struct SignalsReport {
    pub version: String,
    pub events: usize,
    pub sessions: usize,
    pub items_with_neighbours: usize,
    #[serde(flatten)]
    pub window: WindowStats,
}

/// Builds co-occurrence, popularity and trending over the window's events and publishes.
/// Categories come from the current item index when there is one.
pub async fn index_signals(
    blobs: &dyn BlobStore,
    cfg: &SignalsConfig,
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
    let (signals, window) = signals_over_window(blobs, &category_of, now, cfg).await?;
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
        window,
    })
}
