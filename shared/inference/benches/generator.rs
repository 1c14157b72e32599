//! Generator speed and memory: prefill and decode tokens/s and peak RSS of the Rust KV-cache
//! loop against llama.cpp (llama-cpp-python) on the same GGUF the ONNX was converted from, and
//! against a Python onnxruntime loop on the same ONNX, all in the same run: greedy, one chat
//! prompt, a fixed number of new tokens whatever the model says, so every engine does equal
//! work. Each engine runs in its own process, so each peak RSS is that engine's alone.
//!
//! `cargo bench -p shopmind-inference --bench generator` (needs infra/scripts/setup.sh); with
//! `SHOPMIND_LLAMA_PYTHON` naming a Python that has llama-cpp-python (see
//! infra/scripts/llama_cpp_reference.py) llama.cpp is measured too.
//! `SHOPMIND_BENCH_MODELS=qwen` or `=smollm2` picks one model. Without `--bench` (as
//! `cargo test --all-targets` runs it) a short smoke pass on the small model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use shopmind_inference::{
    ChatMessage, GenerateOptions, Generator, OrtRuntime, VerifiedModel, ORT_LIBRARY_FILE,
};

/// (label, model directory, GGUF it was converted from)
const MODELS: [(&str, &str, &str); 2] = [
    (
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default; int8 activations)",
        "qwen2.5-coder-1.5b-instruct",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ),
    (
        "SmolLM2-135M-Instruct Q4_1 (fp32 activations)",
        "smollm2-135m-instruct-q4",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
];
const PROMPT: &str = "Describe a linen summer dress for a product page in three sentences.";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"))
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One engine run, as JSON: {"prefill_s", "decode_s", "prompt_tokens", "peak_rss_mb"}.
#[derive(Debug)]
struct Run {
    prefill_s: f64,
    decode_s: f64,
    prompt_tokens: usize,
    new_tokens: usize,
    rss_mb: f64,
}

impl Run {
    fn parse(stdout: &[u8]) -> Self {
        let v: serde_json::Value = serde_json::from_slice(stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(stdout)));
        Self {
            prefill_s: v["prefill_s"].as_f64().unwrap(),
            decode_s: v["decode_s"].as_f64().unwrap(),
            prompt_tokens: v["prompt_tokens"].as_u64().unwrap() as usize,
            new_tokens: v["new_tokens"].as_u64().unwrap() as usize,
            rss_mb: v["peak_rss_mb"].as_f64().unwrap_or(0.0),
        }
    }
}

