//! `shopmind eval helpcentre DIR`: every question of a help centre asked through the support
//! router exactly as a shopper's request reaches it (a new conversation each, the locale
//! given), on a fresh embedded store holding only that help centre.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_storage::BlobStore;
use shopmind_support::helpcentre::{self, EvalQuestion, HelpCentreReport, Outcome};
use tower::ServiceExt;

use crate::{AppParts, CliError};

#[derive(Debug, clap::Args)]
pub struct HelpCentreArgs {
    /// A folder with articles.jsonl, questions.jsonl and (optionally) intents.json.
    pub dir: PathBuf,
    /// Answers written by the generator: `on` (every answer) or `other-language` (only
    /// from articles in another script than the question); without it, extractive.
    #[arg(long, num_args = 0..=1, default_missing_value = "on", value_parser = ["on", "other-language"])]
    pub generate: Option<String>,
    /// Where the per-question outcomes go (JSON).
    #[arg(long, default_value = ".cache/eval/helpcentre")]
    pub out: PathBuf,
}

impl HelpCentreArgs {
    /// How answers are written, as the report and the outcome file name say it.
    fn mode(&self) -> &'static str {
        match self.generate.as_deref() {
            Some("on") => "generated",
            Some(_) => "generated-other-language",
            None => "extractive",
        }
    }
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        what: "could not read",
        path: path.display().to_string(),
        source,
    })
}

pub async fn eval(args: HelpCentreArgs, inference: InferenceConfig) -> Result<(), CliError> {
    let support_err = |e: shopmind_support::SupportError| CliError::Support(e.to_string());
    let questions = helpcentre::parse_questions(&read(&args.dir.join("questions.jsonl"))?)
        .map_err(support_err)?;
    let articles = read(&args.dir.join("articles.jsonl"))?;
    let intents = args.dir.join("intents.json");

    let data = tempfile::tempdir().map_err(|source| CliError::Io {
        what: "could not create a temporary data dir",
        path: std::env::temp_dir().display().to_string(),
        source,
    })?;
    let store = Arc::new(crate::open_store(data.path())?);
    let encoder = Arc::new(LazyEncoder::new(inference.clone()));
    let loaded = encoder.get().await?;
    let now = shopmind_storage::now_secs();
    store
        .put_blob("kb/articles.jsonl", articles.into_bytes().into())
        .await?;
    let kb = shopmind_support::indexer::index_kb(
        store.as_ref(),
        loaded.clone(),
        shopmind_support::ChunkConfig::default(),
        now,
        &mut |_, _| {},
    )
    .await
    .map_err(support_err)?;
    if intents.is_file() {
        store
            .put_blob(
                shopmind_support::indexer::INTENTS_KEY,
                read(&intents)?.into_bytes().into(),
            )
            .await?;
        shopmind_support::indexer::index_intents(store.as_ref(), loaded.clone(), now)
            .await
            .map_err(support_err)?;
    }
    let support_cfg = support::SupportConfig::from_lookup(|k| match k {
        "SHOPMIND_SUPPORT_GENERATE" => Some(args.generate.clone().unwrap_or_else(|| "off".into())),
        _ => std::env::var(k).ok(),
    })
    .map_err(|e| CliError::Support(e.to_string()))?;
    let generator = Arc::new(shopmind_inference::LazyGenerator::new(&inference));
    // Loaded before the first question, so no answer is given while it loads.
    let translated = support_cfg.translates(generator.model());
    if support_cfg.uses_generator(generator.model()) {
        generator.get().await?;
    }
    let app = crate::app(AppParts {
        encoder,
        limits: shopmind_embed_api::EmbedLimits::from_env()?,
        store,
        recs: recommend::RecommendConfig::from_env()?,
        support_cfg,
        model_cache_dir: inference.model_cache_dir.clone(),
        copy_cfg: copywriter::CopyConfig::from_env().map_err(|e| CliError::Copy(e.to_string()))?,
        generator,
        staff: shopmind_runtime::StaffAuth::local(Some("eval-run-no-staff-routes-used"))
            .map_err(CliError::Copy)?,
        // No guest sessions: each question's conversation answers to its id alone.
        shoppers: Arc::new(shopmind_runtime::ShopperAuth::default()),
        updater_cfg: Default::default(),
        signals_due: Default::default(),
    });

    // One warm-up question so the first timed one does not pay for loading the models.
    let stream = args.generate.is_some();
    ask(&app, "warm-up", Some("en"), "hello", stream).await?;
    let mut outcomes = Vec::with_capacity(questions.len());
    for (n, q) in questions.iter().enumerate() {
        eprint!("\r[eval] {}/{} questions", n + 1, questions.len());
        outcomes.push(ask_question(&app, q, stream).await?);
    }
    eprintln!();
    let report = helpcentre::score(&questions, &outcomes).map_err(support_err)?;
    print_report(&args, &report, kb.articles, loaded.model_id(), translated);
    let name = args
        .dir
        .file_name()
        .map_or("helpcentre".into(), |n| n.to_string_lossy().into_owned());
    let mode = format!(
        "{}{}",
        args.mode(),
        if translated { "-translated" } else { "" }
    );
    std::fs::create_dir_all(&args.out).map_err(|source| CliError::Io {
        what: "could not create",
        path: args.out.display().to_string(),
        source,
    })?;
    let path = args.out.join(format!("{name}-{mode}.json"));
    let body = json!({"encoder": loaded.model_id(), "report": report, "outcomes": outcomes});
    std::fs::write(&path, serde_json::to_vec_pretty(&body)?).map_err(|source| CliError::Io {
        what: "could not write",
        path: path.display().to_string(),
        source,
    })?;
    eprintln!("[eval] outcomes written to {}", path.display());
    Ok(())
}

