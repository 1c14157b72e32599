//! Applying events to stored profiles: at most once per `event_id`, safe under concurrent
//! invocations, with identify merges and the S3 event archive.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use shopmind_storage::idempotency::{Idempotency, IdempotencyError, Outcome};
use shopmind_storage::{BlobStore, IdempotencyStore, ProfileStore, StorageError};

use crate::config::UpdaterConfig;
use crate::error::ProfileError;
use crate::event::{EventType, ValidEvent};
use crate::profile::Profile;

/// Embeds search queries for the profile embedding (the sentence encoder, loaded lazily).
#[async_trait]
pub trait QueryEmbedder: Send + Sync + std::fmt::Debug {
    /// `None` when no encoder is configured.
    async fn embed_query(&self, query: &str) -> Result<Option<Vec<f32>>, ProfileError>;
}

/// Item embeddings from the current item index.
#[async_trait]
pub trait ItemVectors: Send + Sync + std::fmt::Debug {
    async fn item_vector(&self, item_id: &str) -> Result<Option<Vec<f32>>, ProfileError>;
}

/// What happened to one event (stored as the idempotency record's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    Applied,
    /// Seen before (a redelivery or a retry): nothing changed.
    Duplicate,
    /// Older than the retention window: ignored and counted.
    TooOld,
}

#[derive(Debug, Clone)]
pub struct ProfileUpdater {
    profiles: Arc<dyn ProfileStore>,
    idempotency: Idempotency,
    blobs: Arc<dyn BlobStore>,
    config: UpdaterConfig,
    queries: Option<Arc<dyn QueryEmbedder>>,
    items: Option<Arc<dyn ItemVectors>>,
}

/// The idempotency key of an event: per profile, so forgetting a shopper can drop them all.
pub fn idempotency_key(profile_id: &str, event_id: &str) -> String {
    // '|' is the one character ids may not hold, so "profile:{id}|" is a prefix of this
    // shopper's keys only (with ':' between, forgetting "u1" also matched "u1:x").
    format!("profile:{profile_id}|{event_id}")
}

impl ProfileUpdater {
    pub fn new(
        profiles: Arc<dyn ProfileStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        blobs: Arc<dyn BlobStore>,
        config: UpdaterConfig,
    ) -> Self {
        // Records live as long as events are accepted; a claim outlives any one invocation.
        let idempotency = Idempotency::new(idempotency)
            .with_ttl(Duration::from_secs(
                config.retention_days.max(1) as u64 * 86_400,
            ))
            .with_in_progress_timeout(Duration::from_secs(120));
        Self {
            profiles,
            idempotency,
            blobs,
            config,
            queries: None,
            items: None,
        }
    }

    pub fn with_query_embedder(mut self, e: Arc<dyn QueryEmbedder>) -> Self {
        self.queries = Some(e);
        self
    }

    pub fn with_item_vectors(mut self, v: Arc<dyn ItemVectors>) -> Self {
        self.items = Some(v);
        self
    }

    pub fn config(&self) -> &UpdaterConfig {
        &self.config
    }

    /// Checks the event's time against the retention window and the allowed clock skew.
    pub fn check_time(&self, ev: &ValidEvent, now: i64) -> Result<bool, ProfileError> {
        let ahead = ev.at - now;
        if ahead > self.config.max_future_skew_secs {
            return Err(ProfileError::FromTheFuture {
                ahead_secs: ahead,
                allowed_secs: self.config.max_future_skew_secs,
            });
        }
        Ok(now - ev.at <= self.config.retention_days * 86_400)
    }

    /// Applies one event at most once: the idempotency utility keys it by profile and event
    /// id (a reused id with a different body is refused), and the applied ids inside the
    /// profile cover a crash between the profile write and the record's completion.
    pub async fn apply(&self, ev: &ValidEvent) -> Result<Applied, ProfileError> {
        if !self.check_time(ev, shopmind_storage::now_secs())? {
            return Ok(Applied::TooOld);
        }
        let key = idempotency_key(&ev.profile_id, &ev.event.event_id);
        match self
            .idempotency
            .run(&key, &ev.event, || self.apply_claimed(ev))
            .await
        {
            Ok(Outcome { replayed: true, .. }) => Ok(Applied::Duplicate),
            Ok(Outcome { value, .. }) => Ok(value),
            Err(IdempotencyError::Handler(e)) => Err(e),
            Err(IdempotencyError::InProgress) => Err(ProfileError::InProgress),
            Err(IdempotencyError::PayloadMismatch(_)) => Err(ProfileError::InvalidEvent(format!(
                "event_id {} was used before for a different event",
                ev.event.event_id
            ))),
            Err(IdempotencyError::Store(e)) => Err(e.into()),
            Err(e @ (IdempotencyError::MissingKey(_) | IdempotencyError::BadStoredResult(_))) => {
                Err(ProfileError::Corrupt(e.to_string()))
            }
        }
    }

