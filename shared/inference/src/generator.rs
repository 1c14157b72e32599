//! Text generation with a decoder ONNX in the layout Hugging Face optimum exports (inputs
//! `input_ids`, `attention_mask`, `position_ids`, `past_key_values.{i}.key/.value`; outputs
//! `logits`, `present.{i}.key/.value`): one prefill over the prompts, then one step per token
//! with the KV cache, never the whole sequence again.
//!
//! Several prompts run as one left-padded batch. Decoding is greedy or sampled (temperature,
//! top-k, top-p, a seeded RNG), with a repetition penalty and no-repeat n-grams; it stops at
//! EOS, a stop string, `max_new_tokens`, or the deadline (the Lambda's time budget), and says
//! which. Tokens are streamed to a callback as text.

use std::sync::Mutex;
use std::time::Instant;

use ort::session::Session;
use ort::value::{DynValue, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::error::{InferenceError, Result};
use crate::manifest::{ModelKind, VerifiedModel};
use crate::runtime::OrtRuntime;

/// The manifest's `generator` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorSpec {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    #[serde(default)]
    pub context_length: Option<usize>,
}

/// `generation.json`: the chat template and special ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GenerationConfig {
    #[serde(default)]
    pub chat_template: Option<String>,
    pub eos_token_id: i64,
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    #[serde(default)]
    pub bos_token_id: Option<i64>,
    #[serde(default)]
    pub add_bos_token: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    Greedy,
    Sample {
        temperature: f32,
        /// 0 keeps every token.
        top_k: usize,
        /// 1.0 keeps every token.
        top_p: f32,
        seed: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub decoding: Decoding,
    /// > 1 discourages tokens already in the prompt or the output (CTRL's penalty).
    pub repetition_penalty: f32,
    /// Tokens that would repeat an n-gram of this size are banned (0: off).
    pub no_repeat_ngram: usize,
    /// Whether both penalties also count the prompt (as Hugging Face's do). Off for a model
    /// that should quote its prompt — an answer from passages — where they would push it to
    /// misspell what it copies ("businessdays", "2,00" for 200).
    pub penalise_prompt: bool,
    pub stop: Vec<String>,
    /// Stop before this instant and return what there is.
    pub deadline: Option<Instant>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 128,
            decoding: Decoding::Greedy,
            repetition_penalty: 1.0,
            no_repeat_ngram: 0,
            penalise_prompt: true,
            stop: Vec::new(),
            deadline: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Eos,
    Stop,
    Length,
    /// The deadline came first: the text is cut.
    TimeBudget,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub finish: FinishReason,
    /// Wall time of the batch's prefill and of its decoding steps.
    pub timing: Timing,
}

/// Where a generation's time went (the same for every row of a batch).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timing {
    /// The prompt pass, to the first token's logits.
    pub prefill_ms: f64,
    /// Every cached step after it.
    pub decode_ms: f64,
}

/// A decoder model ready to generate. Safe to share; one run at a time per instance.
#[derive(Debug)]
pub struct Generator {
    session: Mutex<Session>,
    /// Parses control tokens (`<|im_start|>`) in rendered prompts.
    tokenizer: Tokenizer,
    /// Treats them as plain text: for text that must not carry control tokens.
    plain: Tokenizer,
    specials: Vec<String>,
    spec: GeneratorSpec,
    config: GenerationConfig,
    model_id: String,
}

/// One forward pass: the last position's logits per row, and the new cache (ONNX Runtime's
/// own output values, fed back as the next inputs without a copy).
struct Step {
    logits: Vec<f32>,
    present: Vec<DynValue>,
}

