//! Helpers for the end-to-end tests: where the fetched models are and how to reach the AWS
//! emulator that `infra/scripts/test.sh` starts.

pub mod fault_proxy;
pub mod runtime_api;

/// Serves HTTP/1 on `listener`, one task per connection, `handle` per request (the loopback
/// servers here). An error from `handle` makes hyper close the connection unanswered.
pub(crate) fn serve_http<S, E, F>(
    listener: tokio::net::TcpListener,
    shared: std::sync::Arc<S>,
    handle: fn(std::sync::Arc<S>, hyper::Request<hyper::body::Incoming>) -> F,
) -> tokio::task::JoinHandle<()>
where
    S: Send + Sync + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    F: std::future::Future<Output = Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, E>>
        + Send
        + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

use std::path::{Path, PathBuf};

pub fn models_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// A sample event of `events/` (e.g. `sqs/storefront-events-batch.json`), parsed.
pub fn sample_event(relative: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(relative);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("could not read {}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The inference settings of a test on this checkout: models from [`models_dir`].
pub fn local_inference() -> shopmind_inference::InferenceConfig {
    let models = models_dir().to_string_lossy().into_owned();
    shopmind_inference::InferenceConfig::from_lookup(move |k| {
        (k == "SHOPMIND_MODELS_DIR").then(|| models.clone())
    })
    .unwrap_or_else(|e| panic!("test inference config: {e}"))
}

/// Runs a bench's async body on a multi-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        .block_on(f)
}

/// Puts the sample knowledge base (`infra/samples/kb/`: help.jsonl, intents.json) and any
/// `extra` article lines under `kb/` in `store`, and runs the indexer's KB and intents jobs.
pub async fn seed_sample_kb(
    store: &dyn shopmind_storage::BlobStore,
    encoder: std::sync::Arc<shopmind_inference::Encoder>,
    extra: Option<String>,
) -> shopmind_support::indexer::KbReport {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/samples/kb");
    let mut files: Vec<(String, Vec<u8>)> = ["help.jsonl", "intents.json"]
        .iter()
        .map(|f| {
            let body = std::fs::read(samples.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (format!("kb/{f}"), body)
        })
        .collect();
    if let Some(extra) = extra {
        files.push(("kb/more.jsonl".into(), extra.into_bytes()));
    }
    for (key, body) in files {
        store
            .put_blob(&key, body.into())
            .await
            .unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    let (report, _) = shopmind_support::indexer::index_knowledge(store, encoder, 1_795_845_600)
        .await
        .unwrap_or_else(|e| panic!("indexing the sample KB: {e}"));
    report
}

/// The emulator's endpoint. The AWS half of the suite never skips itself: without the
/// emulator it fails and says how to start it.
pub fn aws_endpoint() -> String {
    match std::env::var("SHOPMIND_TEST_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => panic!(
            "SHOPMIND_TEST_AWS_ENDPOINT is not set: run the suite with infra/scripts/test.sh, \
             which starts the AWS emulator (moto) on 127.0.0.1"
        ),
    }
}

/// The SDK configuration every emulator test uses: static test credentials, us-east-1.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

pub async fn s3_client() -> aws_sdk_s3::Client {
    let conf = aws_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

/// A new queue in the emulator: the client and the queue's URL.
pub async fn create_queue(name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&aws_config().await);
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("creating queue {name}: {e}"))
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    (sqs, url)
}

/// Receives and deletes every queued message, as the SQS event Lambda's event source mapping
/// would deliver them.
pub async fn drain_queue(sqs: &aws_sdk_sqs::Client, url: &str) -> aws_lambda_events::sqs::SqsEvent {
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receiving from {url}: {e}"));
        if out.messages().is_empty() {
            return event;
        }
        for m in out.messages() {
            let mut msg = aws_lambda_events::sqs::SqsMessage::default();
            msg.message_id = m.message_id().map(str::to_owned);
            msg.receipt_handle = m.receipt_handle().map(str::to_owned);
            msg.body = m.body().map(str::to_owned);
            msg.event_source = Some("aws:sqs".into());
            msg.aws_region = Some("us-east-1".into());
            event.records.push(msg);
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .unwrap_or_else(|e| panic!("deleting from {url}: {e}"));
        }
    }
}

/// A bucket name no other test uses.
pub fn unique_bucket(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh set of tables and a bucket in the emulator, and the environment a function's
/// binary needs to use them (endpoint, test credentials, names).
#[derive(Debug)]
pub struct EmulatorDeployment {
    pub store: shopmind_storage::aws::AwsStore,
    pub table_prefix: String,
    pub bucket: String,
}

impl EmulatorDeployment {
    pub async fn create(tag: &str) -> Self {
        let unique = format!("{tag}{}", std::process::id());
        let (table_prefix, bucket) = (format!("{unique}-"), format!("bucket-{unique}"));
        let store = shopmind_storage::aws::AwsStore::from_sdk_config(
            &aws_config().await,
            shopmind_storage::aws::AwsNames::new(&table_prefix, &bucket),
        );
        store
            .ensure_resources()
            .await
            .unwrap_or_else(|e| panic!("creating emulator tables: {e}"));
        Self {
            store,
            table_prefix,
            bucket,
        }
    }

    /// The variables for a child process, plus `extra`.
    pub fn env(&self, extra: &[(&str, String)]) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", aws_endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("SHOPMIND_TABLE_PREFIX", self.table_prefix.clone()),
            ("SHOPMIND_BUCKET", self.bucket.clone()),
            ("RUST_LOG", "warn".into()),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// The project's Python (`infra/scripts/setup.sh` makes `.venv`), or `SHOPMIND_PYTHON`.
pub fn python() -> PathBuf {
    std::env::var_os("SHOPMIND_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

/// What DuckDB made of the signals statement: its CSV result (Athena's format), the wall
/// time of the run and DuckDB's peak RSS.
#[derive(Debug)]
pub struct DuckdbRun {
    pub csv: Vec<u8>,
    pub secs: f64,
    pub peak_rss_mb: f64,
}

/// Runs `sql` (the signals job's Athena statement) in DuckDB over the archive under
/// `archive` (`events/dt=…/*.jsonl` files), as the table `shopmind.events`
/// (`infra/scripts/duckdb_signals.py`). Panics with DuckDB's message if it fails.
pub fn duckdb_signals(archive: &Path, sql: &str) -> DuckdbRun {
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let (sql_file, out) = (work.path().join("q.sql"), work.path().join("result.csv"));
    std::fs::write(&sql_file, sql).unwrap_or_else(|e| panic!("{}: {e}", sql_file.display()));
    let python = python();
    let started = std::time::Instant::now();
    let run = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/scripts/duckdb_signals.py"))
        .args(["--table", "shopmind.events", "--archive"])
        .arg(archive)
        .arg("--sql")
        .arg(&sql_file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run infra/scripts/setup.sh", python.display()));
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "duckdb_signals.py failed:\n{stderr}");
    let peak_rss_mb = stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("peak_rss_mb=")?.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    let csv = std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    DuckdbRun {
        csv,
        secs,
        peak_rss_mb,
    }
}
