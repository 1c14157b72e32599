//! Knowledge-base articles (JSONL) and their chunks.
//!
//! An article is split into sections at Markdown headings, sections into paragraphs at blank
//! lines, and paragraphs are packed into chunks of at most `max_chars`. Consecutive chunks of
//! one section share `overlap_chars` of text, so an answer that straddles a boundary is still
//! whole in one of them. A paragraph longer than a chunk is cut at sentence ends, then words.

use serde::{Deserialize, Serialize};
pub use shopmind_jsonl::BadLine;
use shopmind_jsonl::Record;

/// One line of the knowledge-base file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Article {
    pub id: String,
    pub title: String,
    pub body: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_locale")]
    pub locale: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_locale() -> String {
    "en".into()
}

#[derive(Debug, Clone, Default)]
pub struct ParsedArticles {
    pub articles: Vec<Article>,
    pub bad: Vec<BadLine>,
}

/// Parses JSONL; bad lines (bad JSON, unknown fields, empty id/title/body, repeated ids) are
/// reported with their 1-based line number and skipped.
pub fn parse_articles(text: &str) -> ParsedArticles {
    let (articles, bad) = shopmind_jsonl::parse_lines(text, |a: &Article| {
        if a.id.trim().is_empty() {
            Err("empty id".into())
        } else if a.title.trim().is_empty() {
            Err("empty title".into())
        } else if a.body.trim().is_empty() {
            Err("empty body".into())
        } else {
            Ok(())
        }
    });
    ParsedArticles { articles, bad }
}

impl Record for Article {
    fn key(&self) -> &str {
        &self.id
    }
    fn repeated(&self) -> String {
        format!("id {:?} appears again", self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    pub max_chars: usize,
    pub overlap_chars: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        // ~150–200 tokens: inside the encoder's window with room for the title line.
        Self {
            max_chars: 800,
            overlap_chars: 150,
        }
    }
}

/// A retrievable piece of an article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub article_id: String,
    /// Position of the chunk in its article, from 0.
    pub seq: usize,
    pub title: String,
    /// The heading of the section the chunk comes from (empty before the first heading).
    pub heading: String,
    pub url: Option<String>,
    pub locale: String,
    pub text: String,
}

impl Chunk {
    /// What gets embedded and indexed: the title and heading give a passage its subject.
    pub fn indexed_text(&self) -> String {
        if self.heading.is_empty() {
            format!("{}\n{}", self.title, self.text)
        } else {
            format!("{} — {}\n{}", self.title, self.heading, self.text)
        }
    }
}

fn heading_of(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let hashes = t.chars().take_while(|c| *c == '#').count();
    ((1..=6).contains(&hashes) && t[hashes..].starts_with(' ')).then(|| t[hashes..].trim())
}

/// Sections as (heading, paragraphs).
fn sections(body: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    let mut para = String::new();
    let flush = |para: &mut String, out: &mut Vec<(String, Vec<String>)>| {
        let p = para.trim();
        if !p.is_empty() {
            if let Some(last) = out.last_mut() {
                last.1.push(p.to_owned());
            }
        }
        para.clear();
    };
    for line in body.lines() {
        if let Some(h) = heading_of(line) {
            flush(&mut para, &mut out);
            out.push((h.to_owned(), Vec::new()));
        } else if line.trim().is_empty() {
            flush(&mut para, &mut out);
        } else {
            if !para.is_empty() {
                para.push(' ');
            }
            para.push_str(line.trim());
        }
    }
    flush(&mut para, &mut out);
    out.retain(|(h, ps)| !ps.is_empty() || !h.is_empty());
    out.into_iter().filter(|(_, ps)| !ps.is_empty()).collect()
}