impl Generator {
    pub fn load(runtime: &OrtRuntime, model: &VerifiedModel, intra_threads: usize) -> Result<Self> {
        let manifest = &model.manifest;
        let bad = |why: String| InferenceError::ManifestInvalid {
            path: model.dir.join("manifest.json"),
            reason: why,
        };
        if manifest.kind != ModelKind::Generator {
            return Err(bad(format!("kind is {:?}, not generator", manifest.kind)));
        }

        let path = model.dir.join("model.onnx");
        let session = Session::builder(runtime.environment())
            .map_err(|e| InferenceError::ModelLoad {
                path: path.clone(),
                reason: e.to_string(),
            })?
            .with_intra_threads(intra_threads.max(1))
            .map_err(|e| InferenceError::ModelLoad {
                path: path.clone(),
                reason: ort::Error::<()>::from(e).to_string(),
            })?
            .commit_from_file(&path)
            .map_err(|e| InferenceError::ModelLoad {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in [
            "input_ids",
            "attention_mask",
            "position_ids",
            "past_key_values.0.key",
        ] {
            if !inputs.contains(&needed) {
                return Err(InferenceError::Graph(format!(
                    "generator input {needed} missing (inputs: {:?})",
                    &inputs[..inputs.len().min(6)]
                )));
            }
        }
        // Layers, kv-heads, head size and vocabulary come from the graph (an optimum export
        // needs no manifest section); a manifest that states them must agree.
        let spec = match (spec_from_graph(&session), manifest.generator.clone()) {
            (Some(g), Some(m)) if g.layers != m.layers
                || g.kv_heads != m.kv_heads
                || g.head_dim != m.head_dim
                || g.vocab != m.vocab =>
            {
                return Err(bad(format!("the manifest says {m:?}, the graph has {g:?}")));
            }
            (Some(g), m) => GeneratorSpec {
                context_length: m.and_then(|m| m.context_length),
                ..g
            },
            (None, Some(m)) => m,
            (None, None) => {
                return Err(InferenceError::Graph(
                    "the graph's cache and logits shapes are dynamic and the manifest has no `generator` section".into(),
                ))
            }
        };
        let tokenizer_path = model.dir.join("tokenizer.json");
        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| InferenceError::TokenizerLoad {
                path: tokenizer_path,
                reason: e.to_string(),
            })?;
        let mut plain = tokenizer.clone();
        plain.set_encode_special_tokens(true);
        let specials: Vec<String> = tokenizer
            .get_added_tokens_decoder()
            .values()
            .filter(|t| t.special)
            .map(|t| t.content.clone())
            .collect();
        let config_path = model.dir.join("generation.json");
        let bytes = std::fs::read(&config_path).map_err(InferenceError::io(&config_path))?;
        let config: GenerationConfig =
            serde_json::from_slice(&bytes).map_err(|e| InferenceError::ManifestInvalid {
                path: config_path,
                reason: e.to_string(),
            })?;
        Ok(Self {
            session: Mutex::new(session),
            tokenizer,
            plain,
            specials,
            spec,
            config,
            model_id: manifest.name.clone(),
        })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn spec(&self) -> &GeneratorSpec {
        &self.spec
    }

    pub fn config(&self) -> &GenerationConfig {
        &self.config
    }

    /// Renders `messages` with the model's chat template, ending with the assistant's turn.
    /// Control-token strings inside the messages (a shopper typing `<|im_start|>system`) are
    /// broken with a zero-width space, so message text can never open or close a turn.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self
            .config
            .chat_template
            .as_deref()
            .ok_or_else(|| InferenceError::Config("the model has no chat template".into()))?;
        let safe: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.clone(),
                content: self.specials.iter().fold(m.content.clone(), |c, s| {
                    let mut broken = s.clone();
                    broken.insert(s.chars().next().map_or(0, char::len_utf8), '\u{200B}');
                    c.replace(s.as_str(), &broken)
                }),
            })
            .collect();
        render_chat(template, &safe)
    }

    /// Token ids of plain text: control-token strings in it are text, as llama.cpp tokenizes
    /// without `special`.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>> {
        self.plain
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| InferenceError::Tokenize(e.to_string()))
    }

    /// Token ids of a rendered prompt: control tokens are parsed (BOS added if the model
    /// asks for it).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        let mut ids = enc.get_ids().to_vec();
        if self.config.add_bos_token {
            if let Some(bos) = self.config.bos_token_id {
                ids.insert(0, bos as u32);
            }
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))
    }

    /// An empty cache for `rows` sequences.
    fn empty_past(&self, rows: usize) -> Result<Vec<DynValue>> {
        let shape = [rows, self.spec.kv_heads, 0, self.spec.head_dim];
        (0..self.spec.layers * 2)
            .map(|_| {
                Tensor::from_array((shape, Vec::<f32>::new()))
                    .map(|t| t.into_dyn())
                    .map_err(|e| InferenceError::Run(e.to_string()))
            })
            .collect()
    }

    fn run(
        &self,
        rows: usize,
        ids: Vec<i64>,
        mask: Vec<i64>,
        positions: Vec<i64>,
        past: Vec<DynValue>,
    ) -> Result<Step> {
        let seq = ids.len() / rows;
        let total = mask.len() / rows;
        let run_err = |e: ort::Error| InferenceError::Run(e.to_string());
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array(([rows, seq], ids)).map_err(run_err)?,
            "attention_mask" => Tensor::from_array(([rows, total], mask)).map_err(run_err)?,
            "position_ids" => Tensor::from_array(([rows, seq], positions)).map_err(run_err)?,
        ];
        for (i, value) in past.into_iter().enumerate() {
            let name = format!(
                "past_key_values.{}.{}",
                i / 2,
                if i % 2 == 0 { "key" } else { "value" }
            );
            inputs.push((name.into(), value.into()));
        }
        let mut session = self
            .session
            .lock()
            .map_err(|_| InferenceError::Run("generator session lock poisoned".into()))?;
        let mut outputs = session.run(inputs).map_err(run_err)?;
        let (shape, logits) = outputs["logits"]
            .try_extract_tensor::<f32>()
            .map_err(run_err)?;
        let vocab = self.spec.vocab;
        // An optimum export gives every position's logits; our converter's graphs give only
        // the last one (what decoding reads), which spares the LM head for the prompt.
        let positions = shape.get(1).map_or(0, |&p| p as usize);
        if shape.len() != 3
            || shape[0] as usize != rows
            || shape[2] as usize != vocab
            || (positions != seq && positions != 1)
        {
            return Err(InferenceError::Graph(format!(
                "logits have shape {:?}, expected [{rows}, {seq} or 1, {vocab}]",
                &shape[..]
            )));
        }
        let last: Vec<f32> = (0..rows)
            .flat_map(|r| {
                let at = (r * positions + positions - 1) * vocab;
                logits[at..at + vocab].iter().copied()
            })
            .collect();
        let mut present = Vec::with_capacity(self.spec.layers * 2);
        for i in 0..self.spec.layers {
            for kind in ["key", "value"] {
                let name = format!("present.{i}.{kind}");
                present.push(outputs.remove(&name).ok_or_else(|| {
                    InferenceError::Graph(format!("generator output {name} missing"))
                })?);
            }
        }
        Ok(Step {
            logits: last,
            present,
        })
    }

    /// The last position's logits for `ids` in one full-sequence pass (no cache), and after
    /// a prefill of all but the last token and one cached step: what the tests compare.
    pub fn last_logits(&self, ids: &[u32], cached: bool) -> Result<Vec<f32>> {
        let n = ids.len();
        let all: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let empty = self.empty_past(1)?;
        if !cached || n < 2 {
            return Ok(self
                .run(1, all, vec![1; n], (0..n as i64).collect(), empty)?
                .logits);
        }
        let first = self.run(
            1,
            all[..n - 1].to_vec(),
            vec![1; n - 1],
            (0..n as i64 - 1).collect(),
            empty,
        )?;
        Ok(self
            .run(
                1,
                vec![all[n - 1]],
                vec![1; n],
                vec![n as i64 - 1],
                first.present,
            )?
            .logits)
    }

    /// Generates a continuation of every prompt (one left-padded batch). `on_text(row, piece)`
    /// receives each row's new text as it is produced.
    pub fn generate(
        &self,
        prompts: &[&str],
        opts: &GenerateOptions,
        on_text: &mut dyn FnMut(usize, &str),
    ) -> Result<Vec<Generation>> {
        let rows = prompts.len();
        if rows == 0 {
            return Ok(Vec::new());
        }
        if opts.max_new_tokens == 0 {
            return prompts
                .iter()
                .map(|p| {
                    Ok(Generation {
                        text: String::new(),
                        tokens: Vec::new(),
                        prompt_tokens: self.encode(p)?.len(),
                        finish: FinishReason::Length,
                        timing: Timing::default(),
                    })
                })
                .collect();
        }
        let encoded: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| self.encode(p))
            .collect::<Result<_>>()?;
        if encoded.iter().any(Vec::is_empty) {
            return Err(InferenceError::Tokenize("a prompt has no tokens".into()));
        }
        let width = encoded.iter().map(Vec::len).max().unwrap_or(0);
        // Positions past the model's RoPE tables are not computable: refuse the prompt, and
        // stop generating (finish `length`) where the context ends.
        let context = self.spec.context_length.unwrap_or(usize::MAX);
        if width >= context {
            return Err(InferenceError::PromptTooLong {
                tokens: width,
                context,
            });
        }
        let max_new_tokens = opts.max_new_tokens.min(context - width);
        let pad = self.config.pad_token_id.unwrap_or(self.config.eos_token_id);
        let (mut ids, mut mask, mut positions) = (
            vec![pad; rows * width],
            vec![0i64; rows * width],
            vec![0i64; rows * width],
        );
        for (r, p) in encoded.iter().enumerate() {
            let off = r * width + width - p.len();
            for (j, &t) in p.iter().enumerate() {
                ids[off + j] = i64::from(t);
                mask[off + j] = 1;
                positions[off + j] = j as i64;
            }
        }
        let mut rng = SplitMix64(match opts.decoding {
            Decoding::Sample { seed, .. } => seed,
            Decoding::Greedy => 0,
        });
        let mut out: Vec<Vec<u32>> = vec![Vec::new(); rows];
        let mut texts = vec![String::new(); rows];
        let mut finish: Vec<Option<FinishReason>> = vec![None; rows];
        let mut next_pos: Vec<i64> = encoded.iter().map(|p| p.len() as i64).collect();
        let started = Instant::now();
        let mut step = self.run(rows, ids, mask.clone(), positions, self.empty_past(rows)?)?;
        let prefilled = Instant::now();
        let mut past_len = width;
        loop {
            let mut chosen = vec![pad; rows];
            for r in 0..rows {
                if finish[r].is_some() {
                    continue;
                }
                let mut logits =
                    step.logits[r * self.spec.vocab..(r + 1) * self.spec.vocab].to_vec();
                process_logits(
                    &mut logits,
                    &penalty_history(&encoded[r], &out[r], opts),
                    opts,
                );
                let token = pick(&logits, opts.decoding, &mut rng);
                chosen[r] = i64::from(token);
                if i64::from(token) == self.config.eos_token_id {
                    finish[r] = Some(FinishReason::Eos);
                    continue;
                }
                out[r].push(token);
                let text = self.decode(&out[r])?;
                if let Some(cut) = opts
                    .stop
                    .iter()
                    .filter(|s| !s.is_empty())
                    .filter_map(|s| text.find(s.as_str()))
                    .min()
                {
                    let kept = &text[..cut];
                    if kept.len() > texts[r].len() {
                        on_text(r, &kept[texts[r].len()..]);
                    }
                    texts[r] = kept.to_owned();
                    finish[r] = Some(FinishReason::Stop);
                    continue;
                }
                // Hold back a trailing partial character until the next token completes it.
                if !text.ends_with('\u{FFFD}') && text.len() > texts[r].len() {
                    on_text(r, &text[texts[r].len()..]);
                    texts[r] = text;
                }
                if out[r].len() >= max_new_tokens {
                    finish[r] = Some(FinishReason::Length);
                }
            }
            if finish.iter().all(Option::is_some) {
                break;
            }
            if opts.deadline.is_some_and(|d| Instant::now() >= d) {
                for f in finish.iter_mut().filter(|f| f.is_none()) {
                    *f = Some(FinishReason::TimeBudget);
                }
                break;
            }
            // One cached step: every row feeds its token (finished rows feed padding, masked out).
            let mut new_mask = Vec::with_capacity(rows * (past_len + 1));
            for r in 0..rows {
                new_mask.extend_from_slice(&mask[r * past_len..(r + 1) * past_len]);
                new_mask.push(i64::from(finish[r].is_none()));
            }
            mask = new_mask;
            let pos: Vec<i64> = next_pos.clone();
            for p in next_pos.iter_mut() {
                *p += 1;
            }
            step = self.run(rows, chosen, mask.clone(), pos, step.present)?;
            past_len += 1;
        }
        let timing = Timing {
            prefill_ms: (prefilled - started).as_secs_f64() * 1e3,
            decode_ms: prefilled.elapsed().as_secs_f64() * 1e3,
        };
        Ok((0..rows)
            .map(|r| {
                let text = match finish[r] {
                    Some(FinishReason::Stop) => texts[r].clone(),
                    _ => self.decode(&out[r]).unwrap_or_else(|_| texts[r].clone()),
                };
                Generation {
                    text,
                    tokens: out[r].clone(),
                    prompt_tokens: encoded[r].len(),
                    finish: finish[r].unwrap_or(FinishReason::Length),
                    timing,
                }
            })
            .collect())
    }
}

