//! The profile-updater's glue: SQS batches (partial batch failures) and direct invokes in,
//! the profiles crate's updater in the middle, the event archive after each batch; and the
//! staff route `DELETE /v1/users/{user_id}/data` (right to be forgotten), which removes the
//! shopper's profile, conversations and idempotency records and says what it removed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::{json, Value};
use shopmind_inference::LazyEncoder;
use shopmind_profiles::{
    Applied, BehaviourEvent, ProfileError, ProfileUpdater, QueryEmbedder, ValidEvent,
};
use shopmind_runtime::sqs::{process_batch, BatchReport};

pub const FUNCTION: &str = "profile-updater";

/// Every HTTP route this function serves (all staff only); checked against
/// `infra/openapi.yaml` and the template by `infra/scripts/check_template.py`.
pub const ROUTES: [(&str, &str); 1] = [("DELETE", "/v1/users/{user_id}/data")];

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
                tracing::error!(error = %e, records = archived.len(), "event archive write failed; the records go back to SQS");
                for (id, _) in archived {
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
