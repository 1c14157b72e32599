//! At-most-once processing on the design AWS Powertools uses: a record per key with a status
//! (in progress / completed), an expiry, an in-progress expiry so a crashed attempt does not
//! block forever, and a payload hash that catches one key reused for a different body. A
//! repeat gets the stored result back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{ClaimOutcome, IdempotencyClaim, IdempotencyStatus, IdempotencyStore, StorageError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError<E> {
    #[error("another attempt with this key is in progress")]
    InProgress,
    #[error("idempotency key {0} was used before with a different payload")]
    PayloadMismatch(String),
    #[error("the idempotency key could not be found: {0}")]
    MissingKey(String),
    #[error(transparent)]
    Store(#[from] StorageError),
    #[error("stored result could not be read: {0}")]
    BadStoredResult(String),
    #[error("{0}")]
    Handler(E),
}

/// What happened to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<T> {
    pub value: T,
    /// True when `value` is the stored result of an earlier attempt.
    pub replayed: bool,
}

#[derive(Debug, Clone)]
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    /// How long a completed record is kept (`SHOPMIND_IDEMPOTENCY_TTL_SECS`, default 24 h).
    pub ttl: Duration,
    /// How long an attempt may run before its claim counts as abandoned; set it to at least
    /// the function timeout (`SHOPMIND_IDEMPOTENCY_IN_PROGRESS_SECS`, default 900 s).
    pub in_progress_timeout: Duration,
}

impl Idempotency {
    pub fn new(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            store,
            ttl: Duration::from_secs(24 * 3600),
            in_progress_timeout: Duration::from_secs(900),
        }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_in_progress_timeout(mut self, timeout: Duration) -> Self {
        self.in_progress_timeout = timeout;
        self
    }

    /// The key at `pointer` (a JSON pointer such as `/event_id`) in `event`.
    pub fn key_from<E>(
        event: &serde_json::Value,
        pointer: &str,
    ) -> Result<String, IdempotencyError<E>> {
        match event.pointer(pointer) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            _ => Err(IdempotencyError::MissingKey(pointer.to_owned())),
        }
    }

    /// sha256 of the payload's JSON (maps serialise with sorted keys, so equal values hash
    /// equally).
    pub fn payload_hash(payload: &impl Serialize) -> String {
        let bytes = serde_json::to_vec(payload).unwrap_or_default();
        hex::encode(Sha256::digest(bytes))
    }

    /// Runs `f` at most once per `key` (until the record expires); a repeat returns the stored
    /// result. A failed `f` releases the claim so a retry can run.
    pub async fn run<T, E, F, Fut>(
        &self,
        key: &str,
        payload: &impl Serialize,
        f: F,
    ) -> Result<Outcome<T>, IdempotencyError<E>>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let hash = Self::payload_hash(payload);
        let expires_at = now_ms / 1000 + self.ttl.as_secs() as i64;
        let claim = IdempotencyClaim {
            key: key.to_owned(),
            payload_hash: hash.clone(),
            now_ms,
            in_progress_until: now_ms + self.in_progress_timeout.as_millis() as i64,
            expires_at,
        };
        match self.store.claim(&claim).await? {
            ClaimOutcome::Existing(rec) => {
                if rec.payload_hash != hash {
                    return Err(IdempotencyError::PayloadMismatch(key.to_owned()));
                }
                match (rec.status, rec.result) {
                    (IdempotencyStatus::Completed, Some(result)) => {
                        let value = serde_json::from_value(result)
                            .map_err(|e| IdempotencyError::BadStoredResult(e.to_string()))?;
                        Ok(Outcome {
                            value,
                            replayed: true,
                        })
                    }
                    _ => Err(IdempotencyError::InProgress),
                }
            }
            ClaimOutcome::Acquired => match f().await {
                Ok(value) => {
                    let stored = serde_json::to_value(&value)
                        .map_err(|e| IdempotencyError::BadStoredResult(e.to_string()))?;
                    self.store.complete(key, &stored, expires_at).await?;
                    Ok(Outcome {
                        value,
                        replayed: false,
                    })
                }
                Err(e) => {
                    if let Err(release) = self.store.release(key).await {
                        // The in-progress expiry frees the key later.
                        tracing::warn!(error = %release, "could not release an idempotency claim");
                    }
                    Err(IdempotencyError::Handler(e))
                }
            },
        }
    }
}
