//! Conversations handed to staff: the handoff event, the staff routes (list, read, reply,
//! resolve) and the holding reply a shopper gets while a person has the conversation.
//!
//! - `GET /v1/staff/conversations?status=&reason=&cursor=&limit=` → handed-off conversations,
//!   most recently changed first, each with its last turns (masked as stored)
//! - `GET /v1/staff/conversations/{id}` → one, with every turn and who did what
//! - `POST /v1/staff/conversations/{id}/reply` `{text}` → 201; an `agent` turn the shopper
//!   sees on `GET /v1/support/conversations/{id}`
//! - `POST /v1/staff/conversations/{id}/resolve` `{note?}` → the conversation is resolved
//!
//! Staff text is never given to the model: the assistant's history holds shopper and
//! assistant turns only.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shopmind_runtime::{ApiError, Json, Query, StaffIdentity};
use shopmind_storage::{
    append_turn_at_end, ConversationMeta, Handoff, StorageError, Turn, HANDOFF_STATUSES,
};

use crate::{all_turns, conversation_id_ok, storage, SupportState, ANONYMOUS, APPEND_ATTEMPTS};

/// The routes [`staff_router`] serves (method, path); checked against `infra/openapi.yaml`
/// and the template by `infra/scripts/check_template.py`.
pub const STAFF_ROUTES: [(&str, &str); 4] = [
    ("GET", "/v1/staff/conversations"),
    ("GET", "/v1/staff/conversations/{id}"),
    ("POST", "/v1/staff/conversations/{id}/reply"),
    ("POST", "/v1/staff/conversations/{id}/resolve"),
];

/// The Cognito group whose members may use these routes from the console.
pub const SUPPORT_AGENTS: &str = "support-agents";

/// The reasons a conversation is handed off (the assistant's escalation reasons).
pub const HANDOFF_REASONS: [&str; 5] = [
    "asked_for_human",
    "intent_handoff",
    "negative_sentiment",
    "repeated_question",
    "not_found_in_knowledge_base",
];

/// Turns a staff listing shows of each conversation.
const LAST_TURNS: usize = 6;
/// The longest staff reply or note, in characters.
const MAX_STAFF_CHARS: usize = 4000;

/// What `support.handoff` carries: enough for a rule to route it (to Zendesk, Slack, email)
/// and for a person to start; the shopper's message masked as stored and cut short.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandoffEvent {
    pub conversation_id: String,
    pub reason: String,
    pub intent: Option<String>,
    pub sentiment: Option<String>,
    pub handed_off_at: i64,
    pub last_message: String,
}

/// Where handoffs are announced.
#[async_trait::async_trait]
pub trait HandoffNotifier: Send + Sync + std::fmt::Debug {
    async fn handed_off(&self, event: &HandoffEvent) -> Result<(), String>;
}

/// Locally: a log line (the staff list is the queue).
#[derive(Debug, Default)]
pub struct LogHandoffs;

#[async_trait::async_trait]
impl HandoffNotifier for LogHandoffs {
    async fn handed_off(&self, event: &HandoffEvent) -> Result<(), String> {
        tracing::info!(
            conversation = %event.conversation_id,
            reason = %event.reason,
            intent = event.intent.as_deref().unwrap_or(""),
            "support.handoff"
        );
        Ok(())
    }
}

/// On AWS: `support.handoff` from source `shopmind.support` on an EventBridge bus
/// (`SHOPMIND_HANDOFF_EVENT_BUS`, default `default`).
#[derive(Debug, Clone)]
pub struct EventBridgeHandoffs {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

pub const EVENT_SOURCE: &str = "shopmind.support";
pub const EVENT_DETAIL_TYPE: &str = "support.handoff";

impl EventBridgeHandoffs {
    pub fn new(conf: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self {
            client: aws_sdk_eventbridge::Client::new(conf),
            bus: bus.into(),
        }
    }

    /// `SHOPMIND_HANDOFF_EVENT_BUS`, default `default`.
    pub fn bus_from_env() -> String {
        std::env::var("SHOPMIND_HANDOFF_EVENT_BUS")
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| "default".into())
    }
}

