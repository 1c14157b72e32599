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
use crate::index::{ItemIndex, ItemMeta, TextKey, KIND, TEXT_KEYS_FILE};
use shopmind_artifacts as artifact;

/// Items embedded per progress step (the encoder sorts and batches inside each step).
pub const STEP: usize = 256;

#[derive(Debug, Clone, Serialize)]
pub struct CatalogReport {
    pub version: String,
    pub items: usize,
    pub bad_lines: Vec<BadLine>,
    /// Texts embedded by this run that were longer than the encoder's max length (embedded
    /// from their start); reused vectors were counted by the run that embedded them.
    pub truncated: usize,
    /// Items whose vector was taken from the previous version (same text, same model).
    pub reused: usize,
    /// Distinct texts embedded by this run.
    pub embedded: usize,
    /// The version vectors were reused from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// The catalog holds exactly what the current version holds (same items, metadata and
    /// texts, same model): nothing was embedded or published, and `version` is that one.
    pub unchanged: bool,
}

/// The current version's vectors by what they were embedded from, kept as the downloaded
/// bytes (decoded row by row into the new matrix, never as a second f32 copy of them all).
struct Reusable {
    version: String,
    dim: usize,
    raw: bytes::Bytes,
    rows: HashMap<TextKey, usize>,
}

impl Reusable {
    /// Writes the vector embedded from `key` into `out`; false when there is none.
    fn copy_into(&self, key: &TextKey, out: &mut [f32]) -> bool {
        let Some(&row) = self.rows.get(key) else {
            return false;
        };
        let Some(bytes) = self.raw.get(row * self.dim * 4..(row + 1) * self.dim * 4) else {
            return false;
        };
        for (x, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
            *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        true
    }

    /// The version `LATEST` names, when it was embedded by `model` at `dim` and records its
    /// text keys. An index that cannot be reused (another model, written before text keys,
    /// damaged) means a full embedding, logged, never a failed job; a storage error is
    /// returned, so the job is retried rather than silently re-embedding everything.
    async fn latest(
        blobs: &dyn BlobStore,
        model: &str,
        dim: usize,
    ) -> Result<Option<Self>, RecsError> {
        let Some(version) = ItemIndex::latest_version(blobs).await? else {
            return Ok(None);
        };
        let skip = |why: String| {
            tracing::info!(previous = %version, why, "previous item vectors not reused");
            Ok(None)
        };
        let loaded = artifact::load_files(blobs, KIND, &version, |n| {
            n == "vectors.f32" || n == TEXT_KEYS_FILE
        })
        .await;
        let (manifest, mut files) = match loaded {
            Ok(v) => v,
            Err(artifact::ArtifactError::Storage(e)) => return Err(e.into()),
            Err(e) => return skip(e.to_string()),
        };
        if manifest.meta["model"].as_str() != Some(model)
            || manifest.meta["dimension"].as_u64() != Some(dim as u64)
        {
            return skip(format!(
                "embedded by {} at dimension {}, not {model} at {dim}",
                manifest.meta["model"], manifest.meta["dimension"]
            ));
        }
        if !manifest.files.iter().any(|f| f.name == TEXT_KEYS_FILE) {
            return skip("it has no text keys (built before they were recorded)".into());
        }
        let (Ok(raw), Ok(keys)) = (
            artifact::take_file(&mut files, "vectors.f32"),
            artifact::take_file(&mut files, TEXT_KEYS_FILE),
        ) else {
            return skip("a file is missing".into());
        };
        let Some(keys) = TextKey::parse_all(&keys) else {
            return skip("text_keys.bin is not whole keys".into());
        };
        if raw.len() != keys.len() * dim * 4 {
            return skip(format!(
                "{} vector bytes for {} keys",
                raw.len(),
                keys.len()
            ));
        }
        let rows = keys.into_iter().enumerate().map(|(r, k)| (k, r)).collect();
        Ok(Some(Self {
            version,
            dim,
            raw,
            rows,
        }))
    }
}

/// Parses, embeds and publishes. Items whose text is unchanged since the current version
/// (same [`TextKey`], same model) keep their vector; the rest, each distinct text once, are
/// embedded length-sorted in steps of [`STEP`] with `progress(done, total)` after each. A
/// catalog with no valid item is refused rather than publishing an empty index that would
/// blank every recommendation.
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
    let keys: Vec<TextKey> = texts.iter().map(|t| TextKey::of(t)).collect();
    let dim = encoder.dimension();
    let model = encoder.model_id().to_owned();
    let meta: Vec<ItemMeta> = parsed.items.iter().map(ItemMeta::from).collect();
    let version = ItemIndex::version_for(now, &model, &meta, &keys);
    // A redelivered or re-uploaded catalog with nothing new publishes nothing.
    if let Some(current) = ItemIndex::latest_version(blobs).await? {
        if artifact::same_content(&current, &version) {
            tracing::info!(version = %current, items = meta.len(), "catalog unchanged; nothing published");
            return Ok(CatalogReport {
                version: current.clone(),
                items: meta.len(),
                bad_lines: parsed.bad,
                truncated: 0,
                reused: meta.len(),
                embedded: 0,
                reused_from: Some(current),
                unchanged: true,
            });
        }
    }
    let previous = Reusable::latest(blobs, &model, dim).await?;

