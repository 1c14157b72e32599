//! `shopmind eval support`: intent accuracy and retrieval hit@k on BANKING77 (PolyAI, CC BY
//! 4.0: 10,003 train and 3,080 test banking questions, 77 intents).
//!
//! - Intent: the train rows are the exemplars; the intent model (linear head + the nearest
//!   examples' vote) is trained on them and scored on the test rows, and so is the head
//!   alone; nearest-centroid (the mean exemplar embedding per intent, cosine) is
//!   the baseline in the same run.
//! - Retrieval: one knowledge-base article per intent (title = the intent's name in words,
//!   body = its first `ARTICLE_EXAMPLES` train questions as paragraphs); every test question
//!   should retrieve its intent's article. hit@1 / hit@3 for BM25 alone, dense alone and the
//!   fused ranking.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use shopmind_inference::Encoder;

use crate::error::SupportError;
use crate::head::TrainConfig;
use crate::intent::{Exemplar, IntentCatalog, IntentModel, KnnBlend};
use crate::kb::{chunk_article, Article, ChunkConfig};
use crate::retrieve::{KbIndex, RetrieveConfig};

pub const ARTICLE_EXAMPLES: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub method: String,
    pub value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupportReport {
    pub train_rows: usize,
    pub test_rows: usize,
    pub intents: usize,
    pub intent: Vec<Row>,
    pub retrieval: Vec<(String, f64, f64)>,
    pub train_seconds: f64,
}

/// Reads RFC 4180 CSV (quoted fields, doubled quotes, commas and newlines inside quotes).
pub fn read_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn load(path: &Path) -> Result<Vec<Exemplar>, SupportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SupportError::Invalid(format!("{}: {e}", path.display())))?;
    let rows = read_csv(&text);
    let header = rows.first().cloned().unwrap_or_default();
    if header != ["text", "category"] {
        return Err(SupportError::Invalid(format!(
            "{}: expected the header text,category, found {header:?}",
            path.display()
        )));
    }
    Ok(rows
        .into_iter()
        .skip(1)
        .filter(|r| r.len() == 2 && !r[0].trim().is_empty())
        .map(|r| Exemplar {
            text: r[0].clone(),
            intent: r[1].clone(),
        })
        .collect())
}

