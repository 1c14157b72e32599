//! The indexer's catalog job: a catalog into a new item-index version. Only the texts the
//! current version does not hold are embedded: inline, or — past a size, when a queue is
//! given — fanned out in shards that workers embed in parallel, the last one in asking for the
//! merge that publishes. Either way a version is published whole or not at all.
//!
//! A fanned-out build is staged under `staging/items/<version>/`: the rows' metadata and text
//! keys, each shard's texts, then `plan.json` (written last: a build without it is incomplete);
//! a worker writes `shard-NNNNN.f32`; the worker that finds every shard in writes `ready`,
//! whose arrival starts the merge. The merge rebuilds the matrix from the same keys and the
//! same previous version the plan names, so it needs neither the catalog nor its texts again.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shopmind_catalog::{parse_catalog, BadLine};
use shopmind_inference::Encoder;
use shopmind_storage::BlobStore;

use crate::error::RecsError;
use crate::index::{meta_jsonl, parse_meta, ItemIndex, ItemMeta, TextKey, KIND, TEXT_KEYS_FILE};
use crate::topk::{f32s_from_le, f32s_to_le};
use shopmind_artifacts as artifact;

/// Items embedded per progress step (the encoder sorts and batches inside each step).
pub const STEP: usize = 256;
/// Where fanned-out builds are staged.
pub const STAGING: &str = "staging/items/";
/// Distinct texts one shard embeds by default: about a minute on two vCPUs for product-length
/// texts, far inside a 15-minute invocation.
pub const DEFAULT_SHARD_TEXTS: usize = 50_000;

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
    /// Distinct texts embedded (inline) or to embed (in shards) for this version.
    pub embedded: usize,
    /// The version vectors were reused from, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_from: Option<String>,
    /// The catalog holds exactly what the current version holds (same items, metadata and
    /// texts, same model): nothing was embedded or published, and `version` is that one.
    pub unchanged: bool,
    /// Shards the texts were fanned out to (0: embedded inline).
    pub shards: usize,
    /// Whether `version` is published; a fanned-out build is when its last shard is in.
    pub published: bool,
}

/// Where a fanned-out build's shards go (SQS in AWS: one message per shard).
#[async_trait]
pub trait ShardQueue: Send + Sync + std::fmt::Debug {
    /// Sends one message per body; an error when any of them could not be sent.
    async fn send(&self, bodies: &[String]) -> Result<(), RecsError>;
}

/// When and where to fan out.
#[derive(Debug, Clone, Copy)]
pub struct FanOut<'a> {
    pub queue: &'a dyn ShardQueue,
    /// Distinct texts per shard; a catalog with more texts to embed than this fans out.
    pub shard_texts: usize,
}

/// One shard's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardMessage {
    pub build: String,
    pub shard: usize,
}

/// What a worker did with one shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    pub build: String,
    pub shard: usize,
    pub texts: usize,
    pub truncated: usize,
    /// A redelivered message whose shard was already embedded.
    pub already_done: bool,
    /// Every shard of the build is in (this worker asked for the merge).
    pub all_in: bool,
}

/// A staged build: what the merge needs besides the staged files.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    version: String,
    model: String,
    dimension: usize,
    created_at: i64,
    items: usize,
    reused: usize,
    reused_from: Option<String>,
    texts: usize,
    shard_texts: usize,
    shards: usize,
}

fn prefix(build: &str) -> String {
    format!("{STAGING}{build}/")
}

fn shard_texts_key(build: &str, shard: usize) -> String {
    format!("{}shard-{shard:05}.jsonl", prefix(build))
}

fn shard_vectors_key(build: &str, shard: usize) -> String {
    format!("{}shard-{shard:05}.f32", prefix(build))
}

/// The object whose creation asks for a build's merge.
pub fn ready_key(build: &str) -> String {
    format!("{}ready", prefix(build))
}

/// The build a `ready` object's key names (`staging/items/<build>/ready`).
pub fn build_of_ready_key(key: &str) -> Option<&str> {
    let build = key.strip_prefix(STAGING)?.strip_suffix("/ready")?;
    (!build.is_empty() && !build.contains('/')).then_some(build)
}

/// The current version's vectors by what they were embedded from, kept as the downloaded
/// bytes (decoded row by row into the new matrix, never as a second f32 copy of them all).
struct Reusable {
    version: String,
    dim: usize,
    raw: Bytes,
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

