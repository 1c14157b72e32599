//! The behaviour event contract (v1): JSON, one event per SQS message or direct invoke.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::ProfileError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    View,
    AddToCart,
    RemoveFromCart,
    Purchase,
    Search,
    Review,
    Identify,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::AddToCart => "add_to_cart",
            Self::RemoveFromCart => "remove_from_cart",
            Self::Purchase => "purchase",
            Self::Search => "search",
            Self::Review => "review",
            Self::Identify => "identify",
        }
    }
}

/// A behaviour event as the storefront sends it. Unknown fields are refused so a typo
/// (`user-id`) is an error, not a silently anonymous event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourEvent {
    /// The idempotency key: redeliveries carry the same id.
    pub event_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// RFC 3339, the time the shopper acted (not when the event arrived).
    pub timestamp: String,
    /// A rating (review) or a quantity (cart, purchase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Item context the storefront may add (as analytics events do); used for affinities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// A validated event with its time parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub event: BehaviourEvent,
    /// Unix seconds.
    pub at: i64,
    /// The profile the event updates: `user_id`, else `anonymous_id`.
    pub profile_id: String,
}

impl BehaviourEvent {
    /// Parses and validates one event; each problem gets its own message.
    pub fn parse(body: &str) -> Result<ValidEvent, ProfileError> {
        let event: BehaviourEvent =
            serde_json::from_str(body).map_err(|e| ProfileError::InvalidEvent(e.to_string()))?;
        event.validate()
    }

    pub fn validate(self) -> Result<ValidEvent, ProfileError> {
        let bad = |m: String| Err(ProfileError::InvalidEvent(m));
        if let Err(m) = shopmind_storage::check_id("event_id", &self.event_id) {
            return bad(m);
        }
        for (name, v) in [
            ("user_id", &self.user_id),
            ("anonymous_id", &self.anonymous_id),
            ("item_id", &self.item_id),
            ("session_id", &self.session_id),
        ] {
            if let Some(v) = v {
                if let Err(m) = shopmind_storage::check_id(name, v) {
                    return bad(m);
                }
            }
        }
        let profile_id = match (&self.user_id, &self.anonymous_id) {
            (Some(u), _) => u.clone(),
            (None, Some(a)) => a.clone(),
            (None, None) => return bad("one of user_id or anonymous_id is required".into()),
        };
        match self.kind {
            EventType::View
            | EventType::AddToCart
            | EventType::RemoveFromCart
            | EventType::Purchase
            | EventType::Review => {
                if self.item_id.is_none() {
                    return bad(format!("a {} event needs item_id", self.kind.as_str()));
                }
            }
            EventType::Search => match &self.query {
                Some(q) if !q.trim().is_empty() && q.chars().count() <= 512 => {}
                _ => return bad("a search event needs a query of 1–512 characters".into()),
            },
            EventType::Identify => {
                if self.user_id.is_none() || self.anonymous_id.is_none() {
                    return bad("an identify event needs both user_id and anonymous_id".into());
                }
                if self.user_id == self.anonymous_id {
                    return bad("identify: user_id and anonymous_id are the same".into());
                }
            }
        }
        if let Some(v) = self.value {
            if !v.is_finite() || !(0.0..=1e6).contains(&v) {
                return bad("value must be a finite number from 0 to 1e6".into());
            }
        }
        for (name, v) in [("category", &self.category), ("brand", &self.brand)] {
            if v.as_ref().is_some_and(|v| v.chars().count() > 256) {
                return bad(format!("{name} must be at most 256 characters"));
            }
        }
        if let Some(p) = self.price {
            if !p.is_finite() || p < 0.0 {
                return bad("price must be a finite, non-negative number".into());
            }
        }
        let at = OffsetDateTime::parse(&self.timestamp, &Rfc3339)
            .map_err(|e| {
                ProfileError::InvalidEvent(format!(
                    "timestamp {:?} is not RFC 3339: {e}",
                    self.timestamp
                ))
            })?
            .unix_timestamp();
        Ok(ValidEvent {
            event: self,
            at,
            profile_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        BehaviourEvent::parse(body).unwrap_err().to_string()
    }

    #[test]
    fn accepts_the_contract() {
        let e = BehaviourEvent::parse(
            r#"{"event_id":"e1","user_id":"u1","type":"purchase","item_id":"sku-1","timestamp":"2026-11-28T10:00:00Z","value":2,"category":"shoes"}"#,
        )
        .unwrap();
        assert_eq!(e.profile_id, "u1");
        assert_eq!(e.at, 1_795_860_000);
        assert_eq!(e.event.kind, EventType::Purchase);
    }

    #[test]
    fn each_problem_has_its_own_message() {
        assert!(err(
            r#"{"event_id":"e","type":"view","item_id":"i","timestamp":"2026-11-28T10:00:00Z"}"#
        )
        .contains("user_id or anonymous_id"));
        assert!(err(
            r#"{"event_id":"e","user_id":"u","type":"view","timestamp":"2026-11-28T10:00:00Z"}"#
        )
        .contains("needs item_id"));
        assert!(err(r#"{"event_id":"e","user_id":"u","type":"search","query":"  ","timestamp":"2026-11-28T10:00:00Z"}"#).contains("query"));
        assert!(err(
            r#"{"event_id":"e","user_id":"u","type":"identify","timestamp":"2026-11-28T10:00:00Z"}"#
        )
        .contains("both user_id and anonymous_id"));
        assert!(err(
            r#"{"event_id":"e","user_id":"u","type":"view","item_id":"i","timestamp":"yesterday"}"#
        )
        .contains("RFC 3339"));
        assert!(err(r#"{"event_id":"e","user_id":"u","type":"teleport","item_id":"i","timestamp":"2026-11-28T10:00:00Z"}"#).contains("unknown variant"));
        assert!(err(r#"{"event_id":"e","user-id":"u","type":"view","item_id":"i","timestamp":"2026-11-28T10:00:00Z"}"#).contains("unknown field"));
        assert!(err(r#"{"event_id":"","user_id":"u","type":"view","item_id":"i","timestamp":"2026-11-28T10:00:00Z"}"#).contains("event_id"));
        assert!(err(r#"{"event_id":"e","user_id":"u","type":"review","item_id":"i","value":-3,"timestamp":"2026-11-28T10:00:00Z"}"#).contains("value"));
        assert!(err(r#"{"event_id": "e", "type": "#).contains("EOF"));
        let long = "c".repeat(257);
        assert!(err(&format!(r#"{{"event_id":"e","user_id":"u","type":"view","item_id":"i","category":"{long}","timestamp":"2026-11-28T10:00:00Z"}}"#)).contains("256"));
    }

    /// What the edge's schema (infra/openapi.yaml, `BehaviourEvent.timestamp`) lets through,
    /// this parser takes: RFC 3339 with `T`/`t`, `Z`/`z` or an offset, fractions optional.
    #[test]
    fn timestamps_the_edge_accepts_parse() {
        for ts in [
            "2026-11-28T10:00:00Z",
            "2026-11-28t10:00:00z",
            "2026-11-28T10:00:00.123+01:00",
            "2026-11-28T10:00:00-05:30",
        ] {
            let body = format!(
                r#"{{"event_id":"e","user_id":"u","type":"view","item_id":"i","timestamp":"{ts}"}}"#
            );
            assert!(BehaviourEvent::parse(&body).is_ok(), "{ts}");
        }
    }
}
