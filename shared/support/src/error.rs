#[derive(Debug, thiserror::Error)]
pub enum SupportError {
    /// Bad input data: a knowledge base, exemplars, a head file.
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("embedding failed: {0}")]
    Embed(String),
    #[error(transparent)]
    Artifact(#[from] shopmind_artifacts::ArtifactError),
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
}