    /// `version`, when it was embedded by `model` at `dim` and records its text keys. An
    /// index that cannot be reused (another model, written before text keys, damaged) is
    /// `None`, logged; a storage error is returned, so the job is retried rather than
    /// silently re-embedding everything.
    async fn load(
        blobs: &dyn BlobStore,
        version: &str,
        model: &str,
        dim: usize,
    ) -> Result<Option<Self>, RecsError> {
        let skip = |why: String| {
            tracing::info!(previous = %version, why, "previous item vectors not reused");
            Ok(None)
        };
        let loaded = artifact::load_files(blobs, KIND, version, |n| {
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
            version: version.to_owned(),
            dim,
            raw,
            rows,
        }))
    }
}

/// The matrix with every reusable row in place, and the distinct texts still to embed.
struct Filled {
    vectors: Vec<f32>,
    reused: usize,
    /// The first row of each text to embed, in the order they are embedded.
    fresh_rows: Vec<usize>,
    /// The rows that wait for each of them.
    waiting: Vec<Vec<usize>>,
}

impl Filled {
    /// Deterministic in `keys` and `previous`: the merge of a fanned-out build calls it again
    /// and gets the same texts in the same order as the plan did.
    fn new(keys: &[TextKey], previous: Option<&Reusable>, dim: usize) -> Self {
        let mut vectors = vec![0f32; keys.len() * dim];
        let mut reused = 0;
        let mut fresh_rows = Vec::new();
        let mut waiting: Vec<Vec<usize>> = Vec::new();
        let mut slot_of: HashMap<TextKey, usize> = HashMap::new();
        for (row, key) in keys.iter().enumerate() {
            let out = &mut vectors[row * dim..(row + 1) * dim];
            if previous.is_some_and(|p| p.copy_into(key, out)) {
                reused += 1;
                continue;
            }
            let slot = *slot_of.entry(*key).or_insert_with(|| {
                fresh_rows.push(row);
                waiting.push(Vec::new());
                fresh_rows.len() - 1
            });
            waiting[slot].push(row);
        }
        Self {
            vectors,
            reused,
            fresh_rows,
            waiting,
        }
    }

    /// Puts the embedded texts (row-major, in `fresh_rows` order) into their rows.
    fn place(&mut self, embedded: &[f32], dim: usize) -> Result<(), RecsError> {
        if embedded.len() != self.fresh_rows.len() * dim {
            return Err(RecsError::Invalid(format!(
                "{} embedded values for {} texts of dimension {dim}",
                embedded.len(),
                self.fresh_rows.len()
            )));
        }
        for (slot, rows) in self.waiting.iter().enumerate() {
            let v = &embedded[slot * dim..(slot + 1) * dim];
            for row in rows {
                self.vectors[row * dim..(row + 1) * dim].copy_from_slice(v);
            }
        }
        Ok(())
    }
}