async fn ask_question(
    app: &axum::Router,
    q: &EvalQuestion,
    stream: bool,
) -> Result<Outcome, CliError> {
    let started = Instant::now();
    let Asked {
        reply,
        first_token_ms,
        draft,
    } = ask(app, &q.id, q.locale.as_deref(), &q.question, stream).await?;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let text = |k: &str| reply.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(Outcome {
        id: q.id.clone(),
        reply: text("reply").unwrap_or_default(),
        cited: reply
            .get("citations")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("article_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        escalate: reply
            .get("escalate")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        escalation_reason: text("escalation_reason"),
        answer_source: text("answer_source").unwrap_or_default(),
        confidence: reply
            .get("confidence")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        latency_ms,
        first_token_ms,
        draft,
        generation_rejected: text("generation_rejected"),
        translated_query: text("translated_query"),
    })
}

/// One question's reply; for a streamed one also when its first generated text came and
/// all of it.
struct Asked {
    reply: Value,
    first_token_ms: Option<f64>,
    draft: Option<String>,
}

/// A new conversation, one message (streamed as a storefront would read it, or not).
async fn ask(
    app: &axum::Router,
    id: &str,
    locale: Option<&str>,
    text: &str,
    stream: bool,
) -> Result<Asked, CliError> {
    let created = call(app, "/v1/support/conversations", json!({})).await?;
    let conversation = created
        .get("conversation_id")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Eval(format!("{id}: no conversation_id in {created}")))?;
    let mut body = json!({ "text": text });
    if let Some(l) = locale {
        body["locale"] = json!(l);
    }
    let uri = format!("/v1/support/conversations/{conversation}/messages");
    if stream {
        return call_streamed(app, &uri, body)
            .await
            .map_err(|e| CliError::Eval(format!("{id}: {e}")));
    }
    call(app, &uri, body)
        .await
        .map(|reply| Asked {
            reply,
            first_token_ms: None,
            draft: None,
        })
        .map_err(|e| CliError::Eval(format!("{id}: {e}")))
}

