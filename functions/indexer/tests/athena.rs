//! The signals job in Athena mode against the AWS emulator: the indexer starts the query on
//! the emulator's Athena API, waits for it, reads the CSV result from S3 and publishes.
//!
//! The emulator runs no SQL. The result it hands back is what DuckDB computes from the same
//! statement over the same archive files (`infra/scripts/duckdb_signals.py`), queued on the
//! emulator before the job starts. So this checks the client, the statement and the result
//! reading together, against the Rust aggregation of the same window.
//!
//! One test, in steps: the emulator's Athena settings are global to the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexer::athena::{AthenaConfig, AthenaSql};
use indexer::{Handler, Job};
use serde_json::{json, Value};
use shopmind_inference::LazyEncoder;
use shopmind_profiles::EventType;
use shopmind_recs::{
    archive_object, build_signals, read_window, signals_sql, Signals, SignalsConfig, SqlEngine,
    TimedEvent,
};
use shopmind_storage::BlobStore;

/// POSTs JSON to the emulator's control API (loopback, HTTP/1.1, one request).
fn moto_api(path: &str, body: &Value) {
    let url = shopmind_e2e::aws_endpoint();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let body = body.to_string();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split_whitespace().nth(1).unwrap_or("");
    assert!(status.starts_with("20"), "{path}: {answer}");
}

/// Three days of shoppers ending before `now`, in two objects a day (one event redelivered).
fn archive(now: i64) -> Vec<(String, Vec<u8>)> {
    let kinds = [
        EventType::View,
        EventType::View,
        EventType::AddToCart,
        EventType::Purchase,
    ];
    let today = now.div_euclid(86_400);
    let mut by_key: std::collections::BTreeMap<String, Vec<TimedEvent>> = Default::default();
    for u in 0..45i64 {
        let day = today - 2 + u % 3;
        let mut at = day * 86_400 + 3_600 * (1 + u % 12) + 97 * u;
        for k in 0..2 + u % 5 {
            let item = format!("sku-{}", (u * 7 + k * k * 3) % 17);
            let ev = TimedEvent::on_item(
                format!("e{u}-{k}"),
                format!("shopper-{}", u % 30),
                kinds[((u + k) % 4) as usize],
                item,
                at.min(now - 1),
            );
            let date = shopmind_recs::date_of(ev.at.div_euclid(86_400));
            for copy in 0..1 + usize::from(k == 0 && u % 10 == 0) {
                by_key
                    .entry(format!(
                        "events/dt={date}/batch-{}.jsonl",
                        (u + copy as i64) % 2
                    ))
                    .or_default()
                    .push(ev.clone());
            }
            at += [40, 600, 2_400][(k % 3) as usize];
        }
    }
    by_key
        .into_iter()
        .map(|(k, evs)| (k, archive_object(&evs).unwrap()))
        .collect()
}

/// DuckDB's result of `sql` over the archive written under `dir`, as the emulator's rows.
fn duckdb_rows(dir: &Path, sql: &str) -> Vec<Value> {
    let csv = shopmind_e2e::duckdb_signals(dir, sql).csv;
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&csv[..])
        .records()
        .map(|r| {
            let cells: Vec<Value> = r
                .unwrap()
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        json!({})
                    } else {
                        json!({ "VarCharValue": v })
                    }
                })
                .collect();
            json!({ "Data": cells })
        })
        .collect()
}