    let mut vectors = vec![0f32; texts.len() * dim];
    let mut reused = 0;
    // Texts to embed, each once, and the rows that wait for each.
    let mut fresh: Vec<String> = Vec::new();
    let mut waiting: Vec<Vec<usize>> = Vec::new();
    let mut slot_of: HashMap<TextKey, usize> = HashMap::new();
    for (row, key) in keys.iter().enumerate() {
        let out = &mut vectors[row * dim..(row + 1) * dim];
        if previous.as_ref().is_some_and(|p| p.copy_into(key, out)) {
            reused += 1;
            continue;
        }
        let slot = *slot_of.entry(*key).or_insert_with(|| {
            fresh.push(texts[row].clone());
            waiting.push(Vec::new());
            fresh.len() - 1
        });
        waiting[slot].push(row);
    }
    let reused_from = previous.map(|p| p.version);
    tracing::info!(
        items = texts.len(),
        reused,
        to_embed = fresh.len(),
        previous = reused_from.as_deref().unwrap_or("none"),
        "embedding catalog"
    );
    let (embedded, truncated) =
        shopmind_inference::embed_in_steps(encoder.clone(), &fresh, STEP, progress)
            .await
            .map_err(|e| RecsError::Embed(e.to_string()))?;
    for (slot, rows) in waiting.iter().enumerate() {
        let v = &embedded[slot * dim..(slot + 1) * dim];
        for row in rows {
            vectors[row * dim..(row + 1) * dim].copy_from_slice(v);
        }
    }
    drop(embedded);

    let index = ItemIndex::new(&version, &model, dim, meta, vectors)?.with_text_keys(keys)?;
    match index.publish(blobs, now).await {
        Ok(_) => {}
        // The same content in the same second (a redelivered upload): the version is there,
        // so it only needs to be the one LATEST names.
        Err(RecsError::VersionExists(_)) => {
            tracing::info!(
                version,
                "identical version already published; LATEST moved to it"
            );
            artifact::move_pointer(blobs, KIND, &version).await?;
        }
        Err(e) => return Err(e),
    }
    tracing::info!(
        version,
        items = index.len(),
        reused,
        embedded = fresh.len(),
        bad_lines = parsed.bad.len(),
        "item index published"
    );
    Ok(CatalogReport {
        version,
        items: index.len(),
        bad_lines: parsed.bad,
        truncated,
        reused,
        embedded: fresh.len(),
        reused_from,
        unchanged: false,
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
