//! The pipeline against the draft store: generate (respecting what is stored), review, read
//! and list. Both the HTTP routes and the SQS worker go through here.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde::Serialize;
use shopmind_storage::{DraftKey, DraftRecord, DraftStore, StorageError};

use crate::draft::{apply_review, freshness, Draft, Freshness, Review, Status};
use crate::error::{CopyError, Result};
use crate::product::{Channel, CopyRequest, Locale};
use crate::writer::{CopyWriter, TextModel};

/// Where the pipeline gets its generator; loading may fail (model missing in S3), in which
/// case the composer writes the draft and the reason is kept.
#[async_trait]
pub trait ModelProvider: Send + Sync + std::fmt::Debug {
    async fn model(&self) -> std::result::Result<Arc<dyn TextModel>, String>;
}

#[async_trait]
impl ModelProvider for shopmind_inference::LazyGenerator {
    async fn model(&self) -> std::result::Result<Arc<dyn TextModel>, String> {
        self.get()
            .await
            .map(|g| g as Arc<dyn TextModel>)
            .map_err(|e| e.to_string())
    }
}

/// Composer only: for shops that do not want generated copy, and for offline runs.
#[derive(Debug, Default)]
pub struct NoModel;

#[async_trait]
impl ModelProvider for NoModel {
    async fn model(&self) -> std::result::Result<Arc<dyn TextModel>, String> {
        Err("generation is switched off (composer only)".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Regenerated,
    /// The stored draft was written from the same inputs.
    Unchanged,
    /// The stored draft is approved or edited; it was left alone.
    Kept,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub outcome: Outcome,
    pub version: u64,
    pub draft: Draft,
}

/// Stored pages one filtered listing reads at most.
pub const MAX_SCANNED_PAGES: usize = 20;

/// Which drafts a listing returns besides their status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraftFilter {
    pub channel: Option<String>,
    pub locale: Option<String>,
}

impl DraftFilter {
    pub fn matches(&self, d: &Draft) -> bool {
        self.channel
            .as_deref()
            .is_none_or(|c| d.channel.as_str() == c)
            && self
                .locale
                .as_deref()
                .is_none_or(|l| d.locale.as_str() == l)
    }
}

#[derive(Debug, Clone)]
pub struct CopyService {
    pub drafts: Arc<dyn DraftStore>,
    pub writer: Arc<CopyWriter>,
    pub models: Arc<dyn ModelProvider>,
}

pub fn key_of(req: &CopyRequest) -> DraftKey {
    DraftKey::new(
        req.product.id.clone(),
        req.channel.as_str(),
        req.locale.as_str(),
    )
}

/// A key from the path segments of the review route, checked like a request's.
pub fn key_from_parts(product_id: &str, channel: &str, locale: &str) -> Result<DraftKey> {
    crate::product::check_id(product_id)?;
    let channel = Channel::parse(channel)?;
    let locale = Locale::parse(locale)?;
    Ok(DraftKey::new(product_id, channel.as_str(), locale.as_str()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn decode(record: &DraftRecord) -> Result<Draft> {
    serde_json::from_value(record.body.clone())
        .map_err(|e| CopyError::Storage(StorageError::Corrupt(format!("draft body: {e}"))))
}

fn encode(draft: &Draft) -> Result<DraftRecord> {
    Ok(DraftRecord {
        status: draft.status.as_str().into(),
        updated_at: draft.updated_at,
        body: serde_json::to_value(draft)
            .map_err(|e| CopyError::Storage(StorageError::Corrupt(e.to_string())))?,
    })
}

impl CopyService {
    pub fn new(
        drafts: Arc<dyn DraftStore>,
        writer: Arc<CopyWriter>,
        models: Arc<dyn ModelProvider>,
    ) -> Self {
        Self {
            drafts,
            writer,
            models,
        }
    }

    pub async fn get(&self, key: &DraftKey) -> Result<Option<(Draft, u64)>> {
        match self.drafts.get_draft(key).await? {
            Some(v) => Ok(Some((decode(&v.value)?, v.version))),
            None => Ok(None),
        }
    }

    /// What generation would do for `req` (the scheduler asks before enqueueing).
    pub async fn freshness(&self, req: &CopyRequest) -> Result<Freshness> {
        let existing = self.get(&key_of(req)).await?;
        Ok(freshness(
            existing.as_ref().map(|(d, _)| d),
            &req.input_hash(),
        ))
    }

    /// Runs the pipeline unless the stored draft is current or final, and stores the result
    /// as pending_review. A review that lands while generating wins: the new text is dropped.
    /// When `deadline` cuts generation short, `keep_cut` decides: store what there is (an
    /// HTTP caller waiting for an answer) or store nothing and fail with
    /// [`CopyError::Deadline`] (a queued job, which is then retried).
    pub async fn generate(
        &self,
        req: CopyRequest,
        actor: &str,
        deadline: Option<Instant>,
        keep_cut: bool,
    ) -> Result<Generated> {
        req.check()?;
        let key = key_of(&req);
        let existing = self.get(&key).await?;
        let hash = req.input_hash();
        if let Some((draft, version)) = &existing {
            let outcome = match freshness(Some(draft), &hash) {
                Freshness::Final => Some(Outcome::Kept),
                Freshness::Current => Some(Outcome::Unchanged),
                _ => None,
            };
            if let Some(outcome) = outcome {
                return Ok(Generated {
                    outcome,
                    version: *version,
                    draft: draft.clone(),
                });
            }
        }
        let (model, model_error) = match self.models.model().await {
            Ok(m) => (Some(m), None),
            Err(e) => (None, Some(e)),
        };
        let writer = self.writer.clone();
        let job = req.clone();
        let written = tokio::task::spawn_blocking(move || {
            writer.write(&job, model.as_deref(), model_error, deadline)
        })
        .await
        .map_err(|e| CopyError::Model(format!("generation task failed: {e}")))?;
        if written.stats.cut && !keep_cut {
            return Err(CopyError::Deadline(format!(
                "the deadline came after {} of {} candidates; the job is left for a retry",
                written.stats.generated,
                req.variants()
            )));
        }
        let previous = existing.as_ref().map(|(d, _)| d);
        let draft = Draft::from_written(&req, written, previous, actor, now_ms());
        let record = encode(&draft)?;
        match self
            .drafts
            .put_draft(&key, &record, existing.as_ref().map(|(_, v)| *v))
            .await
        {
            Ok(version) => Ok(Generated {
                outcome: if existing.is_some() {
                    Outcome::Regenerated
                } else {
                    Outcome::Created
                },
                version,
                draft,
            }),
            Err(StorageError::Conflict(_)) => {
                let Some((now, version)) = self.get(&key).await? else {
                    return Err(CopyError::Conflict(
                        "the draft changed while it was generated; try again".into(),
                    ));
                };
                match freshness(Some(&now), &hash) {
                    Freshness::Final => Ok(Generated {
                        outcome: Outcome::Kept,
                        version,
                        draft: now,
                    }),
                    Freshness::Current => Ok(Generated {
                        outcome: Outcome::Unchanged,
                        version,
                        draft: now,
                    }),
                    _ => Err(CopyError::Conflict(
                        "the draft changed while it was generated; try again".into(),
                    )),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `review` by `actor`, the authenticated caller (the audit trail records it).
    pub async fn review(
        &self,
        key: &DraftKey,
        review: &Review,
        actor: &str,
    ) -> Result<(Draft, u64)> {
        let (mut draft, version) = self.found(key).await?;
        apply_review(&mut draft, review, &self.writer, now_ms(), actor)?;
        let record = encode(&draft)?;
        match self.drafts.put_draft(key, &record, Some(version)).await {
            Ok(v) => Ok((draft, v)),
            Err(StorageError::Conflict(_)) => Err(CopyError::Conflict(
                "the draft changed during the review; reload it and review again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// The validator's report on `text` as an edit of the draft under `key` (what an edit
    /// would be refused for), without changing anything.
    pub async fn check(&self, key: &DraftKey, text: &str) -> Result<crate::Report> {
        let (draft, _) = self.found(key).await?;
        let text = text.trim();
        if text.is_empty() {
            return Err(CopyError::Invalid("text must not be empty".into()));
        }
        Ok(self.writer.validate(&draft.request, text))
    }

    async fn found(&self, key: &DraftKey) -> Result<(Draft, u64)> {
        self.get(key).await?.ok_or_else(|| {
            CopyError::NotFound(format!(
                "no draft for {} / {} / {}",
                key.product_id, key.channel, key.locale
            ))
        })
    }

    /// One page of drafts with `status` (and `channel`, `locale` where given), oldest change
    /// first. A filtered page may hold fewer than `limit` and still have a next cursor: it
    /// reads at most [`MAX_SCANNED_PAGES`] stored pages.
    pub async fn list(
        &self,
        status: Status,
        filter: &DraftFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(Draft, u64)>, Option<String>)> {
        let mut drafts = Vec::new();
        let mut cursor = cursor.map(str::to_owned);
        for _ in 0..MAX_SCANNED_PAGES {
            // Never more than the page still has room for, so the stored page's cursor is
            // right after the last draft this page returns.
            let page = self
                .drafts
                .list_drafts(status.as_str(), cursor.as_deref(), limit - drafts.len())
                .await?;
            for (_, v) in &page.items {
                let d = decode(&v.value)?;
                if filter.matches(&d) {
                    drafts.push((d, v.version));
                }
            }
            cursor = page.next;
            if drafts.len() == limit || cursor.is_none() {
                break;
            }
        }
        Ok((drafts, cursor))
    }
}
