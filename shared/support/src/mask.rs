//! Entities in a shopper's message — order numbers, emails, phone numbers, card numbers,
//! IBANs — and masking of the personal ones before anything is stored or logged.
//!
//! Order numbers are kept (the answer may need them); emails, phones, card numbers and IBANs
//! are replaced by `[email]`, `[phone]`, `[card]`, `[iban]`.
//!
//! Shoppers type these on every keyboard: fullwidth `４１１１` and `ａｌｉｃｅ＠…` from Chinese and
//! Japanese input methods, Arabic-Indic or Devanagari digits, `4111/1111/…`, `alice @ example.com`.
//! So detection runs on a folded copy of the text (NFKC per character, every Unicode decimal
//! digit as its ASCII value) whose every byte remembers where it came from, and masking cuts
//! the original text at those places.

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
    Iban,
}

impl EntityKind {
    fn mask(self) -> Option<&'static str> {
        match self {
            Self::OrderNumber => None,
            Self::Email => Some("[email]"),
            Self::Phone => Some("[phone]"),
            Self::CardNumber => Some("[card]"),
            Self::Iban => Some("[iban]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entity {
    pub kind: EntityKind,
    /// The value, folded to ASCII digits and letters (order numbers only; personal values are
    /// never returned).
    pub value: Option<String>,
    /// Byte range in the text as written.
    #[serde(skip)]
    pub span: (usize, usize),
}

#[allow(clippy::expect_used)] // constant patterns, covered by the tests below
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    // A space either side of `@` is how people dodge filters and how some keyboards
    // autocorrect; labels may be in any script (IDN), the top-level domain is ASCII or
    // punycode so that text run on after it (`…@example.com请回复`) is not swallowed.
    Regex::new(
        r"[A-Za-z0-9._%+\-\p{Latin}]+ ?@ ?[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9\-]+)",
    )
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
    LazyLock::new(|| Regex::new(r"\+?\d[\d \-()./]{6,34}\d").expect("digit-run pattern"));
#[allow(clippy::expect_used)]
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[A-Z] ?[A-Z] ?\d ?\d(?: ?[A-Z0-9]){11,30}").expect("iban pattern")
});
#[allow(clippy::expect_used)]
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4})$")
        .expect("date pattern")
});

/// The zero of each run of ten Unicode decimal digits (general category Nd) that shoppers'
/// keyboards produce; NFKC folds fullwidth digits but leaves these.
const DIGIT_ZEROS: [u32; 24] = [
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0xA9D0, 0xFF10,
];

fn decimal_digit(c: char) -> Option<char> {
    let u = u32::from(c);
    DIGIT_ZEROS
        .iter()
        .find(|&&z| (z..z + 10).contains(&u))
        .and_then(|z| char::from_digit(u - z, 10))
}

/// `text` with every Unicode decimal digit written as its ASCII digit.
pub(crate) fn fold_digits(text: &str) -> String {
    text.chars()
        .map(|c| decimal_digit(c).unwrap_or(c))
        .collect()
}

/// `text` folded for matching, with each folded byte's source range in `text`.
struct Folded {
    text: String,
    /// `origin[i]` is the byte range in the original of the character that folded byte `i`
    /// came from.
    origin: Vec<(usize, usize)>,
}

impl Folded {
    fn new(text: &str) -> Self {
        use unicode_normalization::UnicodeNormalization;
        let mut out = Folded {
            text: String::with_capacity(text.len()),
            origin: Vec::with_capacity(text.len()),
        };
        let mut buf = [0u8; 4];
        for (at, c) in text.char_indices() {
            let range = (at, at + c.len_utf8());
            let mut push = |f: char| {
                // Every kind of space (NBSP, ideographic, thin) reads as one ASCII space.
                let f = if f.is_whitespace() { ' ' } else { f };
                out.text.push_str(f.encode_utf8(&mut buf));
                out.origin.extend(std::iter::repeat_n(range, f.len_utf8()));
            };
            match decimal_digit(c) {
                Some(d) => push(d),
                None if c.is_ascii() => push(c),
                None => c.nfkc().for_each(&mut push),
            }
        }
        out
    }

    /// The original byte range of folded bytes `a..b`.
    fn source(&self, a: usize, b: usize) -> (usize, usize) {
        match (
            self.origin.get(a),
            b.checked_sub(1).and_then(|l| self.origin.get(l)),
        ) {
            (Some(s), Some(e)) => (s.0, e.1),
            _ => (0, 0),
        }
    }
}

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

