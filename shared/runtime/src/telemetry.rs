//! Logging: JSON lines inside Lambda (or with `SHOPMIND_LOG_FORMAT=json`), readable text
//! locally; the level comes from `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        || std::env::var("SHOPMIND_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init`: a second call (tests, embedding hosts) keeps the first subscriber.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .without_time()
            .try_init()
    } else {
        builder.try_init()
    };
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static COLD: AtomicBool = AtomicBool::new(true);

/// True for the first invocation of this process, false after.
pub fn take_cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// The span every invocation runs in: its log lines carry the request id, the function and
/// whether this was a cold start.
pub fn invocation_span(function: &str, request_id: &str, cold_start: bool) -> tracing::Span {
    tracing::info_span!("invocation", function, request_id, cold_start)
}

/// At most the first 24 characters of shopper free text, and its length: enough to follow a
/// request in the logs, never the whole message.
pub fn redact(text: &str) -> String {
    let count = text.chars().count();
    if count <= 24 {
        format!("{text:?}")
    } else {
        let head: String = text.chars().take(24).collect();
        format!("{head:?}… ({count} chars)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Count,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Milliseconds => "Milliseconds",
            Self::Count => "Count",
        }
    }
}

/// CloudWatch Embedded Metric Format: one JSON line per invocation on stdout, which CloudWatch
/// turns into metrics with no API calls. Namespace from `SHOPMIND_METRICS_NAMESPACE` (default
/// `Shopmind`), one dimension: the function.
#[derive(Debug)]
pub struct Metrics {
    namespace: String,
    function: String,
    started: Instant,
    values: Vec<(String, f64, Unit)>,
}

impl Metrics {
    pub fn new(namespace: &str, function: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            function: function.to_owned(),
            started: Instant::now(),
            values: Vec::new(),
        }
    }

    pub fn count(&mut self, name: &str, value: f64) {
        self.values.push((name.to_owned(), value, Unit::Count));
    }

    pub fn millis(&mut self, name: &str, value: f64) {
        self.values
            .push((name.to_owned(), value, Unit::Milliseconds));
    }

    /// The EMF document, with `latency_ms` since creation and `cold_start` added.
    pub fn to_emf(&self, cold_start: bool, timestamp_ms: u64) -> serde_json::Value {
        let mut values = self.values.clone();
        values.push((
            "latency_ms".into(),
            self.started.elapsed().as_secs_f64() * 1e3,
            Unit::Milliseconds,
        ));
        values.push((
            "cold_start".into(),
            f64::from(u8::from(cold_start)),
            Unit::Count,
        ));
        let definitions: Vec<_> = values
            .iter()
            .map(|(n, _, u)| serde_json::json!({"Name": n, "Unit": u.as_str()}))
            .collect();
        let mut doc = serde_json::json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["function"]],
                    "Metrics": definitions,
                }],
            },
            "function": self.function,
        });
        if let Some(obj) = doc.as_object_mut() {
            for (n, v, _) in values {
                obj.insert(n, serde_json::json!(v));
            }
        }
        doc
    }

    /// Prints the EMF line.
    pub fn emit(&self, cold_start: bool) {
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        println!("{}", self.to_emf(cold_start, ts));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_document_declares_every_value() {
        let mut m = Metrics::new("Shopmind", "profile-updater");
        m.count("records_failed", 2.0);
        let doc = m.to_emf(true, 1_700_000_000_000);
        let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        let names: Vec<_> = defs.iter().map(|d| d["Name"].as_str().unwrap()).collect();
        assert_eq!(names, ["records_failed", "latency_ms", "cold_start"]);
        assert_eq!(doc["records_failed"], 2.0);
        assert_eq!(doc["cold_start"], 1.0);
        assert_eq!(doc["function"], "profile-updater");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "function"
        );
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
    }

    #[test]
    fn redaction_keeps_only_a_prefix() {
        let secret = "My card number is 4111 1111 1111 1111 and my address is 1 Main St";
        let r = redact(secret);
        assert!(!r.contains("1111 1111 1111"), "{r}");
        assert!(r.contains("chars"));
        assert_eq!(redact("short"), "\"short\"");
    }

    #[test]
    fn cold_start_is_reported_once() {
        // Other tests in this binary may have taken it already; after one take it is false.
        let _ = take_cold_start();
        assert!(!take_cold_start());
    }
}
