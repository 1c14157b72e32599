//! Wrapping a function's router for either host: Lambda (through `lambda_http`) or the local
//! `shopmind serve`. Both run the same `Router`.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use tracing::Instrument;

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

/// Serves `router` as a Lambda function behind API Gateway (HTTP API), or behind a function
/// URL with response streaming when `config.invoke_mode` says so. Each request runs in an
/// invocation span (request id, function, cold start) and emits one EMF metrics line.
pub async fn run_on_lambda(
    function: &'static str,
    config: &crate::RuntimeConfig,
    router: Router,
) -> Result<(), RuntimeError> {
    let observed = observe(function, &config.metrics_namespace, router);
    match config.invoke_mode {
        crate::InvokeMode::Buffered => lambda_http::run(observed).await,
        // Bodies go out as they are produced (Server-Sent Events); the router is the same.
        crate::InvokeMode::ResponseStream => {
            lambda_http::run_with_streaming_response(observed).await
        }
    }
    .map_err(|e| RuntimeError::Lambda(e.to_string()))
}

/// Whether a Lambda payload is an API Gateway HTTP API (v2) request.
pub fn is_http_event(payload: &serde_json::Value) -> bool {
    payload.get("requestContext").is_some() && payload.get("routeKey").is_some()
}

/// Serves a function that API Gateway and other triggers (SQS, schedules) both invoke: HTTP
/// API requests go to `router` exactly as [`run_on_lambda`] serves them; every other payload
/// goes to `handle`, as [`crate::run_events`] runs it.
pub async fn run_http_and_events<F, Fut>(
    function: &'static str,
    config: &crate::RuntimeConfig,
    router: Router,
    handle: F,
) -> Result<(), RuntimeError>
where
    F: Fn(lambda_runtime::LambdaEvent<serde_json::Value>, crate::Metrics) -> Fut
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<
            Output = (
                Result<serde_json::Value, lambda_runtime::Error>,
                crate::Metrics,
            ),
        > + Send,
{
    use tower::{Service, ServiceExt};
    let observed = observe(function, &config.metrics_namespace, router);
    let handle = Arc::new(handle);
    let namespace: Arc<str> = config.metrics_namespace.as_str().into();
    let service = lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let (handle, namespace, observed) =
                (handle.clone(), namespace.clone(), observed.clone());
            async move {
                if !is_http_event(&event.payload) {
                    return crate::observed_event(function, namespace, handle, event).await;
                }
                let request: lambda_http::request::LambdaRequest =
                    serde_json::from_value(event.payload)?;
                let mut adapter = lambda_http::Adapter::from(observed);
                let response = adapter
                    .ready()
                    .await?
                    .call(lambda_runtime::LambdaEvent::new(request, event.context))
                    .await?;
                Ok(serde_json::to_value(response)?)
            }
        },
    );
    lambda_runtime::run(service)
        .await
        .map_err(|e| RuntimeError::Lambda(e.to_string()))
}

#[derive(Debug, Clone)]
struct Observe {
    function: &'static str,
    namespace: Arc<str>,
}

/// Adds the per-request span and metrics line; the request id comes from the Lambda context
/// that `lambda_http` puts in the request's extensions.
pub fn observe(function: &'static str, namespace: &str, router: Router) -> Router {
    let state = Observe {
        function,
        namespace: Arc::from(namespace),
    };
    router.layer(axum::middleware::from_fn_with_state(state, observe_request))
}

async fn observe_request(
    axum::extract::State(o): axum::extract::State<Observe>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let request_id = req
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.request_id.clone())
        .unwrap_or_default();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let cold = crate::telemetry::take_cold_start();
    let span = crate::telemetry::invocation_span(o.function, &request_id, cold);
    let mut metrics = crate::telemetry::Metrics::new(&o.namespace, o.function);
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status();
    metrics.count("http_4xx", f64::from(u8::from(status.is_client_error())));
    metrics.count("http_5xx", f64::from(u8::from(status.is_server_error())));
    span.in_scope(|| tracing::info!(route, status = status.as_u16(), "request done"));
    metrics.emit(cold);
    response
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
