//! `shopmind generate` (try a model: stream its answer, then one line of speed figures) and
//! `shopmind models convert` (a GGUF a shop brings → a model directory with its manifest).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use shopmind_inference::{
    ChatMessage, Decoding, GenerateOptions, InferenceConfig, LazyGenerator, ModelRef,
};

use crate::CliError;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A model directory or `s3://bucket/prefix` (default: SHOPMIND_GENERATOR_MODEL, else the
    /// default generator under SHOPMIND_MODELS_DIR).
    #[arg(long)]
    model: Option<String>,
    /// ONNX Runtime threads (default: SHOPMIND_INTRA_THREADS, else every CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop after this many new tokens.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Send PROMPT as a user message through the model's chat template (otherwise it is
    /// the raw prompt text).
    #[arg(long)]
    chat: bool,
    /// A system message (with --chat).
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// Sample at this temperature (seeded; top-p 0.9) instead of greedy decoding.
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run every prompt of a JSONL file instead (one object per line: `id`, `prompt`,
    /// optional `system`; --chat applies to each) and write one JSON line per prompt to
    /// stdout (`id`, `text`, `finish`, `generated_tokens`): the model loads once.
    #[arg(long, conflicts_with = "prompt")]
    batch: Option<PathBuf>,
    /// With --batch: how many prompts decode together (rows of one batch).
    #[arg(long, default_value_t = 4, requires = "batch")]
    rows: usize,
    #[arg(required_unless_present = "batch")]
    prompt: Option<String>,
}

/// One line of a `--batch` file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchPrompt {
    id: serde_json::Value,
    prompt: String,
    #[serde(default)]
    system: Option<String>,
}

fn chat_prompt(
    generator: &shopmind_inference::Generator,
    system: Option<String>,
    user: String,
) -> Result<String, CliError> {
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(ChatMessage {
            role: "system".into(),
            content: system,
        });
    }
    messages.push(ChatMessage {
        role: "user".into(),
        content: user,
    });
    Ok(generator.render_chat(&messages)?)
}

pub async fn generate(args: GenerateArgs, inference: InferenceConfig) -> Result<(), CliError> {
    let model_ref = match &args.model {
        Some(m) => m.parse::<ModelRef>()?,
        None => inference.generator_model.clone(),
    };
    let threads = args.threads.unwrap_or(inference.encoder.intra_threads);
    if threads == 0 || args.max_tokens == 0 || args.rows == 0 {
        return Err(CliError::Generate(
            "--threads, --max-tokens and --rows must be at least 1".into(),
        ));
    }
    // Read the whole batch before the model loads, so a bad line fails fast.
    let batch = match &args.batch {
        Some(path) => Some(read_batch(path, args.chat)?),
        None => None,
    };
    let loading = Instant::now();
    let mut config = inference;
    config.generator_model = model_ref;
    config.encoder.intra_threads = threads;
    let generator = LazyGenerator::new(&config).get().await?;
    let load_ms = loading.elapsed().as_secs_f64() * 1e3;

    let opts = GenerateOptions {
        max_new_tokens: args.max_tokens,
        decoding: match args.temperature {
            Some(t) if t > 0.0 => Decoding::Sample {
                temperature: t,
                top_k: 0,
                top_p: 0.9,
                seed: args.seed,
            },
            _ => Decoding::Greedy,
        },
        ..GenerateOptions::default()
    };
    if let Some(batch) = batch {
        return run_batch(generator, batch, args.chat, args.system, args.rows, opts).await;
    }
    let text = args.prompt.unwrap_or_default();
    let prompt = if args.chat {
        chat_prompt(&generator, args.system, text)?
    } else {
        text
    };
    let out = tokio::task::spawn_blocking(move || {
        let stdout = std::io::stdout();
        let mut on_text = |_row: usize, piece: &str| {
            let mut lock = stdout.lock();
            // A closed pipe (`| head`) must not abort the run: the figures still follow.
            let _ = lock.write_all(piece.as_bytes());
            let _ = lock.flush();
        };
        generator.generate(&[prompt.as_str()], &opts, &mut on_text)
    })
    .await
    .map_err(|e| CliError::Generate(format!("the generation task failed: {e}")))??;
    let g = out
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Generate("the generator returned no result".into()))?;
    println!();
    let steps = g.tokens.len().saturating_sub(1);
    let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
    eprintln!(
        "prompt_tokens={} generated_tokens={} prefill_tok_s={:.1} decode_tok_s={:.1} finish={} threads={} load_ms={:.0}",
        g.prompt_tokens,
        g.tokens.len(),
        rate(g.prompt_tokens, g.timing.prefill_ms),
        rate(steps, g.timing.decode_ms),
        serde_json::to_value(g.finish)?.as_str().unwrap_or("?"),
        threads,
        load_ms,
    );
    Ok(())
}