/// Layers (the number of `past_key_values.{i}.key` inputs), kv-heads and head size (dims 1
/// and 3 of a past input) and the vocabulary (the last dim of `logits`), when static.
fn spec_from_graph(session: &Session) -> Option<GeneratorSpec> {
    let layers = session
        .inputs()
        .iter()
        .filter(|i| i.name().starts_with("past_key_values.") && i.name().ends_with(".key"))
        .count();
    let past = session
        .inputs()
        .iter()
        .find(|i| i.name() == "past_key_values.0.key")?
        .dtype()
        .tensor_shape()?
        .to_vec();
    let logits = session
        .outputs()
        .iter()
        .find(|o| o.name() == "logits")?
        .dtype()
        .tensor_shape()?
        .to_vec();
    let dim = |d: Option<&i64>| d.copied().filter(|&x| x > 0).map(|x| x as usize);
    Some(GeneratorSpec {
        layers: (layers > 0).then_some(layers)?,
        kv_heads: dim(past.get(1))?,
        head_dim: dim(past.get(3))?,
        vocab: dim(logits.last())?,
        context_length: None,
    })
}

/// Renders a chat template (Jinja, as Hugging Face tokenizer configs carry them).
pub fn render_chat(template: &str, messages: &[ChatMessage]) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_template("chat", template)
        .map_err(|e| InferenceError::Config(format!("chat template: {e}")))?;
    env.get_template("chat")
        .and_then(|t| {
            t.render(minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
            })
        })
        .map_err(|e| InferenceError::Config(format!("chat template: {e}")))
}

