//! Warm reply latency of `POST /v1/support/conversations/{id}/messages` through the router
//! (embedding, retrieval, intent, sentiment, sentence selection, two turns written to the
//! embedded store), without a generator. Baseline, measured in the same run: embedding the
//! same message alone, the part no pipeline can skip.
//!
//! The knowledge base: the 5 sample articles (`infra/samples/kb/`) plus 295 generated ones
//! (about 600 chunks), so the BM25 and dense scans are not trivially small.
//!
//!     cargo bench -p support --bench reply
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) a few requests check the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shopmind_inference::{LazyEncoder, ModelSource};
use shopmind_storage::embedded::EmbeddedStore;
use support::{router, LazySentiment, LiveKnowledge, SupportConfig, SupportState};
use tower::ServiceExt;

const QUESTIONS: &[&str] = &[
    "How many days do I have to return a dress?",
    "When will my parcel arrive?",
    "Do you accept PayPal?",
    "My headphones stopped working after a month, is there a warranty?",
    "Where can I see the status of my order?",
    "Is shipping free?",
    "How do I print the return label?",
    "When is my card charged?",
    "Can I get express delivery tomorrow?",
    "How long until I get my refund?",
];

fn generated_kb(n: usize) -> String {
    let words = [
        "parcel",
        "fabric",
        "voucher",
        "loyalty",
        "points",
        "store",
        "pickup",
        "size",
        "guide",
        "colour",
        "care",
        "wash",
        "battery",
        "charger",
        "assembly",
        "manual",
        "subscription",
        "newsletter",
        "student",
        "discount",
        "gift",
        "wrapping",
        "invoice",
        "company",
        "bulk",
        "order",
        "price",
        "match",
        "review",
        "photo",
    ];
    let mut s = 7u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = String::new();
    for i in 0..n {
        let mut sentence = |len: usize| {
            let mut t: Vec<&str> = (0..len)
                .map(|_| words[next() as usize % words.len()])
                .collect();
            t[0] = "Our";
            format!("{}.", t.join(" "))
        };
        let body = (0..6).map(|_| sentence(14)).collect::<Vec<_>>().join(" ")
            + "\n\n## Details\n"
            + &(0..6).map(|_| sentence(14)).collect::<Vec<_>>().join(" ");
        out.push_str(
            &json!({"id": format!("gen-{i}"), "title": format!("Topic {i}: {}", sentence(3)), "body": body})
                .to_string(),
        );
        out.push('\n');
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(full: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let models = shopmind_e2e::models_dir().to_string_lossy().into_owned();
    let encoder = Arc::new(LazyEncoder::new(shopmind_e2e::local_inference()));
    let enc = encoder.get().await.unwrap();
    let extra = generated_kb(if full { 295 } else { 20 });
    let kb = shopmind_e2e::seed_sample_kb(store.as_ref(), enc.clone(), Some(extra)).await;
    let config =
        SupportConfig::from_lookup(|k| (k == "SHOPMIND_MODELS_DIR").then(|| models.clone()))
            .unwrap();
    let app = router(SupportState {
        conversations: store.clone(),
        knowledge: Arc::new(LiveKnowledge::new(store.clone(), Duration::from_secs(60))),
        sentiment: Arc::new(LazySentiment::new(ModelSource::new(
            config.sentiment_model.clone(),
            "/tmp/unused",
        ))),
        encoder,
        generator: None,
        config: Arc::new(config),
        shoppers: Arc::new(shopmind_runtime::ShopperAuth::default()),
        handoffs: Arc::new(support::LogHandoffs),
    });
    let post = |uri: String, body: Value| {
        Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let n = if full { 300 } else { 6 };
    let (mut reply, mut base) = (Vec::new(), Vec::new());
    let mut id = String::new();
    for i in 0..n + 10 {
        // A new conversation every 10 messages: history stays short, as in real chats.
        if i % 10 == 0 {
            let res = app
                .clone()
                .oneshot(post("/v1/support/conversations".into(), json!({})))
                .await
                .unwrap();
            let v: Value =
                serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes())
                    .unwrap();
            id = v["conversation_id"].as_str().unwrap().to_owned();
        }
        let q = QUESTIONS[i % QUESTIONS.len()];
        let t = Instant::now();
        let res = app
            .clone()
            .oneshot(post(
                format!("/v1/support/conversations/{id}/messages"),
                json!({ "text": q }),
            ))
            .await
            .unwrap();
        let status = res.status();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let took = t.elapsed();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let t = Instant::now();
        let e = tokio::task::spawn_blocking({
            let enc = enc.clone();
            move || enc.embed(&[q])
        })
        .await
        .unwrap()
        .unwrap();
        let embed_only = t.elapsed();
        assert_eq!(e.len(), 1);
        if i >= 10 {
            // The first ten warm the caches (model, KB snapshot, sentiment head).
            reply.push(ms(took));
            base.push(ms(embed_only));
        }
    }
    let (r50, r99) = (pct(&mut reply, 0.5), pct(&mut reply, 0.99));
    let (b50, b99) = (pct(&mut base, 0.5), pct(&mut base, 0.99));
    println!(
        "support warm reply, no generator: {} articles, {} chunks, {n} messages",
        kb.articles, kb.chunks
    );
    println!("| path | p50 | p99 |\n| --- | --- | --- |");
    println!(
        "| full reply (route, retrieval, heads, 2 turns stored) | {r50:.1} ms | {r99:.1} ms |"
    );
    println!("| baseline: embedding the message alone | {b50:.1} ms | {b99:.1} ms |");
    println!("reply / baseline at p50: {:.2}x", r50 / b50);
}

fn main() {
    shopmind_e2e::block_on(run(std::env::args().any(|a| a == "--bench")));
}