#[async_trait::async_trait]
impl HandoffNotifier for EventBridgeHandoffs {
    async fn handed_off(&self, event: &HandoffEvent) -> Result<(), String> {
        let detail = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(EVENT_DETAIL_TYPE)
            .detail(detail)
            .event_bus_name(&self.bus)
            .resources(format!("conversation/{}", event.conversation_id))
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        match out.entries().first() {
            Some(e) if e.error_code().is_some() => Err(format!(
                "{}: {}",
                e.error_code().unwrap_or_default(),
                e.error_message().unwrap_or_default()
            )),
            _ if out.failed_entry_count() > 0 => Err("the event was not taken".into()),
            _ => Ok(()),
        }
    }
}

/// Whether a person has the conversation (the assistant holds back).
pub(crate) fn with_staff(meta: &ConversationMeta) -> bool {
    meta.handoff
        .as_ref()
        .is_some_and(|h| h.status == "handed_off" || h.status == "agent_replied")
}

/// Marks the conversation handed off after the assistant escalated, and announces it. A
/// failed announcement is logged, not the shopper's problem: the staff list has it anyway.
pub(crate) async fn hand_off(
    state: &SupportState,
    meta: &ConversationMeta,
    reason: &str,
    intent: &str,
    sentiment: &str,
    message: &str,
    now: i64,
) -> Result<(), ApiError> {
    let handoff = Handoff {
        status: "handed_off".into(),
        reason: reason.to_owned(),
        intent: Some(intent.to_owned()),
        sentiment: Some(sentiment.to_owned()),
        handed_off_at: now,
        updated_at: now,
        by: None,
    };
    let expected = meta.handoff.as_ref().map(|h| h.status.as_str());
    match state
        .conversations
        .set_handoff(&meta.id, &handoff, expected)
        .await
    {
        Ok(()) => {}
        // Another message handed it off at the same moment: one announcement is enough.
        Err(StorageError::Conflict(_)) => return Ok(()),
        Err(e) => return Err(storage(e)),
    }
    let event = HandoffEvent {
        conversation_id: meta.id.clone(),
        reason: reason.to_owned(),
        intent: handoff.intent,
        sentiment: handoff.sentiment,
        handed_off_at: now,
        last_message: message.chars().take(280).collect(),
    };
    if let Err(e) = state.handoffs.handed_off(&event).await {
        tracing::error!(conversation = %meta.id, error = %e, "support.handoff not published");
    }
    Ok(())
}

/// What the shopper hears while a person has the conversation.
fn holding_text(locale: Option<&str>, text: &str) -> &'static str {
    let chinese = locale.is_some_and(|l| l.to_ascii_lowercase().starts_with("zh"))
        || shopmind_support::writes_cjk(text);
    if chinese {
        "我们的客服同事正在处理这个对话，会在这里回复您。"
    } else {
        "A member of our team has this conversation and will answer here."
    }
}

/// Stores a shopper message that arrived while a person has the conversation, answers with
/// the holding text (no model reads it), and puts the conversation back in the queue.
pub(crate) async fn hold(
    state: &SupportState,
    meta: &ConversationMeta,
    last_seq: u64,
    masked: &str,
    locale: Option<&str>,
) -> Result<Value, ApiError> {
    let now = shopmind_storage::now_secs();
    let reply = holding_text(locale, masked);
    let conversations = state.conversations.as_ref();
    let user_turn = Turn {
        seq: last_seq + 1,
        body: json!({ "role": "user", "text": masked, "at": now }),
        expires_at: meta.expires_at,
    };
    let seq = append_turn_at_end(conversations, &meta.id, &user_turn, APPEND_ATTEMPTS)
        .await
        .map_err(storage)?;
    let assistant_turn = Turn {
        seq: seq + 1,
        body: json!({
            "role": "assistant", "text": reply, "citations": [], "escalate": true,
            "escalation_reason": "with_staff", "confidence": 0.0, "answer_source": "none",
            "at": now,
        }),
        expires_at: meta.expires_at,
    };
    append_turn_at_end(conversations, &meta.id, &assistant_turn, APPEND_ATTEMPTS)
        .await
        .map_err(storage)?;
    if let Some(h) = &meta.handoff {
        let back = Handoff {
            status: "handed_off".into(),
            updated_at: now,
            by: None,
            ..h.clone()
        };
        // A staff change at the same moment wins; the message is stored either way.
        match conversations
            .set_handoff(&meta.id, &back, Some(&h.status))
            .await
        {
            Ok(()) | Err(StorageError::Conflict(_)) => {}
            Err(e) => return Err(storage(e)),
        }
    }
    tracing::info!(conversation = %meta.id, "support message held for staff");
    Ok(json!({
        "reply": reply,
        "citations": [],
        "intent": null,
        "sentiment": null,
        "entities": [],
        "escalate": true,
        "escalation_reason": "with_staff",
        "confidence": 0.0,
        "answer_source": "none",
        "handoff_status": "handed_off",
    }))
}

