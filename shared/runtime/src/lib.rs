//! Shopmind's edge, shared by every function: the HTTP error contract and extractors, router
//! finishing, the Lambda and local hosts, and logging. No domain logic lives here.

mod error;
mod extract;
mod http;
mod telemetry;

pub use error::ApiError;
pub use extract::{Json, Query};
pub use http::{finish_router, run_on_lambda, serve_local, DEFAULT_BODY_LIMIT};
pub use telemetry::init_tracing;

/// Failures of the hosting layer itself.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("Lambda runtime: {0}")]
    Lambda(String),
    #[error("local server: {0}")]
    Serve(String),
}
