use serde::{Deserialize, Serialize};

use crate::error::{Result, StorageError};

pub type Json = serde_json::Value;

/// DynamoDB's item limit is 400 KB including attribute names; keep a margin for them.
pub const MAX_ITEM_BYTES: usize = 390 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

/// One page of a listing; pass `next` back as the cursor for the following page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMeta {
    pub id: String,
    /// The shopper or anonymous id that created it.
    pub owner: String,
    pub created_at: i64,
    /// Unix seconds; the TTL attribute.
    pub expires_at: i64,
    /// Where the conversation stands with staff; none while the assistant has it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
}

/// A conversation handed to staff: `handed_off` (waiting for a person) → `agent_replied` →
/// `resolved`; a shopper writing while a person has it puts it back to `handed_off`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub status: String,
    /// Why it was handed off (the assistant's escalation reason).
    pub reason: String,
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub sentiment: Option<String>,
    pub handed_off_at: i64,
    /// The last change; listings are newest first by it.
    pub updated_at: i64,
    /// The staff member of the last change, if a person made it.
    #[serde(default)]
    pub by: Option<String>,
}

pub const HANDOFF_STATUSES: [&str; 3] = ["handed_off", "agent_replied", "resolved"];

/// The handoff index's sort key: newest first in ascending order, the id breaking ties.
pub(crate) fn handoff_sort_key(updated_at: i64, id: &str) -> String {
    format!("{:020}|{id}", i64::MAX - updated_at.max(0))
}

pub(crate) fn handoff_cursor(sort_key: &str) -> String {
    format!("h:{sort_key}")
}

pub(crate) fn parse_handoff_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    cursor
        .map(|c| {
            c.strip_prefix("h:")
                .map(str::to_owned)
                .ok_or(StorageError::InvalidCursor)
        })
        .transpose()
}

pub(crate) fn check_handoff(h: &Handoff) -> Result<()> {
    if !HANDOFF_STATUSES.contains(&h.status.as_str()) {
        return Err(StorageError::InvalidKey(format!(
            "handoff status {:?} is not one of {HANDOFF_STATUSES:?}",
            h.status
        )));
    }
    check_key_part(&h.reason)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub seq: u64,
    pub body: Json,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DraftKey {
    pub product_id: String,
    pub channel: String,
    pub locale: String,
}

impl DraftKey {
    pub fn new(
        product_id: impl Into<String>,
        channel: impl Into<String>,
        locale: impl Into<String>,
    ) -> Self {
        Self {
            product_id: product_id.into(),
            channel: channel.into(),
            locale: locale.into(),
        }
    }

    /// The stored key, `product|channel|locale`.
    pub fn encode(&self) -> Result<String> {
        for part in [&self.product_id, &self.channel, &self.locale] {
            check_key_part(part)?;
            if part.contains('|') {
                return Err(StorageError::InvalidKey(format!("{part:?} contains '|'")));
            }
        }
        Ok(format!(
            "{}|{}|{}",
            self.product_id, self.channel, self.locale
        ))
    }

    pub fn decode(s: &str) -> Result<Self> {
        let mut parts = s.splitn(3, '|');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(c), Some(l)) => Ok(Self::new(p, c, l)),
            _ => Err(StorageError::Corrupt(format!("draft key {s:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftRecord {
    pub status: String,
    /// Unix milliseconds; orders the listing by status.
    pub updated_at: i64,
    pub body: Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyStatus {
    InProgress,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: String,
    pub status: IdempotencyStatus,
    pub payload_hash: String,
    /// Unix seconds; the TTL attribute.
    pub expires_at: i64,
    /// Unix milliseconds after which an in-progress claim counts as abandoned.
    pub in_progress_until: i64,
    pub result: Option<Json>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyClaim {
    pub key: String,
    pub payload_hash: String,
    /// Unix milliseconds, the caller's clock.
    pub now_ms: i64,
    pub in_progress_until: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    Acquired,
    Existing(IdempotencyRecord),
}

/// The one rule for the ids a behaviour event carries (event, shopper, session, item) and for
/// a shopper id wherever else it arrives (support, recommend, the forget route): 1–128 bytes,
/// no control characters (they break logs and some keys) and no `|` (it joins the parts of
/// composite keys, e.g. idempotency records). A shopper id one route accepts, every other
/// route accepts too. The error names the field (`name`) and says the rule.
pub fn check_id(name: &str, id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control() || c == '|') {
        return Err(format!(
            "{name} must be 1–128 bytes of UTF-8 without control characters or '|'"
        ));
    }
    Ok(())
}

pub(crate) fn check_key_part(part: &str) -> Result<()> {
    if part.is_empty() || part.len() > 512 || part.chars().any(char::is_control) {
        return Err(StorageError::InvalidKey(format!(
            "{:?} must be 1–512 bytes without control characters",
            part.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// Serialises `value`, refusing documents a DynamoDB item could not hold.
pub(crate) fn encode_doc<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    let bytes = serde_json::to_vec(value).map_err(|e| StorageError::Corrupt(e.to_string()))?;
    if bytes.len() > MAX_ITEM_BYTES {
        return Err(StorageError::TooLarge {
            what: what.to_owned(),
            bytes: bytes.len(),
            limit: MAX_ITEM_BYTES,
        });
    }
    Ok(bytes)
}

pub(crate) fn decode_doc<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt(format!("{what}: {e}")))
}

/// The wall clock in Unix seconds (0 before 1970 rather than a panic); the one clock every
/// crate uses for TTLs, versions and event ages.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Whether an in-progress or expired record may be claimed again.
pub(crate) fn claimable(rec: &IdempotencyRecord, now_ms: i64) -> bool {
    rec.expires_at * 1000 <= now_ms
        || (rec.status == IdempotencyStatus::InProgress && rec.in_progress_until <= now_ms)
}

/// Where a listing by status sorts a draft: zero-padded `updated_at`, then the key. Both
/// backends index drafts by exactly this string, so their cursors mean the same thing.
pub(crate) fn draft_sort_key(draft: &DraftRecord, key: &str) -> String {
    format!("{:020}|{key}", draft.updated_at.max(0))
}

/// Cursors are opaque to callers: `e:<sort key>` for drafts, the last `seq` for turns.
pub(crate) fn draft_cursor(sort_key: &str) -> String {
    format!("e:{sort_key}")
}

pub(crate) fn parse_draft_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    cursor
        .map(|c| {
            c.strip_prefix("e:")
                .map(str::to_owned)
                .ok_or(StorageError::InvalidCursor)
        })
        .transpose()
}

pub(crate) fn parse_turn_cursor(cursor: Option<&str>) -> Result<u64> {
    cursor.map_or(Ok(0), |c| {
        c.parse().map_err(|_| StorageError::InvalidCursor)
    })
}