/// A turn as the shopper sees it: staff actions and who made them stay with staff.
pub(crate) fn shopper_view(turn: Turn) -> Option<Value> {
    let mut body = turn.body;
    match body["role"].as_str() {
        Some("user" | "assistant") => {}
        Some("agent") => {
            if let Some(o) = body.as_object_mut() {
                o.remove("by");
            }
        }
        _ => return None,
    }
    body["seq"] = json!(turn.seq);
    Some(body)
}

pub fn staff_router(state: SupportState) -> Router {
    Router::new()
        .route(STAFF_ROUTES[0].1, get(list))
        .route(STAFF_ROUTES[1].1, get(read))
        .route(STAFF_ROUTES[2].1, post(reply))
        .route(STAFF_ROUTES[3].1, post(resolve))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    reason: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// The conversation as staff see it: the handoff, and the shopper's id when signed in.
fn summary(meta: &ConversationMeta, turns: Vec<Value>) -> Value {
    let h = meta.handoff.as_ref();
    let shopper = (!meta.owner.starts_with(ANONYMOUS)
        && !meta.owner.starts_with(shopmind_runtime::GUEST_PREFIX))
    .then_some(meta.owner.as_str());
    json!({
        "conversation_id": meta.id,
        "status": h.map_or("open", |h| h.status.as_str()),
        "reason": h.map(|h| &h.reason),
        "intent": h.and_then(|h| h.intent.as_ref()),
        "sentiment": h.and_then(|h| h.sentiment.as_ref()),
        "handed_off_at": h.map(|h| h.handed_off_at),
        "updated_at": h.map(|h| h.updated_at),
        "by": h.and_then(|h| h.by.as_ref()),
        "shopper": shopper,
        "created_at": meta.created_at,
        "expires_at": meta.expires_at,
        "turns": turns,
    })
}

fn staff_view(turn: Turn) -> Value {
    let mut body = turn.body;
    body["seq"] = json!(turn.seq);
    body
}

async fn list(
    State(state): State<SupportState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let status = q.status.as_deref().unwrap_or("handed_off");
    if !HANDOFF_STATUSES.contains(&status) {
        return Err(ApiError::unprocessable(format!(
            "status must be one of {HANDOFF_STATUSES:?}"
        )));
    }
    if let Some(r) = q.reason.as_deref() {
        if !HANDOFF_REASONS.contains(&r) {
            return Err(ApiError::unprocessable(format!(
                "reason must be one of {HANDOFF_REASONS:?}"
            )));
        }
    }
    let limit = q.limit.unwrap_or(20);
    if !(1..=50).contains(&limit) {
        return Err(ApiError::unprocessable("limit must be 1 to 50"));
    }
    let page = state
        .conversations
        .list_handoffs(status, q.reason.as_deref(), q.cursor.as_deref(), limit)
        .await
        .map_err(|e| match e {
            StorageError::InvalidCursor => {
                ApiError::unprocessable("cursor is not one this listing returned")
            }
            e => storage(e),
        })?;
    let mut conversations = Vec::with_capacity(page.items.len());
    for meta in &page.items {
        let turns = all_turns(&state, &meta.id).await?;
        let skip = turns.len().saturating_sub(LAST_TURNS);
        let last = turns.into_iter().skip(skip).map(staff_view).collect();
        conversations.push(summary(meta, last));
    }
    Ok(axum::Json(json!({
        "conversations": conversations,
        "next_cursor": page.next,
    })))
}

async fn found(state: &SupportState, id: &str) -> Result<ConversationMeta, ApiError> {
    let missing = || ApiError::not_found(format!("conversation {id} not found"));
    if !conversation_id_ok(id) {
        return Err(missing());
    }
    state
        .conversations
        .get_conversation(id)
        .await
        .map_err(storage)?
        .ok_or_else(missing)
}

async fn read(
    State(state): State<SupportState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let meta = found(&state, &id).await?;
    let turns = all_turns(&state, &id)
        .await?
        .into_iter()
        .map(staff_view)
        .collect();
    Ok(axum::Json(summary(&meta, turns)))
}

fn staff_text(text: Option<&str>, what: &str, required: bool) -> Result<Option<String>, ApiError> {
    let text = text.map(str::trim).filter(|t| !t.is_empty());
    match text {
        None if required => Err(ApiError::unprocessable(format!("{what} must not be empty"))),
        None => Ok(None),
        Some(t) if t.chars().count() > MAX_STAFF_CHARS => Err(ApiError::payload_too_large(
            format!("{what} is longer than {MAX_STAFF_CHARS} characters"),
        )),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

/// Records a staff action as a turn and moves the handoff to `status`; refused (409) unless
/// a person has the conversation. The answer: the conversation, the turn's `seq`, the status.
async fn act(
    state: &SupportState,
    id: &str,
    by: &str,
    body: Value,
    status: &str,
) -> Result<axum::Json<Value>, ApiError> {
    let meta = found(state, id).await?;
    let Some(current) = meta.handoff.clone().filter(|_| with_staff(&meta)) else {
        return Err(ApiError::conflict(format!(
            "conversation {id} is {}: staff act on handed-off conversations only",
            meta.handoff.as_ref().map_or("open", |h| h.status.as_str())
        )));
    };
    let now = shopmind_storage::now_secs();
    let last = all_turns(state, id).await?.last().map_or(0, |t| t.seq);
    let mut body = body;
    body["by"] = json!(by);
    body["at"] = json!(now);
    let turn = Turn {
        seq: last + 1,
        body,
        expires_at: meta.expires_at,
    };
    let seq = append_turn_at_end(state.conversations.as_ref(), id, &turn, APPEND_ATTEMPTS)
        .await
        .map_err(storage)?;
    let next = Handoff {
        status: status.to_owned(),
        updated_at: now,
        by: Some(by.to_owned()),
        ..current.clone()
    };
    state
        .conversations
        .set_handoff(id, &next, Some(&current.status))
        .await
        .map_err(|e| match e {
            StorageError::Conflict(m) => ApiError::conflict(format!(
                "{m}: the conversation changed meanwhile (your turn is kept); reload it"
            )),
            e => storage(e),
        })?;
    tracing::info!(conversation = %id, status, "staff action");
    Ok(axum::Json(
        json!({ "conversation_id": id, "seq": seq, "status": next.status }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    text: Option<String>,
}

async fn reply(
    State(state): State<SupportState>,
    identity: Option<Extension<StaffIdentity>>,
    Path(id): Path<String>,
    Json(body): Json<ReplyBody>,
) -> Result<(StatusCode, axum::Json<Value>), ApiError> {
    let text = staff_text(body.text.as_deref(), "text", true)?.unwrap_or_default();
    let done = act(
        &state,
        &id,
        &StaffIdentity::name_of(identity),
        json!({ "role": "agent", "text": text }),
        "agent_replied",
    )
    .await?;
    Ok((StatusCode::CREATED, done))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    note: Option<String>,
}

async fn resolve(
    State(state): State<SupportState>,
    identity: Option<Extension<StaffIdentity>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
    raw: axum::body::Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let body: ResolveBody = crate::optional_json(&headers, &raw)?;
    let note = staff_text(body.note.as_deref(), "note", false)?;
    act(
        &state,
        &id,
        &StaffIdentity::name_of(identity),
        json!({ "role": "event", "event": "resolved", "note": note }),
        "resolved",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shoppers_see_their_turns_and_agent_replies_without_staff_names() {
        let turn = |body: Value| Turn {
            seq: 4,
            body,
            expires_at: 0,
        };
        let agent = shopper_view(turn(
            json!({"role": "agent", "text": "Refund sent.", "by": "arn:aws:iam::1:user/ana"}),
        ));
        assert_eq!(
            agent,
            Some(json!({"role": "agent", "text": "Refund sent.", "seq": 4}))
        );
        assert_eq!(
            shopper_view(turn(
                json!({"role": "event", "event": "resolved", "by": "ana"})
            )),
            None
        );
        assert!(shopper_view(turn(json!({"role": "user", "text": "hi"}))).is_some());
        assert_eq!(shopper_view(turn(json!({"text": "no role"}))), None);
    }

    #[test]
    fn the_holding_reply_follows_the_shoppers_language() {
        assert!(holding_text(Some("zh-CN"), "hello").contains("客服"));
        assert!(holding_text(None, "我的订单在哪里").contains("客服"));
        assert!(holding_text(Some("en"), "where is my order").starts_with("A member"));
    }
}
