//! The indexer's two jobs: a catalog into a new item-index version, and the event archive
//! into a new signals version. Both publish a fresh immutable version and move `LATEST` only
//! when everything is written.

use std::sync::Arc;

use serde::Serialize;
use shopmind_inference::Encoder;
use shopmind_storage::BlobStore;

use crate::catalog::{parse_catalog, BadLine};
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
    // Sort by text length so each step pads to similar lengths; rows keep catalog order.
    let texts: Vec<String> = parsed.items.iter().map(|i| i.text()).collect();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|i| texts[*i].len());
    let dim = encoder.dimension();
    let mut vectors = vec![0.0f32; texts.len() * dim];
    let mut truncated = 0;
    let total = texts.len();
    for (step, rows) in order.chunks(STEP).enumerate() {
        let batch: Vec<String> = rows.iter().map(|r| texts[*r].clone()).collect();
        let enc = encoder.clone();
        let out = tokio::task::spawn_blocking(move || enc.embed(&batch))
            .await
            .map_err(|e| RecsError::Embed(e.to_string()))?
            .map_err(|e| RecsError::Embed(e.to_string()))?;
        for (row, e) in rows.iter().zip(out) {
            if e.vector.len() != dim {
                return Err(RecsError::Embed(format!(
                    "the encoder returned {} values, not {dim}",
                    e.vector.len()
                )));
            }
            truncated += usize::from(e.truncated);
            vectors[row * dim..(row + 1) * dim].copy_from_slice(&e.vector);
        }
        progress(((step + 1) * STEP).min(total), total);
    }
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
    let items = ItemIndex::load_latest(blobs).await?;
    let category_of = |id: &str| {
        items
            .as_ref()
            .and_then(|i| i.row(id).and_then(|r| i.meta(r)))
            .map(|m| m.category.clone())
    };
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