fn embed(
    encoder: &Encoder,
    texts: &[&str],
    what: &str,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<f32>, SupportError> {
    let mut out = Vec::with_capacity(texts.len() * encoder.dimension());
    for (i, batch) in texts.chunks(512).enumerate() {
        for e in encoder
            .embed(batch)
            .map_err(|e| SupportError::Embed(e.to_string()))?
        {
            out.extend(e.vector);
        }
        progress(what, (i * 512 + batch.len()).min(texts.len()), texts.len());
    }
    Ok(out)
}

/// Runs the evaluation on the BANKING77 folder (`train.csv`, `test.csv`).
pub fn evaluate_banking77(
    dir: &Path,
    encoder: Arc<Encoder>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SupportReport, SupportError> {
    let train = load(&dir.join("train.csv"))?;
    let test = load(&dir.join("test.csv"))?;
    let dim = encoder.dimension();
    let catalog = IntentCatalog::from_exemplars(&train, &Default::default());
    let exemplars = catalog.exemplars();
    let texts: Vec<&str> = exemplars.iter().map(|e| e.text.as_str()).collect();
    let xtr = embed(&encoder, &texts, "embedding train", progress)?;
    let texts: Vec<&str> = test.iter().map(|e| e.text.as_str()).collect();
    let xte = embed(&encoder, &texts, "embedding test", progress)?;

    let started = Instant::now();
    let model = IntentModel::train(&catalog, &xtr, dim, &TrainConfig::default(), 0.0)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let correct = |m: &IntentModel| {
        test.iter()
            .enumerate()
            .filter(|(i, e)| m.classify(&xte[i * dim..(i + 1) * dim]).name == e.intent)
            .count()
    };
    let blend_correct = correct(&model);
    let head_correct = correct(&model.with_knn(None)?);

    // Baseline: nearest centroid.
    let mut sums: BTreeMap<&str, (Vec<f32>, usize)> = BTreeMap::new();
    for (i, e) in exemplars.iter().enumerate() {
        let s = sums
            .entry(e.intent.as_str())
            .or_insert_with(|| (vec![0.0; dim], 0));
        s.0.iter_mut()
            .zip(&xtr[i * dim..(i + 1) * dim])
            .for_each(|(a, b)| *a += b);
        s.1 += 1;
    }
    let centroids: Vec<(&str, Vec<f32>)> = sums
        .into_iter()
        .map(|(k, (mut v, _))| {
            shopmind_inference::l2_normalize(&mut v);
            (k, v)
        })
        .collect();
    let centroid_correct = test
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            let q = &xte[i * dim..(i + 1) * dim];
            centroids
                .iter()
                .max_by(|a, b| crate::dot(&a.1, q).total_cmp(&crate::dot(&b.1, q)))
                .is_some_and(|(k, _)| *k == e.intent)
        })
        .count();

    // Retrieval: one article per intent.
    let mut by_intent: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &train {
        let list = by_intent.entry(e.intent.as_str()).or_default();
        if list.len() < ARTICLE_EXAMPLES {
            list.push(e.text.as_str());
        }
    }
    let articles: Vec<Article> = by_intent
        .iter()
        .map(|(intent, qs)| Article {
            id: (*intent).to_owned(),
            title: intent.replace('_', " "),
            body: qs.join("\n\n"),
            url: None,
            locale: "en".into(),
            tags: vec![],
        })
        .collect();
    let chunks: Vec<_> = articles
        .iter()
        .flat_map(|a| chunk_article(a, ChunkConfig::default()))
        .collect();
    let texts: Vec<String> = chunks.iter().map(|c| c.indexed_text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embed(&encoder, &refs, "embedding articles", progress)?;
    let index = KbIndex::new(chunks, dim, vectors)?;
    let cfg = RetrieveConfig {
        top: 20,
        ..RetrieveConfig::default()
    };
    let mut retrieval = Vec::new();
    for name in [
        "hybrid (cosine + 0.1 × relative BM25)",
        "dense alone",
        "BM25 alone",
    ] {
        let (mut h1, mut h3) = (0usize, 0usize);
        for (i, e) in test.iter().enumerate() {
            let q = &xte[i * dim..(i + 1) * dim];
            let ranked: Vec<usize> = match name {
                "dense alone" => index
                    .dense_ranking(q, None, cfg.top)
                    .into_iter()
                    .map(|(c, _)| c)
                    .collect(),
                "BM25 alone" => index.lexical_ranking(&e.text, None, cfg.top),
                _ => index
                    .search(&e.text, q, None, &cfg)
                    .hits
                    .iter()
                    .map(|h| h.chunk)
                    .collect(),
            };
            // Chunks → articles, first occurrence kept.
            let mut seen: Vec<&str> = Vec::new();
            for c in ranked {
                let a = index.chunks()[c].article_id.as_str();
                if !seen.contains(&a) {
                    seen.push(a);
                }
            }
            h1 += usize::from(seen.first() == Some(&e.intent.as_str()));
            h3 += usize::from(seen.iter().take(3).any(|a| *a == e.intent));
        }
        let n = test.len().max(1) as f64;
        retrieval.push((name.to_owned(), h1 as f64 / n, h3 as f64 / n));
    }

    let n = test.len().max(1) as f64;
    Ok(SupportReport {
        train_rows: train.len(),
        test_rows: test.len(),
        intents: catalog.intents.len(),
        intent: vec![
            Row {
                method: "linear head + nearest examples' vote (ours, default)".into(),
                value: blend_correct as f64 / n,
            },
            Row {
                method: "linear head alone".into(),
                value: head_correct as f64 / n,
            },
            Row {
                method: "nearest centroid (baseline)".into(),
                value: centroid_correct as f64 / n,
            },
        ],
        retrieval,
        train_seconds,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct SentimentReport {
    pub reviews: usize,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    /// Accuracy of always answering the most common label (the baseline).
    pub majority: f64,
}

/// Scores `head` on held-out labelled texts (JSONL lines `{"text", "label"}`).
pub fn evaluate_sentiment(
    heldout: &Path,
    encoder: Arc<Encoder>,
    head: &crate::head::LinearHead,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<SentimentReport, SupportError> {
    #[derive(serde::Deserialize)]
    struct Line {
        text: String,
        label: String,
    }
    let text = std::fs::read_to_string(heldout)
        .map_err(|e| SupportError::Invalid(format!("{}: {e}", heldout.display())))?;
    let lines: Vec<Line> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| SupportError::Invalid(format!("{}: {e}", heldout.display())))?;
    let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let x = embed(&encoder, &texts, "embedding reviews", progress)?;
    let dim = encoder.dimension();
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let got = head.predict(&x[i * dim..(i + 1) * dim]).map(|(p, _)| p);
        let e = per.entry(l.label.as_str()).or_insert((0, 0));
        e.0 += usize::from(got == Some(l.label.as_str()));
        e.1 += 1;
    }
    let n = lines.len().max(1) as f64;
    let correct: usize = per.values().map(|v| v.0).sum();
    let balanced =
        per.values().map(|v| v.0 as f64 / v.1 as f64).sum::<f64>() / per.len().max(1) as f64;
    let majority = per.values().map(|v| v.1).max().unwrap_or(0) as f64 / n;
    Ok(SentimentReport {
        reviews: lines.len(),
        accuracy: correct as f64 / n,
        balanced_accuracy: balanced,
        majority,
    })
}

/// The assistant's sentiment rule: the head's label is negative at `threshold` or above.
fn hands_off_as_upset(head: &crate::head::LinearHead, x: &[f32], threshold: f32) -> bool {
    head.predict(x)
        .is_some_and(|(label, p)| label == "negative" && p >= threshold)
}

/// Share of BANKING77's test questions — shoppers asking calmly, whatever the topic — that
/// `head` calls negative at or above `threshold` (what would hand them off as upset).
pub fn neutral_flagged_upset(
    dir: &Path,
    encoder: Arc<Encoder>,
    head: &crate::head::LinearHead,
    threshold: f32,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<(usize, f64), SupportError> {
    let test = load(&dir.join("test.csv"))?;
    let texts: Vec<&str> = test.iter().map(|e| e.text.as_str()).collect();
    let x = embed(&encoder, &texts, "embedding neutral questions", progress)?;
    let dim = encoder.dimension();
    let flagged = (0..texts.len())
        .filter(|&i| hands_off_as_upset(head, &x[i * dim..(i + 1) * dim], threshold))
        .count();
    Ok((texts.len(), flagged as f64 / texts.len().max(1) as f64))
}

/// The intent model's settings (the head's training, the nearest examples' vote) compared on
/// BANKING77's *train* split alone: every
/// tenth train row is held out and asked, the rest are the exemplars. The test split is never
/// read, so a default chosen here is not tuned on the figure the README reports.
pub fn tune_intent_head(
    dir: &Path,
    encoder: Arc<Encoder>,
    configs: &[(TrainConfig, Option<KnnBlend>)],
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<(TrainConfig, Option<KnnBlend>, f64)>, SupportError> {
    let rows = load(&dir.join("train.csv"))?;
    let (held, kept): (Vec<_>, Vec<_>) = rows.iter().enumerate().partition(|(i, _)| i % 10 == 9);
    let kept: Vec<Exemplar> = kept.into_iter().map(|(_, e)| e.clone()).collect();
    let held: Vec<&Exemplar> = held.into_iter().map(|(_, e)| e).collect();
    let dim = encoder.dimension();
    let catalog = IntentCatalog::from_exemplars(&kept, &Default::default());
    let exemplars = catalog.exemplars();
    let texts: Vec<&str> = exemplars.iter().map(|e| e.text.as_str()).collect();
    let xtr = embed(&encoder, &texts, "embedding exemplars", progress)?;
    let texts: Vec<&str> = held.iter().map(|e| e.text.as_str()).collect();
    let xho = embed(&encoder, &texts, "embedding held-out train rows", progress)?;
    // One head per training setting, however many blends are asked of it.
    let mut trained: Vec<(TrainConfig, IntentModel)> = Vec::new();
    let mut out = Vec::with_capacity(configs.len());
    for (cfg, knn) in configs {
        let model = match trained.iter().find(|(c, _)| c == cfg) {
            Some((_, m)) => m.clone(),
            None => {
                let m = IntentModel::train(&catalog, &xtr, dim, cfg, 0.0)?;
                trained.push((*cfg, m.clone()));
                m
            }
        }
        .with_knn(*knn)?;
        let correct = held
            .iter()
            .enumerate()
            .filter(|(i, e)| model.classify(&xho[i * dim..(i + 1) * dim]).name == e.intent)
            .count();
        out.push((*cfg, *knn, correct as f64 / held.len().max(1) as f64));
    }
    Ok(out)
}

/// One labelled support message of `infra/eval/upset/*.jsonl`.
#[derive(Debug, serde::Deserialize)]
struct LabelledMessage {
    text: String,
    /// `upset` or `calm`.
    label: String,
    lang: String,
}

/// Per label and language of a labelled message set: how many messages, and the share the
/// head hands off as upset at `threshold` (for `upset` rows that is the share caught).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpsetFigure {
    pub label: String,
    pub lang: String,
    pub messages: usize,
    pub flagged: f64,
}

pub fn upset_figures(
    path: &Path,
    encoder: Arc<Encoder>,
    head: &crate::head::LinearHead,
    threshold: f32,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Vec<UpsetFigure>, SupportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SupportError::Invalid(format!("{}: {e}", path.display())))?;
    let rows = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            let m: LabelledMessage = serde_json::from_str(l).map_err(|e| {
                SupportError::Invalid(format!("{} line {}: {e}", path.display(), i + 1))
            })?;
            if m.label != "upset" && m.label != "calm" {
                return Err(SupportError::Invalid(format!(
                    "{} line {}: label {:?} is neither upset nor calm",
                    path.display(),
                    i + 1,
                    m.label
                )));
            }
            Ok(m)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let texts: Vec<&str> = rows.iter().map(|m| m.text.as_str()).collect();
    let x = embed(&encoder, &texts, "embedding labelled messages", progress)?;
    let dim = encoder.dimension();
    let mut groups: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for (i, m) in rows.iter().enumerate() {
        let flagged = hands_off_as_upset(head, &x[i * dim..(i + 1) * dim], threshold);
        let g = groups.entry((m.label.clone(), m.lang.clone())).or_default();
        g.0 += 1;
        g.1 += usize::from(flagged);
    }
    Ok(groups
        .into_iter()
        .map(|((label, lang), (n, f))| UpsetFigure {
            label,
            lang,
            messages: n,
            flagged: f as f64 / n.max(1) as f64,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::read_csv;

    #[test]
    fn csv_quotes_commas_and_newlines() {
        let rows = read_csv(
            "text,category\n\"Hi, where is \"\"it\"\"?\",card\r\nplain,x\n\"two\nlines\",y",
        );
        assert_eq!(
            rows,
            vec![
                vec!["text", "category"],
                vec!["Hi, where is \"it\"?", "card"],
                vec!["plain", "x"],
                vec!["two\nlines", "y"],
            ]
        );
    }
}
