//! The copywriter function. Staff only (IAM in the template, a token locally):
//!
//! - `POST /v1/copy` `{product, channel, locale, tone?, audience?, max_chars?, variants?}` →
//!   the stored draft (pending_review) with its variants, each with a validation report;
//!   `outcome` says whether it was created, regenerated, unchanged or kept (approved/edited)
//! - `GET /v1/copy/drafts/{product_id}/{channel}/{locale}` → one draft with its audit trail
//! - `GET /v1/copy/drafts?status=&channel=&locale=&cursor=&limit=` → one page of drafts
//! - `POST /v1/copy/drafts/{product_id}/{channel}/{locale}/review`
//!   `{decision: approve|reject|edit, text?, reviewer?, variant?, note?}`; the audit trail
//!   records the authenticated caller
//! - `POST /v1/copy/drafts/{product_id}/{channel}/{locale}/check` `{text}` → the validator's
//!   report on an edit, changing nothing (the console runs it as the reviewer types)
//! - `POST /v1/copy/drafts/review` `{drafts: [{product_id, channel, locale}], decision:
//!   approve, note?}` → each draft's outcome (bulk approve)
//!
//! and SQS batches of copy jobs from the copy-scheduler (each body a `POST /v1/copy` request),
//! with partial batch failures.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use shopmind_copy::{
    key_from_parts, CopyError, CopyRequest, CopyService, Generated, Outcome, Review, Status,
};
use shopmind_runtime::sqs::{process_batch, BatchReport};
use shopmind_runtime::{ApiError, Json, Query, StaffIdentity};
use shopmind_storage::StorageError;

pub const FUNCTION: &str = "copywriter";

#[derive(Debug, thiserror::Error)]
pub enum CopywriterError {
    #[error("{name}={value:?}: {why}")]
    Config {
        name: &'static str,
        value: String,
        why: String,
    },
}

