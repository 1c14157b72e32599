//! Wrapping a function's router for either host: Lambda (through `lambda_http`) or the local
//! `shopmind serve`. Both run the same `Router`.

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;

use crate::error::ApiError;
use crate::RuntimeError;

/// Default request body limit: 256 KiB, well under API Gateway's own 10 MB.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Adds what every Shopmind HTTP surface shares: the body limit, and JSON 404/405 responses
/// for unknown routes and methods.
pub fn finish_router(router: Router, body_limit: usize) -> Router {
    router
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
}

/// Serves `router` as a Lambda function behind API Gateway (HTTP API).
pub async fn run_on_lambda(router: Router) -> Result<(), RuntimeError> {
    lambda_http::run(router)
        .await
        .map_err(|e| RuntimeError::Lambda(e.to_string()))
}

/// Serves `router` on a local TCP address until Ctrl-C.
pub async fn serve_local(
    router: Router,
    listener: tokio::net::TcpListener,
) -> Result<(), RuntimeError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| RuntimeError::Serve(e.to_string()))
}
