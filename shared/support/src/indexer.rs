//! The indexer's knowledge-base jobs: every `kb/*.jsonl` file → one new KB index version;
//! `kb/intents.json` → one new trained intent model. A KB with no valid article, or an
//! intent catalog that does not validate, is refused and the current version kept.

use std::sync::Arc;

use serde::Serialize;
use shopmind_inference::Encoder;
use shopmind_storage::BlobStore;

use crate::error::SupportError;
use crate::head::TrainConfig;
use crate::intent::{IntentCatalog, IntentModel};
use crate::kb::{chunk_article, parse_articles, BadLine, ChunkConfig};
use crate::retrieve::KbIndex;

pub const KB_PREFIX: &str = "kb/";
pub const INTENTS_KEY: &str = "kb/intents.json";
/// Texts embedded per step (progress is reported after each).
pub const STEP: usize = 256;
/// Out-of-scope below this intent probability (see README: support).
pub const DEFAULT_MIN_INTENT_CONFIDENCE: f32 = 0.5;

#[derive(Debug, Clone, Serialize)]
pub struct KbReport {
    pub version: String,
    pub files: usize,
    pub articles: usize,
    pub chunks: usize,
    pub truncated: usize,
    pub bad_lines: Vec<(String, BadLine)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IntentsReport {
    pub version: String,
    pub intents: usize,
    pub examples: usize,
}

/// Whether `key` is a knowledge-base article file (as opposed to the intents file).
pub fn is_article_file(key: &str) -> bool {
    key.starts_with(KB_PREFIX) && key.ends_with(".jsonl")
}

/// Rebuilds the KB index from every article file under `kb/`.
pub async fn index_kb(
    blobs: &dyn BlobStore,
    encoder: Arc<Encoder>,
    chunking: ChunkConfig,
    now: i64,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<KbReport, SupportError> {
    let mut keys: Vec<String> = blobs
        .list_blobs(KB_PREFIX)
        .await?
        .into_iter()
        .filter(|k| is_article_file(k))
        .collect();
    keys.sort();
    let (mut articles, mut bad_lines) = (Vec::new(), Vec::new());
    let mut seen = std::collections::HashSet::new();
    for key in &keys {
        let Some(body) = blobs.get_blob(key).await? else {
            continue; // deleted since the listing
        };
        let text = String::from_utf8_lossy(&body);
        let parsed = parse_articles(&text);
        for bad in parsed.bad {
            tracing::warn!(key = %key, line = bad.line, reason = %bad.reason, "kb line skipped");
            bad_lines.push((key.clone(), bad));
        }
        for a in parsed.articles {
            if seen.insert(a.id.clone()) {
                articles.push(a);
            } else {
                bad_lines.push((
                    key.clone(),
                    BadLine {
                        line: 0,
                        reason: format!("article id {:?} is also in an earlier file", a.id),
                    },
                ));
            }
        }
    }
    if articles.is_empty() {
        return Err(SupportError::Invalid(format!(
            "no valid article in {} file(s) under {KB_PREFIX}; the current KB index is kept",
            keys.len()
        )));
    }
    let chunks: Vec<_> = articles
        .iter()
        .flat_map(|a| chunk_article(a, chunking))
        .collect();
    let texts: Vec<String> = chunks.iter().map(|c| c.indexed_text()).collect();
    let (vectors, truncated) =
        shopmind_inference::embed_in_steps(encoder.clone(), &texts, STEP, progress)
            .await
            .map_err(|e| SupportError::Embed(e.to_string()))?;
    let index = KbIndex::new(chunks, encoder.dimension(), vectors)?;
    let version = index.publish(blobs, now, encoder.model_id()).await?;
    tracing::info!(
        version,
        articles = articles.len(),
        chunks = index.chunks().len(),
        "kb index published"
    );
    Ok(KbReport {
        version,
        files: keys.len(),
        articles: articles.len(),
        chunks: index.chunks().len(),
        truncated,
        bad_lines,
    })
}

/// Trains the intent model from `kb/intents.json`.
pub async fn index_intents(
    blobs: &dyn BlobStore,
    encoder: Arc<Encoder>,
    now: i64,
) -> Result<IntentsReport, SupportError> {
    let body = blobs
        .get_blob(INTENTS_KEY)
        .await?
        .ok_or_else(|| SupportError::Invalid(format!("{INTENTS_KEY} does not exist")))?;
    let catalog = IntentCatalog::parse(&body)?;
    let texts: Vec<String> = catalog.exemplars().into_iter().map(|e| e.text).collect();
    let (vectors, _) =
        shopmind_inference::embed_in_steps(encoder.clone(), &texts, STEP, &mut |_, _| {})
            .await
            .map_err(|e| SupportError::Embed(e.to_string()))?;
    let dim = encoder.dimension();
    let model = tokio::task::spawn_blocking(move || {
        IntentModel::train(
            &catalog,
            &vectors,
            dim,
            &TrainConfig::default(),
            DEFAULT_MIN_INTENT_CONFIDENCE,
        )
    })
    .await
    .map_err(|e| SupportError::Invalid(format!("training task failed: {e}")))??;
    let version = model.publish(blobs, now).await?;
    tracing::info!(
        version,
        intents = model.head.labels.len(),
        "intent model published"
    );
    Ok(IntentsReport {
        version,
        intents: model.head.labels.len(),
        examples: texts.len(),
    })
}

/// Both jobs with the default chunking: the KB index from every article file, then the
/// intent model (seeding a fresh store, or an operator's full rebuild).
pub async fn index_knowledge(
    blobs: &dyn BlobStore,
    encoder: Arc<Encoder>,
    now: i64,
) -> Result<(KbReport, IntentsReport), SupportError> {
    let kb = index_kb(
        blobs,
        encoder.clone(),
        ChunkConfig::default(),
        now,
        &mut |_, _| {},
    )
    .await?;
    let intents = index_intents(blobs, encoder, now).await?;
    Ok((kb, intents))
}
