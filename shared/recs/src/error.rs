#[derive(Debug, thiserror::Error)]
pub enum RecsError {
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
    /// An index file that does not match its manifest, or a manifest that does not parse.
    #[error("index {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    /// Versions are immutable: publishing one that exists is refused.
    #[error("index version {0} already exists; versions are immutable")]
    VersionExists(String),
    #[error("invalid index: {0}")]
    Invalid(String),
    #[error("embedding failed: {0}")]
    Embed(String),
    #[error("configuration: {0}")]
    Config(String),
    /// The SQL engine (Athena) refused, failed or timed out the signals query.
    #[error("signals query: {0}")]
    Query(String),
}

impl From<shopmind_artifacts::ArtifactError> for RecsError {
    fn from(e: shopmind_artifacts::ArtifactError) -> Self {
        use shopmind_artifacts::ArtifactError as A;
        match e {
            A::Storage(e) => Self::Storage(e),
            A::Corrupt { what, reason } => Self::Corrupt { what, reason },
            A::VersionExists(v) => Self::VersionExists(v),
            A::Invalid(m) => Self::Invalid(m),
        }
    }
}
