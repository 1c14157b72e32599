//! `shopmind copy batch`: the copy pipeline over a catalog file, on the embedded store, with a
//! progress bar. Resumable: drafts already written from the same inputs are skipped, so an
//! interrupted run picks up where it stopped.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use shopmind_copy::jobs::{due, BatchSpec};
use shopmind_copy::{parse_catalog, ModelProvider, NoModel, Outcome, Source, TextModel};
use shopmind_inference::{InferenceConfig, LazyGenerator};

use crate::{open_store, progress_bar, CliError};

#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// A JSONL catalog (the indexer's format: `item_id`, title, category, brand,
    /// price, currency, attributes, selling_points).
    #[arg(long)]
    catalog: PathBuf,
    /// Comma-separated channels: pdp_description, marketing_email, social_post, push, sms.
    #[arg(long, default_value = "pdp_description")]
    channels: String,
    /// Comma-separated locales: en, zh-CN.
    #[arg(long, default_value = "en")]
    locales: String,
    /// Candidates per draft (1-5).
    #[arg(long)]
    variants: Option<usize>,
    /// Only the first N products.
    #[arg(long)]
    limit: Option<usize>,
    /// Composer only: no generator.
    #[arg(long)]
    no_model: bool,
    /// Also write every draft written in this run as JSON lines here.
    #[arg(long)]
    report: Option<PathBuf>,
    #[arg(long, default_value = ".shopmind", env = "SHOPMIND_DATA_DIR")]
    data_dir: PathBuf,
}

pub async fn batch(args: BatchArgs, inference: InferenceConfig) -> Result<(), CliError> {
    let copy = |e: shopmind_copy::CopyError| CliError::Copy(e.to_string());
    let text = std::fs::read_to_string(&args.catalog).map_err(|source| CliError::Io {
        what: "could not read the catalog",
        path: args.catalog.display().to_string(),
        source,
    })?;
    let (mut products, bad) = parse_catalog(&text);
    for b in &bad {
        eprintln!("line {}: {}", b.line, b.reason);
    }
    if let Some(n) = args.limit {
        products.truncate(n);
    }
    let mut spec = BatchSpec::parse(&args.channels, &args.locales).map_err(copy)?;
    spec.variants = args.variants;
    let store = Arc::new(open_store(&args.data_dir)?);
    let config = copywriter::CopyConfig::from_env().map_err(|e| CliError::Copy(e.to_string()))?;
    let models: Arc<dyn ModelProvider> = if args.no_model || !config.generator {
        Arc::new(NoModel)
    } else {
        Arc::new(LazyGenerator::new(&inference))
    };
    let service = config.service(store, models);
    let (jobs, tally) = due(&service, spec.jobs(&products)).await.map_err(copy)?;
    println!(
        "{} products, {} bad lines; {} jobs due ({} missing, {} stale), {} current, {} approved or edited",
        products.len(),
        bad.len(),
        jobs.len(),
        tally.missing,
        tally.stale,
        tally.current,
        tally.kept
    );
    let mut report = match &args.report {
        Some(p) => Some(std::fs::File::create(p).map_err(|source| CliError::Io {
            what: "could not create the report",
            path: p.display().to_string(),
            source,
        })?),
        None => None,
    };
    let started = Instant::now();
    let total = jobs.len();
    let mut sources: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let (mut generated, mut passed, mut repaired, mut failed_jobs) = (0, 0, 0, 0);
    progress_bar(0, total, "jobs");
    for (i, job) in jobs.into_iter().enumerate() {
        let id = job.product.id.clone();
        match service
            .generate(job, "shopmind-copy-batch", None, true)
            .await
        {
            Ok(g) => {
                if matches!(g.outcome, Outcome::Created | Outcome::Regenerated) {
                    let d = &g.draft;
                    *sources
                        .entry(match d.source {
                            Source::Model => "model",
                            Source::Repaired => "repaired",
                            Source::Fallback => "fallback",
                        })
                        .or_default() += 1;
                    generated += d.stats.generated;
                    passed += d.stats.passed;
                    repaired += d.stats.repaired;
                    for (rule, n) in &d.stats.failures {
                        *failures.entry(rule.clone()).or_default() += n;
                    }
                    if let Some(f) = report.as_mut() {
                        let line = json!({
                            "product_id": d.product_id, "channel": d.channel, "locale": d.locale,
                            "source": d.source, "text": d.text, "passed": d.validation.passed,
                            "fallback_reason": d.fallback_reason, "stats": d.stats,
                            "variants": d.variants.iter().map(|v| &v.text).collect::<Vec<_>>(),
                        });
                        writeln!(f, "{line}").map_err(|source| CliError::Io {
                            what: "could not write the report",
                            path: String::new(),
                            source,
                        })?;
                    }
                }
            }
            Err(e) => {
                failed_jobs += 1;
                eprintln!("\n{id}: {e}");
            }
        }
        progress_bar(i + 1, total, "jobs");
    }
    let secs = started.elapsed().as_secs_f64();
    let written: usize = sources.values().sum();
    println!(
        "{written} drafts in {secs:.1} s ({:.1} jobs/min); by source {sources:?}; {failed_jobs} jobs failed",
        written as f64 * 60.0 / secs.max(1e-9)
    );
    if generated > 0 {
        println!(
            "candidates: {generated} generated, {passed} passed as written ({:.1}%), {repaired} passed after repair ({:.1}%); failures by rule {failures:?}",
            100.0 * passed as f64 / generated as f64,
            100.0 * repaired as f64 / generated as f64,
        );
    }
    if failed_jobs > 0 {
        return Err(CliError::Copy(format!(
            "{failed_jobs} jobs failed; run again to retry them"
        )));
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct GroundingArgs {
    /// The catalog the sentences were written for (JSONL, as for `copy batch`).
    #[arg(long)]
    catalog: PathBuf,
    /// Labelled sentences, JSON lines: product_id, channel, locale, sentence, invented
    /// (true when it states something no product field supports), note.
    #[arg(long)]
    labels: PathBuf,
    /// Also ask the generator about every sentence (the grounding check's verifier) and
    /// report the figures at a range of thresholds.
    #[arg(long)]
    verify: bool,
    /// Print every disagreement (at the shipped threshold with --verify).
    #[arg(long)]
    show_errors: bool,
}

#[derive(serde::Deserialize)]
struct Label {
    product_id: String,
    channel: shopmind_copy::Channel,
    locale: shopmind_copy::Locale,
    sentence: String,
    invented: bool,
}

fn read(path: &PathBuf, what: &'static str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what,
        path: path.display().to_string(),
        source,
    })
}

