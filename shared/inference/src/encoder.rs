//! Sentence encoder: tokenizer + transformer graph + pooling.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::Tensor;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use crate::error::{InferenceError, Result};
use crate::manifest::{Calibration, EncoderSpec, ModelKind, Pooling, VerifiedModel};
use crate::runtime::OrtRuntime;

/// Tuning knobs with defaults that suit a 2-vCPU Lambda.
#[derive(Debug, Clone)]
pub struct EncoderOptions {
    /// ONNX Runtime intra-op threads for this session.
    pub intra_threads: usize,
    /// Sequences per `Session::run` in [`Encoder::embed`].
    pub batch_size: usize,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            intra_threads: 1,
            batch_size: 32,
        }
    }
}

/// One input's vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// Tokens the model saw, special tokens included.
    pub tokens: usize,
    /// True when the input was longer than the model's max length and was cut.
    pub truncated: bool,
}

/// Where the time of one [`Encoder::embed_with_stats`] call went.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncodeStats {
    pub tokenize: Duration,
    /// Building padded input tensors.
    pub pack: Duration,
    /// Inside `Session::run`.
    pub run: Duration,
    /// Pooling, normalisation and copying out.
    pub pool: Duration,
    pub batches: usize,
    /// Token slots fed to the model, padding included.
    pub padded_tokens: usize,
}

/// A loaded sentence encoder. `Send + Sync`: share it in an `Arc`; runs are serialised on the
/// session (ONNX Runtime parallelises inside a run with its intra-op threads).
#[derive(Debug)]
pub struct Encoder {
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    spec: EncoderSpec,
    model_id: String,
    calibration: Calibration,
    wants_token_type_ids: bool,
    output: String,
    batch_size: usize,
}

impl Encoder {
    pub fn load(
        runtime: &OrtRuntime,
        model: &VerifiedModel,
        opts: &EncoderOptions,
    ) -> Result<Self> {
        let manifest = &model.manifest;
        let spec = match (&manifest.kind, &manifest.encoder) {
            (ModelKind::Encoder, Some(spec)) => spec.clone(),
            _ => {
                return Err(InferenceError::ManifestInvalid {
                    path: model.dir.join(crate::manifest::MANIFEST_FILE),
                    reason: "not an encoder manifest".into(),
                })
            }
        };
        let model_path = model.dir.join(&spec.model_file);
        let load_err = |reason: String| InferenceError::ModelLoad {
            path: model_path.clone(),
            reason,
        };
        let session = Session::builder(runtime.environment())
            .map_err(|e| load_err(e.to_string()))?
            .with_intra_threads(opts.intra_threads.max(1))
            .map_err(|e| load_err(ort::Error::<()>::from(e).to_string()))?
            .commit_from_file(&model_path)
            .map_err(|e| load_err(e.to_string()))?;

        let input_names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input_ids", "attention_mask"] {
            if !input_names.contains(&needed) {
                return Err(InferenceError::Graph(format!(
                    "input {needed} missing (inputs: {input_names:?})"
                )));
            }
        }
        let wants_token_type_ids = input_names.contains(&"token_type_ids");
        let output_names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let output = if output_names.contains(&"last_hidden_state") {
            "last_hidden_state".to_owned()
        } else {
            output_names
                .first()
                .map(|s| (*s).to_owned())
                .ok_or_else(|| InferenceError::Graph("the graph has no outputs".into()))?
        };