/// Parses, embeds and publishes. Items whose text is unchanged since the current version
/// (same [`TextKey`], same model) keep their vector; the rest, each distinct text once, are
/// embedded length-sorted in steps of [`STEP`] with `progress(done, total)` after each — or,
/// with `fan_out` and more of them than a shard holds, staged and queued in shards (the
/// report then says `published: false`). A catalog with no valid item is refused rather than
/// publishing an empty index that would blank every recommendation.
pub async fn index_catalog(
    blobs: &dyn BlobStore,
    catalog: &str,
    encoder: Arc<Encoder>,
    now: i64,
    fan_out: Option<FanOut<'_>>,
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
    let current = ItemIndex::latest_version(blobs).await?;
    // A redelivered or re-uploaded catalog with nothing new publishes nothing.
    if let Some(current) = current.as_deref() {
        if artifact::same_content(current, &version) {
            tracing::info!(version = %current, items = meta.len(), "catalog unchanged; nothing published");
            return Ok(CatalogReport {
                version: current.to_owned(),
                items: meta.len(),
                bad_lines: parsed.bad,
                truncated: 0,
                reused: meta.len(),
                embedded: 0,
                reused_from: Some(current.to_owned()),
                unchanged: true,
                shards: 0,
                published: true,
            });
        }
    }
    let previous = match current.as_deref() {
        Some(v) => Reusable::load(blobs, v, &model, dim).await?,
        None => None,
    };
    let mut filled = Filled::new(&keys, previous.as_ref(), dim);
    let reused_from = previous.map(|p| p.version);
    let fresh: Vec<String> = filled
        .fresh_rows
        .iter()
        .map(|&r| texts[r].clone())
        .collect();
    drop(texts);
    tracing::info!(
        items = meta.len(),
        reused = filled.reused,
        to_embed = fresh.len(),
        previous = reused_from.as_deref().unwrap_or("none"),
        "embedding catalog"
    );
    let mut report = CatalogReport {
        version: version.clone(),
        items: meta.len(),
        bad_lines: parsed.bad,
        truncated: 0,
        reused: filled.reused,
        embedded: fresh.len(),
        reused_from,
        unchanged: false,
        shards: 0,
        published: false,
    };
    if let Some(fan) = fan_out.filter(|f| fresh.len() > f.shard_texts.max(1)) {
        let plan = Plan {
            version,
            model,
            dimension: dim,
            created_at: now,
            items: meta.len(),
            reused: filled.reused,
            reused_from: report.reused_from.clone(),
            texts: fresh.len(),
            shard_texts: fan.shard_texts.max(1),
            shards: fresh.len().div_ceil(fan.shard_texts.max(1)),
        };
        stage(blobs, &plan, &meta, &keys, &fresh).await?;
        let bodies = (0..plan.shards)
            .map(|shard| {
                serde_json::to_string(&ShardMessage {
                    build: plan.version.clone(),
                    shard,
                })
                .map_err(|e| RecsError::Invalid(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        fan.queue.send(&bodies).await?;
        tracing::info!(build = %plan.version, shards = plan.shards, texts = plan.texts, "catalog fanned out");
        report.shards = plan.shards;
        return Ok(report);
    }
    let (embedded, truncated) =
        shopmind_inference::embed_in_steps(encoder.clone(), &fresh, STEP, progress)
            .await
            .map_err(|e| RecsError::Embed(e.to_string()))?;
    filled.place(&embedded, dim)?;
    drop(embedded);
    let index =
        ItemIndex::new(&version, &model, dim, meta, filled.vectors)?.with_text_keys(keys)?;
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
        reused = report.reused,
        embedded = report.embedded,
        "item index published"
    );
    report.truncated = truncated;
    report.published = true;
    Ok(report)
}

/// Writes a build's files, the plan last.
async fn stage(
    blobs: &dyn BlobStore,
    plan: &Plan,
    meta: &[ItemMeta],
    keys: &[TextKey],
    fresh: &[String],
) -> Result<(), RecsError> {
    let json = |e: serde_json::Error| RecsError::Invalid(e.to_string());
    let base = prefix(&plan.version);
    blobs
        .put_blob(
            &format!("{base}items.jsonl"),
            Bytes::from(meta_jsonl(meta)?),
        )
        .await?;
    let raw: Vec<u8> = keys.iter().flat_map(|k| k.0).collect();
    blobs
        .put_blob(&format!("{base}{TEXT_KEYS_FILE}"), Bytes::from(raw))
        .await?;
    for (shard, texts) in fresh.chunks(plan.shard_texts).enumerate() {
        let mut body = Vec::new();
        for t in texts {
            serde_json::to_writer(&mut body, t).map_err(json)?;
            body.push(b'\n');
        }
        blobs
            .put_blob(&shard_texts_key(&plan.version, shard), Bytes::from(body))
            .await?;
    }
    let body = serde_json::to_vec_pretty(plan).map_err(json)?;
    blobs
        .put_blob(&format!("{base}plan.json"), Bytes::from(body))
        .await?;
    Ok(())
}

/// Whether a version named `build` is published (its manifest is written last). Asked by
/// listing, as every "is it there yet" here is: S3 answers a read of a missing key with 403,
/// not 404, unless the caller may list the bucket, and the functions may list only prefixes.
async fn is_published(blobs: &dyn BlobStore, build: &str) -> Result<bool, RecsError> {
    let manifest = format!("indexes/{KIND}/v/{build}/manifest.json");
    Ok(blobs.list_blobs(&manifest).await?.contains(&manifest))
}

async fn read_plan(blobs: &dyn BlobStore, build: &str) -> Result<Plan, RecsError> {
    let key = format!("{}plan.json", prefix(build));
    let body = blobs.get_blob(&key).await?.ok_or_else(|| {
        RecsError::Invalid(format!("no staged catalog build {build:?} (no {key})"))
    })?;
    serde_json::from_slice(&body).map_err(|e| RecsError::Corrupt {
        what: key,
        reason: e.to_string(),
    })
}

/// Embeds one shard of a staged build and, when it finds every shard in, writes `ready`. A
/// redelivered message whose shard is in already embeds nothing (but still checks whether the
/// build is complete, so a lost `ready` is written again).
pub async fn embed_catalog_shard(
    blobs: &dyn BlobStore,
    encoder: Arc<Encoder>,
    message: &ShardMessage,
) -> Result<ShardReport, RecsError> {
    let build = message.build.as_str();
    let mut report = ShardReport {
        build: build.to_owned(),
        shard: message.shard,
        texts: 0,
        truncated: 0,
        already_done: false,
        all_in: false,
    };
    // A message redelivered after its build was merged (and its staging removed).
    if is_published(blobs, build).await? {
        report.already_done = true;
        report.all_in = true;
        return Ok(report);
    }
    let plan = read_plan(blobs, build).await?;
    if plan.model != encoder.model_id() || plan.dimension != encoder.dimension() {
        return Err(RecsError::Invalid(format!(
            "build {build} was planned for {} at dimension {}, this worker runs {} at {}",
            plan.model,
            plan.dimension,
            encoder.model_id(),
            encoder.dimension()
        )));
    }
    if message.shard >= plan.shards {
        return Err(RecsError::Invalid(format!(
            "build {build} has {} shards, not a shard {}",
            plan.shards, message.shard
        )));
    }
    let out_key = shard_vectors_key(build, message.shard);
    report.already_done = blobs.list_blobs(&out_key).await?.contains(&out_key);
    if !report.already_done {
        let key = shard_texts_key(build, message.shard);
        let body = blobs
            .get_blob(&key)
            .await?
            .ok_or_else(|| RecsError::Invalid(format!("{key} is missing")))?;
        let texts = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_slice::<String>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RecsError::Corrupt {
                what: key.clone(),
                reason: e.to_string(),
            })?;
        let (vectors, truncated) =
            shopmind_inference::embed_in_steps(encoder, &texts, STEP, &mut |done, total| {
                tracing::info!(build, shard = message.shard, done, total, "embedding shard");
            })
            .await
            .map_err(|e| RecsError::Embed(e.to_string()))?;
        blobs
            .put_blob(&out_key, Bytes::from(f32s_to_le(&vectors)))
            .await?;
        report.texts = texts.len();
        report.truncated = truncated;
    }
    let done = blobs
        .list_blobs(&prefix(build))
        .await?
        .iter()
        .filter(|k| k.ends_with(".f32"))
        .count();
    if done >= plan.shards {
        blobs
            .put_blob(&ready_key(build), Bytes::from(build.to_owned()))
            .await?;
        report.all_in = true;
    }
    tracing::info!(
        build,
        shard = message.shard,
        done,
        of = plan.shards,
        "shard in"
    );
    Ok(report)
}

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub version: String,
    /// Items in the published version (0 when it had been published before).
    pub items: usize,
    /// Whether this merge wrote the version (false: a second `ready` event, nothing to do).
    pub published_now: bool,
    /// Whether `LATEST` names it now (false when a newer version was published meanwhile).
    pub latest: bool,
}

/// Publishes a staged build whose shards are all in, then removes its staging. `LATEST`
/// moves to it unless a newer version was published meanwhile; a build published already
/// (a second `ready` event) is left as it is.
pub async fn merge_catalog_build(
    blobs: &dyn BlobStore,
    build: &str,
) -> Result<MergeReport, RecsError> {
    let base = prefix(build);
    if is_published(blobs, build).await? {
        tracing::info!(build, "build already published");
        clear_staging(blobs, &base).await?;
        return Ok(MergeReport {
            version: build.to_owned(),
            items: 0,
            published_now: false,
            latest: ItemIndex::latest_version(blobs).await?.as_deref() == Some(build),
        });
    }
    let plan = read_plan(blobs, build).await?;
    if plan.version != build {
        return Err(RecsError::Corrupt {
            what: format!("{base}plan.json"),
            reason: format!("it plans version {}", plan.version),
        });
    }
    let staged = |name: &str| {
        let key = format!("{base}{name}");
        async move {
            blobs
                .get_blob(&key)
                .await?
                .ok_or_else(|| RecsError::Invalid(format!("{key} is missing")))
        }
    };
    let corrupt = |what: &str, reason: String| RecsError::Corrupt {
        what: format!("{base}{what}"),
        reason,
    };
    let meta = parse_meta(&staged("items.jsonl").await?).map_err(|r| corrupt("items.jsonl", r))?;
    let keys = TextKey::parse_all(&staged(TEXT_KEYS_FILE).await?)
        .ok_or_else(|| corrupt(TEXT_KEYS_FILE, "not whole keys".into()))?;
    let dim = plan.dimension;
    let previous = match plan.reused_from.as_deref() {
        Some(v) => Some(
            Reusable::load(blobs, v, &plan.model, dim)
                .await?
                .ok_or_else(|| {
                    RecsError::Invalid(format!(
                        "build {build} reuses vectors of version {v}, which can no longer be read"
                    ))
                })?,
        ),
        None => None,
    };
    let mut filled = Filled::new(&keys, previous.as_ref(), dim);
    drop(previous);
    if filled.fresh_rows.len() != plan.texts {
        return Err(corrupt(
            "plan.json",
            format!(
                "{} texts to embed, the staged keys give {}",
                plan.texts,
                filled.fresh_rows.len()
            ),
        ));
    }
    let mut embedded = Vec::with_capacity(plan.texts * dim);
    for shard in 0..plan.shards {
        let key = shard_vectors_key(build, shard);
        let raw = blobs.get_blob(&key).await?.ok_or_else(|| {
            RecsError::Invalid(format!("shard {shard} of build {build} is not in ({key})"))
        })?;
        let values =
            f32s_from_le(&raw).ok_or_else(|| corrupt(&key, "not whole f32 values".into()))?;
        embedded.extend(values);
    }
    filled.place(&embedded, dim)?;
    drop(embedded);
    let index = ItemIndex::new(&plan.version, &plan.model, dim, meta, filled.vectors)?
        .with_text_keys(keys)?;
    let latest = match index.publish_unless_newer(blobs, plan.created_at).await {
        Ok(moved) => moved,
        // A merge running beside this one wrote it first.
        Err(RecsError::VersionExists(_)) => {
            ItemIndex::latest_version(blobs).await?.as_deref() == Some(build)
        }
        Err(e) => return Err(e),
    };
    tracing::info!(
        build,
        latest,
        items = index.len(),
        "fanned-out build published"
    );
    clear_staging(blobs, &base).await?;
    Ok(MergeReport {
        version: plan.version,
        items: index.len(),
        published_now: true,
        latest,
    })
}

async fn clear_staging(blobs: &dyn BlobStore, base: &str) -> Result<(), RecsError> {
    for key in blobs.list_blobs(base).await? {
        blobs.delete_blob(&key).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_keys_name_their_build_and_nothing_else() {
        let key = ready_key("20261207T060000Z-5c1e9a0b7d2f");
        assert_eq!(key, "staging/items/20261207T060000Z-5c1e9a0b7d2f/ready");
        assert_eq!(
            build_of_ready_key(&key),
            Some("20261207T060000Z-5c1e9a0b7d2f")
        );
        for other in [
            "staging/items/b/plan.json",
            "staging/items//ready",
            "staging/items/a/b/ready",
            "catalog/ready",
            "staging/items/b/ready/",
        ] {
            assert_eq!(build_of_ready_key(other), None, "{other}");
        }
    }

    #[test]
    fn reused_rows_are_copied_and_each_new_text_is_embedded_once_for_every_row_that_has_it() {
        let (a, b, c) = (TextKey::of("a"), TextKey::of("b"), TextKey::of("c"));
        // The previous version holds b's vector (2, 3) in its second row.
        let raw: Vec<u8> = [9.0f32, 9.0, 2.0, 3.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let previous = Reusable {
            version: "v1".into(),
            dim: 2,
            raw: Bytes::from(raw),
            rows: [(TextKey::of("gone"), 0), (b, 1)].into_iter().collect(),
        };
        let keys = [c, b, a, c];
        let mut filled = Filled::new(&keys, Some(&previous), 2);
        assert_eq!(filled.reused, 1);
        assert_eq!(
            filled.fresh_rows,
            vec![0, 2],
            "c (rows 0 and 3) once, then a"
        );
        filled.place(&[1.0, 0.0, 0.0, 1.0], 2).unwrap();
        assert_eq!(filled.vectors, vec![1.0, 0.0, 2.0, 3.0, 0.0, 1.0, 1.0, 0.0]);
        assert!(filled.place(&[1.0], 2).is_err(), "a short shard is refused");
        // Without a previous version every distinct text is new.
        assert_eq!(Filled::new(&keys, None, 2).fresh_rows, vec![0, 1, 2]);
    }
}
