//! Generated answers, held to what was retrieved: the model sees numbered passages and must
//! cite them as `[n]`; its answer is used only if every citation points at a passage, at least
//! one is there, every number it states is in the passages, and most of its words come from
//! the passages or the question. Otherwise the extractive answer stands.

use std::collections::HashSet;

use shopmind_inference::ChatMessage;

/// A retrieved passage as the prompt numbers it (the citation's `n`).
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub n: usize,
    pub title: String,
    pub text: String,
}

/// Something that writes an answer to a chat; `None` when it cannot (model missing, failed,
/// or cut by its time budget).
pub trait AnswerWriter: std::fmt::Debug {
    fn answer(&self, messages: &[ChatMessage]) -> Option<String>;
}

/// The chat the writer completes. The shopper's text is data inside the user turn; the rules
/// live in the system turn.
pub fn grounded_prompt(question: &str, passages: &[Passage]) -> Vec<ChatMessage> {
    let sources: String = passages
        .iter()
        .map(|p| format!("[{}] {}: {}\n", p.n, p.title, p.text))
        .collect();
    // A small model answers a Chinese question in English when the passages are English
    // unless told plainly.
    let language = if writes_chinese(question) {
        "\n请用中文回答。"
    } else {
        ""
    };
    vec![
        ChatMessage {
            role: "system".into(),
            content: "You are a shop's customer service assistant. Answer the customer's \
                      question using only the numbered help passages.\n\
                      - Answer in one to three short sentences, in the language of the \
                      question, with the details the passage gives that the customer needs \
                      (prices, fees, time limits, conditions).\n\
                      - End each sentence with the number of the passage it comes from, \
                      like [1].\n\
                      - Copy prices, numbers and deadlines exactly as the passages write them.\n\
                      - If the passages do not answer the question, say only what they do say.\n\
                      - Do not mention the passages themselves, and add no fact, number or \
                      promise that is not in them."
                .into(),
        },
        ChatMessage {
            role: "user".into(),
            content: format!("Passages:\n{sources}\nQuestion: {question}{language}"),
        },
    ]
}

/// Whether `text` is Chinese: Han characters and no kana (which would make it Japanese).
fn writes_chinese(text: &str) -> bool {
    let han = text
        .chars()
        .any(|c| matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF));
    han && !text.chars().any(|c| matches!(c as u32, 0x3040..=0x30FF))
}

pub(crate) fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain([' ']) {
        if c.is_ascii_digit() || ((c == '.' || c == ',') && !cur.is_empty()) {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(cur.trim_end_matches(['.', ',']).to_owned());
            cur.clear();
        }
    }
    out
}

/// Scripts written without spaces, where a "word" is not delimited.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF // kana
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF // Han
        | 0xAC00..=0xD7AF) // Hangul
}

/// Content words: alphabetic words of four or more letters, and for scripts without spaces
/// each pair of adjacent characters (a Chinese sentence is one unbroken run, and most
/// Chinese words are two characters).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for run in text.split(|c: char| !c.is_alphanumeric()) {
        let mut latin = String::new();
        let mut cjk: Vec<char> = Vec::new();
        for c in run.chars().chain([' ']) {
            if is_cjk(c) {
                cjk.push(c);
                if !latin.is_empty() {
                    push_word(&mut out, &latin);
                    latin.clear();
                }
            } else {
                if c != ' ' {
                    latin.push(c);
                }
                if cjk.len() == 1 {
                    out.push(cjk[0].to_string());
                }
                out.extend(cjk.windows(2).map(|w| w.iter().collect::<String>()));
                cjk.clear();
            }
        }
        push_word(&mut out, &latin);
    }
    out
}

fn push_word(out: &mut Vec<String>, w: &str) {
    if w.chars().count() >= 4 && !w.chars().all(|c| c.is_ascii_digit()) {
        out.push(w.to_lowercase());
    }
}

/// The `[n]` markers in `text`, in order.
fn markers(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('[') {
        rest = &rest[i + 1..];
        if let Some(j) = rest.find(']') {
            if let Ok(n) = rest[..j].trim().parse::<usize>() {
                out.push(n);
            }
        }
    }
    out
}

/// Embeds texts for the cross-language check (`None`: no encoder).
pub type Embed<'a> = &'a mut dyn FnMut(&[String]) -> Option<Vec<Vec<f32>>>;

/// How an answer in another script than its passages is held to them: lexical overlap cannot
/// work across languages, so its cosine to the passages it cites (a multilingual encoder)
/// must reach `min_similarity`.
pub struct CrossLanguage<'a> {
    pub embed: Embed<'a>,
    pub min_similarity: f32,
}