        let tokenizer_path = model.dir.join(&spec.tokenizer_file);
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| InferenceError::TokenizerLoad {
                path: tokenizer_path.clone(),
                reason: e.to_string(),
            })?;
        // The shipped tokenizer pads every input to 128; we pad per batch ourselves instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: spec.max_length,
                ..TruncationParams::default()
            }))
            .map_err(|e| InferenceError::TokenizerLoad {
                path: tokenizer_path,
                reason: e.to_string(),
            })?;

        Ok(Self {
            session: Mutex::new(session),
            tokenizer,
            model_id: manifest.name.clone(),
            calibration: manifest.calibration.clone(),
            spec,
            wants_token_type_ids,
            output,
            batch_size: opts.batch_size.max(1),
        })
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn dimension(&self) -> usize {
        self.spec.dimension
    }

    /// Thresholds measured for this model (its manifest's `calibration`).
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    pub fn max_length(&self) -> usize {
        self.spec.max_length
    }

    pub fn wants_token_type_ids(&self) -> bool {
        self.wants_token_type_ids
    }

    /// Embeds `texts`, returning one [`Embedding`] per input in input order.
    pub fn embed<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Result<Vec<Embedding>> {
        self.embed_with_stats(texts, self.batch_size)
            .map(|(e, _)| e)
    }

    /// Embeds in batches of `batch_size`, after sorting by token count so each batch pads to
    /// a similar length; results come back in input order.
    pub fn embed_with_stats<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        batch_size: usize,
    ) -> Result<(Vec<Embedding>, EncodeStats)> {
        let mut stats = EncodeStats::default();
        if texts.is_empty() {
            return Ok((Vec::new(), stats));
        }
        let t0 = Instant::now();
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| InferenceError::Tokenize(e.to_string()))?;
        stats.tokenize = t0.elapsed();

        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        let mut out: Vec<Option<Embedding>> = vec![None; encodings.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self.run_batch(&batch, &mut stats)?;
            for ((&i, enc), vector) in chunk.iter().zip(&batch).zip(vectors) {
                out[i] = Some(Embedding {
                    vector,
                    tokens: enc.len(),
                    truncated: !enc.get_overflowing().is_empty(),
                });
            }
        }
        let embeddings = out
            .into_iter()
            .map(|e| e.ok_or_else(|| InferenceError::Run("an input was not embedded".into())))
            .collect::<Result<Vec<_>>>()?;
        Ok((embeddings, stats))
    }

    fn run_batch(&self, batch: &[&Encoding], stats: &mut EncodeStats) -> Result<Vec<Vec<f32>>> {
        let t_pack = Instant::now();
        let rows = batch.len();
        let seq = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let mut ids = vec![0i64; rows * seq];
        let mut mask = vec![0i64; rows * seq];
        let mut types = vec![0i64; rows * seq];
        for (r, enc) in batch.iter().enumerate() {
            let base = r * seq;
            for (t, ((&id, &m), &ty)) in enc
                .get_ids()
                .iter()
                .zip(enc.get_attention_mask())
                .zip(enc.get_type_ids())
                .enumerate()
            {
                ids[base + t] = i64::from(id);
                mask[base + t] = i64::from(m);
                types[base + t] = i64::from(ty);
            }
        }
        let shape = [rows as i64, seq as i64];
        let run_err = |e: ort::Error| InferenceError::Run(e.to_string());
        let mut inputs = ort::inputs![
            "input_ids" => Tensor::from_array((shape, ids)).map_err(run_err)?,
            "attention_mask" => Tensor::from_array((shape, mask.clone())).map_err(run_err)?,
        ];
        if self.wants_token_type_ids {
            inputs.push((
                "token_type_ids".into(),
                Tensor::from_array((shape, types)).map_err(run_err)?.into(),
            ));
        }
        stats.pack += t_pack.elapsed();
        stats.batches += 1;
        stats.padded_tokens += rows * seq;

        let mut session = self
            .session
            .lock()
            .map_err(|_| InferenceError::Run("encoder session lock poisoned".into()))?;
        let t_run = Instant::now();
        let outputs = session.run(inputs).map_err(run_err)?;
        stats.run += t_run.elapsed();

        let t_pool = Instant::now();
        let value = outputs
            .get(self.output.as_str())
            .ok_or_else(|| InferenceError::Graph(format!("output {} missing", self.output)))?;
        let (out_shape, hidden) = value.try_extract_tensor::<f32>().map_err(run_err)?;
        let dim = self.spec.dimension;
        // A graph that pools itself answers [rows, dim]; otherwise [rows, seq, dim].
        let (expected, per_row): (Vec<i64>, usize) = match self.spec.pooling {
            Pooling::Graph => (vec![rows as i64, dim as i64], dim),
            _ => (vec![rows as i64, seq as i64, dim as i64], seq * dim),
        };
        if out_shape[..] != expected[..] {
            return Err(InferenceError::Graph(format!(
                "output {} has shape {:?}, expected {expected:?}",
                self.output,
                &out_shape[..]
            )));
        }
        let vectors = (0..rows)
            .map(|r| {
                let states = &hidden[r * per_row..(r + 1) * per_row];
                let row_mask = &mask[r * seq..(r + 1) * seq];
                let mut v = pool(states, row_mask, dim, self.spec.pooling);
                if self.spec.normalize {
                    l2_normalize(&mut v);
                }
                v
            })
            .collect();
        stats.pool += t_pool.elapsed();
        Ok(vectors)
    }
}

