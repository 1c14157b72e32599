//! The profile-updater's glue: SQS batches (partial batch failures) and direct invokes in,
//! the profiles crate's updater in the middle, the event archive after each batch; and the
//! staff route `DELETE /v1/users/{user_id}/data` (right to be forgotten), which removes the
//! shopper's profile, conversations and idempotency records and says what it removed.
//!
//! Storefront batches (`POST /v1/events`) reach it two ways: in AWS, API Gateway puts each
//! request on the queue as one message, the shopper's token in a message attribute, and
//! [`Handler::sqs`] verifies it; locally, [`events_router`] applies them as they arrive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::{json, Value};
use shopmind_inference::LazyEncoder;
use shopmind_profiles::intake::{
    AUTHORIZATION_ATTRIBUTE, ORIGIN_ATTRIBUTE, REQUEST_ID_ATTRIBUTE, STOREFRONT_ORIGIN,
};
use shopmind_profiles::{
    Applied, BatchOutcome, BehaviourEvent, ProfileError, ProfileUpdater, QueryEmbedder, Sender,
    ValidEvent,
};
use shopmind_runtime::sqs::{process_batch, BatchReport};
use shopmind_runtime::{Shopper, ShopperAuth};

pub const FUNCTION: &str = "profile-updater";

/// Every HTTP route this function serves (all staff only); checked against
/// `infra/openapi.yaml` and the template by `infra/scripts/check_template.py`.
pub const ROUTES: [(&str, &str); 1] = [("DELETE", "/v1/users/{user_id}/data")];

/// The storefront's route into this function: in AWS API Gateway serves it straight onto the
/// events queue (no function in the path); `shopmind serve` serves it with [`events_router`].
pub const STOREFRONT_ROUTES: [(&str, &str); 1] = [("POST", "/v1/events")];

/// What the forget route needs.
#[derive(Debug, Clone)]
pub struct ForgetState {
    pub profiles: Arc<dyn shopmind_storage::ProfileStore>,
    pub conversations: Arc<dyn shopmind_storage::ConversationStore>,
    pub idempotency: Arc<dyn shopmind_storage::IdempotencyStore>,
}

/// The staff routes, without the guard (see [`shopmind_runtime::staff_only`]).
pub fn router(state: ForgetState) -> axum::Router {
    axum::Router::new()
        .route(ROUTES[0].1, axum::routing::delete(forget))
        .with_state(state)
}

async fn forget(
    axum::extract::State(state): axum::extract::State<ForgetState>,
    axum::extract::Path(user_id): axum::extract::Path<String>,
    identity: Option<axum::Extension<shopmind_runtime::StaffIdentity>>,
) -> Result<axum::Json<shopmind_profiles::Forgotten>, shopmind_runtime::ApiError> {
    let out = shopmind_profiles::forget_shopper(
        state.profiles.as_ref(),
        state.conversations.as_ref(),
        state.idempotency.as_ref(),
        &user_id,
    )
    .await
    .map_err(|e| match e {
        ProfileError::InvalidEvent(m) => shopmind_runtime::ApiError::unprocessable(m),
        other => shopmind_runtime::ApiError::unavailable("the profile store", other),
    })?;
    // Who asked, and what went; never the shopper's data.
    tracing::info!(
        by = identity.map(|axum::Extension(i)| i.0).unwrap_or_default(),
        profile = out.profile,
        conversations = out.conversations,
        idempotency_records = out.idempotency_records,
        "shopper data removed"
    );
    Ok(axum::Json(out))
}

/// Search queries embedded by the sentence encoder, loaded on the first search event.
#[derive(Debug)]
pub struct EncoderQueries(pub Arc<LazyEncoder>);

#[async_trait]
impl QueryEmbedder for EncoderQueries {
    async fn embed_query(&self, query: &str) -> Result<Option<Vec<f32>>, ProfileError> {
        let encoder = self
            .0
            .get()
            .await
            .map_err(|e| ProfileError::Config(format!("encoder: {e}")))?;
        let q = query.to_owned();
        let mut out = tokio::task::spawn_blocking(move || encoder.embed(&[q]))
            .await
            .map_err(|e| ProfileError::Config(format!("encoder task: {e}")))?
            .map_err(|e| ProfileError::Config(format!("encoder: {e}")))?;
        Ok(out.pop().map(|e| e.vector))
    }
}

/// Counts for logs and metrics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub applied: usize,
    pub duplicates: usize,
    pub too_old: usize,
    pub invalid: usize,
}

impl shopmind_runtime::sqs::Tally for Tally {
    fn record(&self, metrics: &mut shopmind_runtime::Metrics) {
        metrics.count("events_applied", self.applied as f64);
        metrics.count("events_duplicate", self.duplicates as f64);
        metrics.count("events_too_old", self.too_old as f64);
        metrics.count("events_invalid", self.invalid as f64);
    }
}

