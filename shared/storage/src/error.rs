#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A condition failed: a stale version, a key that already exists.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// DynamoDB items are limited to 400 KB; larger documents are refused on both backends.
    #[error("{what} is {bytes} bytes; the limit for one stored item is {limit} bytes")]
    TooLarge {
        what: String,
        bytes: usize,
        limit: usize,
    },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("invalid cursor")]
    InvalidCursor,
    /// The backend failed after the SDK's own retries.
    #[error("{op} failed: {reason}")]
    Backend { op: &'static str, reason: String },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("I/O error at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
