#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("event time is {ahead_secs}s in the future; at most {allowed_secs}s of clock skew is allowed")]
    FromTheFuture { ahead_secs: i64, allowed_secs: i64 },
    #[error("another delivery of this event is being processed")]
    InProgress,
    #[error("profile {0} kept changing under us; giving up after {1} attempts")]
    Contended(String, u32),
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
    #[error("stored profile is unreadable: {0}")]
    Corrupt(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl ProfileError {
    /// Whether a redelivery could succeed (invalid events never will).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            Self::InvalidEvent(_) | Self::FromTheFuture { .. } | Self::Config(_)
        )
    }
}
