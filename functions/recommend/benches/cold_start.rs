//! Cold start of the real `recommend` binary: process start → first answer, with the item
//! index loaded from the AWS emulator's S3, driven through a Lambda Runtime API on loopback
//! exactly as Lambda drives `bootstrap` (the API Gateway event from `events/apigw/`).
//!
//! Baseline: the same process answering the same request again (warm), measured in the run.
//!
//!     infra/scripts/with-emulator.sh cargo bench -p recommend --bench cold_start
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) one small catalog is started
//! once, so the harness and the binary's Lambda path are checked in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use shopmind_e2e::runtime_api::{Answer, RuntimeApi};
use shopmind_recs::{ItemIndex, ItemMeta};
use shopmind_storage::aws::{AwsNames, AwsStore};

const DIM: usize = 384;

struct Run {
    init: Duration,
    first_answer: Duration,
    warm: Duration,
}

fn synthetic_index(n: usize) -> ItemIndex {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let meta = (0..n)
        .map(|i| ItemMeta {
            item_id: format!("item-{i}"),
            title: format!("Synthetic item number {i}"),
            category: ["Women > Dresses", "Home > Lamps", "Garden"][i % 3].into(),
            brand: Some(format!("brand-{}", i % 97)),
            price: Some((i % 300) as f64),
            in_stock: i % 10 != 0,
        })
        .collect();
    let vectors = (0..n * DIM).map(|_| next()).collect();
    ItemIndex::new(&format!("cold-{n}"), "synthetic", DIM, meta, vectors).unwrap()
}

async fn start_once(names: (&str, &str), event: &Value) -> Result<(Run, Value), String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let endpoint = shopmind_e2e::aws_endpoint();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_recommend"))
        .envs(api.lambda_env("recommend"))
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("SHOPMIND_TABLE_PREFIX", names.0)
        .env("SHOPMIND_BUCKET", names.1)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the recommend binary: {e}"))?;
    let wait = |rx: tokio::sync::oneshot::Receiver<Answer>| async {
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(a)) => Ok(a),
            _ => Err(format!(
                "no answer from the function (init error: {:?})",
                api.init_error()
            )),
        }
    };
    let first = wait(api.invoke(event)).await;
    let first = match first {
        Ok(a) => a,
        Err(e) => {
            let _ = child.start_kill();
            let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
            return Err(format!("{e}\n{}", String::from_utf8_lossy(&out.stderr)));
        }
    };
    let warm_sent = Instant::now();
    let warm = wait(api.invoke(event)).await?;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let init = api.first_poll().map_or(Duration::ZERO, |t| t - started);
    assert!(first.ok && warm.ok, "{:?}", first.body);
    Ok((
        Run {
            init,
            first_answer: first.at - started,
            warm: warm.at - warm_sent,
        },
        first.body,
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn run(full: bool) {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/apigw/recommend-similar.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let sizes: &[usize] = if full { &[10_000, 100_000] } else { &[2_000] };
    let runs = if full { 5 } else { 1 };
    println!(
        "recommend cold start: process start → first answer (GET similar, index from emulator S3)"
    );
    println!(
        "| items | index MB | init (to first poll) | first answer | warm answer (baseline) | first / warm |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for &n in sizes {
        let unique = format!("cold{}-{n}", std::process::id());
        let (prefix, bucket) = (format!("{unique}-"), format!("bucket-{unique}"));
        let store = AwsStore::from_sdk_config(
            &shopmind_e2e::aws_config().await,
            AwsNames::new(&prefix, &bucket),
        );
        store.ensure_resources().await.unwrap();
        let index = synthetic_index(n);
        index.publish(&store, 1_795_845_600).await.unwrap();
        let mb = (n * DIM * 4) as f64 / 1e6;
        drop(index);
        let (mut init, mut first, mut warm) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (r, body) = start_once((&prefix, &bucket), &event).await.unwrap();
            // The answer is the real route's: 200 with ten similar items and their reasons.
            assert_eq!(body["statusCode"], 200, "{body}");
            let page: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
            let items = page["items"].as_array().unwrap();
            assert_eq!(items.len(), 10, "{page}");
            assert!(items.iter().all(|i| i["item_id"] != "item-42"));
            init.push(ms(r.init));
            first.push(ms(r.first_answer));
            warm.push(ms(r.warm));
        }
        let (i, f, w) = (median(init), median(first), median(warm));
        println!(
            "| {n} | {mb:.1} | {i:.1} ms | {f:.1} ms | {w:.2} ms | {:.0}× |",
            f / w
        );
    }
    if !full {
        println!("(smoke run; `cargo bench` for the figures, median of 5 starts per size)");
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(full));
}