/// The largest char boundary ≤ `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The sentences of `text` by Unicode's sentence boundaries (UAX #29: "4.95 EUR" and "z.B."
/// stay whole, "。" ends a sentence), each line break also ending one; trimmed, none empty.
pub fn sentences(text: &str) -> Vec<&str> {
    use unicode_segmentation::UnicodeSegmentation;
    text.split('\n')
        .flat_map(|line| line.split_sentence_bounds())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Cuts a paragraph longer than `max` into pieces at sentence ends, else spaces, else chars.
fn split_long(p: &str, max: usize) -> Vec<String> {
    use unicode_segmentation::UnicodeSegmentation;
    let mut out = Vec::new();
    let mut rest = p.trim();
    while rest.len() > max {
        let window = &rest[..floor_boundary(rest, max)];
        let cut = window
            .split_sentence_bound_indices()
            .map(|(i, s)| i + s.len())
            // The window's last piece ends where the window was cut, not at a sentence end.
            .filter(|&i| i < window.len())
            .filter(|&i| i > max / 3)
            .last()
            .or_else(|| window.rfind(' ').filter(|&i| i > max / 3))
            .unwrap_or(window.len().max(1));
        let cut = floor_boundary(rest, cut).max(rest.chars().next().map_or(1, char::len_utf8));
        out.push(rest[..cut].trim().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

/// The last `n` bytes of `s`, starting at a word boundary when there is one.
fn tail(s: &str, n: usize) -> &str {
    if n == 0 || s.len() <= n {
        return if n == 0 { "" } else { s };
    }
    let start = s.len() - n;
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    let t = &s[start..];
    match t.find(' ') {
        Some(i) if i + 1 < t.len() => &t[i + 1..],
        _ => t,
    }
}

/// Splits one article into chunks.
pub fn chunk_article(a: &Article, cfg: ChunkConfig) -> Vec<Chunk> {
    let max = cfg.max_chars.max(50);
    let overlap = cfg.overlap_chars.min(max / 2);
    let mut texts: Vec<(String, String)> = Vec::new();
    for (heading, paras) in sections(&a.body) {
        let pieces: Vec<String> = paras.iter().flat_map(|p| split_long(p, max)).collect();
        let mut cur = String::new();
        // True while `cur` holds nothing but the overlap carried from the previous chunk.
        let mut carried_only = true;
        for piece in pieces {
            if !carried_only && cur.len() + 1 + piece.len() > max {
                let carried = tail(&cur, overlap).to_owned();
                texts.push((heading.clone(), std::mem::take(&mut cur)));
                cur = carried;
            }
            if !cur.is_empty() && cur.len() + 1 + piece.len() > max {
                // Even the carried overlap does not fit beside this piece: drop it.
                cur.clear();
            }
            if !cur.is_empty() {
                cur.push('\n');
            }
            cur.push_str(&piece);
            carried_only = false;
        }
        if !carried_only {
            texts.push((heading, cur));
        }
    }
    texts
        .into_iter()
        .enumerate()
        .map(|(seq, (heading, text))| Chunk {
            article_id: a.id.clone(),
            seq,
            title: a.title.clone(),
            heading,
            url: a.url.clone(),
            locale: a.locale.clone(),
            text,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(body: &str) -> Article {
        Article {
            id: "returns".into(),
            title: "Returns and refunds".into(),
            body: body.into(),
            url: Some("https://shop.example/help/returns".into()),
            locale: "en".into(),
            tags: vec![],
        }
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let text = concat!(
            r#"{"id":"a","title":"A","body":"x"}"#,
            "\n\n{oops\n",
            r#"{"id":"a","title":"A again","body":"y"}"#,
            "\n",
            r#"{"id":"b","title":"B","body":"  "}"#,
            "\n",
            r#"{"id":"c","title":"C","body":"z","color":"red"}"#,
            "\n",
            r#"{"id":"d","title":"D","body":"w","locale":"zh-CN","tags":["t"]}"#,
        );
        let p = parse_articles(text);
        assert_eq!(
            p.articles.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["a", "d"]
        );
        assert_eq!(
            p.bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            [3, 4, 5, 6]
        );
        assert!(p.bad[1].reason.contains("appears again"));
        assert!(p.bad[3].reason.contains("unknown field"));
        assert_eq!(p.articles[0].locale, "en");
    }

    #[test]
    fn sections_follow_headings_and_short_articles_stay_whole() {
        let a = article(
            "Intro line.\n\n## Time limit\nYou have 30 days.\n\n## Refunds\nMoney back in 5 days.",
        );
        let c = chunk_article(&a, ChunkConfig::default());
        let got: Vec<(&str, &str)> = c
            .iter()
            .map(|c| (c.heading.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("", "Intro line."),
                ("Time limit", "You have 30 days."),
                ("Refunds", "Money back in 5 days.")
            ]
        );
        assert_eq!(c.iter().map(|c| c.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(
            c[1].indexed_text(),
            "Returns and refunds — Time limit\nYou have 30 days."
        );
        assert_eq!(
            c[2].url.as_deref(),
            Some("https://shop.example/help/returns")
        );
    }

    #[test]
    fn long_sections_are_packed_with_overlap_and_nothing_is_lost() {
        let paras: Vec<String> = (0..12)
            .map(|i| format!("Paragraph {i} says something about parcels and couriers number {i}."))
            .collect();
        let a = article(&paras.join("\n\n"));
        let cfg = ChunkConfig {
            max_chars: 200,
            overlap_chars: 60,
        };
        let c = chunk_article(&a, cfg);
        assert!(c.len() >= 4, "{c:?}");
        assert!(c.iter().all(|c| c.text.len() <= 200), "{c:?}");
        // Every paragraph is whole in some chunk.
        for p in &paras {
            assert!(c.iter().any(|c| c.text.contains(p.as_str())), "{p} lost");
        }
        // Consecutive chunks share text (the overlap).
        for w in c.windows(2) {
            let head: String = w[1].text.chars().take(20).collect();
            assert!(
                w[0].text.contains(&head),
                "no overlap between {:?} and {:?}",
                w[0].text,
                w[1].text
            );
        }
    }

    #[test]
    fn sentences_follow_unicode_boundaries_not_every_full_stop() {
        // The case a hand-written splitter got wrong: decimals cut into "4." and "95 EUR".
        assert_eq!(
            sentences("Other countries pay 4.95 EUR, free over 100 EUR. Express costs 9.90 EUR!"),
            [
                "Other countries pay 4.95 EUR, free over 100 EUR.",
                "Express costs 9.90 EUR!"
            ]
        );
        assert_eq!(
            sentences("收到商品后30天内可以退货。退款需要5个工作日！"),
            ["收到商品后30天内可以退货。", "退款需要5个工作日！"]
        );
        assert_eq!(
            sentences("A list\n\n- first item\nsecond"),
            ["A list", "- first item", "second"]
        );
        assert!(sentences(" \n ").is_empty());
    }

    #[test]
    fn an_overlong_paragraph_is_cut_at_sentences_then_words() {
        let sentence = "Refunds go back to the card you paid with. ";
        let body = sentence.repeat(30);
        let c = chunk_article(
            &article(&body),
            ChunkConfig {
                max_chars: 200,
                overlap_chars: 0,
            },
        );
        assert!(c.len() >= 6);
        assert!(
            c.iter()
                .all(|c| c.text.len() <= 200 && c.text.ends_with('.')),
            "{c:?}"
        );
        let words = "word ".repeat(200);
        let c = chunk_article(
            &article(&words),
            ChunkConfig {
                max_chars: 100,
                overlap_chars: 0,
            },
        );
        assert!(c
            .iter()
            .all(|c| c.text.len() <= 100 && !c.text.contains("wor d")));
        // Text without spaces or sentence ends (Chinese) is cut at char boundaries.
        let zh = "退货需要在三十天内完成并保留原包装".repeat(20);
        let c = chunk_article(
            &article(&zh),
            ChunkConfig {
                max_chars: 120,
                overlap_chars: 30,
            },
        );
        assert!(c.len() > 3 && c.iter().all(|c| c.text.len() <= 120));
    }
}
