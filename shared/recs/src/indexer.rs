//! The indexer's two jobs: a catalog into a new item-index version, and the event archive
//! into a new signals version. Both publish a fresh immutable version and move `LATEST` only
//! when everything is written.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use shopmind_catalog::{parse_catalog, BadLine};
use shopmind_inference::Encoder;
use shopmind_storage::BlobStore;

use crate::cooc::{build_signals, read_archive, Signals, SignalsConfig};
use crate::error::RecsError;
use crate::index::{ItemIndex, ItemMeta};

/// Items embedded per progress step (the encoder sorts and batches inside each step).
pub const STEP: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct CatalogReport {
    pub version: String,
    pub items: usize,
    pub bad_lines: Vec<BadLine>,
    /// Items whose text was longer than the encoder's max length (embedded from its start).
    pub truncated: usize,
}

/// Parses, embeds (length-sorted, in steps of [`STEP`], `progress(done, total)` after each)
/// and publishes. A catalog with no valid item is refused rather than publishing an empty
/// index that would blank every recommendation.
pub async fn index_catalog(
    blobs: &dyn BlobStore,
    catalog: &str,
    encoder: Arc<Encoder>,
    now: i64,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<CatalogReport, RecsError> {
    let parsed = parse_catalog(catalog);
    for bad in &parsed.bad {
        tracing::warn!(line = bad.line, reason = %bad.reason, "catalog line skipped");
    }
    if parsed.items.is_empty() {
        return Err(RecsError::Invalid(format!(
            "the catalog has no valid item ({} bad lines); the current index is kept",
            parsed.bad.len()
        )));
    }
    let texts: Vec<String> = parsed.items.iter().map(|i| i.text()).collect();
    let dim = encoder.dimension();
    let (vectors, truncated) =
        shopmind_inference::embed_in_steps(encoder.clone(), &texts, STEP, progress)
            .await
            .map_err(|e| RecsError::Embed(e.to_string()))?;
    let meta: Vec<ItemMeta> = parsed.items.iter().map(ItemMeta::from).collect();
    let version = ItemIndex::version_for(now, &meta, &vectors);
    let index = ItemIndex::new(&version, encoder.model_id(), dim, meta, vectors)?;
    index.publish(blobs, now).await?;
    tracing::info!(
        version,
        items = index.len(),
        bad_lines = parsed.bad.len(),
        "item index published"
    );
    Ok(CatalogReport {
        version,
        items: index.len(),
        bad_lines: parsed.bad,
        truncated,
    })
}

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