impl std::fmt::Debug for CrossLanguage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrossLanguage")
            .field("min_similarity", &self.min_similarity)
            .finish_non_exhaustive()
    }
}

/// The answer if it holds to the passages, else why not. Per stretch of text: every number
/// it states is in the passages it cites (text before a marker is covered by it, as
/// "… . … [1]" cites both). An answer that cites nothing is given the passage it restates
/// (the best one when it is a translation of it); one that says nothing beyond its markers,
/// or leaves out the best passage, is refused.
pub fn check_grounded(
    answer: &str,
    question: &str,
    passages: &[Passage],
    max_chars: usize,
    cross: Option<CrossLanguage<'_>>,
) -> Result<String, String> {
    let mut answer = answer.trim().to_owned();
    if answer.is_empty() {
        return Err("empty".into());
    }
    if answer.chars().count() > max_chars {
        return Err(format!("longer than {max_chars} characters"));
    }
    let source_of = |p: &Passage| format!("{} {}", p.title, p.text);
    if markers(&answer).is_empty() {
        // Small models often state the passage faithfully and forget the marker.
        let said: HashSet<String> = words(&answer).into_iter().collect();
        let overlap = |p: &Passage| {
            words(&source_of(p))
                .into_iter()
                .collect::<HashSet<_>>()
                .intersection(&said)
                .count()
        };
        // An answer in another script than the best passage is that passage translated (what
        // generation is for across languages): it gets that passage, and the checks below —
        // its numbers, the encoder's similarity — hold it to it. Otherwise the passage it
        // shares most words with (numbers alone: the best one).
        let first = passages.iter().min_by_key(|p| p.n);
        let translated = first.filter(|p| writes_cjk(&answer) != writes_cjk(&source_of(p)));
        let most = passages
            .iter()
            .max_by_key(|p| (overlap(p), std::cmp::Reverse(p.n)))
            .filter(|p| overlap(p) > 0);
        let numbers_only = first.filter(|_| said.is_empty());
        match translated.or(most).or(numbers_only) {
            Some(p) => answer = format!("{answer} [{}]", p.n),
            None => return Err("cites no passage".into()),
        }
    }
    let cited = markers(&answer);
    if let Some(bad) = cited.iter().find(|n| !passages.iter().any(|p| p.n == **n)) {
        return Err(format!("cites [{bad}], which was not retrieved"));
    }
    // Passages come best first; an answer that leaves out the best one answers from an
    // article retrieval ranked lower, which on the development set was the wrong one.
    if let Some(best) = passages.iter().map(|p| p.n).min() {
        if !cited.contains(&best) {
            return Err(format!("does not cite the best passage [{best}]"));
        }
    }
    // Citation markers are not claims.
    let strip = |text: &str| {
        let mut body = text.to_owned();
        for p in passages {
            body = body.replace(&format!("[{}]", p.n), " ");
        }
        body
    };
    let body = strip(&answer);
    let said = words(&body);
    if said.is_empty() && numbers(&body).is_empty() {
        return Err("says nothing beyond its citations".into());
    }
    for (sentence, cites) in cited_sentences(&answer) {
        let sentence = sentence.as_str();
        let known: HashSet<String> = passages
            .iter()
            .filter(|p| cites.contains(&p.n))
            .flat_map(|p| numbers(&source_of(p)))
            .collect();
        if let Some(n) = numbers(&strip(sentence))
            .into_iter()
            .find(|n| !known.contains(n))
        {
            return Err(format!(
                "states {n}, which the passage it cites does not say"
            ));
        }
    }
    let cited_passages: Vec<&Passage> = passages.iter().filter(|p| cited.contains(&p.n)).collect();
    let source: String = cited_passages
        .iter()
        .map(|p| source_of(p))
        .collect::<Vec<_>>()
        .join(" ");
    if writes_cjk(&body) != writes_cjk(&source) {
        let Some(CrossLanguage {
            embed,
            min_similarity,
        }) = cross
        else {
            return Err("written in another language than its passages".into());
        };
        // Each sentence of the answer against the cited passages' sentences: a short answer
        // against a whole article scores low even when faithful.
        let said: Vec<String> = crate::kb::sentences(&body)
            .into_iter()
            .filter(|x| !words(x).is_empty())
            .map(str::to_owned)
            .collect();
        let heard: Vec<String> = cited_passages
            .iter()
            .flat_map(|p| crate::kb::sentences(&p.text))
            .map(str::to_owned)
            .collect();
        let texts: Vec<String> = said.iter().chain(&heard).cloned().collect();
        let vectors = embed(&texts).ok_or("the answer could not be compared with its passages")?;
        let (answer_vectors, passage_vectors) = vectors.split_at(said.len().min(vectors.len()));
        for (sentence, v) in said.iter().zip(answer_vectors) {
            let best = passage_vectors
                .iter()
                .map(|p| shopmind_inference::cosine(v, p))
                .fold(f32::MIN, f32::max);
            if best < min_similarity {
                return Err(format!(
                    "in another language than its passages, and a sentence of it is only \
                     {best:.2} similar to them ({} characters)",
                    sentence.chars().count()
                ));
            }
        }
        return Ok(answer);
    }
    let vocabulary: HashSet<String> = words(&source).into_iter().chain(words(question)).collect();
    let grounded = said.iter().filter(|w| vocabulary.contains(*w)).count();
    if grounded * 2 < said.len() {
        return Err(format!(
            "only {grounded} of {} content words come from the passages",
            said.len()
        ));
    }
    Ok(answer)
}

