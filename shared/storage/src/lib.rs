//! What Shopmind keeps, behind one set of traits with two real implementations:
//! [`aws::AwsStore`] (DynamoDB + S3) and [`embedded::EmbeddedStore`] (redb + files on disk, the
//! local default). Both pass the same conformance suite (`tests/conformance.rs`).
//!
//! Records are JSON documents: each domain crate owns its schema; this crate owns keys,
//! versions, conditions, expiry, pagination and size limits.

pub mod aws;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod embedded;
mod error;
pub mod idempotency;
mod types;

pub use error::{Result, StorageError};
pub use types::*;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::Digest;

/// Shopper profiles with optimistic concurrency.
#[async_trait]
pub trait ProfileStore: Send + Sync + std::fmt::Debug {
    async fn get_profile(&self, user_id: &str) -> Result<Option<Versioned<Json>>>;
    /// Writes `profile` if the stored version is `expected` (`None`: only if there is no
    /// profile yet). Returns the new version; a stale `expected` is [`StorageError::Conflict`].
    async fn put_profile(
        &self,
        user_id: &str,
        profile: &Json,
        expected: Option<u64>,
    ) -> Result<u64>;
    async fn delete_profile(&self, user_id: &str) -> Result<bool>;
}

/// Conversations: a header plus ordered turns, all expiring at `expires_at`.
#[async_trait]
pub trait ConversationStore: Send + Sync + std::fmt::Debug {
    /// Creates the conversation; an existing id is [`StorageError::Conflict`].
    async fn create_conversation(&self, meta: &ConversationMeta) -> Result<()>;
    /// The header, or `None` when absent or expired.
    async fn get_conversation(&self, id: &str) -> Result<Option<ConversationMeta>>;
    /// Appends turn `seq` (1, 2, …); a `seq` already taken is [`StorageError::Conflict`], so
    /// two writers never both take one place.
    async fn append_turn(&self, id: &str, turn: &Turn) -> Result<()>;
    /// Turns in `seq` order, at most `limit` per page, continuing from `cursor`.
    async fn list_turns(&self, id: &str, cursor: Option<&str>, limit: usize) -> Result<Page<Turn>>;
    /// Deletes every conversation `owner` created; returns how many.
    async fn delete_conversations_of(&self, owner: &str) -> Result<usize>;
    /// How many conversations `owner` created that are still kept. A store whose expiry runs
    /// late (DynamoDB's TTL deletes within about two days) may count recently expired ones.
    async fn count_conversations_of(&self, owner: &str) -> Result<usize>;
    /// Sets the conversation's handoff state if its current status is `expected` (`None`:
    /// never handed off): `Conflict` when another change came first, `NotFound` when the
    /// conversation is not there (or expired).
    async fn set_handoff(&self, id: &str, handoff: &Handoff, expected: Option<&str>) -> Result<()>;
    /// Live conversations whose handoff status is `status` (and reason `reason`, if given),
    /// most recently changed first.
    async fn list_handoffs(
        &self,
        status: &str,
        reason: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<ConversationMeta>>;
}

/// Appends `turn` at its `seq` or, when another writer took that place first, at the next free
/// one, trying at most `attempts` places; returns the `seq` it got. Two messages sent to one
/// conversation at the same moment are then both kept, one after the other.
pub async fn append_turn_at_end(
    store: &(impl ConversationStore + ?Sized),
    id: &str,
    turn: &Turn,
    attempts: u32,
) -> Result<u64> {
    let mut at = turn.clone();
    for _ in 0..attempts.max(1) {
        match store.append_turn(id, &at).await {
            Ok(()) => return Ok(at.seq),
            Err(StorageError::Conflict(_)) => at.seq += 1,
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Conflict(format!(
        "conversation {id}: turns {}..{} were all taken",
        turn.seq,
        at.seq - 1
    )))
}

/// Copy drafts keyed by product × channel × locale, listed by status.
#[async_trait]
pub trait DraftStore: Send + Sync + std::fmt::Debug {
    async fn get_draft(&self, key: &DraftKey) -> Result<Option<Versioned<DraftRecord>>>;
    /// Conditional write, as [`ProfileStore::put_profile`].
    async fn put_draft(
        &self,
        key: &DraftKey,
        draft: &DraftRecord,
        expected: Option<u64>,
    ) -> Result<u64>;
    /// Unconditional bulk write (imports, seeding): every item is written with version 1,
    /// replacing what was there. Items the backend could not take at once are retried.
    async fn put_drafts(&self, drafts: &[(DraftKey, DraftRecord)]) -> Result<()>;
    /// Drafts with `status`, oldest `updated_at` first.
    async fn list_drafts(
        &self,
        status: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(DraftKey, Versioned<DraftRecord>)>>;
}

/// Records for at-most-once processing (see `shopmind-runtime`'s idempotency utility).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + std::fmt::Debug {
    /// Atomically claims `key` for an attempt. Succeeds when there is no record, the record
    /// has expired, or it is in progress past its `in_progress_until` (a crashed attempt);
    /// otherwise returns the record that stands.
    async fn claim(&self, claim: &IdempotencyClaim) -> Result<ClaimOutcome>;
    /// Marks the claimed key complete with its result.
    async fn complete(&self, key: &str, result: &Json, expires_at: i64) -> Result<()>;
    /// Drops a claim after a failed attempt so a retry can run.
    async fn release(&self, key: &str) -> Result<()>;
    async fn get_idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>>;
    /// Deletes every record whose key starts with `prefix`; returns how many.
    async fn delete_idempotency_prefix(&self, prefix: &str) -> Result<usize>;
}

/// Objects: catalog, knowledge base, event archive, index files, `latest` pointers.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    async fn put_blob(&self, key: &str, body: Bytes) -> Result<()>;
    async fn get_blob(&self, key: &str) -> Result<Option<Bytes>>;
    /// The blob and the SHA-256 of its bytes. A backend that streams (S3) hashes each part as
    /// it arrives, so a large download is verified when its last byte is in; by default the
    /// blob is read, then hashed on the blocking pool.
    async fn get_blob_sha256(&self, key: &str) -> Result<Option<(Bytes, [u8; 32])>> {
        let Some(body) = self.get_blob(key).await? else {
            return Ok(None);
        };
        let data = body.clone();
        let hash = tokio::task::spawn_blocking(move || sha2::Sha256::digest(&data).into())
            .await
            .map_err(|e| StorageError::Backend {
                op: "hash blob",
                reason: e.to_string(),
            })?;
        Ok(Some((body, hash)))
    }
    /// Every key under `prefix`, sorted (all pages).
    async fn list_blobs(&self, prefix: &str) -> Result<Vec<String>>;
    async fn delete_blob(&self, key: &str) -> Result<bool>;
}

/// Everything at once; both implementations provide it.
pub trait Store:
    ProfileStore + ConversationStore + DraftStore + IdempotencyStore + BlobStore
{
}
impl<T: ProfileStore + ConversationStore + DraftStore + IdempotencyStore + BlobStore> Store for T {}