fn read_batch(path: &std::path::Path, chat: bool) -> Result<Vec<BatchPrompt>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: "could not read the batch file",
        path: path.display().to_string(),
        source,
    })?;
    let at = |i: usize, why: String| {
        CliError::Generate(format!("{} line {}: {why}", path.display(), i + 1))
    };
    let prompts = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let p: BatchPrompt = serde_json::from_str(l).map_err(|e| at(i, e.to_string()))?;
            if p.system.is_some() && !chat {
                return Err(at(i, "a system message needs --chat".into()));
            }
            Ok(p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if prompts.is_empty() {
        return Err(CliError::Generate(format!(
            "{} holds no prompts",
            path.display()
        )));
    }
    Ok(prompts)
}

/// Generates every prompt of a batch file, `rows` at a time, one JSON line each on stdout.
async fn run_batch(
    generator: std::sync::Arc<shopmind_inference::Generator>,
    batch: Vec<BatchPrompt>,
    chat: bool,
    default_system: Option<String>,
    rows: usize,
    opts: GenerateOptions,
) -> Result<(), CliError> {
    let total = batch.len();
    let mut done = 0;
    let mut items = batch.into_iter().peekable();
    while items.peek().is_some() {
        let group: Vec<BatchPrompt> = items.by_ref().take(rows).collect();
        let prompts = group
            .iter()
            .map(|p| {
                if chat {
                    let system = p.system.clone().or_else(|| default_system.clone());
                    chat_prompt(&generator, system, p.prompt.clone())
                } else {
                    Ok(p.prompt.clone())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let g = generator.clone();
        let o = opts.clone();
        let out = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
            g.generate(&refs, &o, &mut |_, _| {})
        })
        .await
        .map_err(|e| CliError::Generate(format!("the generation task failed: {e}")))??;
        let mut stdout = std::io::stdout().lock();
        for (p, g) in group.iter().zip(out) {
            let line = serde_json::json!({
                "id": p.id,
                "text": g.text,
                "finish": g.finish,
                "generated_tokens": g.tokens.len(),
            });
            // A closed pipe ends the run with an error rather than a panic.
            writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .map_err(|e| CliError::Generate(format!("could not write the results: {e}")))?;
        }
        drop(stdout);
        done += group.len();
        eprintln!("generate: {done}/{total}");
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The GGUF file (llama or qwen2 architecture; F32/F16/BF16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0,
    /// Q4_K/Q5_K/Q6_K tensors).
    gguf: PathBuf,
    /// The model directory to write (default: models/<file stem>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The model's name in its manifest and in draft records (default: the file stem).
    #[arg(long)]
    name: Option<String>,
    /// MatMulNBits activations: 4 = int8 (fast, the default), 0 = fp32 (exact).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(0..=4))]
    accuracy_level: u8,
}

/// Runs `infra/scripts/gguf_to_onnx.py` with the project's Python environment (`.venv`, made
/// by setup.sh): the converter is numpy + onnx, so it stays one implementation.
pub fn convert(args: ConvertArgs) -> Result<(), CliError> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = root.join("infra/scripts/gguf_to_onnx.py");
    let python = root.join(".venv/bin/python");
    if !python.is_file() || !script.is_file() {
        return Err(CliError::Generate(format!(
            "the converter needs {} and {}: run infra/scripts/setup.sh in the repository first",
            python.display(),
            script.display()
        )));
    }
    if !args.gguf.is_file() {
        return Err(CliError::Generate(format!(
            "{} is not a file",
            args.gguf.display()
        )));
    }
    let stem = args
        .gguf
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_else(|| "model".into());
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from("models").join(&stem));
    let status = std::process::Command::new(python)
        .arg(script)
        .arg(&args.gguf)
        .arg(&out)
        .args(["--name", args.name.as_deref().unwrap_or(&stem)])
        .args(["--accuracy-level", &args.accuracy_level.to_string()])
        .status()
        .map_err(|source| CliError::Io {
            what: "could not run the converter",
            path: args.gguf.display().to_string(),
            source,
        })?;
    if !status.success() {
        return Err(CliError::Generate(format!(
            "the converter refused {} (its message is above)",
            args.gguf.display()
        )));
    }
    println!(
        "try it: shopmind generate --model {} --chat \"Hello\"",
        out.display()
    );
    Ok(())
}
