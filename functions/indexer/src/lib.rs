//! The indexer's glue: which job an invocation asks for, and running it.
//!
//! - S3 `ObjectCreated` under `catalog/` → a new item-index version from that object, as a
//!   direct S3 notification or through EventBridge (what the template wires);
//! - S3 `ObjectCreated` of a `kb/*.jsonl` article file → a new KB index version from every
//!   article file under `kb/`; of `kb/intents.json` → a newly trained intent model;
//! - an EventBridge schedule → new signals (co-occurrence, popularity, trending) from the
//!   event archive;
//! - a direct invoke `{"job": "catalog", "key": "catalog/…"}`, `{"job": "kb"}`,
//!   `{"job": "intents"}` or `{"job": "signals"}`.
//!
//! Other objects are skipped and logged, never failed.

use std::sync::Arc;

use aws_lambda_events::s3::S3Event;
use serde::Deserialize;
use serde_json::{json, Value};
use shopmind_inference::LazyEncoder;
use shopmind_recs::{index_catalog, index_signals, RecsError, SignalsConfig};
use shopmind_runtime::events::{created_objects, S3BridgeEvent, ScheduledEvent};
use shopmind_storage::BlobStore;
use shopmind_support::indexer::{index_intents, index_kb, is_article_file, INTENTS_KEY};
use shopmind_support::ChunkConfig;

pub const FUNCTION: &str = "indexer";
pub const CATALOG_PREFIX: &str = "catalog/";

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("unrecognised invocation: {0}")]
    BadInvocation(String),
    #[error("catalog object {0} does not exist")]
    MissingObject(String),
    #[error("catalog object {0} is not UTF-8 text")]
    NotText(String),
    #[error("the encoder could not load: {0}")]
    Encoder(String),
    #[error(transparent)]
    Recs(#[from] RecsError),
    #[error(transparent)]
    Support(#[from] shopmind_support::SupportError),
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
}

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Objects were created: the catalogs to index, and whether the KB articles or the
    /// intent catalog changed (each rebuilt once however many of its files arrived).
    Objects {
        catalogs: Vec<String>,
        kb: bool,
        intents: bool,
    },
    Signals,
}