/// ISO 13616: move the country code and check digits to the end, letters as 10..35, and the
/// number mod 97 is 1.
fn iban_ok(candidate: &str) -> bool {
    let compact: Vec<char> = candidate
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for c in tail.iter().chain(head) {
        let Some(v) = c.to_digit(36) else {
            return false;
        };
        let step = if v >= 10 { 100 } else { 10 };
        rem = (rem * step + v) % 97;
    }
    rem == 1
}

/// The length of the longest valid IBAN that `candidate` starts with (the pattern may run on
/// into the next word), if its account part is mostly digits as real ones are.
fn iban_within(candidate: &str) -> Option<usize> {
    let ends: Vec<usize> = candidate
        .char_indices()
        .filter(|(_, c)| !c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    (15..=ends.len().min(34)).rev().find_map(|n| {
        let head = candidate.get(..ends[n - 1])?;
        let digits = head.chars().skip(4).filter(char::is_ascii_digit).count();
        (digits * 2 >= n - 4 && iban_ok(head)).then_some(ends[n - 1])
    })
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Every entity in `text`, in order of position.
pub fn extract_entities(text: &str) -> Vec<Entity> {
    let folded = Folded::new(text);
    let f = folded.text.as_str();
    // Spans are in the folded text until the end.
    let mut out: Vec<Entity> = Vec::new();
    for m in EMAIL.find_iter(f) {
        out.push(Entity {
            kind: EntityKind::Email,
            value: None,
            span: (m.start(), m.end()),
        });
    }
    for m in IBAN.find_iter(f) {
        let Some(len) = iban_within(m.as_str()) else {
            continue;
        };
        let span = (m.start(), m.start() + len);
        if !out.iter().any(|e| overlaps(e.span, span)) {
            out.push(Entity {
                kind: EntityKind::Iban,
                value: None,
                span,
            });
        }
    }
    for c in ORDER.captures_iter(f) {
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
    for m in DIGITS.find_iter(f) {
        let span = (m.start(), m.end());
        if out.iter().any(|e| overlaps(e.span, span)) || DATE.is_match(m.as_str()) {
            continue;
        }
        let digits: Vec<u32> = m.as_str().chars().filter_map(|c| c.to_digit(10)).collect();
        // Slashes separate card groups on some receipts, but in a short run they are a date
        // or a fraction, never a phone number.
        let slashed = m.as_str().contains('/');
        let kind = match digits.len() {
            13..=19 if luhn(&digits) => EntityKind::CardNumber,
            8..=15 if !slashed => EntityKind::Phone,
            _ => continue,
        };
        out.push(Entity {
            kind,
            value: None,
            span,
        });
    }
    for e in &mut out {
        e.span = folded.source(e.span.0, e.span.1);
    }
    out.sort_by_key(|e| e.span.0);
    out
}

/// `text` with emails, phones, card numbers and IBANs replaced; order numbers stay.
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for e in extract_entities(text) {
        if let Some(m) = e.kind.mask() {
            if e.span.0 < at {
                continue;
            }
            out.push_str(text.get(at..e.span.0).unwrap_or_default());
            out.push_str(m);
            at = e.span.1;
        }
    }
    out.push_str(text.get(at..).unwrap_or_default());
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

    /// Each of these was stored unmasked before the text was folded (issue 21).
    #[test]
    fn what_shoppers_type_on_other_keyboards_is_masked_too() {
        let cases = [
            (
                "卡号 ４１１１ １１１１ １１１１ １１１１ 谢谢",
                "卡号 [card] 谢谢",
            ),
            (
                "邮箱ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ请回复",
                "邮箱[email]请回复",
            ),
            ("card 4111/1111/1111/1111 please", "card [card] please"),
            (
                "write to alice @ example.com today",
                "write to [email] today",
            ),
            ("بطاقتي ٤١١١ ١١١١ ١١١١ ١١١١", "بطاقتي [card]"),
            (
                "IBAN DE89 3704 0044 0532 0130 00 thanks",
                "IBAN [iban] thanks",
            ),
            ("iban gb82west12345698765432.", "iban [iban]."),
            ("mail alice@例子.com now", "mail [email] now"),
            ("手机 １３８　００１３　８０００", "手机 [phone]"),
        ];
        for (text, want) in cases {
            assert_eq!(mask(text), want, "{text}");
        }
        // Not personal: dates, prices, sizes, a mod-97 failure, an order number written wide.
        for text in [
            "ordered 2026-11-28, paid 1/2 upfront",
            "delivered 28/11/2026",
            "DE89 3704 0044 0532 0130 01",
            "size 38 ½, 2 items",
        ] {
            assert_eq!(mask(text), text);
        }
        let e = extract_entities("订单号：２０２６１１２８０００１");
        assert_eq!(e[0].kind, EntityKind::OrderNumber);
        assert_eq!(e[0].value.as_deref(), Some("202611280001"));
    }

    /// IBAN check digits against ISO 13616's published examples.
    #[test]
    fn iban_check_digits() {
        for ok in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
        ] {
            assert!(iban_ok(ok), "{ok}");
        }
        assert!(!iban_ok("GB82WEST12345698765433"));
    }

    mod generated {
        use super::super::*;
        use proptest::prelude::*;

        /// Published test values: Luhn-valid cards, valid IBANs, and phone-shaped numbers.
        const CARDS: [&str; 4] = [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "6011111111111117",
        ];
        const IBANS: [&str; 3] = [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "NL91ABNA0417164300",
        ];

        fn fullwidth(c: char) -> char {
            if ('!'..='~').contains(&c) {
                char::from_u32(u32::from(c) + 0xFEE0).unwrap_or(c)
            } else {
                c
            }
        }

        /// The value as one keyboard or another writes it.
        fn written(value: &str, style: u8, group: usize) -> String {
            let grouped = |sep: &str| -> String {
                let chars: Vec<char> = value.chars().collect();
                chars
                    .chunks(group)
                    .map(|g| g.iter().collect::<String>())
                    .collect::<Vec<_>>()
                    .join(sep)
            };
            match style {
                0 => value.to_owned(),
                1 => grouped(" "),
                2 => grouped("-"),
                3 => grouped("/"),
                4 => grouped(" ").chars().map(fullwidth).collect(),
                5 => grouped("\u{3000}").chars().map(fullwidth).collect(),
                6 => grouped(" ")
                    .chars()
                    .map(|c| match c.to_digit(10) {
                        Some(d) => char::from_u32(0x0660 + d).unwrap_or(c),
                        None => c,
                    })
                    .collect(),
                _ => grouped("\u{a0}")
                    .chars()
                    .map(|c| match c.to_digit(10) {
                        Some(d) => char::from_u32(0x0966 + d).unwrap_or(c),
                        None => c,
                    })
                    .collect(),
            }
        }

        /// What survives of `value` in `text`: its characters folded and compacted.
        fn survives(text: &str, value: &str) -> bool {
            let compact: String = Folded::new(text)
                .text
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect();
            compact.contains(&value.to_ascii_uppercase())
        }

        const AROUND: [(&str, &str); 5] = [
            ("my card is ", " thanks"),
            ("我的卡号是", "，谢谢"),
            ("", ""),
            ("Bitte: ", "."),
            ("رقم ", " شكرا"),
        ];

        proptest! {
            #[test]
            fn no_card_or_iban_survives_masking(
                which in 0usize..7, style in 0u8..8, group in 3usize..6, around in 0usize..5,
            ) {
                let (value, style) = match which.checked_sub(CARDS.len()) {
                    None => (CARDS[which], style),
                    // IBANs are written with spaces, never dashes or slashes.
                    Some(i) => (IBANS[i], if (2..=3).contains(&style) { 1 } else { style }),
                };
                let (before, after) = AROUND[around];
                let text = format!("{before}{}{after}", written(value, style, group));
                let masked = mask(&text);
                prop_assert!(!survives(&masked, value), "{text:?} -> {masked:?}");
            }

            #[test]
            fn no_email_survives_masking(
                user in "[a-z][a-z0-9.]{0,10}[a-z0-9]", host in "[a-z]{2,12}", tld in "(com|de|co\\.uk|cn)",
                wide in any::<bool>(), spaced in any::<bool>(), around in 0usize..5,
            ) {
                let at = if spaced { " @ " } else { "@" };
                let email = format!("{user}{at}{host}.{tld}");
                let email: String = if wide { email.chars().map(fullwidth).collect() } else { email };
                let (before, after) = AROUND[around];
                let masked = mask(&format!("{before}{email}{after}"));
                prop_assert!(!masked.contains('@') && !masked.contains('＠'), "{email:?} -> {masked:?}");
            }

            #[test]
            fn masking_never_panics_and_keeps_text_it_does_not_mask(text in "\\PC{0,80}") {
                let masked = mask(&text);
                if extract_entities(&text).iter().all(|e| e.kind.mask().is_none()) {
                    prop_assert_eq!(masked, text);
                }
            }
        }
    }
}