/// Whether `text` is mostly in a script without spaces.
pub fn writes_cjk(text: &str) -> bool {
    let (mut cjk, mut letters) = (0usize, 0usize);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        cjk += usize::from(is_cjk(c));
    }
    cjk * 2 > letters
}

/// The answer cut at its citation markers: each stretch of text with the markers that close
/// it (a marker closing a paragraph covers all of it); trailing text without a marker is
/// covered by the last one.
fn cited_sentences(answer: &str) -> Vec<(String, Vec<usize>)> {
    let has_content = |t: &str| !words(t).is_empty() || !numbers(t).is_empty();
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let (mut text, mut cites) = (String::new(), Vec::new());
    let mut rest = answer;
    while let Some((before, n, after)) = next_marker(rest) {
        if !cites.is_empty() && has_content(before) {
            out.push((std::mem::take(&mut text), std::mem::take(&mut cites)));
        }
        text.push_str(before);
        cites.push(n);
        rest = after;
    }
    if !cites.is_empty() && has_content(rest) {
        out.push((std::mem::take(&mut text), std::mem::take(&mut cites)));
    }
    text.push_str(rest);
    if has_content(&text) || !cites.is_empty() {
        if cites.is_empty() {
            cites = out.last().map(|(_, c)| c.clone()).unwrap_or_default();
        }
        out.push((text, cites));
    }
    out
}

