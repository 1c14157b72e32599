//! The model as a verifier: "does the product data support this sentence?", answered by the
//! probability the model puts on "Yes" against "No". Lexical grounding cannot tell a
//! paraphrase ("keeps you warm" for "insulated") from an invention; the model can, so the
//! grounding check asks it about the sentences the lexical pass flags.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{LazyLock, Mutex};

use shopmind_inference::ChatMessage;

use crate::error::Result;
use crate::plan::Plan;
use crate::writer::TextModel;

/// The question, in English whatever the copy's language: the model reads both, and one
/// wording keeps one calibration.
const SYSTEM: &str = "You check advertising copy against the product data it was written from. \
You answer with one word: Yes or No.";

const QUESTION: &str = "Is every claim this sentence makes about the product stated in the \
product data or directly implied by it? Praise, feelings and invitations to buy are not claims. \
Features, parts, materials, uses, audiences, reviews, awards, origins, comparisons and numbers \
are claims. Answer Yes or No.";

/// Everything the product data holds, as the verifier is shown it: title, brand, category,
/// the planned facts and those left out of this channel's plan (still true of the product).
fn product_data(plan: &Plan) -> String {
    let mut m = format!("Title: {}\n", plan.title);
    if let Some(b) = &plan.brand {
        m.push_str(&format!("Brand: {b}\n"));
    }
    if !plan.category.is_empty() {
        m.push_str(&format!("Category: {}\n", plan.category));
    }
    if let Some(p) = &plan.price {
        m.push_str(&format!("Price: {p}\n"));
    }
    for f in &plan.facts {
        m.push_str(&format!("- {}\n", f.statement()));
    }
    for e in &plan.excluded {
        m.push_str(&format!("- {}\n", e.fact));
    }
    m
}

/// The verifier's messages for one sentence.
pub fn question(plan: &Plan, sentence: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage {
            role: "system".into(),
            content: SYSTEM.into(),
        },
        ChatMessage {
            role: "user".into(),
            content: format!(
                "Product data:\n{}\nSentence: \"{}\"\n\n{QUESTION}",
                product_data(plan),
                sentence.trim()
            ),
        },
    ]
}

/// Verdicts already given, by model, product data and sentence: repair re-checks the
/// sentences it keeps, and candidates of one draft repeat sentences. Bounded; cleared when
/// full (a warm Lambda instance writes many drafts).
static VERDICTS: LazyLock<Mutex<HashMap<u64, f32>>> = LazyLock::new(Default::default);
const MAX_VERDICTS: usize = 4096;

/// The probability, by `model`, that the product data supports `sentence`.
pub fn support(model: &dyn TextModel, plan: &Plan, sentence: &str) -> Result<f32> {
    let messages = question(plan, sentence);
    let mut h = DefaultHasher::new();
    model.id().hash(&mut h);
    for m in &messages {
        m.content.hash(&mut h);
    }
    let key = h.finish();
    if let Some(p) = VERDICTS.lock().ok().and_then(|v| v.get(&key).copied()) {
        return Ok(p);
    }
    let p = model
        .judge(&messages, &["Yes", "No"])?
        .first()
        .copied()
        .unwrap_or(0.0);
    if let Ok(mut v) = VERDICTS.lock() {
        if v.len() >= MAX_VERDICTS {
            v.clear();
        }
        v.insert(key, p);
    }
    Ok(p)
}
