//! Steps 2–5: generate candidates from the plan, validate each, repair what can be repaired
//! (drop the sentences that break a rule, cut to length), rank the ones that pass, and fall
//! back to the composer when none does.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shopmind_inference::{ChatMessage, Decoding, FinishReason, GenerateOptions, Generation};

use crate::checks::{sentences, Checks, Input};
use crate::compose::compose;
use crate::error::{CopyError, Result};
use crate::plan::{plan, Plan};
use crate::product::{Channel, CopyRequest, Locale};
use crate::prompt::{max_new_tokens, prompt};
use crate::validate::{Context, Corpus, Report, Rule, Rules, Violation};

/// A text generator as the pipeline needs it; [`shopmind_inference::Generator`] is the real
/// one. One completion per prompt, in order.
pub trait TextModel: Send + Sync {
    fn id(&self) -> &str;
    fn complete(
        &self,
        prompts: &[Vec<ChatMessage>],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>>;

    /// How likely the model's answer to `messages` starts with each of `options` (each option
    /// scored by its first token), as probabilities that sum to 1 over the options: the
    /// grounding check asks the model "is this sentence supported?" this way. A model that
    /// cannot score answers says so, and the lexical verdict stands.
    fn judge(&self, _messages: &[ChatMessage], _options: &[&str]) -> Result<Vec<f32>> {
        Err(CopyError::Model(format!(
            "{} cannot score answers",
            self.id()
        )))
    }
}

impl TextModel for shopmind_inference::Generator {
    fn id(&self) -> &str {
        self.model_id()
    }

    fn complete(
        &self,
        prompts: &[Vec<ChatMessage>],
        opts: &GenerateOptions,
    ) -> Result<Vec<Generation>> {
        let rendered = prompts
            .iter()
            .map(|m| self.render_chat(m))
            .collect::<shopmind_inference::Result<Vec<String>>>()
            .map_err(|e| CopyError::Model(e.to_string()))?;
        let refs: Vec<&str> = rendered.iter().map(String::as_str).collect();
        self.generate(&refs, opts, &mut |_, _| {})
            .map_err(|e| CopyError::Model(e.to_string()))
    }

    fn judge(&self, messages: &[ChatMessage], options: &[&str]) -> Result<Vec<f32>> {
        let model = |e: shopmind_inference::InferenceError| CopyError::Model(e.to_string());
        let ids = self
            .encode(&self.render_chat(messages).map_err(model)?)
            .map_err(model)?;
        let logits = self.last_logits(&ids, false).map_err(model)?;
        let mut scores = Vec::with_capacity(options.len());
        for option in options {
            let first = self.encode_text(option).map_err(model)?;
            let logit = first
                .first()
                .and_then(|&t| logits.get(t as usize))
                .copied()
                .ok_or_else(|| CopyError::Model(format!("option {option:?} has no token")))?;
            scores.push(logit);
        }
        Ok(softmax(&scores))
    }
}

/// Probabilities from logits (shifted by the largest, so large logits do not overflow).
fn softmax(logits: &[f32]) -> Vec<f32> {
    let top = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - top).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Generated and passed as written.
    Model,
    /// Generated, passed after sentences that broke a rule were dropped or it was cut.
    Repaired,
    /// Written by the composer because no candidate passed.
    Fallback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub text: String,
    pub source: Source,
    pub validation: Report,
    pub score: f32,
}

/// What happened to the generated candidates, for the draft and for the pass-rate figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CandidateStats {
    pub generated: usize,
    pub passed: usize,
    pub repaired: usize,
    pub failed: usize,
    /// How often each rule failed a candidate (before repair).
    pub failures: std::collections::BTreeMap<String, usize>,
    /// A generation was cut by the time budget.
    pub cut: bool,
    /// Every generated candidate as the model wrote it (cleaned), with what the checks found:
    /// a reviewer sees what was turned down and why, and the evaluation reads the sentences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub text: String,
    pub outcome: CandidateOutcome,
    /// The violations found in `text` (before any repair).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Violation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateOutcome {
    Passed,
    Repaired,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Written {
    pub plan: Plan,
    /// Best first; the first is the draft's text.
    pub variants: Vec<Variant>,
    pub model: Option<String>,
    pub fallback_reason: Option<String>,
    pub stats: CandidateStats,
}