/// Repetition penalty and no-repeat n-grams, in place.
/// The tokens the penalties read: the prompt and the output, or the output alone.
fn penalty_history<'a>(
    prompt: &[u32],
    out: &'a [u32],
    opts: &GenerateOptions,
) -> std::borrow::Cow<'a, [u32]> {
    if opts.penalise_prompt {
        prompt.iter().chain(out).copied().collect::<Vec<_>>().into()
    } else {
        out.into()
    }
}

pub fn process_logits(logits: &mut [f32], history: &[u32], opts: &GenerateOptions) {
    if opts.repetition_penalty > 0.0 && (opts.repetition_penalty - 1.0).abs() > f32::EPSILON {
        let mut seen = std::collections::HashSet::new();
        for &t in history {
            if seen.insert(t) {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 {
                        *l / opts.repetition_penalty
                    } else {
                        *l * opts.repetition_penalty
                    };
                }
            }
        }
    }
    let n = opts.no_repeat_ngram;
    if n > 0 && history.len() >= n {
        let prefix = &history[history.len() - (n - 1)..];
        for w in history.windows(n) {
            if w[..n - 1] == *prefix {
                if let Some(l) = logits.get_mut(w[n - 1] as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
    }
}

/// The next token: the arg-max, or a draw from the temperature-scaled distribution kept to
/// the `top_k` best tokens and the smallest set whose probability reaches `top_p`.
pub fn pick(logits: &[f32], decoding: Decoding, rng: &mut SplitMix64) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i as u32)
    };
    let Decoding::Sample {
        temperature,
        top_k,
        top_p,
        ..
    } = decoding
    else {
        return argmax();
    };
    if temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len())
        .filter(|&i| logits[i].is_finite())
        .collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then_with(|| a.cmp(&b)));
    if top_k > 0 {
        order.truncate(top_k);
    }
    let Some(&best) = order.first() else {
        return argmax();
    };
    let max = logits[best];
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| f64::from((logits[i] - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut keep = order.len();
    if top_p < 1.0 {
        let mut acc = 0.0;
        for (n, w) in weights.iter().enumerate() {
            acc += w / total;
            if acc >= f64::from(top_p) {
                keep = n + 1;
                break;
            }
        }
    }
    let kept: f64 = weights[..keep].iter().sum();
    let mut x = rng.next_f64() * kept;
    for (n, w) in weights[..keep].iter().enumerate() {
        x -= w;
        if x <= 0.0 {
            return order[n] as u32;
        }
    }
    order[keep - 1] as u32
}

/// A small seedable RNG (SplitMix64): reproducible draws without a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_stays_inside_top_k_and_top_p_and_is_reproducible() {
        // Probabilities ∝ exp(logit): token 0 ≈ 0.64, 1 ≈ 0.24, 2 ≈ 0.09, 3..: tiny.
        let logits = [3.0, 2.0, 1.0, -2.0, -3.0, -4.0];
        let draw = |k: usize, p: f32, seed: u64, n: usize| {
            let mut rng = SplitMix64(seed);
            let d = Decoding::Sample {
                temperature: 1.0,
                top_k: k,
                top_p: p,
                seed,
            };
            (0..n)
                .map(|_| pick(&logits, d, &mut rng))
                .collect::<Vec<_>>()
        };
        assert!(draw(2, 1.0, 1, 5000).iter().all(|&t| t < 2));
        // top_p 0.8: tokens 0 and 1 (0.64 + 0.24 ≥ 0.8) only.
        let d = draw(0, 0.8, 2, 5000);
        assert!(d.iter().all(|&t| t < 2));
        // Frequencies follow the renormalised distribution (0.727 / 0.273) within 3%.
        let share = d.iter().filter(|&&t| t == 0).count() as f64 / d.len() as f64;
        assert!((share - 0.7275).abs() < 0.03, "{share}");
        assert_eq!(draw(0, 1.0, 7, 50), draw(0, 1.0, 7, 50));
        assert_ne!(draw(0, 1.0, 7, 50), draw(0, 1.0, 8, 50));
        assert_eq!(pick(&logits, Decoding::Greedy, &mut SplitMix64(0)), 0);
    }

    #[test]
    fn penalties_and_ngram_bans() {
        let opts = GenerateOptions {
            repetition_penalty: 2.0,
            no_repeat_ngram: 2,
            ..GenerateOptions::default()
        };
        let mut logits = vec![4.0, -1.0, 1.0, 1.0];
        // History "1 2 1": the bigram (1, 2) was seen, so after 1 the token 2 is banned.
        process_logits(&mut logits, &[1, 2, 1], &opts);
        assert_eq!(logits[0], 4.0);
        assert_eq!(logits[1], -2.0);
        assert_eq!(logits[2], f32::NEG_INFINITY);
        assert_eq!(logits[3], 1.0);
    }

    #[test]
    fn penalties_read_the_prompt_only_when_asked() {
        let quoting = GenerateOptions {
            no_repeat_ngram: 2,
            penalise_prompt: false,
            ..GenerateOptions::default()
        };
        // The prompt says "7 8"; an answer quoting it may say "7 8" again.
        let (prompt, out) = ([7, 8, 7], [9, 7]);
        assert_eq!(&*penalty_history(&prompt, &out, &quoting), &[9, 7]);
        let mut logits = vec![0.0; 10];
        process_logits(
            &mut logits,
            &penalty_history(&prompt, &out, &quoting),
            &quoting,
        );
        assert_eq!(logits[8], 0.0);
        let default = GenerateOptions {
            no_repeat_ngram: 2,
            ..GenerateOptions::default()
        };
        let history = penalty_history(&prompt, &out, &default);
        assert_eq!(&*history, &[7, 8, 7, 9, 7]);
        process_logits(&mut logits, &history, &default);
        assert_eq!(logits[8], f32::NEG_INFINITY);
    }
}