#[derive(Debug, Clone)]
pub struct Handler {
    pub updater: Arc<ProfileUpdater>,
    pub deadline_margin: Duration,
    /// Verifies the tokens storefront batches carry.
    pub shoppers: Arc<ShopperAuth>,
}

/// Who a token names, as the intake rules see them.
fn sender_of(shopper: Option<&Shopper>) -> Sender {
    match shopper {
        None => Sender::Anonymous,
        Some(s) if s.guest => Sender::Guest(s.id.clone()),
        Some(s) => Sender::Shopper(s.id.clone()),
    }
}

impl Handler {
    /// One SQS batch: every record on its own; valid events archived after the batch (if the
    /// archive write fails, those records fail too, so SQS redelivers them; their profile
    /// updates are idempotent).
    pub async fn sqs(
        &self,
        event: SqsEvent,
        deadline: SystemTime,
    ) -> (SqsBatchResponse, BatchReport, Tally) {
        let archived: Mutex<Vec<(String, ValidEvent)>> = Mutex::default();
        let tally: Mutex<Tally> = Mutex::default();
        let (mut response, mut report) =
            process_batch(event, deadline, self.deadline_margin, |msg| {
                let (archived, tally) = (&archived, &tally);
                async move {
                    let id = msg.message_id.clone().unwrap_or_default();
                    if is_storefront(&msg) {
                        let outcome = self.storefront(&msg).await;
                        let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                        return match outcome {
                            Ok(out) => {
                                t.applied += out.count("applied");
                                t.duplicates += out.count("duplicate");
                                t.too_old += out.count("too_old");
                                t.invalid += out.count("refused");
                                archived
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .extend(out.to_archive.into_iter().map(|e| (id.clone(), e)));
                                Ok(())
                            }
                            Err(e) => {
                                if !e.is_retryable() {
                                    t.invalid += 1;
                                }
                                Err(e)
                            }
                        };
                    }
                    let outcome = self.one(msg.body.as_deref().unwrap_or("")).await;
                    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
                    match outcome {
                        Ok((ev, applied)) => {
                            match applied {
                                Applied::Applied => t.applied += 1,
                                Applied::Duplicate => t.duplicates += 1,
                                Applied::TooOld => t.too_old += 1,
                            }
                            if applied != Applied::TooOld {
                                archived
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .push((id, ev));
                            }
                            Ok(())
                        }
                        Err(e) => {
                            if !e.is_retryable() {
                                t.invalid += 1;
                            }
                            Err(e)
                        }
                    }
                }
            })
            .await;
        let archived = archived.into_inner().unwrap_or_else(|p| p.into_inner());
        if !archived.is_empty() {
            let events: Vec<ValidEvent> = archived.iter().map(|(_, e)| e.clone()).collect();
            if let Err(e) = self.updater.archive(&events).await {
                // A storefront record may have several events: its id once is enough.
                let mut ids: Vec<String> = archived.into_iter().map(|(id, _)| id).collect();
                ids.dedup();
                tracing::error!(error = %e, records = ids.len(), "event archive write failed; the records go back to SQS");
                for id in ids {
                    if !report.failed.contains(&id) {
                        let mut f = BatchItemFailure::default();
                        f.item_identifier = id.clone();
                        response.batch_item_failures.push(f);
                        report.failed.push(id);
                        report.succeeded = report.succeeded.saturating_sub(1);
                    }
                }
            }
        }
        (
            response,
            report,
            tally.into_inner().unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// A storefront batch API Gateway queued: the token is verified as of when it was queued
    /// (a redelivery an hour later must not find it expired), then each event follows the
    /// intake rules. Refused events are logged and dropped (a retry cannot mend them); a store
    /// failure fails the record so SQS delivers it again.
    async fn storefront(&self, msg: &SqsMessage) -> Result<BatchOutcome, ProfileError> {
        let attr = |name: &str| {
            msg.message_attributes
                .get(name)
                .and_then(|a| a.string_value.as_deref())
        };
        let request_id = attr(REQUEST_ID_ATTRIBUTE).unwrap_or("-");
        let queued_at = msg
            .attributes
            .get("SentTimestamp")
            .and_then(|ms| ms.parse::<i64>().ok())
            .map_or_else(shopmind_storage::now_secs, |ms| ms / 1000);
        let events = shopmind_profiles::parse_batch(msg.body.as_deref().unwrap_or("").as_bytes())?;
        let sender = match attr(AUTHORIZATION_ATTRIBUTE).map(str::trim) {
            None | Some("") => Ok(Sender::Anonymous),
            Some(value) => match shopmind_runtime::bearer_value(value) {
                None => Err("the Authorization header is not `Bearer <token>`".to_owned()),
                Some(token) => self
                    .shoppers
                    .verify(token, queued_at)
                    .map(|s| sender_of(Some(&s)))
                    .map_err(|e| e.to_string()),
            },
        };
        let sender = match sender {
            Ok(s) => s,
            Err(reason) => {
                tracing::warn!(request_id, events = events.len(), %reason, "storefront batch refused: its token is not valid");
                return Ok(BatchOutcome {
                    results: events
                        .iter()
                        .map(|_| shopmind_profiles::EventResult::refused(None, reason.clone()))
                        .collect(),
                    to_archive: Vec::new(),
                });
            }
        };
        let out = shopmind_profiles::apply_storefront_batch(&self.updater, events, &sender).await?;
        for (i, r) in out.results.iter().enumerate() {
            if let Some(reason) = &r.reason {
                tracing::warn!(request_id, index = i, event_id = r.event_id.as_deref().unwrap_or("-"), %reason, "storefront event refused");
            }
        }
        Ok(out)
    }

    async fn one(&self, body: &str) -> Result<(ValidEvent, Applied), ProfileError> {
        let ev = BehaviourEvent::parse(body)?;
        let applied = self.updater.apply(&ev).await?;
        Ok((ev, applied))
    }

    /// A direct invoke: one event object, or `{"events": [...]}`. Answers per event.
    pub async fn direct(&self, payload: Value) -> Value {
        let events = match payload.get("events") {
            Some(Value::Array(list)) => list.clone(),
            Some(_) => {
                return json!({"error": {"code": "validation_failed", "message": "`events` must be an array"}})
            }
            None => vec![payload],
        };
        let mut results = Vec::with_capacity(events.len());
        let mut valid = Vec::new();
        for raw in events {
            let outcome = match self.one(&raw.to_string()).await {
                Ok((ev, applied)) => {
                    let r = json!({"event_id": ev.event.event_id, "outcome": format!("{applied:?}").to_lowercase()});
                    if applied != Applied::TooOld {
                        valid.push(ev);
                    }
                    r
                }
                Err(e) => {
                    json!({"event_id": raw.get("event_id"), "error": e.to_string(), "retryable": e.is_retryable()})
                }
            };
            results.push(outcome);
        }
        if let Err(e) = self.updater.archive(&valid).await {
            return json!({"results": results, "archive_error": e.to_string()});
        }
        json!({ "results": results })
    }
}

/// Whether API Gateway queued this record from `POST /v1/events` (the shop's backend, which
/// sends to the queue itself, never sets the attribute, and a storefront cannot set it).
fn is_storefront(msg: &SqsMessage) -> bool {
    msg.message_attributes
        .get(ORIGIN_ATTRIBUTE)
        .and_then(|a| a.string_value.as_deref())
        == Some(STOREFRONT_ORIGIN)
}

/// What the local events route needs.
#[derive(Clone)]
pub struct EventsState {
    pub updater: Arc<ProfileUpdater>,
    /// Called after a batch applied at least one event (the local server's signals schedule
    /// rebuilds only when something arrived).
    pub on_applied: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for EventsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsState").finish_non_exhaustive()
    }
}

/// `POST /v1/events` applied as it arrives (the local server), shopper tokens verified at the
/// edge as on every storefront route: 200 with each event's result.
pub fn events_router(state: EventsState, shoppers: Arc<ShopperAuth>) -> axum::Router {
    shopmind_runtime::shopper_identity(
        axum::Router::new()
            .route(STOREFRONT_ROUTES[0].1, axum::routing::post(post_events))
            .with_state(state),
        shoppers,
    )
}

async fn post_events(
    axum::extract::State(state): axum::extract::State<EventsState>,
    shopper: Option<axum::Extension<Shopper>>,
    shopmind_runtime::Json(body): shopmind_runtime::Json<Value>,
) -> Result<axum::Json<Value>, shopmind_runtime::ApiError> {
    let events = shopmind_profiles::batch_events(body).map_err(|e| {
        shopmind_runtime::ApiError::unprocessable(match e {
            ProfileError::InvalidEvent(m) => m,
            other => other.to_string(),
        })
    })?;
    let sender = sender_of(shopper.as_ref().map(|axum::Extension(s)| s));
    let unavailable =
        |e: ProfileError| shopmind_runtime::ApiError::unavailable("the profile store", e);
    let out = shopmind_profiles::apply_storefront_batch(&state.updater, events, &sender)
        .await
        .map_err(unavailable)?;
    // Archived before answering: a failure here is a 503 and the client's retry (the same
    // event ids) archives them then, the profile updates being duplicates by then.
    state
        .updater
        .archive(&out.to_archive)
        .await
        .map_err(unavailable)?;
    let applied = out.count("applied");
    if applied > 0 {
        (state.on_applied)();
    }
    tracing::info!(
        events = out.results.len(),
        applied,
        refused = out.count("refused"),
        "storefront events"
    );
    Ok(axum::Json(json!({
        "applied": applied,
        "refused": out.count("refused"),
        "results": out.results,
    })))
}
