//! A BM25 inverted index (Lucene's variant: idf = ln(1 + (N − n + ½)/(n + ½)), k1 = 1.2,
//! b = 0.75) over the knowledge-base chunks.
//!
//! Tokens: lower-cased runs of letters and digits; a light plural fold ("cards" → "card");
//! a short English stop list; Han, kana and Hangul text as single characters plus bigrams, so
//! Chinese queries match without a segmenter.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

const STOP: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "is", "are", "was", "be", "it",
    "i", "my", "me", "you", "your", "we", "our", "do", "does", "did", "can", "could", "with", "at",
    "by", "this", "that", "from", "as", "how", "what", "have", "has", "will", "would",
];

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // kana
        | 0x3400..=0x4DBF    // Han extension A
        | 0x4E00..=0x9FFF    // Han
        | 0xAC00..=0xD7AF    // Hangul
        | 0xF900..=0xFAFF) // compatibility ideographs
}

fn push_word(word: &mut String, out: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    let w = std::mem::take(word);
    if STOP.contains(&w.as_str()) {
        return;
    }
    let folded = if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
        w[..w.len() - 1].to_owned()
    } else {
        w
    };
    out.push(folded);
}

/// The index's tokens for `text`.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut prev_cjk: Option<char> = None;
    for c in text.chars() {
        if is_cjk(c) {
            push_word(&mut word, &mut out);
            out.push(c.to_string());
            if let Some(p) = prev_cjk {
                out.push(format!("{p}{c}"));
            }
            prev_cjk = Some(c);
        } else if c.is_alphanumeric() {
            prev_cjk = None;
            word.extend(c.to_lowercase());
        } else {
            prev_cjk = None;
            push_word(&mut word, &mut out);
        }
    }
    push_word(&mut word, &mut out);
    out
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bm25 {
    k1: f32,
    b: f32,
    doc_len: Vec<u32>,
    avg_len: f32,
    /// term → (document, term frequency), documents ascending.
    postings: HashMap<String, Vec<(u32, u32)>>,
}

impl Bm25 {
    pub fn build<S: AsRef<str>>(docs: &[S]) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut doc_len = Vec::with_capacity(docs.len());
        for (d, text) in docs.iter().enumerate() {
            let tokens = tokenize(text.as_ref());
            doc_len.push(tokens.len() as u32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in tokens {
                *tf.entry(t).or_insert(0) += 1;
            }
            for (t, n) in tf {
                postings.entry(t).or_default().push((d as u32, n));
            }
        }
        for list in postings.values_mut() {
            list.sort_unstable();
        }
        let total: u64 = doc_len.iter().map(|&l| u64::from(l)).sum();
        let avg_len = if doc_len.is_empty() {
            0.0
        } else {
            total as f32 / doc_len.len() as f32
        };
        Self {
            k1: 1.2,
            b: 0.75,
            doc_len,
            avg_len,
            postings,
        }
    }

    pub fn len(&self) -> usize {
        self.doc_len.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_len.is_empty()
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.doc_len.len() as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// Every document's score for `query` (repeated query terms count once per occurrence,
    /// as in Lucene), best first, zero scores left out, at most `k`.
    pub fn search(&self, query: &str, k: usize) -> Vec<(usize, f32)> {
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in tokenize(query) {
            let Some(list) = self.postings.get(&term) else {
                continue;
            };
            let idf = self.idf(list.len());
            for &(d, tf) in list {
                let tf = tf as f32;
                let dl = self.doc_len[d as usize] as f32;
                let norm = self.k1 * (1.0 - self.b + self.b * dl / self.avg_len.max(1e-6));
                *scores.entry(d).or_insert(0.0) += idf * tf * (self.k1 + 1.0) / (tf + norm);
            }
        }
        let mut out: Vec<(usize, f32)> = scores
            .into_iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(d, s)| (d as usize, s))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_fold_case_plurals_stop_words_and_split_cjk() {
        assert_eq!(
            tokenize("Where are my Cards? Order #A-1234, address"),
            ["where", "card", "order", "1234", "address"]
        );
        assert_eq!(
            tokenize("退货政策"),
            ["退", "货", "退货", "政", "货政", "策", "政策"]
        );
        assert_eq!(tokenize("VIP会员 days"), ["vip", "会", "员", "会员", "day"]);
    }

    #[test]
    fn scores_match_a_hand_computed_example() {
        // Reference values worked out independently (Python, float64) from Lucene's formula:
        //   docs (after tokenizing): d0 = [refund, card, refund] (3), d1 = [card, arrive] (2),
        //   d2 = [refund, policy, day, return] (4); avgdl = 3, N = 3.
        //   idf(refund) = ln(1 + 1.5/2.5) = 0.470004; idf(card) = same; idf(arrive) = ln(1 + 2.5/1.5) = 0.980829
        //   query "refund card":
        //     d0 = 0.470004·2·2.2/(2 + 1.2) + 0.470004·1·2.2/(1 + 1.2) = 0.646255 + 0.470004 = 1.116259
        //     d1 = 0.470004·2.2/(1 + 1.2·(0.25 + 0.75·2/3)) = 0.544215
        //     d2 = 0.470004·2.2/(1 + 1.2·(0.25 + 0.75·4/3)) = 0.413603
        let bm = Bm25::build(&[
            "refund card refund",
            "card arrive",
            "refund policy day return",
        ]);
        let got = bm.search("refund card", 10);
        let want = [(0, 1.116259), (1, 0.544215), (2, 0.413603)];
        assert_eq!(got.len(), 3);
        for ((d, s), (wd, ws)) in got.iter().zip(want) {
            assert_eq!(*d, wd);
            assert!((f64::from(*s) - ws).abs() < 1e-4, "doc {d}: {s} vs {ws}");
        }
        assert!(bm.search("nothing here", 10).is_empty());
        assert_eq!(bm.search("refund", 1).len(), 1);
        assert!(Bm25::build::<&str>(&[]).search("refund", 3).is_empty());
    }
}