#[tokio::test]
async fn the_signals_job_on_athena_publishes_what_the_window_would() {
    let store = Arc::new(shopmind_storage::conformance::emulator_store().await);
    let bucket = store.names().bucket.clone();
    let now = shopmind_storage::now_secs();
    let files = tempfile::tempdir().unwrap();
    for (key, body) in archive(now) {
        store
            .put_blob(&key, Bytes::from(body.clone()))
            .await
            .unwrap();
        let path = files.path().join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let conf = shopmind_e2e::aws_config().await;
    let athena = AthenaSql::new(
        aws_sdk_athena::Client::new(&conf),
        store.clone(),
        &bucket,
        AthenaConfig {
            workgroup: "primary".into(),
            database: "shopmind".into(),
            table: "shopmind.events".into(),
            bucket: bucket.clone(),
            prefix: "athena-results/".into(),
            timeout: Duration::from_secs(20),
        },
    )
    .unwrap();
    let cfg = SignalsConfig {
        window_days: 3,
        ..SignalsConfig::default()
    };

    // A query whose result never reaches the bucket fails the job with that location.
    let e = athena.query("SELECT 1").await.unwrap_err().to_string();
    assert!(
        e.contains(&format!("no result at s3://{bucket}/athena-results/")),
        "{e}"
    );

    // A query that does not finish in time is stopped and fails the job.
    moto_api(
        "/moto-api/state-manager/set-transition",
        &json!({"model_name": "athena::execution", "transition": {"progression": "manual", "times": 1000}}),
    );
    let slow = AthenaSql {
        config: AthenaConfig {
            timeout: Duration::from_millis(700),
            ..athena.config.clone()
        },
        ..athena.clone()
    };
    let e = slow.query("SELECT 1").await.unwrap_err().to_string();
    moto_api(
        "/moto-api/state-manager/unset-transition",
        &json!({"model_name": "athena::execution"}),
    );
    assert!(
        e.contains("did not finish within 0.7 s") && e.contains("stopped"),
        "{e}"
    );
    let stopped = athena
        .client
        .list_query_executions()
        .send()
        .await
        .unwrap()
        .query_execution_ids
        .unwrap_or_default();
    let mut cancelled = 0;
    for id in stopped {
        let q = athena
            .client
            .get_query_execution()
            .query_execution_id(id)
            .send()
            .await
            .unwrap();
        let state = q
            .query_execution
            .and_then(|q| q.status)
            .and_then(|s| s.state);
        cancelled +=
            usize::from(state == Some(aws_sdk_athena::types::QueryExecutionState::Cancelled));
    }
    assert!(cancelled >= 1, "the timed-out query was stopped");

    // The job: DuckDB's result of the job's statement is what the emulator hands back.
    let rows = duckdb_rows(
        files.path(),
        &signals_sql("shopmind.events", now, &cfg).unwrap(),
    );
    assert!(rows.len() > 20, "{} rows", rows.len());
    moto_api(
        "/moto-api/static/athena/query-results",
        &json!({"results": [{"rows": rows, "column_info": []}]}),
    );
    let handler = Handler {
        blobs: store.clone(),
        encoder: Arc::new(LazyEncoder::new(shopmind_e2e::local_inference())),
        signals: cfg.clone(),
        signals_sql: Some(Arc::new(athena.clone()) as Arc<dyn SqlEngine>),
        shards: None,
        shard_texts: shopmind_recs::DEFAULT_SHARD_TEXTS,
    };
    let report = handler.run(Job::Signals).await.unwrap();
    let r = &report["signals"];
    assert_eq!(r["engine"], "sql", "{report}");
    assert!(
        r["query"]["result_bytes"].as_u64().unwrap() > 100,
        "{report}"
    );
    assert!(
        r.get("days_reused").is_none(),
        "no window stats in SQL mode: {report}"
    );

    let version = Signals::latest_version(store.as_ref())
        .await
        .unwrap()
        .unwrap();
    let published = Signals::load(store.as_ref(), &version).await.unwrap();
    let today = now.div_euclid(86_400);
    let (events, _) = read_window(store.as_ref(), today - 2..=today)
        .await
        .unwrap();
    let rust = build_signals(&events, &|_| None, now, &cfg);
    assert!(rust.sessions > 20 && !rust.neighbours.is_empty());
    assert_eq!(
        (published.events, published.sessions),
        (rust.events, rust.sessions)
    );
    // Scores to 1e-12: the published version went through JSON, which need not round-trip
    // the last bit of an f64.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
    assert_eq!(
        published.neighbours.keys().collect::<Vec<_>>(),
        rust.neighbours.keys().collect::<Vec<_>>()
    );
    for (item, list) in &rust.neighbours {
        let got = &published.neighbours[item];
        assert_eq!(got.len(), list.len(), "{item}");
        for (p, r) in got.iter().zip(list) {
            assert!(
                p.item_id == r.item_id && p.relation == r.relation && close(p.score, r.score),
                "{item}: {p:?} {r:?}"
            );
        }
    }
    assert_eq!(published.popular.len(), rust.popular.len());
    for (p, r) in published.popular.iter().zip(&rust.popular) {
        assert!(
            p.item_id == r.item_id && close(p.score, r.score),
            "{p:?} {r:?}"
        );
    }
}
