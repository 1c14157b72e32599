//! Shopmind's edge, shared by every function: the HTTP error contract and extractors, router
//! finishing, the Lambda and local hosts, SQS partial batch failures, scheduled and S3
//! events, idempotency, logs and metrics. No domain logic lives here.

mod error;
pub mod events;
mod extract;
mod http;
mod shopper;
pub mod sqs;
mod staff;
/// The idempotency utility lives with the storage it needs; re-exported here, at the edge.
pub use shopmind_storage::idempotency;
mod telemetry;

pub use error::ApiError;
pub use extract::{Json, Query};
pub use http::{
    bearer_token, bearer_value, finish_router, is_http_event, is_json_content_type, observe,
    run_http_and_events, run_on_lambda, serve_local, serve_until, ServeLimits, DEFAULT_BODY_LIMIT,
};
pub use shopper::{shopper_identity, IdentityError, Shopper, ShopperAuth, GUEST_PREFIX};
pub use staff::{staff_only, StaffAuth, StaffIdentity};
pub use telemetry::{init_tracing, invocation_span, redact, take_cold_start, Metrics, Unit};

/// Failures of the hosting layer itself.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("Lambda runtime: {0}")]
    Lambda(String),
    #[error("local server: {0}")]
    Serve(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// Settings every function shares, from the environment at cold start.
///
/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_METRICS_NAMESPACE` | `Shopmind` |
/// | `SHOPMIND_DEADLINE_MARGIN_MS` | `2000`: stop starting SQS records this close to the deadline |
/// | `SHOPMIND_IDEMPOTENCY_TTL_SECS` | `86400` |
/// | `SHOPMIND_IDEMPOTENCY_IN_PROGRESS_SECS` | `900` |
/// | `SHOPMIND_LAMBDA_INVOKE_MODE` | `BUFFERED` (API Gateway); `RESPONSE_STREAM` behind a function URL of that invoke mode |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub metrics_namespace: String,
    pub deadline_margin: std::time::Duration,
    pub idempotency_ttl: std::time::Duration,
    pub idempotency_in_progress: std::time::Duration,
    pub invoke_mode: InvokeMode,
}

/// How an HTTP function hands its response to Lambda; it must match the caller's invoke mode
/// (API Gateway reads a buffered response; a `RESPONSE_STREAM` function URL a streamed one),
/// so it is set per deployment, not per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvokeMode {
    #[default]
    Buffered,
    ResponseStream,
}

/// A numeric setting: `default` when unset or blank, else the value if it is a finite number
/// within `lo..=hi`; a bad value comes back as the error, for the caller's config error.
pub fn number_setting(
    value: Option<String>,
    default: f64,
    lo: f64,
    hi: f64,
) -> Result<f64, String> {
    match value.filter(|v| !v.trim().is_empty()) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && (lo..=hi).contains(x))
            .ok_or(v),
    }
}

impl RuntimeConfig {
    pub fn from_env() -> Result<Self, RuntimeError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let num = |name: &str, default: u64| -> Result<u64, RuntimeError> {
            match get(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(v) => v.trim().parse().map_err(|_| {
                    RuntimeError::Config(format!("{name}={v:?} is not a whole number"))
                }),
            }
        };
        Ok(Self {
            metrics_namespace: get("SHOPMIND_METRICS_NAMESPACE")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "Shopmind".into()),
            deadline_margin: std::time::Duration::from_millis(num(
                "SHOPMIND_DEADLINE_MARGIN_MS",
                2000,
            )?),
            idempotency_ttl: std::time::Duration::from_secs(num(
                "SHOPMIND_IDEMPOTENCY_TTL_SECS",
                86_400,
            )?),
            idempotency_in_progress: std::time::Duration::from_secs(num(
                "SHOPMIND_IDEMPOTENCY_IN_PROGRESS_SECS",
                900,
            )?),
            invoke_mode: match get("SHOPMIND_LAMBDA_INVOKE_MODE").as_deref().map(str::trim) {
                None | Some("") | Some("BUFFERED") => InvokeMode::Buffered,
                Some("RESPONSE_STREAM") => InvokeMode::ResponseStream,
                Some(v) => {
                    return Err(RuntimeError::Config(format!(
                        "SHOPMIND_LAMBDA_INVOKE_MODE={v:?} must be BUFFERED or RESPONSE_STREAM"
                    )))
                }
            },
        })
    }
}

/// One event invocation: in the invocation span with its cold-start flag, then one EMF
/// metrics line.
pub(crate) async fn observed_event<F, Fut>(
    function: &'static str,
    namespace: std::sync::Arc<str>,
    handle: std::sync::Arc<F>,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    F: Fn(lambda_runtime::LambdaEvent<serde_json::Value>, Metrics) -> Fut,
    Fut: std::future::Future<Output = (Result<serde_json::Value, lambda_runtime::Error>, Metrics)>,
{
    use tracing::Instrument;
    let cold = take_cold_start();
    let span = invocation_span(function, &event.context.request_id, cold);
    async move {
        let (out, metrics) = handle(event, Metrics::new(&namespace, function)).await;
        metrics.emit(cold);
        out
    }
    .instrument(span)
    .await
}

/// Runs an event-driven function (SQS batches, schedules, S3 events, direct invokes — any
/// JSON): each invocation in the invocation span with its cold-start flag, and one EMF
/// metrics line at its end. `handle` gets the event and the invocation's metrics to add to,
/// and hands both back.
pub async fn run_events<F, Fut>(
    function: &'static str,
    config: &RuntimeConfig,
    handle: F,
) -> Result<(), RuntimeError>
where
    F: Fn(lambda_runtime::LambdaEvent<serde_json::Value>, Metrics) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Result<serde_json::Value, lambda_runtime::Error>, Metrics)>
        + Send,
{
    let handle = std::sync::Arc::new(handle);
    let namespace: std::sync::Arc<str> = config.metrics_namespace.as_str().into();
    let service = lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            observed_event(function, namespace.clone(), handle.clone(), event)
        },
    );
    lambda_runtime::run(service)
        .await
        .map_err(|e| RuntimeError::Lambda(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::{number_setting, InvokeMode, RuntimeConfig};

    #[test]
    fn the_invoke_mode_is_buffered_unless_streaming_is_asked_for() {
        let mode = |v: Option<&str>| {
            RuntimeConfig::from_lookup(|k| {
                (k == "SHOPMIND_LAMBDA_INVOKE_MODE")
                    .then(|| v.map(str::to_owned))
                    .flatten()
            })
            .map(|c| c.invoke_mode)
        };
        assert_eq!(mode(None).ok(), Some(InvokeMode::Buffered));
        assert_eq!(mode(Some("BUFFERED")).ok(), Some(InvokeMode::Buffered));
        assert_eq!(
            mode(Some("RESPONSE_STREAM")).ok(),
            Some(InvokeMode::ResponseStream)
        );
        // A typo must not silently serve buffered responses to a streaming URL.
        let err = mode(Some("response-stream")).unwrap_err().to_string();
        assert!(err.contains("SHOPMIND_LAMBDA_INVOKE_MODE"), "{err}");
    }

    #[test]
    fn number_settings_default_parse_and_refuse() {
        assert_eq!(number_setting(None, 2.5, 0.0, 10.0), Ok(2.5));
        assert_eq!(number_setting(Some("  ".into()), 2.5, 0.0, 10.0), Ok(2.5));
        assert_eq!(number_setting(Some(" 7 ".into()), 2.5, 0.0, 10.0), Ok(7.0));
        assert_eq!(number_setting(Some("10".into()), 2.5, 0.0, 10.0), Ok(10.0));
        for bad in ["11", "-1", "NaN", "inf", "seven"] {
            assert_eq!(
                number_setting(Some(bad.into()), 2.5, 0.0, 10.0),
                Err(bad.to_string()),
                "{bad}"
            );
        }
    }
}
