//! Encoder throughput: Rust against two Python onnxruntime baselines on the same model, in the
//! same run. `cargo bench -p shopmind-inference --bench encoder` (needs infra/scripts/setup.sh).
//!
//! 2,000 product-like sentences of mixed length, batch 32, 1 and 2 intra-op threads. Prints
//! sentences/s, the ratios, and where the Rust time goes (tokenize / pack / ONNX Runtime / pool).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench binary may stop on a broken set-up

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use shopmind_inference::{
    EncodeStats, Encoder, EncoderOptions, OrtRuntime, VerifiedModel, DEFAULT_ENCODER_DIR,
    ORT_LIBRARY_FILE,
};

const SENTENCES: usize = 2000;
/// Under `cargo test` (no `--bench` argument) the bench runs a small smoke pass so CI keeps it
/// working without spending minutes on it.
const SMOKE_SENTENCES: usize = 96;

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}
const BATCH: usize = 32;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Deterministic product-like text: 60% short titles, 40% descriptions of 30–150 words.
fn sentences() -> Vec<String> {
    const ADJ: &[&str] = &[
        "soft",
        "waterproof",
        "organic",
        "lightweight",
        "vintage",
        "slim-fit",
        "durable",
        "ergonomic",
        "handmade",
        "breathable",
        "insulated",
        "stainless",
    ];
    const NOUN: &[&str] = &[
        "jacket",
        "sneakers",
        "backpack",
        "coffee grinder",
        "yoga mat",
        "desk lamp",
        "wool scarf",
        "water bottle",
        "phone case",
        "linen shirt",
        "office chair",
        "cast-iron pan",
    ];
    const FILL: &[&str] = &[
        "made from",
        "recycled materials",
        "with a",
        "two-year warranty",
        "designed for",
        "everyday use",
        "and",
        "easy care",
        "machine washable",
        "available in",
        "five colours",
        "ships within",
        "two days",
        "fits true to size",
        "the perfect gift",
        "for outdoor adventures",
        "quiet motor",
        "USB-C charging",
    ];
    let mut state: u64 = 0x5eed_1234_abcd_0001;
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % n
    };
    let n = if full_run() {
        SENTENCES
    } else {
        SMOKE_SENTENCES
    };
    (0..n)
        .map(|_| {
            let title = format!(
                "{} {} {}",
                ADJ[next(ADJ.len())],
                ADJ[next(ADJ.len())],
                NOUN[next(NOUN.len())]
            );
            if next(10) < 6 {
                title
            } else {
                let words = 30 + next(120);
                let mut s = title;
                s.push('.');
                for _ in 0..words / 2 {
                    s.push(' ');
                    s.push_str(FILL[next(FILL.len())]);
                }
                s.push('.');
                s
            }
        })
        .collect()
}

fn python() -> PathBuf {
    std::env::var_os("SHOPMIND_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"))
}

fn python_baseline(model: &Path, sentences: &Path, threads: usize, mode: &str) -> f64 {
    let out = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_baseline.py"))
        .arg(model)
        .arg(sentences)
        .arg(threads.to_string())
        .arg(BATCH.to_string())
        .arg(mode)
        .output()
        .expect("python (run infra/scripts/setup.sh)");
    assert!(
        out.status.success(),
        "python baseline failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["sentences_per_s"].as_f64().unwrap()
}

fn rust(model: &VerifiedModel, texts: &[String], threads: usize) -> (f64, EncodeStats) {
    let models = std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    let runtime =
        OrtRuntime::get_or_init(&models.join("onnxruntime").join(ORT_LIBRARY_FILE)).unwrap();
    let enc = Encoder::load(
        runtime,
        model,
        &EncoderOptions {
            intra_threads: threads,
            batch_size: BATCH,
        },
    )
    .unwrap();
    enc.embed(&texts[..64]).unwrap(); // warm-up
    let t0 = Instant::now();
    let (_, stats) = enc.embed_with_stats(texts, BATCH).unwrap();
    (texts.len() as f64 / t0.elapsed().as_secs_f64(), stats)
}

fn main() {
    let models = std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"));
    let texts = sentences();
    let file = std::env::temp_dir().join(format!(
        "shopmind-bench-sentences-{}.json",
        std::process::id()
    ));
    std::fs::write(&file, serde_json::to_vec(&texts).unwrap()).unwrap();
    // The default (multilingual) encoder and the English MiniLM it replaced, each against
    // the same Python pipelines on its own graph.
    for name in [DEFAULT_ENCODER_DIR, "all-minilm-l6-v2-int8"] {
        let model_dir = models.join(name);
        let model = VerifiedModel::open(&model_dir).expect("model (run infra/scripts/setup.sh)");

        println!(
            "encoder benchmark: {} sentences, batch {BATCH}, model {}",
            texts.len(),
            model.manifest.name
        );
        println!(
            "{:>7} | {:>12} | {:>16} | {:>16} | {:>8} | {:>8}",
            "threads", "rust sent/s", "py sorted sent/s", "py fixed128 s/s", "rust/(b)", "rust/(a)"
        );
        let mut breakdowns = Vec::new();
        for threads in [1, 2] {
            let (rust_sps, stats) = rust(&model, &texts, threads);
            let sorted = python_baseline(&model_dir, &file, threads, "sorted");
            let fixed = python_baseline(&model_dir, &file, threads, "fixed128");
            println!(
                "{threads:>7} | {rust_sps:>12.1} | {sorted:>16.1} | {fixed:>16.1} | {:>7.2}x | {:>7.2}x",
                rust_sps / sorted,
                rust_sps / fixed
            );
            breakdowns.push((threads, stats));
        }
        println!("\nwhere the Rust time goes (one pass over all sentences):");
        for (threads, s) in breakdowns {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            let outside = ms(s.tokenize) + ms(s.pack) + ms(s.pool);
            println!(
                "  {threads} thread(s): tokenize {:.1} ms, pack {:.1} ms, ONNX Runtime {:.1} ms, pool+copy {:.1} ms; outside ORT = {:.2}% of ORT time; {} batches, {} padded token slots",
                ms(s.tokenize), ms(s.pack), ms(s.run), ms(s.pool),
                100.0 * outside / ms(s.run), s.batches, s.padded_tokens
            );
        }
    }
    let _ = std::fs::remove_file(&file);
}
