//! Events/s for one profile-updater instance, through the real handler (validation,
//! idempotency claim, versioned profile write, archive), against the embedded store and the
//! AWS emulator, in one run:
//!
//!     cargo bench -p profile-updater --bench throughput
//!
//! Uses the emulator at SHOPMIND_TEST_AWS_ENDPOINT, else starts `infra/scripts/moto_server.py` on
//! a free 127.0.0.1 port (run infra/scripts/setup.sh first) and stops it at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench binary may stop on a broken set-up

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use profile_updater::Handler;
use shopmind_profiles::{ProfileUpdater, UpdaterConfig};
use shopmind_storage::Store;

const FULL_EVENTS: usize = 2000;

/// Under `cargo test` (no `--bench` argument) a 100-event smoke pass keeps the bench working.
fn events() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        FULL_EVENTS
    } else {
        100
    }
}
const SHOPPERS: usize = 200;
const BATCH: usize = 10;

struct Moto(Child);
impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn emulator() -> (String, Option<Moto>) {
    if let Ok(e) = std::env::var("SHOPMIND_TEST_AWS_ENDPOINT") {
        return (e, None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let child = Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/infra/scripts/moto_server.py"))
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (run infra/scripts/setup.sh)");
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (endpoint, Some(Moto(child)))
}

fn batches() -> Vec<SqsEvent> {
    let now = time::OffsetDateTime::now_utc();
    let kinds = ["view", "view", "view", "add_to_cart", "purchase"];
    let n = events();
    let bodies: Vec<String> = (0..n)
        .map(|i| {
            let ts = (now - time::Duration::seconds((n - i) as i64))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            serde_json::json!({
                "event_id": format!("b{i}"), "user_id": format!("u{}", i % SHOPPERS),
                "type": kinds[i % kinds.len()], "item_id": format!("sku-{}", i % 97),
                "timestamp": ts, "category": format!("cat{}", i % 9), "brand": format!("b{}", i % 13), "price": (i % 300) as f64,
            })
            .to_string()
        })
        .collect();
    bodies
        .chunks(BATCH)
        .map(|chunk| {
            let mut e = SqsEvent::default();
            e.records = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let mut m = SqsMessage::default();
                    m.message_id = Some(format!("m{i}"));
                    m.body = Some(b.clone());
                    m
                })
                .collect();
            e
        })
        .collect()
}

async fn run(store: Arc<dyn Store>) -> f64 {
    let updater = ProfileUpdater::new(
        store.clone(),
        store.clone(),
        store,
        UpdaterConfig::default(),
    );
    let h = Handler {
        updater: Arc::new(updater),
        deadline_margin: Duration::from_millis(100),
        shoppers: Default::default(),
    };
    let batches = batches();
    let t0 = Instant::now();
    for b in batches {
        let (resp, _, _) = h.sqs(b, SystemTime::now() + Duration::from_secs(60)).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    events() as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = run(Arc::new(
        shopmind_storage::embedded::EmbeddedStore::open(dir.path()).unwrap(),
    ))
    .await;

    let (endpoint, _moto) = emulator();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    let names = shopmind_storage::aws::AwsNames::new(
        &format!("bench{}-", std::process::id()),
        &format!("bench{}", std::process::id()),
    );
    let aws = shopmind_storage::aws::AwsStore::from_sdk_config(&conf, names);
    aws.ensure_resources().await.unwrap();
    let emulated = run(Arc::new(aws)).await;

    println!("profile-updater throughput: {} events, {SHOPPERS} shoppers, SQS batches of {BATCH}, one instance, one task", events());
    println!("  embedded store (redb, fsync per commit): {embedded:.0} events/s");
    println!("  DynamoDB + S3 on the local emulator (moto): {emulated:.0} events/s");
}
