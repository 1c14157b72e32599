//! The indexer's signals job: the event archive into a new signals version, published as a
//! fresh immutable version with `LATEST` moved only when everything is written. (The catalog
//! job is [`crate::catalog_index`].)

use std::collections::HashMap;

use serde::Serialize;
use shopmind_storage::BlobStore;

use crate::cooc::{build_signals, read_archive, Signals, SignalsConfig};
use crate::error::RecsError;
use crate::index::ItemIndex;

#[derive(Debug, Clone, Serialize)]
pub struct SignalsReport {
    pub version: String,
    pub events: usize,
    pub unreadable_lines: usize,
    pub sessions: usize,
    pub items_with_neighbours: usize,
}

/// Reads the whole event archive, builds co-occurrence, popularity and trending, publishes.
/// Categories come from the current item index when there is one.
pub async fn index_signals(
    blobs: &dyn BlobStore,
    cfg: &SignalsConfig,
    now: i64,
) -> Result<SignalsReport, RecsError> {
    let (events, unreadable) = read_archive(blobs).await?;
    // Categories only: the item vectors stay in the store.
    let categories: HashMap<String, String> = ItemIndex::load_latest_meta(blobs)
        .await?
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.item_id, m.category))
        .collect();
    let category_of = |id: &str| categories.get(id).cloned();
    let signals: Signals = build_signals(&events, &category_of, now, cfg);
    let manifest = signals.publish(blobs, now).await?;
    tracing::info!(
        version = manifest.version,
        events = events.len(),
        "signals published"
    );
    Ok(SignalsReport {
        version: manifest.version,
        events: events.len(),
        unreadable_lines: unreadable,
        sessions: signals.sessions,
        items_with_neighbours: signals.neighbours.len(),
    })
}