/// The text before the first `[n]` marker, n, and the text after it.
fn next_marker(text: &str) -> Option<(&str, usize, &str)> {
    let mut from = 0;
    while let Some(i) = text[from..].find('[').map(|i| i + from) {
        if let Some(j) = text[i + 1..].find(']').map(|j| j + i + 1) {
            if let Ok(n) = text[i + 1..j].trim().parse::<usize>() {
                return Some((&text[..i], n, &text[j + 1..]));
            }
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passages() -> Vec<Passage> {
        vec![
            Passage {
                n: 1,
                title: "Returns".into(),
                text: "You can return unworn items within 30 days of delivery. Refunds reach \
                       your card in 5 to 10 business days."
                    .into(),
            },
            Passage {
                n: 2,
                title: "Shipping".into(),
                text: "Standard delivery takes 2 to 4 business days.".into(),
            },
        ]
    }

    #[test]
    fn a_faithful_answer_passes() {
        let a = "You can return unworn items within 30 days of delivery [1]. Refunds take 5 to 10 business days [1].";
        assert_eq!(
            check_grounded(a, "How long do I have to return?", &passages(), 600, None).as_deref(),
            Ok(a)
        );
    }

    #[test]
    fn invented_numbers_missing_or_wrong_citations_and_drift_fail() {
        let q = "How long do I have to return?";
        let p = passages();
        for (answer, why) in [
            ("You can return items within 60 days [1].", "states 60"),
            ("Sure, happy to help with that!", "cites no passage"),
            ("[1]", "says nothing"),
            (
                "Standard delivery takes 2 to 4 business days [2].",
                "best passage [1]",
            ),
            // 2 to 4 days is passage 2's; the sentence cites passage 1.
            (
                "Refunds are quick [1]. Standard delivery takes 2 to 4 business days [1].",
                "states 2, which the passage it cites",
            ),
            (
                "You can return unworn items within 30 days [3].",
                "cites [3]",
            ),
            (
                "Our premium membership includes complimentary express couriers worldwide [1].",
                "content words",
            ),
            ("", "empty"),
        ] {
            let err = check_grounded(answer, q, &p, 600, None).unwrap_err();
            assert!(err.contains(why), "{answer:?}: {err}");
        }
        assert!(check_grounded(&"word [1] ".repeat(100), q, &p, 100, None).is_err());
    }

    #[test]
    fn a_chinese_answer_without_a_marker_is_held_to_the_best_passage() {
        let a = "您可以在30天内退货。";
        let err = check_grounded(a, "能退货吗？", &passages(), 600, None).unwrap_err();
        assert!(err.contains("another language"), "{err}");
        let err = check_grounded("您可以在90天内退货。", "能退货吗？", &passages(), 600, None);
        assert!(err.unwrap_err().contains("states 90"));
    }

    #[test]
    fn a_faithful_answer_without_a_marker_is_given_the_passage_it_restates() {
        let p = passages();
        let a = "Refunds reach your card in 5 to 10 business days.";
        assert_eq!(
            check_grounded(a, "When is my refund?", &p, 600, None).as_deref(),
            Ok("Refunds reach your card in 5 to 10 business days. [1]")
        );
    }

    #[test]
    fn a_marker_closing_a_paragraph_covers_the_sentences_before_it() {
        let s = cited_sentences(
            "Returns are free. Refunds take 5 days. [1] Delivery is fast [2]. Thanks again",
        );
        let cites: Vec<Vec<usize>> = s.iter().map(|(_, m)| m.clone()).collect();
        assert_eq!(cites, vec![vec![1], vec![2], vec![2]]);
        assert_eq!(s[0].0, "Returns are free. Refunds take 5 days. ");
        let zh = cited_sentences("您可以在30天内退货。[1][2]");
        assert_eq!(zh, vec![("您可以在30天内退货。".to_owned(), vec![1, 2])]);
        // 5 to 10 business days is passage 1's, stated before its marker: fine.
        let a = "Refunds reach your card in 5 to 10 business days. [1]";
        assert!(check_grounded(a, "refund?", &passages(), 600, None).is_ok());
    }

    #[test]
    fn an_answer_in_another_language_than_its_passages_needs_the_encoder_to_agree() {
        let p = passages();
        let a = "您可以在收货后30天内退回未穿过的商品。[1]";
        let err = check_grounded(a, "能退货吗？", &p, 600, None).unwrap_err();
        assert!(err.contains("another language"), "{err}");
        // An encoder that finds the answer close to passage 1, then one that does not.
        for (v, ok) in [(vec![1.0, 0.1], true), (vec![0.0, 1.0], false)] {
            let mut embed = |texts: &[String]| {
                Some(
                    texts
                        .iter()
                        .enumerate()
                        .map(|(i, _)| if i == 0 { v.clone() } else { vec![1.0, 0.0] })
                        .collect(),
                )
            };
            let cross = CrossLanguage {
                embed: &mut embed,
                min_similarity: 0.5,
            };
            let r = check_grounded(a, "能退货吗？", &p, 600, Some(cross));
            assert_eq!(r.is_ok(), ok, "{r:?}");
        }
        // Numbers are still held to the cited passage.
        let mut embed = |t: &[String]| Some(vec![vec![1.0]; t.len()]);
        let cross = CrossLanguage {
            embed: &mut embed,
            min_similarity: 0.5,
        };
        let err = check_grounded(
            "您可以在90天内退货。[1]",
            "能退货吗？",
            &p,
            600,
            Some(cross),
        );
        assert!(err.unwrap_err().contains("states 90"));
    }

    #[test]
    fn chinese_answers_are_held_to_the_passages_too() {
        let p = vec![Passage {
            n: 1,
            title: "退货".into(),
            text: "商品签收后60天内可以退货，退款3个工作日内到账。".into(),
        }];
        let q = "多久内可以退？";
        let faithful = "签收后60天内可以退货[1]。";
        assert_eq!(
            check_grounded(faithful, q, &p, 600, None).as_deref(),
            Ok(faithful)
        );
        // Fluent, cited, no number — and nothing of it is in the passage.
        let drift = "我们的会员享受全球免费快递服务[1]。";
        let err = check_grounded(drift, q, &p, 600, None).unwrap_err();
        assert!(err.contains("content words"), "{err}");
        let invented = "签收后90天内可以退货[1]。";
        assert!(check_grounded(invented, q, &p, 600, None)
            .unwrap_err()
            .contains("states 90"));
    }

    #[test]
    fn content_words_split_chinese_into_pairs_and_keep_latin_words() {
        assert_eq!(words("退货policy很好 ok"), vec!["退货", "policy", "很好"]);
        assert_eq!(words("退"), vec!["退"]);
    }

    #[test]
    fn the_prompt_numbers_the_passages() {
        let m = grounded_prompt("Where is my parcel?", &passages());
        assert_eq!(m.len(), 2);
        assert!(m[1].content.contains("[2] Shipping: Standard delivery"));
        assert!(m[1].content.ends_with("Question: Where is my parcel?"));
        let zh = grounded_prompt("运费多少钱？", &passages());
        assert!(zh[1].content.ends_with("运费多少钱？\n请用中文回答。"));
        assert!(!writes_chinese("配送について教えてください"));
    }
}