impl Job {
    pub fn catalogs(keys: Vec<String>) -> Self {
        Self::Objects {
            catalogs: keys,
            kb: false,
            intents: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    job: String,
    #[serde(default)]
    key: Option<String>,
}

/// Reads the payload: an S3 notification, a scheduled event, or a direct invoke.
pub fn job_of(payload: &Value) -> Result<Job, IndexerError> {
    if payload.get("Records").is_some() {
        let event: S3Event = serde_json::from_value(payload.clone())
            .map_err(|e| IndexerError::BadInvocation(format!("S3 event: {e}")))?;
        let keys = created_objects(&event).into_iter().map(|o| o.key);
        return Ok(objects_job(keys));
    }
    if payload.get("source").and_then(Value::as_str) == Some("aws.s3") {
        let event: S3BridgeEvent = serde_json::from_value(payload.clone())
            .map_err(|e| IndexerError::BadInvocation(format!("S3 EventBridge event: {e}")))?;
        let keys = event.created_object().into_iter().map(|o| o.key);
        return Ok(objects_job(keys));
    }
    if payload.get("detail-type").is_some() {
        let event: ScheduledEvent = serde_json::from_value(payload.clone())
            .map_err(|e| IndexerError::BadInvocation(format!("scheduled event: {e}")))?;
        tracing::info!(
            rule = event.rule_name().unwrap_or(""),
            "scheduled signals job"
        );
        return Ok(Job::Signals);
    }
    let d: Direct = serde_json::from_value(payload.clone()).map_err(|e| {
        IndexerError::BadInvocation(format!(
            "{e}; expected an S3 notification, a scheduled event, or {{\"job\": \"catalog\", \"key\": …}} / {{\"job\": \"signals\"}}"
        ))
    })?;
    match (d.job.as_str(), d.key) {
        ("signals", None) => Ok(Job::Signals),
        ("kb", None) => Ok(Job::Objects {
            catalogs: vec![],
            kb: true,
            intents: false,
        }),
        ("intents", None) => Ok(Job::Objects {
            catalogs: vec![],
            kb: false,
            intents: true,
        }),
        ("catalog", Some(k)) if k.starts_with(CATALOG_PREFIX) => Ok(Job::catalogs(vec![k])),
        ("catalog", _) => Err(IndexerError::BadInvocation(format!(
            "a catalog job needs a \"key\" under {CATALOG_PREFIX}"
        ))),
        (other, _) => Err(IndexerError::BadInvocation(format!(
            "unknown job {other:?}; expected \"catalog\", \"kb\", \"intents\" or \"signals\""
        ))),
    }
}

/// Sorts created objects into jobs: catalogs under `catalog/`, article files and the intent
/// catalog under `kb/`; anything else is logged and skipped.
fn objects_job(keys: impl Iterator<Item = String>) -> Job {
    let (mut catalogs, mut kb, mut intents) = (Vec::new(), false, false);
    for k in keys {
        if k.starts_with(CATALOG_PREFIX) && !k.ends_with('/') {
            catalogs.push(k);
        } else if k == INTENTS_KEY {
            intents = true;
        } else if is_article_file(&k) {
            kb = true;
        } else {
            tracing::info!(key = %k, "object outside catalog/ and kb/ skipped");
        }
    }
    Job::Objects {
        catalogs,
        kb,
        intents,
    }
}

#[derive(Debug, Clone)]
pub struct Handler {
    pub blobs: Arc<dyn BlobStore>,
    pub encoder: Arc<LazyEncoder>,
    pub signals: SignalsConfig,
}

impl Handler {
    async fn encoder(&self) -> Result<Arc<shopmind_inference::Encoder>, IndexerError> {
        self.encoder
            .get()
            .await
            .map_err(|e| IndexerError::Encoder(e.to_string()))
    }

    /// Runs the job and returns its report. A failure is returned (the invocation fails, so
    /// S3's or the scheduler's retry runs it again); nothing is half-published either way.
    pub async fn run(&self, job: Job) -> Result<Value, IndexerError> {
        match job {
            Job::Signals => {
                let r = index_signals(
                    self.blobs.as_ref(),
                    &self.signals,
                    shopmind_storage::now_secs(),
                )
                .await?;
                Ok(json!({ "signals": r }))
            }
            Job::Objects {
                catalogs,
                kb,
                intents,
            } => {
                let mut reports = Vec::new();
                for key in catalogs {
                    let body = self
                        .blobs
                        .get_blob(&key)
                        .await?
                        .ok_or_else(|| IndexerError::MissingObject(key.clone()))?;
                    let text = std::str::from_utf8(&body)
                        .map_err(|_| IndexerError::NotText(key.clone()))?;
                    let encoder = self.encoder().await?;
                    // Log lines, not a bar: one every step of 256 items.
                    let mut progress = |done: usize, total: usize| {
                        tracing::info!(done, total, "embedding catalog");
                    };
                    let r = index_catalog(
                        self.blobs.as_ref(),
                        text,
                        encoder,
                        shopmind_storage::now_secs(),
                        &mut progress,
                    )
                    .await?;
                    for bad in &r.bad_lines {
                        tracing::warn!(key = %key, line = bad.line, reason = %bad.reason, "catalog line skipped");
                    }
                    reports.push(json!({ "key": key, "report": r }));
                }
                let mut out = json!({ "catalogs": reports });
                if kb {
                    let encoder = self.encoder().await?;
                    let mut progress = |done: usize, total: usize| {
                        tracing::info!(done, total, "embedding knowledge base");
                    };
                    let r = index_kb(
                        self.blobs.as_ref(),
                        encoder,
                        ChunkConfig::default(),
                        shopmind_storage::now_secs(),
                        &mut progress,
                    )
                    .await?;
                    out["kb"] = json!(r);
                }
                if intents {
                    let r = index_intents(
                        self.blobs.as_ref(),
                        self.encoder().await?,
                        shopmind_storage::now_secs(),
                    )
                    .await?;
                    out["intents"] = json!(r);
                }
                Ok(out)
            }
        }
    }
}
