//! The indexer's glue: which job an invocation asks for, and running it.
//!
//! - S3 `ObjectCreated` under `catalog/` → a new item-index version from that object, as a
//!   direct S3 notification or through EventBridge (what the template wires); past
//!   `SHOPMIND_INDEX_SHARD_TEXTS` texts to embed, with a shard queue configured, the texts are
//!   fanned out to it instead;
//! - SQS records of that queue → each embeds one shard ([`Handler::shard_batch`]; the
//!   template runs them in `IndexShardFunction`, this binary under another name);
//! - S3 `ObjectCreated` of `staging/items/<build>/ready` (written by the last shard in) → the
//!   build merged and published;
//! - S3 `ObjectCreated` of a `kb/*.jsonl` article file → a new KB index version from every
//!   article file under `kb/`; of `kb/intents.json` → a newly trained intent model;
//! - an EventBridge schedule → new signals (co-occurrence, popularity, trending) from the
//!   event archive;
//! - a direct invoke `{"job": "catalog", "key": "catalog/…"}`, `{"job": "kb"}`,
//!   `{"job": "intents"}` or `{"job": "signals"}`.
//!
//! Other objects are skipped and logged, never failed.

pub mod athena;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use shopmind_inference::LazyEncoder;
use shopmind_recs::{
    build_of_ready_key, embed_catalog_shard, index_catalog, index_signals, merge_catalog_build,
    FanOut, RecsError, ShardMessage, ShardQueue, SignalsConfig, SignalsEngine, SqlEngine,
    DEFAULT_SHARD_TEXTS,
};
use shopmind_runtime::events::{created_objects, S3BridgeEvent, ScheduledEvent};
use shopmind_runtime::sqs::{process_batch, BatchReport};
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
    #[error("configuration: {0}")]
    Config(String),
    #[error("shard message: {0}")]
    BadShardMessage(String),
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
        /// Fanned-out catalog builds whose shards are all in, to merge and publish.
        merges: Vec<String>,
    },
    Signals,
}

