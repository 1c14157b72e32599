//! The indexer's catalog job on a synthetic catalog with the real default encoder (USE
//! multilingual, int8), on the embedded store: a full index (nothing to reuse: the baseline,
//! what every upload cost before text keys) against re-indexing the same catalog with 1% of
//! the items retitled, and unchanged, measured in the same run.
//!
//! `cargo bench -p shopmind-recs --bench catalog_index` runs 10k and 100k items
//! (`SHOPMIND_BENCH_CATALOG_ITEMS=10000,100000` to choose); without `--bench` (as `cargo test
//! --all-targets` runs it) it is a quick smoke pass on 300 items that checks the counts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::index_catalog;
use shopmind_storage::embedded::EmbeddedStore;

const NOUNS: [&str; 12] = [
    "lamp", "jacket", "kettle", "backpack", "chair", "scarf", "mug", "tent", "sneaker", "desk",
    "blanket", "speaker",
];
const ADJECTIVES: [&str; 10] = [
    "linen",
    "oak",
    "merino",
    "ceramic",
    "waterproof",
    "compact",
    "brass",
    "recycled",
    "cotton",
    "steel",
];
const CATEGORIES: [&str; 6] = [
    "Home > Lighting",
    "Women > Outerwear",
    "Kitchen > Kettles",
    "Outdoor > Bags",
    "Home > Furniture",
    "Audio > Speakers",
];
const WORDS: [&str; 16] = [
    "soft", "light", "durable", "everyday", "travel", "warm", "quiet", "made", "for", "with", "a",
    "the", "fits", "easy", "care", "long",
];

/// Item `i` as a catalog line: a title, category, brand, two attributes and a description
/// of 20–60 words (realistic lengths for the encoder), `edit` appended to the title.
fn line(i: usize, edit: &str) -> String {
    let pick = |n: usize, salt: usize| (i.wrapping_mul(2_654_435_761) >> salt) % n;
    let words = 20 + pick(41, 3);
    let description: Vec<&str> = (0..words)
        .map(|w| WORDS[(i * 31 + w * 7 + w * w) % WORDS.len()])
        .collect();
    let colour = ["black", "sand", "navy"][pick(3, 2)];
    serde_json::json!({
        "item_id": format!("item-{i}"),
        "title": format!("{} {} {i}{edit}", ADJECTIVES[pick(10, 5)], NOUNS[pick(12, 9)]),
        "category": CATEGORIES[pick(6, 13)],
        "brand": format!("Brand{}", pick(50, 17)),
        "price": 10.0 + (i % 200) as f64,
        "attributes": {"colour": colour, "size": pick(5, 7)},
        "description": description.join(" "),
    })
    .to_string()
}

fn catalog(n: usize, changed_every: Option<usize>) -> String {
    let mut out = String::new();
    for i in 0..n {
        let edited = changed_every.is_some_and(|k| i % k == 0);
        out.push_str(&line(i, if edited { " (new edition)" } else { "" }));
        out.push('\n');
    }
    out
}

fn main() {
    let full_run = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("SHOPMIND_BENCH_CATALOG_ITEMS") {
        Ok(v) => v.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        Err(_) if full_run => vec![10_000, 100_000],
        Err(_) => vec![300],
    };
    let models = std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
        .to_string_lossy()
        .into_owned();
    let cfg =
        InferenceConfig::from_lookup(move |k| (k == "SHOPMIND_MODELS_DIR").then(|| models.clone()))
            .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let encoder = LazyEncoder::new(cfg).get().await.unwrap();
        println!(
            "encoder {} ({} threads)",
            encoder.model_id(),
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        println!("items    | full index (baseline) | 1% retitled        | unchanged          | full / 1%");
        for n in sizes {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
            let run = |text: String, now: i64| {
                let store = store.clone();
                let encoder = encoder.clone();
                async move {
                    let t = Instant::now();
                    let r = index_catalog(store.as_ref(), &text, encoder, now, None, &mut |_, _| {})
                        .await
                        .unwrap();
                    (t.elapsed().as_secs_f64(), r)
                }
            };
            let (full, r0) = run(catalog(n, None), 1_795_000_000).await;
            assert_eq!((r0.items, r0.embedded, r0.reused), (n, n, 0));
            let (changed, r1) = run(catalog(n, Some(100)), 1_795_000_100).await;
            let retitled = n.div_ceil(100);
            assert_eq!((r1.embedded, r1.reused), (retitled, n - retitled));
            let (same, r2) = run(catalog(n, Some(100)), 1_795_000_200).await;
            assert_eq!((r2.embedded, r2.reused), (0, n));
            println!(
                "{n:>8} | {full:>16.2} s    | {changed:>8.2} s ({:>4} new) | {same:>8.2} s         | {:>7.1}x",
                r1.embedded,
                full / changed
            );
        }
    });
}
