//! `shopmind eval helpcentre`: how support does on a help centre it was not built on.
//!
//! A help centre directory holds `articles.jsonl` (the KB format), `intents.json` (optional)
//! and `questions.jsonl`: one question a line with the article that answers it, the key facts
//! the reply must carry, and what should happen (`answer`, or a handoff: `asked_for_human`,
//! `upset`, `legal`, or `not_found` when the help centre has no answer). The driver (in the
//! CLI) asks every question through the support router in a new conversation; this module
//! reads the files and scores what came back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::SupportError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Answer,
    AskedForHuman,
    Upset,
    Legal,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalQuestion {
    pub id: String,
    pub question: String,
    #[serde(default)]
    pub locale: Option<String>,
    /// The article that answers it (for `answer`).
    #[serde(default)]
    pub article: Option<String>,
    /// Every group must appear in the reply; any one spelling in a group counts.
    #[serde(default)]
    pub facts: Vec<Vec<String>>,
    pub expect: Expect,
}

/// What support answered to one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    pub reply: String,
    /// The article of citation [1], if any.
    pub cited: Option<String>,
    pub escalate: bool,
    pub escalation_reason: Option<String>,
    pub answer_source: String,
    /// The best hit's cosine the reply reported.
    #[serde(default)]
    pub confidence: f64,
    pub latency_ms: f64,
    /// Streamed replies: when the first generated text arrived.
    #[serde(default)]
    pub first_token_ms: Option<f64>,
    /// Streamed replies: the generated text as it was written (kept or not).
    #[serde(default)]
    pub draft: Option<String>,
    /// Why the generated answer was not used, if it was not.
    #[serde(default)]
    pub generation_rejected: Option<String>,
    /// The question as it was also searched, translated into the help centre's language.
    #[serde(default)]
    pub translated_query: Option<String>,
}

/// Reads `questions.jsonl`; a bad line is an error naming it (an evaluation must not skip
/// questions silently).
pub fn parse_questions(text: &str) -> Result<Vec<EvalQuestion>, SupportError> {
    let mut out: Vec<EvalQuestion> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: EvalQuestion = serde_json::from_str(line)
            .map_err(|e| SupportError::Invalid(format!("questions line {}: {e}", n + 1)))?;
        let bad = |why: &str| SupportError::Invalid(format!("questions line {}: {why}", n + 1));
        if q.question.trim().is_empty() {
            return Err(bad("empty question"));
        }
        if q.expect == Expect::Answer && (q.article.is_none() || q.facts.is_empty()) {
            return Err(bad("an `answer` question needs its article and facts"));
        }
        if q.facts
            .iter()
            .any(|g| g.iter().all(|f| f.trim().is_empty()))
        {
            return Err(bad("a fact group has no spelling"));
        }
        if out.iter().any(|o| o.id == q.id) {
            return Err(bad("repeated id"));
        }
        out.push(q);
    }
    Ok(out)
}

