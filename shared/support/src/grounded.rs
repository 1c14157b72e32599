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
    vec![
        ChatMessage {
            role: "system".into(),
            content: "You answer shop customers using only the numbered help passages. Answer \
                      in one to three short sentences. After each sentence, cite the passage \
                      it comes from as [1], [2]. Do not add facts, numbers or promises that are \
                      not in the passages."
                .into(),
        },
        ChatMessage {
            role: "user".into(),
            content: format!("Passages:\n{sources}\nQuestion: {question}"),
        },
    ]
}

fn numbers(text: &str) -> Vec<String> {
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

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_lowercase)
        .collect()
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

/// The answer if it holds to the passages, else why not.
pub fn check_grounded(
    answer: &str,
    question: &str,
    passages: &[Passage],
    max_chars: usize,
) -> Result<String, String> {
    let answer = answer.trim();
    if answer.is_empty() {
        return Err("empty".into());
    }
    if answer.chars().count() > max_chars {
        return Err(format!("longer than {max_chars} characters"));
    }
    let cited = markers(answer);
    if cited.is_empty() {
        return Err("cites no passage".into());
    }
    if let Some(bad) = cited.iter().find(|n| !passages.iter().any(|p| p.n == **n)) {
        return Err(format!("cites [{bad}], which was not retrieved"));
    }
    // Citation markers are not claims.
    let mut body = answer.to_owned();
    for p in passages {
        body = body.replace(&format!("[{}]", p.n), " ");
    }
    let source: String = passages
        .iter()
        .map(|p| format!("{} {}", p.title, p.text))
        .collect::<Vec<_>>()
        .join(" ");
    let known: HashSet<String> = numbers(&source).into_iter().collect();
    if let Some(n) = numbers(&body).into_iter().find(|n| !known.contains(n)) {
        return Err(format!("states {n}, which no passage says"));
    }
    let vocabulary: HashSet<String> = words(&source).into_iter().chain(words(question)).collect();
    let said = words(&body);
    if !said.is_empty() {
        let grounded = said.iter().filter(|w| vocabulary.contains(*w)).count();
        if grounded * 2 < said.len() {
            return Err(format!(
                "only {grounded} of {} content words come from the passages",
                said.len()
            ));
        }
    }
    Ok(answer.to_owned())
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
            check_grounded(a, "How long do I have to return?", &passages(), 600).as_deref(),
            Ok(a)
        );
    }

    #[test]
    fn invented_numbers_missing_or_wrong_citations_and_drift_fail() {
        let q = "How long do I have to return?";
        let p = passages();
        for (answer, why) in [
            ("You can return items within 60 days [1].", "states 60"),
            (
                "You can return unworn items within 30 days.",
                "cites no passage",
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
            let err = check_grounded(answer, q, &p, 600).unwrap_err();
            assert!(err.contains(why), "{answer:?}: {err}");
        }
        assert!(check_grounded(&"word [1] ".repeat(100), q, &p, 100).is_err());
    }

    #[test]
    fn the_prompt_numbers_the_passages() {
        let m = grounded_prompt("Where is my parcel?", &passages());
        assert_eq!(m.len(), 2);
        assert!(m[1].content.contains("[2] Shipping: Standard delivery"));
        assert!(m[1].content.ends_with("Question: Where is my parcel?"));
    }
}
