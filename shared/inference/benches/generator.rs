//! Generator speed: prefill and decode tokens/s of the Rust KV-cache loop against a Python
//! onnxruntime loop on the same ONNX and prompt, measured in the same run (greedy, one
//! prompt, decoding a fixed number of tokens whatever the model says, so both do equal work).
//! `cargo bench -p shopmind-inference --bench generator` (needs infra/scripts/setup.sh). With
//! `SHOPMIND_LLAMA_PYTHON` naming a Python that has llama-cpp-python, llama.cpp on the
//! original Q4_1 GGUF is measured too (see infra/scripts/llama_cpp_reference.py to build it).
//! Without `--bench` (as `cargo test --all-targets` runs it) a short smoke pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use shopmind_inference::{
    ChatMessage, GenerateOptions, Generator, OrtRuntime, VerifiedModel, ORT_LIBRARY_FILE,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"))
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let new_tokens = if full { 128 } else { 8 };
    let threads = if full { vec![1, 2] } else { vec![2] };
    let runtime =
        OrtRuntime::get_or_init(&models().join("onnxruntime").join(ORT_LIBRARY_FILE)).unwrap();
    println!("generator: SmolLM2-135M-Instruct ONNX (fp32, and the GGUF's 4-bit blocks in MatMulNBits), greedy, {new_tokens} new tokens");
    let llama = std::env::var_os("SHOPMIND_LLAMA_PYTHON").map(PathBuf::from);
    let mut peaks: Vec<String> = Vec::new();
    println!("| model | threads | Rust prefill tok/s | Python prefill tok/s | Rust decode tok/s | Python decode tok/s | decode Rust / Python | llama.cpp Q4_1 prefill / decode tok/s | decode Rust / llama.cpp |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let variants = [
        ("fp32", "smollm2-135m-instruct"),
        ("q4", "smollm2-135m-instruct-q4"),
    ];
    for (label, name) in variants {
        let dir = models().join(name);
        let model = VerifiedModel::open(&dir).unwrap();
        for &t in &threads {
            let g = Generator::load(runtime, &model, t).unwrap();
            let prompt = g
                .render_chat(&[ChatMessage {
                    role: "user".into(),
                    content: "Describe a linen summer dress for a product page in three sentences."
                        .into(),
                }])
                .unwrap();
            let prompt_tokens = g.encode(&prompt).unwrap().len();
            // Prefill alone: a full pass over the prompt.
            let ids = g.encode(&prompt).unwrap();
            g.last_logits(&ids, false).unwrap(); // warm-up
            let t0 = Instant::now();
            g.last_logits(&ids, false).unwrap();
            let prefill = t0.elapsed().as_secs_f64();
            // Prefill + decode; EOS is not a stop here so both sides decode the same count.
            let opts = GenerateOptions {
                max_new_tokens: new_tokens,
                ..GenerateOptions::default()
            };
            let t0 = Instant::now();
            let out = g.generate(&[&prompt], &opts, &mut |_, _| {}).unwrap();
            let total = t0.elapsed().as_secs_f64();
            let decoded = out[0].tokens.len().max(1);
            let decode = (total - prefill).max(1e-9);

            let file = std::env::temp_dir()
                .join(format!("shopmind-gen-prompt-{}.txt", std::process::id()));
            std::fs::write(&file, &prompt).unwrap();
            let python = std::env::var_os("SHOPMIND_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join(".venv/bin/python"));
            let mut baseline = |python: &Path, script: &str, model: &Path| {
                let out = Command::new(python)
                    .arg(
                        Path::new(env!("CARGO_MANIFEST_DIR"))
                            .join("benches")
                            .join(script),
                    )
                    .arg(model)
                    .arg(&file)
                    .arg(decoded.to_string())
                    .arg(t.to_string())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let rss = v["peak_rss_mb"].as_f64().unwrap_or(0.0);
                peaks.push(format!("{script} {label} {t} thread(s): {rss:.0} MB"));
                (
                    v["prefill_s"].as_f64().unwrap(),
                    v["decode_s"].as_f64().unwrap(),
                )
            };
            let (py_prefill, py_decode) = baseline(&python, "python_generator_baseline.py", &dir);
            let llama_cells = match &llama {
                Some(p) => {
                    let gguf = models().join(".downloads/SmolLM2-135M-Instruct.Q4_1.gguf");
                    let (pre, dec) = baseline(p, "llama_cpp_baseline.py", &gguf);
                    format!(
                        "{:.0} / {:.1} | {:.2}×",
                        prompt_tokens as f64 / pre,
                        decoded as f64 / dec,
                        (decoded as f64 / decode) / (decoded as f64 / dec)
                    )
                }
                None => "not measured | -".into(),
            };
            let rust_decode_tps = decoded as f64 / decode;
            let py_decode_tps = decoded as f64 / py_decode;
            println!(
            "| {label} | {t} | {:.0} | {:.0} | {rust_decode_tps:.1} | {py_decode_tps:.1} | {:.2}× | {llama_cells} |",
            prompt_tokens as f64 / prefill,
            prompt_tokens as f64 / py_prefill,
            rust_decode_tps / py_decode_tps
        );
            let _ = std::fs::remove_file(&file);
        }
    }
    // Peak resident memory: this process (every model and thread count loaded in turn, so an
    // upper bound for one generator) and each baseline process.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap_or("VmHWM: ? kB")
        .to_owned();
    println!("peak RSS: Rust bench process {hwm}; {}", peaks.join("; "));
}