/// Pools `[seq, dim]` hidden states into one vector, counting only unmasked tokens
/// (`Graph`: `states` is already the row's pooled `[dim]`).
fn pool(states: &[f32], mask: &[i64], dim: usize, pooling: Pooling) -> Vec<f32> {
    match pooling {
        Pooling::Cls | Pooling::Graph => states[..dim].to_vec(),
        Pooling::Mean => {
            let mut sum = vec![0f32; dim];
            let mut count = 0f32;
            for (token, &m) in states.chunks_exact(dim).zip(mask) {
                if m != 0 {
                    for (s, x) in sum.iter_mut().zip(token) {
                        *s += x;
                    }
                    count += 1.0;
                }
            }
            let denom = count.max(1e-9);
            sum.iter_mut().for_each(|s| *s /= denom);
            sum
        }
    }
}

/// Embeddings of many texts as one row-major matrix, for the indexers: texts are sorted by
/// length and embedded `step` at a time on the blocking pool (`progress(done, total)` after
/// each step), rows come back in input order. Returns the matrix and how many were truncated.
pub async fn embed_in_steps(
    encoder: std::sync::Arc<Encoder>,
    texts: &[String],
    step: usize,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> Result<(Vec<f32>, usize)> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|i| texts[*i].len());
    let dim = encoder.dimension();
    let mut vectors = vec![0.0f32; texts.len() * dim];
    let mut truncated = 0;
    let total = texts.len();
    for (n, rows) in order.chunks(step.max(1)).enumerate() {
        let batch: Vec<String> = rows.iter().map(|r| texts[*r].clone()).collect();
        let enc = encoder.clone();
        let out = tokio::task::spawn_blocking(move || enc.embed(&batch))
            .await
            .map_err(|e| InferenceError::Run(format!("embedding task failed: {e}")))??;
        for (row, e) in rows.iter().zip(out) {
            if e.vector.len() != dim {
                return Err(InferenceError::Run(format!(
                    "the encoder returned {} values, not {dim}",
                    e.vector.len()
                )));
            }
            truncated += usize::from(e.truncated);
            vectors[row * dim..(row + 1) * dim].copy_from_slice(&e.vector);
        }
        progress(((n + 1) * step.max(1)).min(total), total);
    }
    Ok((vectors, truncated))
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product with eight independent accumulators, so the compiler vectorises the loop (one
/// running sum would serialise every add on the previous one). For unit vectors, the cosine.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// Cosine similarity of two vectors of equal length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    dot / (na.sqrt() * nb.sqrt()).max(1e-12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_ignores_padding() {
        // Two real tokens and one pad token of dimension 2.
        let states = [1.0, 2.0, 3.0, 4.0, 100.0, 100.0];
        let v = pool(&states, &[1, 1, 0], 2, Pooling::Mean);
        assert_eq!(v, vec![2.0, 3.0]);
        assert_eq!(pool(&states, &[1, 1, 0], 2, Pooling::Cls), vec![1.0, 2.0]);
    }

    #[test]
    fn normalises_to_unit_length() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, vec![0.0, 0.0]);
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-6);
    }
}
