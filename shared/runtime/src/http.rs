//! Wrapping a function's router for either host: Lambda (through `lambda_http`) or the local
//! `shopmind serve`. Both run the same `Router`.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tracing::Instrument;

use crate::error::ApiError;
use crate::RuntimeError;

/// Default request body limit: 256 KiB, well under API Gateway's own 10 MB.
pub const DEFAULT_BODY_LIMIT: usize = 256 * 1024;

/// Adds what every Shopmind HTTP surface shares: the body limit, JSON 404/405 responses for
/// unknown routes and methods, 415 for a body that is not JSON, the JSON error shape on every
/// rejection (axum's own, such as a path that is not UTF-8 or a body over the limit, are
/// plain text), and `X-Content-Type-Options: nosniff` on every response.
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
        .layer(axum::middleware::from_fn(json_bodies_only))
        .layer(axum::middleware::map_response(contract_errors))
}

/// Every Shopmind body is JSON; refusing anything else up front also keeps a cross-site HTML
/// form (which can only send form or text bodies without a preflight) from reaching a route.
async fn json_bodies_only(req: Request, next: Next) -> Response {
    if has_body(req.headers()) && !is_json_content_type(req.headers()) {
        return ApiError::unsupported_media_type().into_response();
    }
    next.run(req).await
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Whether the request says its body is `application/json` (with parameters) or a `+json` type.
pub fn is_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| mime.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

/// Longest plain-text rejection carried over into the JSON message.
const MAX_CARRIED_MESSAGE: usize = 512;

/// Rewrites an error response that is not JSON (axum's extractor and body-limit rejections
/// are `text/plain`) into the contract shape, keeping its status and, as the message, its text.
async fn contract_errors(resp: Response) -> Response {
    let status = resp.status();
    let already_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    let is_error = status.is_client_error() || status.is_server_error();
    let mut resp = if is_error && !already_json {
        let (parts, body) = resp.into_parts();
        let text = axum::body::to_bytes(body, MAX_CARRIED_MESSAGE * 4)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let mut fixed =
            ApiError::new(status, code_for(status), message_for(status, text)).into_response();
        // Keep what the rejection said about retrying, authenticating or allowed methods.
        for name in [header::RETRY_AFTER, header::WWW_AUTHENTICATE, header::ALLOW] {
            if let Some(v) = parts.headers.get(&name) {
                fixed.headers_mut().insert(name, v.clone());
            }
        }
        fixed
    } else {
        resp
    };
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

fn message_for(status: StatusCode, text: String) -> String {
    if status.is_server_error() {
        // A 5xx body may hold details; the contract never passes them on.
        return "internal error; the request id in the logs has the details".to_owned();
    }
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return "request body is larger than this route accepts".to_owned();
    }
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase();
    }
    let mut end = text.len().min(MAX_CARRIED_MESSAGE);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is matched without
/// regard to case (RFC 9110 §11.1); surrounding spaces are ignored.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    bearer_value(headers.get(header::AUTHORIZATION)?.to_str().ok()?)
}

/// The token of an `Authorization` value `Bearer <token>` (the scheme in any case).
pub fn bearer_value(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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

/// How far the local server lets one client go (`shopmind serve`; in AWS, API Gateway and
/// Lambda hold these bounds). Read from the environment:
///
/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_MAX_CONNECTIONS` (open connections; more wait to be accepted) | 512 |
/// | `SHOPMIND_HEADER_TIMEOUT_SECS` (a request's headers must arrive in this; it also closes a keep-alive connection idle this long) | 10 |
/// | `SHOPMIND_REQUEST_TIMEOUT_SECS` (a response must start in this; 503 otherwise) | 120 |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: std::time::Duration::from_secs(10),
            request_timeout: std::time::Duration::from_secs(120),
        }
    }
}

impl ServeLimits {
    pub fn from_env() -> Result<Self, RuntimeError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let d = Self::default();
        let num = |name: &str, default: f64, lo: f64, hi: f64| {
            crate::number_setting(get(name), default, lo, hi).map_err(|v| {
                RuntimeError::Config(format!("{name}={v:?} must be a number from {lo} to {hi}"))
            })
        };
        Ok(Self {
            max_connections: num(
                "SHOPMIND_MAX_CONNECTIONS",
                d.max_connections as f64,
                1.0,
                100_000.0,
            )? as usize,
            header_timeout: std::time::Duration::from_secs_f64(num(
                "SHOPMIND_HEADER_TIMEOUT_SECS",
                d.header_timeout.as_secs_f64(),
                0.1,
                3600.0,
            )?),
            request_timeout: std::time::Duration::from_secs_f64(num(
                "SHOPMIND_REQUEST_TIMEOUT_SECS",
                d.request_timeout.as_secs_f64(),
                1.0,
                3600.0,
            )?),
        })
    }
}

/// Serves `router` on `listener` until Ctrl-C, within `limits`: at most `max_connections`
/// open at once (the next waits in the listen backlog), headers within `header_timeout` and
/// idle keep-alive connections closed after it (so slow or silent clients cannot hold sockets
/// forever), and every response started within `request_timeout`. In-flight requests finish
/// on shutdown.
pub async fn serve_local(
    router: Router,
    listener: tokio::net::TcpListener,
    limits: ServeLimits,
) -> Result<(), RuntimeError> {
    serve_until(router, listener, limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// [`serve_local`] until `shutdown` completes.
pub async fn serve_until(
    router: Router,
    listener: tokio::net::TcpListener,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RuntimeError> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_deadline,
    ));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut open = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => {
                slot.map_err(|e| RuntimeError::Serve(e.to_string()))?
            }
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let header_timeout = limits.header_timeout;
        open.spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(slot);
        });
        // Reap finished connections so the set does not grow with every one ever served.
        while open.try_join_next().is_some() {}
    }
    // Stop accepting; let what is in flight finish, for as long as a request may take.
    let drained = tokio::time::timeout(limits.request_timeout, async {
        while open.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        open.abort_all();
    }
    Ok(())
}

async fn request_deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request took too long; try again",
        )
        .into_response(),
    }
}