impl Job {
    pub fn catalogs(keys: Vec<String>) -> Self {
        Self::Objects {
            catalogs: keys,
            kb: false,
            intents: false,
            merges: vec![],
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
            merges: vec![],
        }),
        ("intents", None) => Ok(Job::Objects {
            catalogs: vec![],
            kb: false,
            intents: true,
            merges: vec![],
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
/// catalog under `kb/`, builds whose shards are in; anything else is logged and skipped.
fn objects_job(keys: impl Iterator<Item = String>) -> Job {
    let (mut catalogs, mut kb, mut intents, mut merges) = (Vec::new(), false, false, Vec::new());
    for k in keys {
        if k.starts_with(CATALOG_PREFIX) && !k.ends_with('/') {
            catalogs.push(k);
        } else if let Some(build) = build_of_ready_key(&k) {
            merges.push(build.to_owned());
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
        merges,
    }
}

/// The catalog job's settings: `SHOPMIND_INDEX_SHARD_TEXTS` (distinct texts one shard embeds,
/// and the most one invocation embeds inline; default 50,000) and
/// `SHOPMIND_INDEX_SHARD_QUEUE_URL` (the queue shards go to; unset: every catalog is
/// embedded inline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    pub shard_texts: usize,
    pub queue_url: Option<String>,
}

impl ShardConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, IndexerError> {
        let shard_texts = match get("SHOPMIND_INDEX_SHARD_TEXTS").filter(|v| !v.trim().is_empty()) {
            None => DEFAULT_SHARD_TEXTS,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (100..=10_000_000).contains(n))
                .ok_or_else(|| {
                    IndexerError::Config(format!(
                        "SHOPMIND_INDEX_SHARD_TEXTS={v:?}: expected a whole number from 100 to 10000000"
                    ))
                })?,
        };
        let queue_url = get("SHOPMIND_INDEX_SHARD_QUEUE_URL").filter(|v| !v.trim().is_empty());
        Ok(Self {
            shard_texts,
            queue_url,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Handler {
    pub blobs: Arc<dyn BlobStore>,
    pub encoder: Arc<LazyEncoder>,
    pub signals: SignalsConfig,
    /// The SQL engine the signals job runs on (`SHOPMIND_SIGNALS_ENGINE=athena`); none: the
    /// window of daily partials in this process.
    pub signals_sql: Option<Arc<dyn SqlEngine>>,
    /// Where large catalogs fan out to (none: every catalog inline).
    pub shards: Option<Arc<dyn ShardQueue>>,
    pub shard_texts: usize,
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
                let engine = match self.signals_sql.as_deref() {
                    Some(sql) => SignalsEngine::Sql(sql),
                    None => SignalsEngine::Window,
                };
                let r = index_signals(
                    self.blobs.as_ref(),
                    &self.signals,
                    engine,
                    shopmind_storage::now_secs(),
                )
                .await?;
                Ok(json!({ "signals": r }))
            }
            Job::Objects {
                catalogs,
                kb,
                intents,
                merges,
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
                    let fan_out = self.shards.as_deref().map(|queue| FanOut {
                        queue,
                        shard_texts: self.shard_texts,
                    });
                    let r = index_catalog(
                        self.blobs.as_ref(),
                        text,
                        encoder,
                        shopmind_storage::now_secs(),
                        fan_out,
                        &mut progress,
                    )
                    .await?;
                    for bad in &r.bad_lines {
                        tracing::warn!(key = %key, line = bad.line, reason = %bad.reason, "catalog line skipped");
                    }
                    reports.push(json!({ "key": key, "report": r }));
                }
                let mut out = json!({ "catalogs": reports });
                if !merges.is_empty() {
                    let mut merged = Vec::new();
                    for build in merges {
                        merged.push(merge_catalog_build(self.blobs.as_ref(), &build).await?);
                    }
                    out["merged"] = json!(merged);
                }
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

impl Handler {
    /// A batch of shard messages: each record embeds its shard and succeeds or fails on its own
    /// (failures are redelivered, then go to the queue's DLQ); records not started before the
    /// deadline margin are handed back.
    pub async fn shard_batch(
        &self,
        event: SqsEvent,
        deadline: SystemTime,
        margin: Duration,
    ) -> (SqsBatchResponse, BatchReport) {
        process_batch(event, deadline, margin, |record| async move {
            let body = record.body.unwrap_or_default();
            let message: ShardMessage = serde_json::from_str(&body)
                .map_err(|e| IndexerError::BadShardMessage(e.to_string()))?;
            let report =
                embed_catalog_shard(self.blobs.as_ref(), self.encoder().await?, &message).await?;
            tracing::info!(report = %json!(report), "shard embedded");
            Ok::<_, IndexerError>(())
        })
        .await
    }
}

/// SQS as the shard queue: `SendMessageBatch` ten at a time, failed entries sent again
/// (three attempts, doubling pause); an entry still failing fails the catalog job, so the
/// upload's retry plans the build again.
#[derive(Debug, Clone)]
pub struct SqsShardQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

#[async_trait::async_trait]
impl ShardQueue for SqsShardQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), RecsError> {
        let queue_err = |e: String| RecsError::Invalid(format!("shard queue: {e}"));
        for chunk in bodies.chunks(10) {
            let mut pending: Vec<(String, &String)> = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("s{i}"), b))
                .collect();
            let mut pause = Duration::from_millis(200);
            for attempt in 0..3 {
                if attempt > 0 {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(*body)
                            .build()
                            .map_err(|e| queue_err(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let failed: Vec<String> = match self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => out.failed().iter().map(|f| f.id().to_owned()).collect(),
                    Err(e) => {
                        let e = aws_sdk_sqs::error::DisplayErrorContext(e).to_string();
                        tracing::warn!(error = %e, "shard batch send failed");
                        pending.iter().map(|(id, _)| id.clone()).collect()
                    }
                };
                pending.retain(|(id, _)| failed.contains(id));
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(queue_err(format!(
                    "{} shard messages could not be sent",
                    pending.len()
                )));
            }
        }
        Ok(())
    }
}
