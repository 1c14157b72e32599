use shopmind_storage::StorageError;

/// Everything that can go wrong in the copy domain; the function crates map it to HTTP
/// statuses and SQS failures once, at their edge.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The request breaks a rule the caller can fix (422).
    #[error("{0}")]
    Invalid(String),
    /// The request is larger than a draft may hold (413).
    #[error("{0}")]
    TooLarge(String),
    /// No draft under that key (404).
    #[error("{0}")]
    NotFound(String),
    /// The draft's state does not allow the step, or another writer got there first (409).
    #[error("{0}")]
    Conflict(String),
    /// A human edit that does not pass validation (422, with the report).
    #[error("the edited text does not pass validation: {}", .0.summary())]
    Rejected(Box<crate::validate::Report>),
    #[error("draft store: {0}")]
    Storage(#[from] StorageError),
    #[error("generator: {0}")]
    Model(String),
    #[error("configuration: {0}")]
    Config(String),
    /// Generation ran out of time and the caller chose not to keep a cut result.
    #[error("deadline: {0}")]
    Deadline(String),
    #[error("job queue: {0}")]
    Queue(String),
}

pub type Result<T, E = CopyError> = std::result::Result<T, E>;