/// Lower case with runs of whitespace as one space, so "30  Days" matches "30 days".
fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether `reply` carries every fact group.
pub fn has_facts(reply: &str, facts: &[Vec<String>]) -> bool {
    let reply = normalise(reply);
    facts
        .iter()
        .all(|group| group.iter().any(|f| reply.contains(&normalise(f))))
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Slice {
    pub questions: usize,
    pub hit_at_1: f64,
    pub fact_recall: f64,
    /// Share of answerable questions handed to a person.
    pub false_handoffs: f64,
    /// Share of answerable questions whose reply is written in the question's script (a
    /// Chinese question answered in Chinese), whether or not it is right.
    pub in_language: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HelpCentreReport {
    /// Answerable questions, overall and by language (the locale's first subtag).
    pub answerable: Slice,
    pub by_language: BTreeMap<String, Slice>,
    /// For each expected handoff kind: (caught, asked).
    pub handoffs: BTreeMap<String, (usize, usize)>,
    /// Answers written by the generator among the answered questions.
    pub generated: usize,
    /// Generated answers turned down, by the grounding check's reason.
    pub rejected: BTreeMap<String, usize>,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// Streamed replies with generated text: time to its first piece.
    pub first_token_p50_ms: Option<f64>,
    pub first_token_p95_ms: Option<f64>,
    /// Ids of answerable questions that missed (wrong article, fact or handoff), for reading.
    pub misses: Vec<String>,
}

fn slice<'a>(rows: impl Iterator<Item = (&'a EvalQuestion, &'a Outcome)>) -> Slice {
    let (mut n, mut hit, mut fact, mut handed, mut same) = (0usize, 0usize, 0usize, 0, 0);
    for (q, o) in rows {
        n += 1;
        hit += usize::from(o.cited.is_some() && o.cited == q.article);
        fact += usize::from(has_facts(&o.reply, &q.facts));
        handed += usize::from(o.escalate);
        // The answer only: an offer of a person or a handoff note follows a blank line.
        let answer = o.reply.split("\n\n").next().unwrap_or_default();
        same += usize::from(
            crate::grounded::writes_cjk(answer) == crate::grounded::writes_cjk(&q.question),
        );
    }
    let share = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    Slice {
        questions: n,
        hit_at_1: share(hit),
        fact_recall: share(fact),
        false_handoffs: share(handed),
        in_language: share(same),
    }
}

/// Nearest-rank percentile of `values` (p in 0..=100).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Scores `outcomes` (any order) against `questions`; a question without an outcome is an
/// error.
pub fn score(
    questions: &[EvalQuestion],
    outcomes: &[Outcome],
) -> Result<HelpCentreReport, SupportError> {
    let by_id: BTreeMap<&str, &Outcome> = outcomes.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut pairs = Vec::with_capacity(questions.len());
    for q in questions {
        let o = by_id
            .get(q.id.as_str())
            .ok_or_else(|| SupportError::Invalid(format!("no outcome for question {}", q.id)))?;
        pairs.push((q, *o));
    }
    let answerable = || pairs.iter().filter(|(q, _)| q.expect == Expect::Answer);
    let mut report = HelpCentreReport {
        answerable: slice(answerable().map(|(q, o)| (*q, *o))),
        ..HelpCentreReport::default()
    };
    let mut languages: Vec<String> = answerable().map(|(q, _)| language(q)).collect();
    languages.sort();
    languages.dedup();
    for lang in languages {
        let rows = answerable()
            .filter(|(q, _)| language(q) == lang)
            .map(|(q, o)| (*q, *o));
        let s = slice(rows);
        report.by_language.insert(lang, s);
    }
    for (q, o) in &pairs {
        if q.expect == Expect::Answer {
            let ok = !o.escalate && o.cited == q.article && has_facts(&o.reply, &q.facts);
            if !ok {
                report.misses.push(q.id.clone());
            }
            report.generated += usize::from(o.answer_source == "generated");
            if let Some(why) = &o.generation_rejected {
                *report.rejected.entry(rejection_kind(why)).or_default() += 1;
            }
            continue;
        }
        let key = serde_json::to_value(q.expect)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let e = report.handoffs.entry(key).or_insert((0, 0));
        e.0 += usize::from(o.escalate);
        e.1 += 1;
    }
    let latencies: Vec<f64> = pairs.iter().map(|(_, o)| o.latency_ms).collect();
    report.latency_p50_ms = percentile(&latencies, 50.0);
    report.latency_p95_ms = percentile(&latencies, 95.0);
    let first: Vec<f64> = pairs.iter().filter_map(|(_, o)| o.first_token_ms).collect();
    if !first.is_empty() {
        report.first_token_p50_ms = Some(percentile(&first, 50.0));
        report.first_token_p95_ms = Some(percentile(&first, 95.0));
    }
    Ok(report)
}

/// A grounding rejection's reason without its particulars ("states 20, which…" → "a number
/// its passage does not say"), to count them.
fn rejection_kind(why: &str) -> String {
    let kinds = [
        ("states ", "a number its passage does not say"),
        ("only ", "too few words from the passages"),
        ("cites no passage", "no citation"),
        ("cites [", "a citation of nothing retrieved"),
        ("does not cite the best", "not citing the best passage"),
        ("says nothing", "nothing beyond its citations"),
        (
            "in another language than its passages,",
            "another language and unlike its passages",
        ),
        (
            "written in another language",
            "another language and no encoder to compare",
        ),
        ("longer than", "too long"),
        ("no answer", "no answer in the time budget"),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| why.starts_with(prefix))
        .map_or(why, |(_, kind)| kind)
        .to_owned()
}

fn language(q: &EvalQuestion) -> String {
    q.locale
        .as_deref()
        .and_then(|l| l.split(['-', '_']).next())
        .unwrap_or("en")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(
        id: &str,
        locale: &str,
        article: Option<&str>,
        facts: &[&[&str]],
        e: Expect,
    ) -> EvalQuestion {
        EvalQuestion {
            id: id.into(),
            // A zh-CN question is written in Chinese.
            question: if locale.starts_with("zh") {
                format!("问题 {id}")
            } else {
                format!("question {id}")
            },
            locale: Some(locale.into()),
            article: article.map(Into::into),
            facts: facts
                .iter()
                .map(|g| g.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
            expect: e,
        }
    }

    fn o(id: &str, reply: &str, cited: Option<&str>, escalate: bool, ms: f64) -> Outcome {
        Outcome {
            id: id.into(),
            reply: reply.into(),
            cited: cited.map(Into::into),
            escalate,
            escalation_reason: None,
            answer_source: "extractive".into(),
            confidence: 0.5,
            latency_ms: ms,
            first_token_ms: None,
            draft: None,
            generation_rejected: None,
            translated_query: None,
        }
    }

    #[test]
    fn facts_match_any_spelling_of_every_group_ignoring_case_and_spacing() {
        let facts = vec![
            vec!["30 days".to_owned(), "30天".to_owned()],
            vec!["3.95".to_owned()],
        ];
        assert!(has_facts(
            "Within 30\n Days; a label costs 3.95 EUR",
            &facts
        ));
        assert!(has_facts("30天内退货，运费3.95欧元", &facts));
        assert!(
            !has_facts("within 30 days", &facts),
            "the second group is missing"
        );
        assert!(
            !has_facts("a label costs 3.95", &facts),
            "the first group is missing"
        );
    }

    #[test]
    fn scores_hits_facts_handoffs_and_languages_as_counted_by_hand() {
        let questions = vec![
            q("a", "en", Some("returns"), &[&["30 days"]], Expect::Answer),
            q("b", "en", Some("delivery"), &[&["1 pm"]], Expect::Answer),
            q(
                "c",
                "zh-CN",
                Some("returns"),
                &[&["30 days"]],
                Expect::Answer,
            ),
            q("d", "en", Some("payment"), &[&["PayPal"]], Expect::Answer),
            q("h", "en", None, &[], Expect::AskedForHuman),
            q("l", "en", None, &[], Expect::Legal),
        ];
        let outcomes = vec![
            o(
                "a",
                "Returns within 30 days [1]",
                Some("returns"),
                false,
                10.0,
            ),
            // right article, fact missing
            o("b", "Express exists [1]", Some("delivery"), false, 20.0),
            // wrong article but the fact, and handed off
            o("c", "30 days [1]", Some("exchanges"), true, 30.0),
            o("d", "not found", None, true, 40.0),
            o("h", "a person will help", None, true, 50.0),
            o("l", "answer", Some("returns"), false, 60.0),
        ];
        let mut outcomes = outcomes;
        outcomes[0].generation_rejected = Some("states 20, which the passage…".into());
        outcomes[1].generation_rejected = Some("states 7, which the passage…".into());
        outcomes[2].generation_rejected =
            Some("in another language than its passages, and a sentence of it is only 0.12".into());
        let r = score(&questions, &outcomes).unwrap();
        assert_eq!(r.rejected["a number its passage does not say"], 2);
        assert_eq!(r.rejected["another language and unlike its passages"], 1);
        assert_eq!(r.answerable.questions, 4);
        assert!((r.answerable.hit_at_1 - 0.5).abs() < 1e-12); // a, b
        assert!((r.answerable.fact_recall - 0.5).abs() < 1e-12); // a, c
        assert!((r.answerable.false_handoffs - 0.5).abs() < 1e-12); // c, d
        assert_eq!(r.by_language["zh"].questions, 1);
        assert_eq!(r.by_language["zh"].hit_at_1, 0.0);
        assert!((r.by_language["en"].hit_at_1 - 2.0 / 3.0).abs() < 1e-12);
        // The Chinese question got an English reply; the English ones English replies.
        assert_eq!(r.by_language["zh"].in_language, 0.0);
        assert_eq!(r.by_language["en"].in_language, 1.0);
        assert_eq!(r.handoffs["asked_for_human"], (1, 1));
        assert_eq!(r.handoffs["legal"], (0, 1));
        assert_eq!(r.misses, vec!["b", "c", "d"]);
        // nearest rank over 10..60: p50 = 3rd value, p95 = 6th
        assert_eq!(r.latency_p50_ms, 30.0);
        assert_eq!(r.latency_p95_ms, 60.0);
    }

    #[test]
    fn a_question_without_an_outcome_is_an_error() {
        let questions = vec![q("a", "en", Some("x"), &[&["y"]], Expect::Answer)];
        assert!(score(&questions, &[]).is_err());
    }

    #[test]
    fn bad_question_lines_are_refused_with_their_line_number() {
        let ok = r#"{"id":"a","question":"q?","article":"x","facts":[["y"]],"expect":"answer"}"#;
        assert_eq!(parse_questions(ok).unwrap().len(), 1);
        for (bad, why) in [
            (
                r#"{"id":"a","question":"q?","expect":"answer"}"#,
                "needs its article",
            ),
            (
                r#"{"id":"a","question":" ","expect":"upset"}"#,
                "empty question",
            ),
            (r#"{"id":"a","question":"q","expect":"maybe"}"#, "line 2"),
            (
                r#"{"id":"a","question":"q","expect":"upset","extra":1}"#,
                "line 2",
            ),
            (ok, "repeated id"),
        ] {
            let text = format!("{ok}\n{bad}\n");
            let err = parse_questions(&text).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_shipped_help_centres_parse() {
        for dir in ["dev", "dev2", "dev3", "test"] {
            let path = format!(
                "{}/../../infra/eval/helpcentre/{dir}/questions.jsonl",
                env!("CARGO_MANIFEST_DIR")
            );
            let text = std::fs::read_to_string(&path).unwrap();
            let qs = parse_questions(&text).unwrap();
            assert!(qs.len() >= 20, "{path}");
            let articles = std::fs::read_to_string(path.replace("questions", "articles")).unwrap();
            let parsed = crate::parse_articles(&articles);
            assert!(parsed.bad.is_empty(), "{:?}", parsed.bad);
            for q in qs.iter().filter(|q| q.expect == Expect::Answer) {
                let art = q.article.as_deref().unwrap();
                let a = parsed.articles.iter().find(|a| a.id == art);
                let a = a.unwrap_or_else(|| panic!("{}: no article {art}", q.id));
                // Every fact group has a spelling the article itself carries: a reply can
                // only carry it if the help centre does.
                let body = format!("{} {}", a.title, a.body);
                for g in &q.facts {
                    assert!(
                        g.iter().any(|f| normalise(&body).contains(&normalise(f))),
                        "{}: no spelling of {g:?} is in {art}",
                        q.id
                    );
                }
            }
        }
    }
}
