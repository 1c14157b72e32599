//! Entities in a shopper's message — order numbers, emails, phone numbers, card numbers — and
//! masking of the personal ones before anything is stored or logged.
//!
//! Order numbers are kept (the answer may need them); emails, phones and card numbers are
//! replaced by `[email]`, `[phone]`, `[card]`.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    OrderNumber,
    Email,
    Phone,
    CardNumber,
}

impl EntityKind {
    fn mask(self) -> Option<&'static str> {
        match self {
            Self::OrderNumber => None,
            Self::Email => Some("[email]"),
            Self::Phone => Some("[phone]"),
            Self::CardNumber => Some("[card]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    pub kind: EntityKind,
    /// The value as written (order numbers only; personal values are never returned).
    pub value: Option<String>,
    #[serde(skip)]
    pub span: (usize, usize),
}

#[allow(clippy::expect_used)] // constant patterns, covered by the tests below
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
        .expect("email pattern")
});
#[allow(clippy::expect_used)]
static ORDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:\border\s*(?:no\.?|number|num|id)?\s*[:#]?\s*#?|订单号?\s*[:：]?\s*|#)([A-Z]{0,4}-?\d{4,12})\b",
    )
    .expect("order pattern")
});
#[allow(clippy::expect_used)]
static DIGITS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\d[\d \-().]{6,22}\d").expect("digit-run pattern"));

/// Luhn check, for telling card numbers from other long digit runs.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Every entity in `text`, in order of position.
pub fn extract_entities(text: &str) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::new();
    for m in EMAIL.find_iter(text) {
        out.push(Entity {
            kind: EntityKind::Email,
            value: None,
            span: (m.start(), m.end()),
        });
    }
    for c in ORDER.captures_iter(text) {
        if let Some(m) = c.get(1) {
            let span = (m.start(), m.end());
            if !out.iter().any(|e| overlaps(e.span, span)) {
                out.push(Entity {
                    kind: EntityKind::OrderNumber,
                    value: Some(m.as_str().to_owned()),
                    span,
                });
            }
        }
    }
    for m in DIGITS.find_iter(text) {
        let span = (m.start(), m.end());
        if out.iter().any(|e| overlaps(e.span, span)) {
            continue;
        }
        let digits: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
        let kind = match digits.len() {
            13..=19 if luhn(&digits) => EntityKind::CardNumber,
            8..=15 => EntityKind::Phone,
            _ => continue,
        };
        out.push(Entity {
            kind,
            value: None,
            span,
        });
    }
    out.sort_by_key(|e| e.span.0);
    out
}

/// `text` with emails, phones and card numbers replaced; order numbers stay.
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in extract_entities(text) {
        if let Some(m) = e.kind.mask() {
            out.push_str(&text[at..e.span.0]);
            out.push_str(m);
            at = e.span.1;
        }
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_order_numbers_and_masks_personal_data() {
        let text =
            "Order #A-123456 never came. Mail jo.doe+shop@example.co.uk or call +44 20 7946 0958.";
        let e = extract_entities(text);
        let kinds: Vec<EntityKind> = e.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EntityKind::OrderNumber,
                EntityKind::Email,
                EntityKind::Phone
            ]
        );
        assert_eq!(e[0].value.as_deref(), Some("A-123456"));
        assert!(e[1].value.is_none());
        assert_eq!(
            mask(text),
            "Order #A-123456 never came. Mail [email] or call [phone]."
        );
    }

    #[test]
    fn card_numbers_pass_luhn_and_other_forms_of_order_numbers() {
        // 4111 1111 1111 1111 is the well-known Luhn-valid test card.
        assert_eq!(
            mask("card 4111 1111 1111 1111 was charged twice"),
            "card [card] was charged twice"
        );
        let e = extract_entities("my order number: 98765432 and 订单号：202611280001");
        let values: Vec<&str> = e.iter().filter_map(|e| e.value.as_deref()).collect();
        assert_eq!(values, ["98765432", "202611280001"]);
        // An order number is never mistaken for a phone, and short numbers are left alone.
        assert!(e.iter().all(|e| e.kind == EntityKind::OrderNumber));
        assert_eq!(
            mask("size 38, 2 items, 30 days"),
            "size 38, 2 items, 30 days"
        );
        assert_eq!(mask("电话 138-0013-8000"), "电话 [phone]");
    }
}
