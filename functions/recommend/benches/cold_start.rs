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
use std::time::Duration;

use serde_json::Value;
use shopmind_e2e::runtime_api::cold_start;
use shopmind_recs::{ItemIndex, ItemMeta};

const DIM: usize = 384;

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
            // The sample event asks for items similar to lamp-desk.
            item_id: if i == 42 {
                "lamp-desk".into()
            } else {
                format!("item-{i}")
            },
            title: format!("Synthetic item number {i}"),
            category: ["Women > Dresses", "Home > Lamps", "Garden"][i % 3].into(),
            brand: Some(format!("brand-{}", i % 97)),
            price: Some((i % 300) as f64),
            in_stock: i % 10 != 0,
            created_at: None,
        })
        .collect();
    let vectors = (0..n * DIM).map(|_| next()).collect();
    ItemIndex::new(&format!("cold-{n}"), "synthetic", DIM, meta, vectors).unwrap()
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
    // `SHOPMIND_BENCH_COLD_ITEMS=1000000` for other sizes (a million rows is 1.5 GB of f32
    // in the emulator's memory, twice over while it is written).
    let chosen: Vec<usize> = std::env::var("SHOPMIND_BENCH_COLD_ITEMS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().parse().unwrap()).collect())
        .unwrap_or_default();
    let sizes: &[usize] = if !chosen.is_empty() {
        &chosen
    } else if full {
        &[10_000, 100_000]
    } else {
        &[2_000]
    };
    let runs = if full { 5 } else { 1 };
    println!(
        "recommend cold start: process start → first answer (GET similar, index from emulator S3)"
    );
    println!(
        "| items | index MB | init (to first poll) | first answer | warm answer (baseline) | first / warm |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for &n in sizes {
        let deployment = shopmind_e2e::EmulatorDeployment::create(&format!("cold{n}-")).await;
        let env = deployment.env(&[]);
        let index = synthetic_index(n);
        index
            .publish(&deployment.store, 1_795_845_600)
            .await
            .unwrap();
        let mb = (n * DIM * 4) as f64 / 1e6;
        drop(index);
        let (mut init, mut first, mut warm) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let r = cold_start(env!("CARGO_BIN_EXE_recommend"), "recommend", &env, &event)
                .await
                .unwrap();
            let body = &r.first_body;
            // The answer is the real route's: 200 with ten similar items and their reasons.
            assert_eq!(body["statusCode"], 200, "{body}");
            let page: Value = serde_json::from_str(body["body"].as_str().unwrap()).unwrap();
            let items = page["items"].as_array().unwrap();
            assert_eq!(items.len(), 10, "{page}");
            assert!(items.iter().all(|i| i["item_id"] != "lamp-desk"));
            init.push(ms(r.init));
            first.push(ms(r.first_answer));
            warm.push(ms(r.warm_answer));
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
    shopmind_e2e::block_on(run(std::env::args().any(|a| a == "--bench")));
}
