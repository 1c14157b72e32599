//! Events from the storefront (`POST /v1/events`): a batch, whose shopper is the one the
//! token names, never the one the body claims. The local server applies a batch as it
//! arrives and answers per event; in AWS, API Gateway queues the batch with the token as a
//! message attribute and the profile-updater applies the same rules when it reads it.

use serde::Serialize;
use serde_json::Value;

use crate::error::ProfileError;
use crate::event::{BehaviourEvent, ValidEvent};
use crate::updater::{Applied, ProfileUpdater};

/// The most events one request may carry (the API Gateway model, `EventBatch` in
/// `infra/openapi.yaml`, says the same). At the contract's field limits a full batch of ASCII
/// text is under 100 KiB; one with every field at its limit in a non-Latin script can pass
/// SQS's 256 KiB, and the edge then answers 503 (the queue refused it).
pub const MAX_BATCH: usize = 50;

/// The SQS message attribute API Gateway sets on a storefront batch (value
/// [`STOREFRONT_ORIGIN`]); the shop's own backend, which writes to the queue directly and is
/// trusted, never sets it.
pub const ORIGIN_ATTRIBUTE: &str = "shopmind_origin";
pub const STOREFRONT_ORIGIN: &str = "storefront-api";
/// The SQS message attribute holding the request's `Authorization` header, when it had one.
pub const AUTHORIZATION_ATTRIBUTE: &str = "authorization";
/// The SQS message attribute holding API Gateway's request id, for logs.
pub const REQUEST_ID_ATTRIBUTE: &str = "request_id";

/// Who sent a storefront batch, as its verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// No token: only `anonymous_id` events.
    Anonymous,
    /// A Shopmind guest token (`guest_…`): its id is the events' `anonymous_id` by default.
    Guest(String),
    /// A shopper token the shop signed: its `sub` is every event's `user_id`.
    Shopper(String),
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventResult {
    /// The event's id when it had a readable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `applied`, `duplicate` (seen before: nothing changed), `too_old` (outside the
    /// retention window: ignored) or `refused`.
    pub status: &'static str,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A batch applied: each event's result and the events the archive should get.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub results: Vec<EventResult>,
    pub to_archive: Vec<ValidEvent>,
}

impl EventResult {
    pub fn refused(event_id: Option<String>, reason: String) -> Self {
        Self {
            event_id,
            status: "refused",
            reason: Some(reason),
        }
    }
}

impl BatchOutcome {
    pub fn count(&self, status: &str) -> usize {
        self.results.iter().filter(|r| r.status == status).count()
    }
}

/// The events of a `{"events": [...]}` body. Problems with the batch as a whole (not JSON,
/// no `events` array, empty, too many, other top-level fields) refuse all of it.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Value>, ProfileError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ProfileError::InvalidEvent(format!("the body is not JSON: {e}")))?;
    batch_events(value)
}

/// The events of a parsed `{"events": [...]}` body, refused as [`parse_batch`] says.
pub fn batch_events(value: Value) -> Result<Vec<Value>, ProfileError> {
    let bad = |m: String| ProfileError::InvalidEvent(m);
    let Value::Object(mut top) = value else {
        return Err(bad("the body must be an object: {\"events\": [...]}".into()));
    };
    if let Some(other) = top.keys().find(|k| *k != "events") {
        return Err(bad(format!(
            "unknown field `{other}`: the body is {{\"events\": [...]}}"
        )));
    }
    match top.remove("events") {
        Some(Value::Array(events)) if events.is_empty() => {
            Err(bad("`events` is empty: send 1 to 50 events".into()))
        }
        Some(Value::Array(events)) if events.len() > MAX_BATCH => Err(bad(format!(
            "{} events in one request: send at most {MAX_BATCH}",
            events.len()
        ))),
        Some(Value::Array(events)) => Ok(events),
        _ => Err(bad("`events` must be an array of 1 to 50 events".into())),
    }
}

/// One event of a storefront batch, its shopper taken from the token: a signed shopper's
/// events are theirs whatever `user_id` says (a different one is refused), a guest's and an
/// anonymous caller's may not name a `user_id` at all.
pub fn storefront_event(raw: Value, sender: &Sender) -> Result<ValidEvent, ProfileError> {
    let mut ev: BehaviourEvent =
        serde_json::from_value(raw).map_err(|e| ProfileError::InvalidEvent(e.to_string()))?;
    let refuse = |m: &str| Err(ProfileError::InvalidEvent(m.to_owned()));
    match sender {
        Sender::Shopper(id) => match &ev.user_id {
            None => ev.user_id = Some(id.clone()),
            Some(u) if u == id => {}
            Some(_) => return refuse("user_id is not the shopper the token names"),
        },
        Sender::Guest(id) => {
            if ev.user_id.is_some() {
                return refuse(
                    "a guest token cannot send events for a user_id: sign the shopper in",
                );
            }
            ev.anonymous_id.get_or_insert_with(|| id.clone());
        }
        Sender::Anonymous => {
            if ev.user_id.is_some() {
                return refuse(
                    "user_id needs the shopper's token (Authorization: Bearer <token>); \
                     send anonymous_id for shoppers who are not signed in",
                );
            }
        }
    }
    ev.validate()
}