    async fn vector_for(&self, ev: &ValidEvent) -> Result<Option<Vec<f32>>, ProfileError> {
        let e = &ev.event;
        match (e.kind, &e.query, &e.item_id) {
            (EventType::Search, Some(q), _) => match &self.queries {
                Some(embedder) => embedder.embed_query(q).await,
                None => Ok(None),
            },
            (EventType::Identify | EventType::Search, _, _) => Ok(None),
            (_, _, Some(item)) => match &self.items {
                Some(items) => items.item_vector(item).await,
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Read–modify–write with the version condition, retried on conflict.
    async fn apply_claimed(&self, ev: &ValidEvent) -> Result<Applied, ProfileError> {
        let vector = self.vector_for(ev).await?;
        if ev.event.kind == EventType::Identify {
            return self.identify(ev).await;
        }
        for attempt in 0..self.config.max_attempts {
            let (mut profile, version) = self.load(&ev.profile_id).await?;
            // The event id inside the profile makes a crash between the profile write and
            // the idempotency record harmless: the retry sees it and stops.
            if profile.has_applied(&ev.event.event_id) {
                return Ok(Applied::Duplicate);
            }
            profile.apply(ev, vector.as_deref(), &self.config);
            match self.save(&profile, version).await {
                Ok(()) => return Ok(Applied::Applied),
                Err(ProfileError::Storage(StorageError::Conflict(_))) => backoff(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(ProfileError::Contended(
            ev.profile_id.clone(),
            self.config.max_attempts,
        ))
    }

    async fn identify(&self, ev: &ValidEvent) -> Result<Applied, ProfileError> {
        let (Some(user), Some(anon)) = (&ev.event.user_id, &ev.event.anonymous_id) else {
            return Err(ProfileError::InvalidEvent(
                "identify needs user_id and anonymous_id".into(),
            ));
        };
        for attempt in 0..self.config.max_attempts {
            let (mut profile, version) = self.load(user).await?;
            if profile.merged_from.iter().any(|m| m == anon)
                || profile.has_applied(&ev.event.event_id)
            {
                // Merged already (this delivery or another identify): just make sure the
                // anonymous profile is gone.
                self.profiles.delete_profile(anon).await?;
                return Ok(Applied::Duplicate);
            }
            let (anon_profile, _) = self.load(anon).await?;
            profile.merge(&anon_profile, &self.config);
            profile.apply(ev, None, &self.config);
            match self.save(&profile, version).await {
                Ok(()) => {
                    self.profiles.delete_profile(anon).await?;
                    return Ok(Applied::Applied);
                }
                Err(ProfileError::Storage(StorageError::Conflict(_))) => backoff(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(ProfileError::Contended(
            user.clone(),
            self.config.max_attempts,
        ))
    }

    pub async fn load(&self, profile_id: &str) -> Result<(Profile, Option<u64>), ProfileError> {
        match self.profiles.get_profile(profile_id).await? {
            Some(v) => {
                let p: Profile = serde_json::from_value(v.value)
                    .map_err(|e| ProfileError::Corrupt(e.to_string()))?;
                Ok((p, Some(v.version)))
            }
            None => Ok((Profile::new(profile_id), None)),
        }
    }

    async fn save(&self, profile: &Profile, version: Option<u64>) -> Result<(), ProfileError> {
        let doc =
            serde_json::to_value(profile).map_err(|e| ProfileError::Corrupt(e.to_string()))?;
        self.profiles
            .put_profile(&profile.profile_id, &doc, version)
            .await?;
        Ok(())
    }

    /// Writes valid events to the archive, one JSONL object per event date and batch:
    /// `events/dt=YYYY-MM-DD/<hash of the event ids>.jsonl`. A redelivered batch rewrites the
    /// same object; readers de-duplicate on `event_id` across objects.
    pub async fn archive(&self, events: &[ValidEvent]) -> Result<Vec<String>, ProfileError> {
        let mut by_day: std::collections::BTreeMap<String, Vec<&ValidEvent>> = Default::default();
        for ev in events {
            let day = time::OffsetDateTime::from_unix_timestamp(ev.at)
                .map(|t| t.date().to_string())
                .unwrap_or_else(|_| "invalid".into());
            by_day.entry(day).or_default().push(ev);
        }
        let mut keys = Vec::new();
        for (day, evs) in by_day {
            let mut body = Vec::new();
            let mut hasher = Sha256::new();
            for ev in &evs {
                hasher.update(ev.event.event_id.as_bytes());
                hasher.update(b"\n");
                body.extend(
                    serde_json::to_vec(&ev.event)
                        .map_err(|e| ProfileError::Corrupt(e.to_string()))?,
                );
                body.push(b'\n');
            }
            let key = format!(
                "events/dt={day}/{}.jsonl",
                &hex::encode(hasher.finalize())[..32]
            );
            self.blobs.put_blob(&key, Bytes::from(body)).await?;
            keys.push(key);
        }
        Ok(keys)
    }
}

async fn backoff(attempt: u32) {
    // Short and jittered: contention is between invocations of one shopper's events.
    let jitter = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
            % 5,
    );
    tokio::time::sleep(Duration::from_millis(
        u64::from(attempt.min(6)) * 2 + jitter,
    ))
    .await;
}
