//! Load and abuse: `shopmind serve --demo` (release build, composer-only copy) on loopback,
//! driven by concurrent clients for a fixed count of requests — recommendations, similar
//! items, support messages, embeddings, staff copy calls, and a share of abuse (malformed
//! JSON, wrong fields, oversized bodies, unknown routes, missing or wrong staff tokens).
//! Reports requests/s, p50/p99 latency and status counts, and fails on any 5xx or on abuse
//! that was not refused with a 4xx.
//!
//! `cargo bench -p shopmind-local --bench load` (20,000 requests, 32 clients); without
//! `--bench` (as `cargo test --all-targets` runs it) 400 requests, 8 clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const TOKEN: &str = "load-test-staff-token";

/// Kind name, whether it is abuse, status (0: no response), latency.
type Outcome = (&'static str, bool, u16, Duration);

/// One request kind: how to build it, and whether it is abuse (must be refused with a 4xx).
struct Kind {
    name: &'static str,
    abuse: bool,
    build: fn(&str, usize) -> Request<Full<Bytes>>,
}

fn get(uri: String) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn post(uri: String, body: impl Into<Bytes>, token: Option<&str>) -> Request<Full<Bytes>> {
    let mut r = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(Full::new(body.into())).unwrap()
}

const ITEMS: [&str; 3] = ["dress-linen", "dress-wrap", "dress-knit"];

/// Conversations made before the run; message `i` goes to conversation `i % len`.
/// Each with the guest token its create call issued.
static CONVERSATIONS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

const QUESTIONS: [&str; 3] = [
    "How many days do I have to return a dress?",
    "Where is my order 123456?",
    "How long does delivery take?",
];

fn kinds() -> Vec<(Kind, usize)> {
    vec![
        (
            Kind {
                name: "similar",
                abuse: false,
                build: |a, i| {
                    get(format!(
                        "http://{a}/v1/items/{}/similar?limit=5",
                        ITEMS[i % 3]
                    ))
                },
            },
            25,
        ),
        (
            Kind {
                name: "for-you",
                abuse: false,
                build: |a, i| {
                    get(format!(
                        "http://{a}/v1/users/u{}/recommendations?limit=5",
                        i % 50
                    ))
                },
            },
            20,
        ),
        (
            Kind {
                name: "support-message",
                abuse: false,
                build: |a, i| {
                    let ids = CONVERSATIONS.get().unwrap();
                    let (id, guest) = &ids[i % ids.len()];
                    post(
                        format!("http://{a}/v1/support/conversations/{id}/messages"),
                        format!(r#"{{"text": "{}"}}"#, QUESTIONS[i % QUESTIONS.len()]),
                        Some(guest),
                    )
                },
            },
            10,
        ),
        (
            Kind {
                name: "embed",
                abuse: false,
                build: |a, i| {
                    post(
                        format!("http://{a}/v1/embeddings"),
                        format!(r#"{{"texts": ["linen dress {i}", "where is my order"]}}"#),
                        None,
                    )
                },
            },
            15,
        ),
        (
            Kind {
                name: "copy",
                abuse: false,
                build: |a, i| {
                    post(
                        format!("http://{a}/v1/copy"),
                        format!(
                            r#"{{"product": {{"id": "p{}", "title": "Linen dress", "attributes": {{"material": "linen"}}, "selling_points": ["Airy cut"]}}, "channel": "sms", "locale": "en"}}"#,
                            i % 20
                        ),
                        Some(TOKEN),
                    )
                },
            },
            5,
        ),
        (
            Kind {
                name: "malformed-json",
                abuse: true,
                build: |a, _| {
                    post(
                        format!("http://{a}/v1/embeddings"),
                        r#"{"texts": ["unterminated"#,
                        None,
                    )
                },
            },
            6,
        ),
        (
            Kind {
                name: "wrong-fields",
                abuse: true,
                build: |a, _| {
                    post(
                        format!("http://{a}/v1/copy"),
                        r#"{"product": {"id": "x"}, "channel": "fax", "locale": "en"}"#,
                        Some(TOKEN),
                    )
                },
            },
            5,
        ),
        (
            Kind {
                name: "oversized",
                abuse: true,
                build: |a, _| {
                    // The server answers 413 before reading the body and closes the
                    // connection; the client must not pool it for the next request.
                    let mut r = post(
                        format!("http://{a}/v1/embeddings"),
                        format!(r#"{{"texts": ["{}"]}}"#, "x".repeat(300 * 1024)),
                        None,
                    );
                    r.headers_mut().insert(
                        hyper::header::CONNECTION,
                        hyper::header::HeaderValue::from_static("close"),
                    );
                    r
                },
            },
            2,
        ),
        (
            Kind {
                name: "no-token",
                abuse: true,
                build: |a, _| get(format!("http://{a}/v1/copy/drafts")),
            },
            4,
        ),
        (
            Kind {
                name: "unknown-route",
                abuse: true,
                build: |a, i| get(format!("http://{a}/v1/nothing/{i}")),
            },
            4,
        ),
        (
            Kind {
                name: "bad-limit",
                abuse: true,
                build: |a, _| get(format!("http://{a}/v1/items/dress-linen/similar?limit=-3")),
            },
            4,
        ),
    ]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (total, clients) = if full { (20_000, 32) } else { (400, 8) };
    let data = tempfile::tempdir().unwrap();
    let models = std::env::var_os("SHOPMIND_MODELS_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"),
        Into::into,
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_shopmind"))
        .args(["serve", "--demo", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("SHOPMIND_MODELS_DIR", models)
        .env("SHOPMIND_STAFF_TOKEN", TOKEN)
        .env("SHOPMIND_COPY_GENERATOR", "off")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.strip_prefix("shopmind listening on http://") {
            break rest.trim().to_owned();
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mix: Vec<(Kind, usize)> = kinds();
    let weights: usize = mix.iter().map(|(_, w)| w).sum();
    let mix = Arc::new(mix);
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    rt.block_on(async {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut ids = Vec::new();
        for _ in 0..64 {
            let resp = client
                .request(post(
                    format!("http://{addr}/v1/support/conversations"),
                    "{}",
                    None,
                ))
                .await
                .unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            ids.push((
                v["conversation_id"].as_str().unwrap().to_owned(),
                v["guest_token"].as_str().unwrap().to_owned(),
            ));
        }
        CONVERSATIONS.set(ids).unwrap();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (client, mix, next, results, addr) = (
                    client.clone(),
                    mix.clone(),
                    next.clone(),
                    results.clone(),
                    addr.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            return;
                        }
                        // Deterministic interleaving of the mix by weight.
                        let mut slot = (i * 7919) % weights;
                        let (kind, _) = mix
                            .iter()
                            .find(|(_, w)| {
                                if slot < *w {
                                    true
                                } else {
                                    slot -= w;
                                    false
                                }
                            })
                            .unwrap();
                        let t0 = Instant::now();
                        let status = match client.request((kind.build)(&addr, i)).await {
                            Ok(resp) => {
                                let s = resp.status().as_u16();
                                let _ = resp.into_body().collect().await;
                                s
                            }
                            Err(_) => 0,
                        };
                        results
                            .lock()
                            .unwrap()
                            .push((kind.name, kind.abuse, status, t0.elapsed()));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let results = results.lock().unwrap();
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.3).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let mut by_kind: BTreeMap<&str, (BTreeMap<u16, usize>, Vec<Duration>)> = BTreeMap::new();
    for (name, _, status, took) in results.iter() {
        let e = by_kind.entry(name).or_default();
        *e.0.entry(*status).or_default() += 1;
        e.1.push(*took);
    }
    let server_errors = results.iter().filter(|r| r.2 >= 500 || r.2 == 0).count();
    let unrefused = results
        .iter()
        .filter(|r| r.1 && !(400..500).contains(&r.2))
        .count();
    println!(
        "load: {} requests, {clients} clients, {secs:.1} s: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms; 5xx or failed: {server_errors}; abuse not refused with 4xx: {unrefused}",
        results.len(),
        results.len() as f64 / secs,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    for (name, (statuses, took)) in &mut by_kind {
        took.sort();
        let p99 = took[((took.len() as f64 * 0.99) as usize).min(took.len() - 1)];
        println!(
            "  {name}: statuses {statuses:?}, p99 {:.1} ms",
            p99.as_secs_f64() * 1e3
        );
    }
    assert_eq!(server_errors, 0, "5xx or failed requests under load");
    assert_eq!(unrefused, 0, "abuse that was not refused with a 4xx");
}