/// Applies a storefront batch in order. A refused event does not stop the others; a store
/// failure (retryable) stops the batch and is returned, so the caller can answer 503 or let
/// SQS deliver it again (what was applied already is then a duplicate).
pub async fn apply_storefront_batch(
    updater: &ProfileUpdater,
    events: Vec<Value>,
    sender: &Sender,
) -> Result<BatchOutcome, ProfileError> {
    let mut out = BatchOutcome::default();
    for raw in events {
        let event_id = raw
            .get("event_id")
            .and_then(Value::as_str)
            .map(|s| s.chars().take(128).collect::<String>());
        let outcome = match storefront_event(raw, sender) {
            Ok(ev) => updater.apply(&ev).await.map(|applied| (ev, applied)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok((ev, applied)) => {
                let status = match applied {
                    Applied::Applied => "applied",
                    Applied::Duplicate => "duplicate",
                    Applied::TooOld => "too_old",
                };
                out.results.push(EventResult {
                    event_id,
                    status,
                    reason: None,
                });
                if applied != Applied::TooOld {
                    out.to_archive.push(ev);
                }
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => out
                .results
                .push(EventResult::refused(event_id, e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::UpdaterConfig;

    fn view(extra: Value) -> Value {
        let mut e = json!({"event_id": "e1", "type": "view", "item_id": "sku-1",
            "timestamp": time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339).unwrap()});
        if let (Value::Object(e), Value::Object(x)) = (&mut e, extra) {
            e.extend(x);
        }
        e
    }

    fn reason(raw: Value, sender: &Sender) -> String {
        storefront_event(raw, sender).unwrap_err().to_string()
    }

    #[test]
    fn the_shopper_is_the_tokens() {
        let me = Sender::Shopper("u-1".into());
        assert_eq!(
            storefront_event(view(json!({})), &me).unwrap().profile_id,
            "u-1"
        );
        assert_eq!(
            storefront_event(view(json!({"user_id": "u-1"})), &me)
                .unwrap()
                .profile_id,
            "u-1"
        );
        assert!(reason(view(json!({"user_id": "u-2"})), &me).contains("not the shopper"));
        // An identify links the browser's anonymous id to the token's shopper.
        let linked = storefront_event(
            json!({"event_id": "e2", "type": "identify", "anonymous_id": "a-9",
                   "timestamp": "2026-12-01T10:00:00Z"}),
            &me,
        )
        .unwrap();
        assert_eq!(linked.event.user_id.as_deref(), Some("u-1"));
    }

    #[test]
    fn without_a_shopper_token_no_user_id() {
        assert!(reason(view(json!({"user_id": "u-1"})), &Sender::Anonymous).contains("token"));
        assert!(reason(view(json!({})), &Sender::Anonymous).contains("anonymous_id"));
        assert_eq!(
            storefront_event(view(json!({"anonymous_id": "a-1"})), &Sender::Anonymous)
                .unwrap()
                .profile_id,
            "a-1"
        );
        let guest = Sender::Guest("guest_abc".into());
        assert!(reason(view(json!({"user_id": "u-1"})), &guest).contains("guest"));
        assert_eq!(
            storefront_event(view(json!({})), &guest)
                .unwrap()
                .profile_id,
            "guest_abc"
        );
        // The contract's own checks still apply.
        assert!(reason(view(json!({"colour": "red"})), &guest).contains("unknown field"));
    }

    #[test]
    fn whole_batch_problems_refuse_the_batch() {
        let err = |b: &str| parse_batch(b.as_bytes()).unwrap_err().to_string();
        assert!(err("nope").contains("not JSON"));
        assert!(err("[]").contains("object"));
        assert!(err(r#"{"events": []}"#).contains("empty"));
        assert!(err(r#"{"events": {}}"#).contains("array"));
        assert!(err(r#"{"events": [{}], "user_id": "u"}"#).contains("unknown field `user_id`"));
        let many = json!({"events": vec![json!({}); MAX_BATCH + 1]}).to_string();
        assert!(err(&many).contains("at most 50"));
        let full = json!({"events": vec![json!({}); MAX_BATCH]}).to_string();
        assert_eq!(parse_batch(full.as_bytes()).unwrap().len(), MAX_BATCH);
    }

    #[tokio::test]
    async fn a_batch_answers_per_event_and_retries_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(shopmind_storage::embedded::EmbeddedStore::open(dir.path()).unwrap());
        let updater = ProfileUpdater::new(
            store.clone(),
            store.clone(),
            store.clone(),
            UpdaterConfig::default(),
        );
        let me = Sender::Shopper("u-1".into());
        let batch = vec![
            view(json!({})),
            view(json!({"event_id": "e2", "user_id": "u-2"})),
            json!({"event_id": "e3", "type": "view"}),
            view(json!({"event_id": "e4", "item_id": "sku-2"})),
        ];
        let out = apply_storefront_batch(&updater, batch.clone(), &me)
            .await
            .unwrap();
        let statuses: Vec<_> = out.results.iter().map(|r| r.status).collect();
        assert_eq!(statuses, ["applied", "refused", "refused", "applied"]);
        assert_eq!(out.results[2].event_id.as_deref(), Some("e3"));
        assert!(out.results[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("timestamp"));
        assert_eq!(out.to_archive.len(), 2);
        use shopmind_storage::ProfileStore;
        let profile = store.get_profile("u-1").await.unwrap().unwrap();
        // The same batch again (a client retry): nothing changes.
        let again = apply_storefront_batch(&updater, batch, &me).await.unwrap();
        assert_eq!(again.count("duplicate"), 2);
        assert_eq!(again.count("applied"), 0);
        assert_eq!(store.get_profile("u-1").await.unwrap().unwrap(), profile);
        assert!(store.get_profile("u-2").await.unwrap().is_none());
    }
}