/// The child side: load one model, prefill once to warm up, then time a prefill and
/// `new_tokens` - 1 cached steps (the generator's own timing), and print the JSON line.
fn child(dir: &Path, prompt_file: &Path, new_tokens: usize, threads: usize) {
    let runtime =
        OrtRuntime::get_or_init(&models().join("onnxruntime").join(ORT_LIBRARY_FILE)).unwrap();
    let g = Generator::load(runtime, &VerifiedModel::open(dir).unwrap(), threads).unwrap();
    let prompt = std::fs::read_to_string(prompt_file).unwrap();
    let ids = g.encode(&prompt).unwrap();
    g.last_logits(&ids, false).unwrap(); // warm-up
    let opts = GenerateOptions {
        max_new_tokens: new_tokens,
        ..GenerateOptions::default()
    };
    let out = g.generate(&[&prompt], &opts, &mut |_, _| {}).unwrap();
    // A model may end its answer (EOS) before `new_tokens`: the parent then runs the other
    // engines for the same count, so all do equal work.
    let n = out[0].tokens.len().max(2);
    println!(
        "{}",
        serde_json::json!({
            "prefill_s": out[0].timing.prefill_ms / 1e3,
            // n - 1 cached steps follow the prefill (its logits give the first token)
            "decode_s": out[0].timing.decode_ms / 1e3 * n as f64 / (n - 1) as f64,
            "new_tokens": n,
            "prompt_tokens": ids.len(),
            "peak_rss_mb": peak_rss_mb(),
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let a = &args[at + 1..];
        child(
            Path::new(&a[0]),
            Path::new(&a[1]),
            a[2].parse().unwrap(),
            a[3].parse().unwrap(),
        );
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let new_tokens = if full { 64 } else { 8 };
    let threads = if full { vec![1, 2] } else { vec![2] };
    let pick = std::env::var("SHOPMIND_BENCH_MODELS").unwrap_or_default();
    let llama = std::env::var_os("SHOPMIND_LLAMA_PYTHON").map(PathBuf::from);
    let python = std::env::var_os("SHOPMIND_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    let me = std::env::current_exe().unwrap();
    println!("generator: greedy, one chat prompt, up to {new_tokens} new tokens (every engine the count the Rust run made); each engine in its own process");
    println!("| model | threads | prompt tokens | Rust prefill tok/s | llama.cpp prefill tok/s | prefill Rust / llama.cpp | Rust decode tok/s | llama.cpp decode tok/s | decode Rust / llama.cpp | Python ORT decode tok/s | peak RSS MB Rust / llama.cpp |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (label, name, gguf) in MODELS {
        let small = name.starts_with("smollm2");
        // The smoke pass runs the small model only; SHOPMIND_BENCH_MODELS picks one.
        let wanted = match pick.as_str() {
            "qwen" => !small,
            "smollm2" => small,
            _ => full || small,
        };
        if !wanted {
            continue;
        }
        let dir = models().join(name);
        let prompt = {
            // The chat template alone (no weights needed): a session here would cost a load.
            let config: shopmind_inference::GenerationConfig =
                serde_json::from_slice(&std::fs::read(dir.join("generation.json")).unwrap())
                    .unwrap();
            shopmind_inference::render_chat(
                config.chat_template.as_deref().unwrap(),
                &[ChatMessage {
                    role: "user".into(),
                    content: PROMPT.into(),
                }],
            )
            .unwrap()
        };
        let gguf_path = models().join(".downloads").join(gguf);
        assert!(
            llama.is_none() || gguf_path.is_file(),
            "{} is missing (set-up deletes the default's GGUF once its conversion is checked): \
             `.venv/bin/python infra/scripts/fetch_generator.py --gguf {name}` fetches it",
            gguf_path.display()
        );
        let file =
            std::env::temp_dir().join(format!("shopmind-gen-prompt-{}.txt", std::process::id()));
        std::fs::write(&file, &prompt).unwrap();
        for &t in &threads {
            let run = |program: &Path, pre: &[&std::ffi::OsStr], model: &Path, count: usize| {
                let out = Command::new(program)
                    .args(pre)
                    .arg(model)
                    .arg(&file)
                    .arg(count.to_string())
                    .arg(t.to_string())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                Run::parse(&out.stdout)
            };
            let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches");
            let rust = run(&me, &["--child".as_ref()], &dir, new_tokens);
            // What the Rust run generated (fewer when the model ended its answer).
            let new_tokens = rust.new_tokens;
            let py = run(
                &python,
                &[bench_dir.join("python_generator_baseline.py").as_os_str()],
                &dir,
                new_tokens,
            );
            let tps = |n: usize, s: f64| n as f64 / s.max(1e-9);
            let (r_pre, r_dec) = (
                tps(rust.prompt_tokens, rust.prefill_s),
                tps(new_tokens, rust.decode_s),
            );
            let cells = match &llama {
                Some(p) => {
                    let l = run(
                        p,
                        &[bench_dir.join("llama_cpp_baseline.py").as_os_str()],
                        &gguf_path,
                        new_tokens,
                    );
                    let (l_pre, l_dec) = (
                        tps(l.prompt_tokens, l.prefill_s),
                        tps(new_tokens, l.decode_s),
                    );
                    [
                        format!("{l_pre:.0}"),
                        format!("{:.2}×", r_pre / l_pre),
                        format!("{r_dec:.1}"),
                        format!("{l_dec:.1}"),
                        format!("{:.2}×", r_dec / l_dec),
                        format!(
                            "{:.0} / {:.0} ({:.2}×)",
                            rust.rss_mb,
                            l.rss_mb,
                            rust.rss_mb / l.rss_mb
                        ),
                    ]
                }
                None => [
                    "-".into(),
                    "-".into(),
                    format!("{r_dec:.1}"),
                    "-".into(),
                    "-".into(),
                    format!("{:.0} / -", rust.rss_mb),
                ],
            };
            println!(
                "| {label} | {t} | {} | {r_pre:.0} | {} | {} | {} | {} | {} | {:.1} | {} |",
                rust.prompt_tokens,
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4],
                tps(new_tokens, py.decode_s),
                cells[5]
            );
        }
        let _ = std::fs::remove_file(&file);
    }
}
