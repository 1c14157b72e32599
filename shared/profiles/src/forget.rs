//! The right to be forgotten: everything Shopmind keeps about one shopper id, removed.

use serde::Serialize;
use shopmind_storage::{ConversationStore, IdempotencyStore, ProfileStore};

use crate::error::ProfileError;
use crate::updater::idempotency_key;

/// What was removed, for the caller's records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    pub user_id: String,
    pub profile: bool,
    pub conversations: usize,
    pub idempotency_records: usize,
    /// What is not removed here, and why.
    pub retained: Vec<String>,
}

/// Removes the shopper's profile, every conversation they created and the idempotency
/// records of their events. Running it again removes nothing more (and says so). The event
/// archive under `events/` is append-only JSONL shared by all shoppers; it is not rewritten.
pub async fn forget_shopper(
    profiles: &dyn ProfileStore,
    conversations: &dyn ConversationStore,
    idempotency: &dyn IdempotencyStore,
    user_id: &str,
) -> Result<Forgotten, ProfileError> {
    // The event contract's rule: an id that no event can carry has nothing to remove.
    shopmind_storage::check_id("user_id", user_id).map_err(ProfileError::InvalidEvent)?;
    // Idempotency first: if a later step fails, a retry still finds the rest.
    let prefix = idempotency_key(user_id, "");
    let idempotency_records = idempotency.delete_idempotency_prefix(&prefix).await?;
    let conversations = conversations.delete_conversations_of(user_id).await?;
    let profile = profiles.delete_profile(user_id).await?;
    Ok(Forgotten {
        user_id: user_id.to_owned(),
        profile,
        conversations,
        idempotency_records,
        retained: vec![
            "behaviour events in the S3 event archive (events/, append-only JSONL shared by all \
             shoppers); expire them with the bucket's lifecycle rules"
                .into(),
        ],
    })
}