/// The message posted with `Accept: text/event-stream`, its events read as they arrive.
async fn call_streamed(app: &axum::Router, uri: &str, body: Value) -> Result<Asked, CliError> {
    use http_body_util::BodyExt;
    let started = Instant::now();
    let response = post(app, uri, body, "text/event-stream").await?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(failed(uri, response).await);
    }
    let mut body = response.into_body();
    let (mut buffer, mut draft, mut first, mut reply) = (String::new(), None, None, None);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::Eval(e.to_string()))?;
        let Some(bytes) = frame.data_ref() else {
            continue;
        };
        buffer.push_str(&String::from_utf8_lossy(bytes));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let (mut name, mut data) = ("", String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            match name {
                "token" => {
                    first.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
                    let piece: Value = serde_json::from_str(&data)?;
                    draft
                        .get_or_insert_with(String::new)
                        .push_str(piece["text"].as_str().unwrap_or_default());
                }
                "reply" => reply = Some(serde_json::from_str(&data)?),
                "error" => return Err(CliError::Eval(format!("{uri}: {status} {data}"))),
                _ => {}
            }
        }
    }
    let reply = reply.ok_or_else(|| {
        CliError::Eval(format!("{uri}: {status}, the stream ended without a reply"))
    })?;
    Ok(Asked {
        reply,
        first_token_ms: first,
        draft,
    })
}

async fn post(
    app: &axum::Router,
    uri: &str,
    body: Value,
    accept: &str,
) -> Result<axum::response::Response, CliError> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, accept)
        .body(Body::from(serde_json::to_vec(&body)?))
        .map_err(|e| CliError::Eval(e.to_string()))?;
    app.clone()
        .oneshot(request)
        .await
        .map_err(|e| CliError::Eval(e.to_string()))
}

/// A refused request as the error the evaluation stops with.
async fn failed(uri: &str, response: axum::response::Response) -> CliError {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    CliError::Eval(format!(
        "{uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    ))
}

async fn call(app: &axum::Router, uri: &str, body: Value) -> Result<Value, CliError> {
    let response = post(app, uri, body, "application/json").await?;
    if !matches!(response.status(), StatusCode::OK | StatusCode::CREATED) {
        return Err(failed(uri, response).await);
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .map_err(|e| CliError::Eval(e.to_string()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn print_report(
    args: &HelpCentreArgs,
    r: &HelpCentreReport,
    articles: usize,
    encoder: &str,
    translated: bool,
) {
    let mode = args.mode();
    let search = if translated {
        "questions in another language also searched translated"
    } else {
        "questions searched as written"
    };
    println!(
        "\n{}: {articles} articles, {} answerable questions; encoder {encoder}; {mode} answers; {search}\n",
        args.dir.display(),
        r.answerable.questions
    );
    println!("| slice | questions | citation hit@1 | fact recall | false handoffs | reply in the question's script |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |name: &str, s: &helpcentre::Slice| {
        println!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.questions, s.hit_at_1, s.fact_recall, s.false_handoffs, s.in_language
        );
    };
    row("all answerable", &r.answerable);
    for (lang, s) in &r.by_language {
        row(lang, s);
    }
    println!("\n| should hand off | caught |\n| --- | --- |");
    for (kind, (caught, asked)) in &r.handoffs {
        println!("| {kind} | {caught}/{asked} |");
    }
    println!(
        "\nlatency per message: p50 {:.0} ms, p95 {:.0} ms; generated answers: {}",
        r.latency_p50_ms, r.latency_p95_ms, r.generated
    );
    if let (Some(p50), Some(p95)) = (r.first_token_p50_ms, r.first_token_p95_ms) {
        println!("first generated text (streamed): p50 {p50:.0} ms, p95 {p95:.0} ms");
    }
    if !r.rejected.is_empty() {
        let kinds: Vec<String> = r.rejected.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!("generated answers turned down: {}", kinds.join(", "));
    }
    if !r.misses.is_empty() {
        println!(
            "missed (wrong article, missing fact or handed off): {}",
            r.misses.join(" ")
        );
    }
}