/// Settings, from the environment at cold start.
///
/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_COPY_RULES` (shop and brand wording rules: JSON, or a file holding it) | none |
/// | `SHOPMIND_COPY_ROUNDS` (generation rounds before the composer writes the draft) | 2 |
/// | `SHOPMIND_COPY_TIME_BUDGET_MS` (generation time for one HTTP request) | 20000 |
/// | `SHOPMIND_COPY_GENERATOR` (`on`, or `off` for composer-only copy) | on |
/// | `SHOPMIND_GENERATOR_MODEL` (see `shopmind_inference::InferenceConfig`) | `models/qwen2.5-coder-1.5b-instruct` |
#[derive(Debug, Clone)]
pub struct CopyConfig {
    pub rules: shopmind_copy::RulesConfig,
    pub writer: shopmind_copy::WriterConfig,
    pub time_budget: Duration,
    pub generator: bool,
}

impl CopyConfig {
    pub fn from_env() -> Result<Self, CopywriterError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, CopywriterError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let bad = |name: &'static str, value: String, why: &str| CopywriterError::Config {
            name,
            value,
            why: why.to_owned(),
        };
        let rules = match get("SHOPMIND_COPY_RULES") {
            None => shopmind_copy::RulesConfig::default(),
            Some(v) => shopmind_copy::RulesConfig::from_value(&v)
                .map_err(|e| bad("SHOPMIND_COPY_RULES", v, &e.to_string()))?,
        };
        let mut writer = shopmind_copy::WriterConfig::default();
        if let Some(v) = get("SHOPMIND_COPY_ROUNDS") {
            writer.rounds = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| bad("SHOPMIND_COPY_ROUNDS", v, "must be 1 to 5"))?;
        }
        let time_budget = match get("SHOPMIND_COPY_TIME_BUDGET_MS") {
            None => Duration::from_secs(20),
            Some(v) => Duration::from_millis(
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n| (100..=900_000).contains(n))
                    .ok_or_else(|| {
                        bad("SHOPMIND_COPY_TIME_BUDGET_MS", v, "must be 100 to 900000")
                    })?,
            ),
        };
        let generator = match get("SHOPMIND_COPY_GENERATOR").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => {
                return Err(bad(
                    "SHOPMIND_COPY_GENERATOR",
                    v.to_owned(),
                    "must be on or off",
                ))
            }
        };
        Ok(Self {
            rules,
            writer,
            time_budget,
            generator,
        })
    }
}

impl CopyConfig {
    /// The copy service these settings describe, on `drafts` with `models`.
    pub fn service(
        &self,
        drafts: Arc<dyn shopmind_storage::DraftStore>,
        models: Arc<dyn shopmind_copy::ModelProvider>,
    ) -> CopyService {
        CopyService::new(
            drafts,
            Arc::new(shopmind_copy::CopyWriter::new(
                shopmind_copy::Rules::new(&self.rules),
                self.writer.clone(),
            )),
            models,
        )
    }
}

#[derive(Debug, Clone)]
pub struct CopyState {
    pub service: CopyService,
    pub config: Arc<CopyConfig>,
}

/// Every route this function serves (method, path); checked against `infra/openapi.yaml`
/// and the template by `infra/scripts/check_template.py`.
pub const ROUTES: [(&str, &str); 6] = [
    ("POST", "/v1/copy"),
    ("GET", "/v1/copy/drafts"),
    ("GET", "/v1/copy/drafts/{product_id}/{channel}/{locale}"),
    (
        "POST",
        "/v1/copy/drafts/{product_id}/{channel}/{locale}/review",
    ),
    (
        "POST",
        "/v1/copy/drafts/{product_id}/{channel}/{locale}/check",
    ),
    ("POST", "/v1/copy/drafts/review"),
];

/// The Cognito group whose members may use the copy routes from the console.
pub const COPY_EDITORS: &str = "copy-editors";

/// The routes the staff console calls, also served on the console API (Cognito JWT); the
/// others stay IAM-only for machine callers.
pub const CONSOLE_ROUTES: [(&str, &str); 5] =
    [ROUTES[1], ROUTES[2], ROUTES[3], ROUTES[4], ROUTES[5]];

/// The most drafts one bulk review takes.
pub const MAX_BULK: usize = 50;

/// The routes, without the staff guard (see [`shopmind_runtime::staff_only`]).
pub fn router(state: CopyState) -> Router {
    Router::new()
        .route(ROUTES[0].1, post(generate))
        .route(ROUTES[1].1, get(list))
        .route(ROUTES[2].1, get(read))
        .route(ROUTES[3].1, post(review))
        .route(ROUTES[4].1, post(check))
        .route(ROUTES[5].1, post(bulk_review))
        .with_state(state)
}

/// The one place copy errors become HTTP answers.
pub fn api_error(e: CopyError) -> ApiError {
    match e {
        CopyError::Invalid(m) => ApiError::unprocessable(m),
        CopyError::TooLarge(m) => ApiError::payload_too_large(m),
        CopyError::NotFound(m) => ApiError::not_found(m),
        CopyError::Conflict(m) => ApiError::conflict(m),
        e @ CopyError::Rejected(_) => ApiError::unprocessable(e.to_string()),
        CopyError::Storage(StorageError::InvalidCursor) => {
            ApiError::unprocessable("cursor is not one this listing returned")
        }
        CopyError::Storage(StorageError::TooLarge { what, bytes, limit }) => {
            ApiError::payload_too_large(format!(
                "{what} would be {bytes} bytes; a draft holds at most {limit}"
            ))
        }
        CopyError::Storage(e) => ApiError::unavailable("the draft store", e),
        e @ (CopyError::Model(_)
        | CopyError::Config(_)
        | CopyError::Queue(_)
        | CopyError::Deadline(_)) => ApiError::internal(e),
    }
}

async fn generate(
    State(state): State<CopyState>,
    identity: Option<Extension<StaffIdentity>>,
    Json(req): Json<CopyRequest>,
) -> Result<(StatusCode, axum::Json<Generated>), ApiError> {
    let deadline = Instant::now() + state.config.time_budget;
    let out = state
        .service
        .generate(req, &StaffIdentity::name_of(identity), Some(deadline), true)
        .await
        .map_err(api_error)?;
    tracing::info!(
        product = %out.draft.product_id,
        channel = %out.draft.channel,
        outcome = ?out.outcome,
        fallback = out.draft.fallback,
        "copy request"
    );
    let status = match out.outcome {
        Outcome::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, axum::Json(out)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    channel: Option<String>,
    locale: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(state): State<CopyState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let status =
        Status::parse(q.status.as_deref().unwrap_or("pending_review")).map_err(api_error)?;
    let limit = q.limit.unwrap_or(25);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::unprocessable("limit must be from 1 to 100"));
    }
    let filter = shopmind_copy::DraftFilter {
        channel: q.channel.filter(|c| !c.is_empty()),
        locale: q.locale.filter(|l| !l.is_empty()),
    };
    let (drafts, next) = state
        .service
        .list(status, &filter, q.cursor.as_deref(), limit)
        .await
        .map_err(api_error)?;
    let drafts: Vec<Value> = drafts
        .into_iter()
        .map(|(d, version)| {
            json!({
                "product_id": d.product_id, "channel": d.channel, "locale": d.locale,
                "status": d.status, "text": d.text, "source": d.source,
                "fallback": d.fallback, "validation": d.validation,
                "updated_at": d.updated_at, "version": version,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "status": status.as_str(),
        "drafts": drafts,
        "next_cursor": next,
    })))
}

async fn read(
    State(state): State<CopyState>,
    Path((product_id, channel, locale)): Path<(String, String, String)>,
) -> Result<axum::Json<Value>, ApiError> {
    let key = key_from_parts(&product_id, &channel, &locale).map_err(api_error)?;
    let (draft, version) = state
        .service
        .get(&key)
        .await
        .map_err(api_error)?
        .ok_or_else(|| {
            ApiError::not_found(format!("no draft for {product_id} / {channel} / {locale}"))
        })?;
    Ok(axum::Json(json!({ "version": version, "draft": draft })))
}

async fn review(
    State(state): State<CopyState>,
    identity: Option<Extension<StaffIdentity>>,
    Path((product_id, channel, locale)): Path<(String, String, String)>,
    Json(review): Json<Review>,
) -> Result<axum::Json<Value>, ApiError> {
    let key = key_from_parts(&product_id, &channel, &locale).map_err(api_error)?;
    let (draft, version) = state
        .service
        .review(&key, &review, &StaffIdentity::name_of(identity))
        .await
        .map_err(api_error)?;
    tracing::info!(product = %draft.product_id, status = ?draft.status, "draft reviewed");
    Ok(axum::Json(json!({ "version": version, "draft": draft })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    text: String,
}

async fn check(
    State(state): State<CopyState>,
    Path((product_id, channel, locale)): Path<(String, String, String)>,
    Json(body): Json<CheckBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let key = key_from_parts(&product_id, &channel, &locale).map_err(api_error)?;
    let report = state
        .service
        .check(&key, &body.text)
        .await
        .map_err(api_error)?;
    Ok(axum::Json(json!({ "validation": report })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftRef {
    product_id: String,
    channel: String,
    locale: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    drafts: Vec<DraftRef>,
    decision: shopmind_copy::Decision,
    reviewer: Option<String>,
    note: Option<String>,
}

/// Approves several drafts at once; each succeeds or fails on its own (one reviewed
/// meanwhile is a conflict for that one only).
async fn bulk_review(
    State(state): State<CopyState>,
    identity: Option<Extension<StaffIdentity>>,
    Json(body): Json<BulkBody>,
) -> Result<axum::Json<Value>, ApiError> {
    if body.decision != shopmind_copy::Decision::Approve {
        return Err(ApiError::unprocessable(
            "bulk review only approves; reject and edit one draft at a time",
        ));
    }
    if body.drafts.is_empty() || body.drafts.len() > MAX_BULK {
        return Err(ApiError::unprocessable(format!(
            "drafts must list 1 to {MAX_BULK} drafts"
        )));
    }
    let actor = StaffIdentity::name_of(identity);
    let review = Review {
        decision: body.decision,
        text: None,
        reviewer: body.reviewer,
        variant: None,
        note: body.note,
    };
    let mut results = Vec::with_capacity(body.drafts.len());
    for d in &body.drafts {
        let outcome = match key_from_parts(&d.product_id, &d.channel, &d.locale) {
            Ok(key) => state.service.review(&key, &review, &actor).await,
            Err(e) => Err(e),
        };
        let mut r = json!({ "product_id": d.product_id, "channel": d.channel, "locale": d.locale });
        match outcome {
            Ok((draft, version)) => {
                r["status"] = json!(draft.status);
                r["version"] = json!(version);
            }
            Err(e) => {
                let e = api_error(e);
                r["error"] =
                    json!({ "status": e.status.as_u16(), "code": e.code, "message": e.message });
            }
        }
        results.push(r);
    }
    tracing::info!(drafts = results.len(), "bulk review");
    Ok(axum::Json(json!({ "results": results })))
}

/// The SQS side: each record is one copy job.
#[derive(Debug, Clone)]
pub struct Worker {
    pub service: CopyService,
    /// Records are not started with less than this left before the Lambda deadline, and a
    /// generation must end this long before it.
    pub margin: Duration,
}

/// What the batch did, for metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobTally {
    pub created: usize,
    pub regenerated: usize,
    pub unchanged: usize,
    pub kept: usize,
    pub fallback: usize,
}

impl shopmind_runtime::sqs::Tally for JobTally {
    fn record(&self, metrics: &mut shopmind_runtime::Metrics) {
        metrics.count("drafts_created", self.created as f64);
        metrics.count("drafts_regenerated", self.regenerated as f64);
        metrics.count("drafts_unchanged", self.unchanged as f64);
        metrics.count("drafts_kept", self.kept as f64);
        metrics.count("drafts_fallback", self.fallback as f64);
    }
}

impl Worker {
    /// Runs the batch; records that fail, or that the deadline leaves unfinished, are
    /// reported so SQS delivers them again (a job cut by the deadline stores nothing).
    pub async fn sqs(
        &self,
        batch: SqsEvent,
        deadline: SystemTime,
    ) -> (SqsBatchResponse, BatchReport, JobTally) {
        let tally = std::sync::Mutex::new(JobTally::default());
        let until = deadline
            .checked_sub(self.margin)
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .map(|left| Instant::now() + left)
            .unwrap_or_else(Instant::now);
        let (response, report) = process_batch(batch, deadline, self.margin, |record| {
            let tally = &tally;
            async move {
                let body = record.body.as_deref().unwrap_or_default();
                let req: CopyRequest = serde_json::from_str(body)
                    .map_err(|e| CopyError::Invalid(format!("job body: {e}")))?;
                let out = self
                    .service
                    .generate(req, "copy-scheduler", Some(until), false)
                    .await?;
                if let Ok(mut t) = tally.lock() {
                    match out.outcome {
                        Outcome::Created => t.created += 1,
                        Outcome::Regenerated => t.regenerated += 1,
                        Outcome::Unchanged => t.unchanged += 1,
                        Outcome::Kept => t.kept += 1,
                    }
                    if out.draft.fallback
                        && matches!(out.outcome, Outcome::Created | Outcome::Regenerated)
                    {
                        t.fallback += 1;
                    }
                }
                Ok::<(), CopyError>(())
            }
        })
        .await;
        let tally = tally.into_inner().unwrap_or_default();
        (response, report, tally)
    }

    /// A direct invoke with one job (a `POST /v1/copy` body): the stored draft, or the error.
    pub async fn direct(&self, payload: Value, deadline: SystemTime) -> Value {
        let until = deadline
            .checked_sub(self.margin)
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .map(|left| Instant::now() + left);
        let result = match serde_json::from_value::<CopyRequest>(payload) {
            Ok(req) => {
                self.service
                    .generate(req, "direct-invoke", until, true)
                    .await
            }
            Err(e) => Err(CopyError::Invalid(format!(
                "expected a copy request or an SQS batch: {e}"
            ))),
        };
        match result {
            Ok(g) => json!({"outcome": g.outcome, "version": g.version, "draft": g.draft}),
            Err(e) => {
                let api = api_error(e);
                json!({"error": {"code": api.code, "message": api.message}})
            }
        }
    }
}