pub async fn grounding(args: GroundingArgs, inference: InferenceConfig) -> Result<(), CliError> {
    let (products, _) = parse_catalog(&read(&args.catalog, "could not read the catalog")?);
    let products: BTreeMap<&str, &shopmind_copy::Product> =
        products.iter().map(|p| (p.id.as_str(), p)).collect();
    let rules = shopmind_copy::Rules::default();
    let model: Option<Arc<dyn TextModel>> = if args.verify {
        let g = LazyGenerator::new(&inference)
            .get()
            .await
            .map_err(|e| CliError::Copy(format!("the verifier needs the generator: {e}")))?;
        Some(g)
    } else {
        None
    };
    let mut labels = Vec::new();
    for (i, line) in read(&args.labels, "could not read the labels")?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let label: Label = serde_json::from_str(line)
            .map_err(|e| CliError::Copy(format!("labels line {}: {e}", i + 1)))?;
        if !products.contains_key(label.product_id.as_str()) {
            return Err(CliError::Copy(format!(
                "labels line {}: product {:?} is not in the catalog",
                i + 1,
                label.product_id
            )));
        }
        labels.push(label);
    }
    let started = Instant::now();
    let mut scored = Vec::with_capacity(labels.len());
    if model.is_some() {
        progress_bar(0, labels.len(), "sentences");
    }
    for (i, label) in labels.iter().enumerate() {
        let req = shopmind_copy::CopyRequest {
            product: products[label.product_id.as_str()].clone(),
            channel: label.channel,
            locale: label.locale,
            tone: None,
            audience: None,
            max_chars: None,
            variants: None,
        };
        let g =
            shopmind_copy::checks::ground_sentence(&req, &rules, &label.sentence, model.as_deref());
        if let Some(Err(e)) = &g.support {
            return Err(CliError::Copy(format!("the verifier failed: {e}")));
        }
        scored.push(g);
        if model.is_some() {
            progress_bar(i + 1, labels.len(), "sentences");
        }
    }
    let shipped = model
        .as_ref()
        .and(shopmind_copy::checks::Grounding::default().verify_above);
    // The verifier is off by default: the sweep below is what decides whether to turn it on.
    if args.show_errors {
        for (label, g) in labels.iter().zip(&scored) {
            let flagged = g.flagged(shipped);
            if label.invented != flagged {
                let why = g
                    .lexical
                    .iter()
                    .chain(&g.facts)
                    .map(|v| v.term.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                let p = match &g.support {
                    Some(Ok(p)) => format!(" p(supported) {p:.2}"),
                    _ => String::new(),
                };
                println!(
                    "{} {}: {:?} [{}]{p}",
                    if flagged { "FP" } else { "FN" },
                    label.product_id,
                    label.sentence,
                    why
                );
            }
        }
    }
    let confusion = |flag: &dyn Fn(&shopmind_copy::checks::Grounded) -> bool| {
        let mut c = Confusion::default();
        for (label, g) in labels.iter().zip(&scored) {
            c.add(label.invented, flag(g));
        }
        c
    };
    println!(
        "lexical grounding alone:        {}",
        confusion(&|g| !g.lexical.is_empty())
    );
    println!(
        "lexical grounding + fact rules: {}",
        confusion(&|g| g.flagged(None))
    );
    if model.is_some() {
        println!(
            "verifier: {} sentences in {:.0} s",
            labels.len(),
            started.elapsed().as_secs_f64()
        );
        let p = |g: &shopmind_copy::checks::Grounded| match &g.support {
            Some(Ok(p)) => *p,
            _ => 1.0,
        };
        for t in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
            let mark = if shipped == Some(t) { " (shipped)" } else { "" };
            println!(
                "lexical, withdrawn at p >= {t:.1} + fact rules{mark}: {}",
                confusion(&|g| g.flagged(Some(t)))
            );
            println!(
                "verifier alone, flagged at p < {t:.1}:             {}",
                confusion(&|g| p(g) < t)
            );
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct Confusion {
    tp: usize,
    fp: usize,
    fn_: usize,
    tn: usize,
}

impl Confusion {
    fn add(&mut self, truth: bool, flagged: bool) {
        match (truth, flagged) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => self.tn += 1,
        }
    }
}

impl std::fmt::Display for Confusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { tp, fp, fn_, tn } = *self;
        write!(
            f,
            "{} sentences, {} labelled invented; tp {tp}, fp {fp}, fn {fn_}, tn {tn}; \
             precision {:.3}, recall {:.3}",
            tp + fp + fn_ + tn,
            tp + fn_,
            tp as f64 / (tp + fp).max(1) as f64,
            tp as f64 / (tp + fn_).max(1) as f64
        )
    }
}