/// Decoding settings; sampling with repetition control (greedy makes small models loop).
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// Generation rounds before falling back.
    pub rounds: usize,
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub repetition_penalty: f32,
    pub no_repeat_ngram: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            rounds: 2,
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            repetition_penalty: 1.15,
            no_repeat_ngram: 3,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CopyWriter {
    pub rules: Rules,
    pub config: WriterConfig,
    /// What generated candidates go through after the rules.
    pub checks: Checks,
}

impl CopyWriter {
    pub fn new(rules: Rules, config: WriterConfig) -> Self {
        Self {
            rules,
            config,
            checks: Checks::builtin(),
        }
    }

    /// The same writer with other checks on generated candidates (the built-in ones are
    /// [`Checks::builtin`]).
    pub fn with_checks(mut self, checks: Checks) -> Self {
        self.checks = checks;
        self
    }

    /// The checks a text must pass for this request.
    pub fn validate(&self, req: &CopyRequest, text: &str) -> Report {
        let corpus = Corpus::of(&req.product, &self.rules);
        self.rules.check(text, &context(req, &corpus))
    }

    /// Runs the pipeline. `model` is `None` when no generator is available: the composer
    /// writes the draft and says why. Never fails: the shop always gets correct copy.
    pub fn write(
        &self,
        req: &CopyRequest,
        model: Option<&dyn TextModel>,
        model_error: Option<String>,
        deadline: Option<Instant>,
    ) -> Written {
        let corpus = Corpus::of(&req.product, &self.rules);
        let ctx = context(req, &corpus);
        let plan = plan(req, &self.rules, &corpus);
        let want = req.variants();
        let mut stats = CandidateStats::default();
        let mut passing: Vec<Variant> = Vec::new();
        let mut reason = model_error;
        // Sampling is seeded from the inputs: the same request drafts the same copy.
        let seed = u64::from_le_bytes(
            Sha256::digest(req.input_hash().as_bytes())[..8]
                .try_into()
                .unwrap_or([0; 8]),
        );
        if let Some(model) = model {
            let messages = prompt(&plan);
            for round in 0..self.config.rounds {
                if passing.len() >= want {
                    break;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    stats.cut = true;
                    break;
                }
                let n = want - passing.len();
                let opts = GenerateOptions {
                    max_new_tokens: max_new_tokens(req.channel),
                    decoding: Decoding::Sample {
                        temperature: self.config.temperature,
                        top_k: self.config.top_k,
                        top_p: self.config.top_p,
                        seed: seed ^ (round as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    },
                    repetition_penalty: self.config.repetition_penalty,
                    no_repeat_ngram: self.config.no_repeat_ngram,
                    // Copy quotes the title, brand and facts: penalising the prompt's tokens
                    // (with no-repeat n-grams over them) made the model misspell them.
                    penalise_prompt: false,
                    stop: Vec::new(),
                    deadline,
                };
                let generations = match model.complete(&vec![messages.clone(); n], &opts) {
                    Ok(g) => g,
                    Err(e) => {
                        tracing::warn!(error = %e, "generation failed; composing instead");
                        reason = Some(e.to_string());
                        break;
                    }
                };
                for g in generations {
                    stats.generated += 1;
                    let finished = matches!(g.finish, FinishReason::Eos | FinishReason::Stop);
                    if g.finish == FinishReason::TimeBudget {
                        stats.cut = true;
                    }
                    let mut text = tidy_prices(&clean(&g.text, req.channel), req.product.price);
                    if !finished {
                        // Cut mid-sentence by the token or time budget: keep whole sentences.
                        text = whole_sentences(&text);
                    }
                    let report =
                        check_generated(&text, &ctx, &plan, &self.rules, &self.checks, model);
                    if report.passed {
                        stats.passed += 1;
                        stats.candidates.push(Candidate {
                            text: text.clone(),
                            outcome: CandidateOutcome::Passed,
                            findings: Vec::new(),
                        });
                        passing.push(self.variant(text, Source::Model, report, &plan));
                        continue;
                    }
                    for v in &report.violations {
                        *stats
                            .failures
                            .entry(
                                serde_json::to_value(v.rule)
                                    .ok()
                                    .and_then(|r| r.as_str().map(str::to_owned))
                                    .unwrap_or_default(),
                            )
                            .or_default() += 1;
                    }
                    let repaired = repair(&text, &report, &ctx, &|t: &str| {
                        check_generated(t, &ctx, &plan, &self.rules, &self.checks, model)
                    });
                    stats.candidates.push(Candidate {
                        text: text.clone(),
                        outcome: if repaired.is_some() {
                            CandidateOutcome::Repaired
                        } else {
                            CandidateOutcome::Failed
                        },
                        findings: report.violations.clone(),
                    });
                    match repaired {
                        Some((fixed, report)) => {
                            stats.repaired += 1;
                            passing.push(self.variant(fixed, Source::Repaired, report, &plan));
                        }
                        None => stats.failed += 1,
                    }
                }
            }
            if passing.is_empty() && reason.is_none() {
                reason = Some(format!(
                    "none of {} generated candidates passed validation",
                    stats.generated
                ));
            }
        } else if reason.is_none() {
            reason = Some("no generator configured".into());
        }
        let model_id = model.map(|m| m.id().to_owned());
        if passing.is_empty() {
            let text = compose(&plan, ctx.max_chars);
            let report = self.rules.check(&text, &ctx);
            let variant = self.variant(text, Source::Fallback, report, &plan);
            return Written {
                plan,
                variants: vec![variant],
                model: model_id,
                fallback_reason: reason,
                stats,
            };
        }
        passing.sort_by(|a, b| b.score.total_cmp(&a.score));
        passing.dedup_by(|a, b| a.text == b.text);
        passing.truncate(want);
        Written {
            plan,
            variants: passing,
            model: model_id,
            fallback_reason: None,
            stats,
        }
    }

    fn variant(&self, text: String, source: Source, validation: Report, plan: &Plan) -> Variant {
        let score = score(&text, plan, source);
        Variant {
            text,
            source,
            validation,
            score,
        }
    }
}

fn context<'a>(req: &'a CopyRequest, corpus: &'a Corpus) -> Context<'a> {
    Context {
        corpus,
        channel: req.channel,
        locale: req.locale,
        max_chars: req.max_chars(),
        brand: req.product.brand.as_deref(),
    }
}

/// Ranking: how many planned facts the text uses, how well it fills the channel, and a
/// penalty for having needed repair.
fn score(text: &str, plan: &Plan, source: Source) -> f32 {
    let lower = text.to_lowercase();
    let used = plan
        .facts
        .iter()
        .filter(|f| {
            let key = f.value.to_lowercase();
            let first = key.split_whitespace().next().unwrap_or_default().to_owned();
            lower.contains(&key) || (first.chars().count() >= 4 && lower.contains(&first))
        })
        .count();
    let coverage = used as f32 / plan.facts.len().max(1) as f32;
    let fill = (text.chars().count() as f32 / plan.max_chars.max(1) as f32).min(1.0);
    let penalty = match source {
        Source::Model => 0.0,
        Source::Repaired => 0.2,
        Source::Fallback => 0.5,
    };
    coverage + 0.3 * fill - penalty
}

/// The rules, then the checks on generated text ([`Checks`]), in one report.
fn check_generated(
    text: &str,
    ctx: &Context<'_>,
    plan: &Plan,
    rules: &Rules,
    checks: &Checks,
    model: &dyn TextModel,
) -> Report {
    let mut report = rules.check(text, ctx);
    let found = checks.run(
        text,
        &Input {
            ctx,
            plan,
            model: Some(model),
        },
    );
    if !found.is_empty() {
        report.violations.extend(found);
        report.violations.sort_by_key(|v| (v.start, v.end));
        report.passed = false;
    }
    report
}

pub fn clean(raw: &str, channel: Channel) -> String {
    let mut lines: Vec<&str> = raw.lines().map(str::trim).collect();
    while lines.first().is_some_and(|l| {
        l.is_empty() || (l.ends_with(':') && l.len() < 80) || l.to_lowercase().starts_with("here")
    }) {
        lines.remove(0);
    }
    let mut text = lines.join("\n").replace("**", "").replace("__", "");
    text = text
        .trim()
        .trim_matches(['"', '“', '”', '「', '」'])
        .trim()
        .to_owned();
    if matches!(channel, Channel::Sms | Channel::Push | Channel::SocialPost) {
        text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    text
}

/// The price written as the product data gives it when the model wrote the same value its
/// own way ("costs 59.0", "59,00"): no claim changes, and copy reads as the shop writes.
fn tidy_prices(text: &str, price: Option<f64>) -> String {
    #[allow(clippy::expect_used)] // a constant pattern, covered by the tests below
    static NUMBER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\d+(?:[.,]\d+)*").expect("number"));
    let Some(price) = price.filter(|p| p.is_finite()) else {
        return text.to_owned();
    };
    let canonical = crate::validate::format_price(price);
    let whole = (price.fract() == 0.0).then(|| format!("{price:.0}"));
    NUMBER
        .replace_all(text, |c: &regex::Captures<'_>| {
            let written = &c[0];
            let value = written.replacen(',', ".", 1).parse::<f64>().ok();
            let same = value.is_some_and(|v| (v - price).abs() < 1e-9);
            if same && written != canonical && Some(written) != whole.as_deref() {
                canonical.clone()
            } else {
                written.to_owned()
            }
        })
        .into_owned()
}

/// Byte ranges of the sentences in `text` (., !, ?, 。, ！, ？, ； or a line end closes one).
fn closes_sentence(s: &str) -> bool {
    s.trim_end()
        .ends_with(['.', '!', '?', '。', '！', '？', '…'])
}

/// The text up to the end of its last complete sentence (or all of it if none ends).
fn whole_sentences(text: &str) -> String {
    let parts = sentences(text);
    let complete: Vec<_> = parts
        .iter()
        .filter(|r| closes_sentence(&text[(*r).clone()]))
        .collect();
    match complete.last() {
        Some(last) => text[..last.end].trim().to_owned(),
        None => text.trim().to_owned(),
    }
}

/// Drops every sentence that holds a violation, then trailing sentences until the text fits;
/// the result must pass on its own. `None` when nothing usable is left.
fn repair(
    text: &str,
    report: &Report,
    ctx: &Context<'_>,
    check: &dyn Fn(&str) -> Report,
) -> Option<(String, Report)> {
    let bad: Vec<&Violation> = report
        .violations
        .iter()
        .filter(|v| v.start < v.end)
        .collect();
    if report.violations.iter().any(|v| {
        matches!(
            v.rule,
            Rule::TooShort | Rule::Empty | Rule::WrongLanguage | Rule::OffTopic | Rule::ProductName
        ) && v.start == v.end
    }) {
        return None;
    }
    let keep: Vec<&str> = sentences(text)
        .into_iter()
        .filter(|r| !bad.iter().any(|v| v.start < r.end && r.start < v.end))
        .map(|r| text[r].trim())
        .filter(|s| !s.is_empty())
        .collect();
    let sep = if ctx.locale == Locale::ZhCn { "" } else { " " };
    let mut kept = keep.clone();
    loop {
        let candidate = kept.join(sep);
        let report = check(&candidate);
        if report.passed {
            return Some((candidate, report));
        }
        let too_long = report.violations.iter().any(|v| v.rule == Rule::TooLong);
        if !too_long || kept.len() <= 1 {
            return None;
        }
        kept.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// Plays back texts as if a model wrote them (the real model is tested in tests/).
    struct Scripted {
        texts: Mutex<Vec<&'static str>>,
        calls: Mutex<usize>,
    }

    impl TextModel for Scripted {
        fn id(&self) -> &str {
            "scripted"
        }
        fn complete(
            &self,
            prompts: &[Vec<ChatMessage>],
            _: &GenerateOptions,
        ) -> Result<Vec<Generation>> {
            *self.calls.lock().unwrap() += 1;
            let mut texts = self.texts.lock().unwrap();
            Ok(prompts
                .iter()
                .map(|_| Generation {
                    text: if texts.is_empty() {
                        String::new()
                    } else {
                        texts.remove(0).to_owned()
                    },
                    tokens: Vec::new(),
                    prompt_tokens: 0,
                    finish: FinishReason::Eos,
                    timing: Default::default(),
                })
                .collect())
        }
    }

    fn scripted(texts: Vec<&'static str>) -> Scripted {
        Scripted {
            texts: Mutex::new(texts),
            calls: Mutex::new(0),
        }
    }

    fn request(channel: &str) -> CopyRequest {
        serde_json::from_value(json!({
            "product": {"id": "fit-1", "title": "Hose fitting", "brand": "Acme",
                "price": 12.5, "currency": "EUR",
                "attributes": {"material": "copper", "thread": "9/16 inch"},
                "selling_points": ["Fits standard garden taps"]},
            "channel": channel, "locale": "en", "variants": 2
        }))
        .unwrap()
    }

    #[test]
    fn passing_candidates_are_ranked_and_failing_ones_repaired() {
        let model = scripted(vec![
            "Here is your post:\n\"A copper hose fitting with a 9/16 inch thread. Fits standard garden taps.\"",
            "The best fitting money can buy. Copper, 9/16 inch thread, fits standard garden taps.",
        ]);
        let w = CopyWriter::default().write(&request("social_post"), Some(&model), None, None);
        assert_eq!(w.variants.len(), 2, "{:#?}", w.stats.candidates);
        assert_eq!(
            w.stats
                .candidates
                .iter()
                .map(|c| c.outcome)
                .collect::<Vec<_>>(),
            [CandidateOutcome::Passed, CandidateOutcome::Repaired]
        );
        assert_eq!(w.variants[0].source, Source::Model);
        assert_eq!(
            w.variants[0].text,
            "A copper hose fitting with a 9/16 inch thread. Fits standard garden taps."
        );
        assert_eq!(w.variants[1].source, Source::Repaired);
        assert_eq!(
            w.variants[1].text,
            "Copper, 9/16 inch thread, fits standard garden taps."
        );
        assert!(w.variants.iter().all(|v| v.validation.passed));
        assert_eq!(
            (w.stats.generated, w.stats.passed, w.stats.repaired),
            (2, 1, 1)
        );
        assert_eq!(w.stats.failures.get("superlative"), Some(&1));
    }

    #[test]
    fn invented_facts_everywhere_fall_back_to_the_composer() {
        let model = scripted(vec![
            "Made of steel with a 1-9/16 inch thread.",
            "Guaranteed for 10 years.",
            "The #1 fitting, 100% leak-proof.",
            "Stainless steel, IP68.",
        ]);
        let w = CopyWriter::default().write(&request("sms"), Some(&model), None, None);
        assert_eq!(
            *model.calls.lock().unwrap(),
            2,
            "two rounds before falling back"
        );
        assert_eq!(w.variants.len(), 1);
        let v = &w.variants[0];
        assert_eq!(v.source, Source::Fallback);
        assert!(v.validation.passed, "{:?}", v.validation.violations);
        assert_eq!(
            v.text,
            "The hose fitting by Acme: fits standard garden taps. Now 12.50 EUR."
        );
        assert!(w.fallback_reason.unwrap().contains("4 generated"));
    }

    #[test]
    fn no_model_or_a_failing_model_still_gives_copy() {
        let w = CopyWriter::default().write(&request("push"), None, None, None);
        assert_eq!(w.variants[0].source, Source::Fallback);
        assert_eq!(
            w.fallback_reason.as_deref(),
            Some("no generator configured")
        );
        struct Broken;
        impl TextModel for Broken {
            fn id(&self) -> &str {
                "broken"
            }
            fn complete(
                &self,
                _: &[Vec<ChatMessage>],
                _: &GenerateOptions,
            ) -> Result<Vec<Generation>> {
                Err(CopyError::Model("session failed".into()))
            }
        }
        let w = CopyWriter::default().write(&request("push"), Some(&Broken), None, None);
        assert!(w.variants[0].validation.passed);
        assert!(w.fallback_reason.unwrap().contains("session failed"));
    }

    #[test]
    fn a_passed_deadline_generates_nothing() {
        let model = scripted(vec![
            "Copper hose fitting for standard garden taps, 9/16 inch.",
        ]);
        let w =
            CopyWriter::default().write(&request("sms"), Some(&model), None, Some(Instant::now()));
        assert_eq!(*model.calls.lock().unwrap(), 0);
        assert!(w.stats.cut);
        assert_eq!(w.variants[0].source, Source::Fallback);
    }

    #[test]
    fn chatter_about_itself_is_off_topic() {
        let model = scripted(vec![
            "I'm ready to help you craft your product listing! What is it?",
            "Happy to help! Tell me more about your product.",
        ]);
        let mut req = request("push");
        req.variants = Some(1);
        let w = CopyWriter::default().write(&req, Some(&model), None, None);
        assert_eq!(w.variants[0].source, Source::Fallback);
        assert_eq!(w.stats.failures.get("off_topic"), Some(&2));
        let corpus = Corpus::of(&req.product, &Rules::default());
        let p = plan(&req, &Rules::default(), &corpus);
        let ctx = context(&req, &corpus);
        let on_topic = |t: &str, p: &Plan| {
            use crate::checks::Check;
            crate::checks::Topic
                .check(
                    t,
                    &Input {
                        ctx: &ctx,
                        plan: p,
                        model: None,
                    },
                )
                .is_empty()
        };
        assert!(on_topic("The hose fitting for every tap.", &p));
        assert!(on_topic("Fits standard garden taps.", &p));
        assert!(!on_topic("Something new for you.", &p));
        assert!(!on_topic("Your product is perfect!", &p));
        assert!(!on_topic("I'm thrilled to present this hose fitting!", &p));
    }

    #[test]
    fn prices_the_model_wrote_its_own_way_are_written_as_the_data_gives_them() {
        let t = |text: &str, price: f64| tidy_prices(text, Some(price));
        assert_eq!(t("costs 59.0 today", 59.0), "costs 59.00 today");
        assert_eq!(t("nur 59,00 EUR", 59.0), "nur 59.00 EUR");
        assert_eq!(t("now 19.9!", 19.9), "now 19.90!");
        // The data's own forms, other numbers and other prices stay as written.
        assert_eq!(t("59 or 59.00", 59.0), "59 or 59.00");
        assert_eq!(
            t("159.0 and 5.90 and 2 pairs", 59.0),
            "159.0 and 5.90 and 2 pairs"
        );
        assert_eq!(tidy_prices("costs 59.0", None), "costs 59.0");
    }

    #[test]
    fn cleaning_and_sentences() {
        assert_eq!(
            clean(
                "Sure! Here's a post:\n\n**New** in: copper.  Buy now",
                Channel::Sms
            ),
            "**New** in: copper. Buy now".replace("**", "")
        );
        assert_eq!(whole_sentences("One. Two! Three and"), "One. Two!");
        assert_eq!(whole_sentences("no end"), "no end");
        assert_eq!(sentences("好。很好！").len(), 2);
        // 9.5 is not a sentence end.
        assert_eq!(sentences("It is 9.5 cm. Yes").len(), 2);
    }
}
