//! EventBridge scheduled events and S3 object-created notifications, reduced to what a
//! handler needs.

use aws_lambda_events::s3::S3Event;
use serde::Deserialize;

/// An EventBridge scheduled event (`"detail-type": "Scheduled Event"`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScheduledEvent {
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub time: String,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub detail: serde_json::Value,
}

impl ScheduledEvent {
    /// The rule that fired (the last path part of the first resource ARN).
    pub fn rule_name(&self) -> Option<&str> {
        self.resources
            .first()
            .and_then(|arn| arn.rsplit('/').next())
    }
}

/// One created object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    /// The key decoded from the notification's URL encoding.
    pub key: String,
    pub size: Option<i64>,
}

/// The created objects of an S3 notification; records of other event types are skipped.
pub fn created_objects(event: &S3Event) -> Vec<CreatedObject> {
    event
        .records
        .iter()
        .filter(|r| {
            r.event_name
                .as_deref()
                .is_some_and(|n| n.starts_with("ObjectCreated:"))
        })
        .filter_map(|r| {
            Some(CreatedObject {
                bucket: r.s3.bucket.name.clone()?,
                key: decode_key(r.s3.object.key.as_deref()?),
                size: r.s3.object.size,
            })
        })
        .collect()
}

/// An S3 event delivered through EventBridge (the bucket's `EventBridgeConfiguration`), the
/// route the template uses: it avoids the bucket ↔ function dependency cycle that direct
/// notifications create, and its rule filters by key prefix.
#[derive(Debug, Clone, Deserialize)]
pub struct S3BridgeEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub detail: S3BridgeDetail,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3BridgeDetail {
    pub bucket: S3BridgeBucket,
    pub object: S3BridgeObject,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3BridgeBucket {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3BridgeObject {
    pub key: String,
    #[serde(default)]
    pub size: Option<i64>,
}

impl S3BridgeEvent {
    /// The created object, or None for other S3 event types (deletes, restores…).
    /// EventBridge keys are not URL-encoded, unlike direct notifications.
    pub fn created_object(&self) -> Option<CreatedObject> {
        (self.source == "aws.s3" && self.detail_type == "Object Created").then(|| CreatedObject {
            bucket: self.detail.bucket.name.clone(),
            key: self.detail.object.key.clone(),
            size: self.detail.object.size,
        })
    }
}

/// S3 notifications URL-encode keys, with `+` for spaces.
pub fn decode_key(raw: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::decode_key;

    #[test]
    fn decodes_notification_keys() {
        assert_eq!(
            decode_key("catalog/new+items%281%29.jsonl"),
            "catalog/new items(1).jsonl"
        );
        assert_eq!(decode_key("kb/%E4%BD%A0%E5%A5%BD.jsonl"), "kb/你好.jsonl");
        assert_eq!(decode_key("odd%zz%"), "odd%zz%");
    }
}
