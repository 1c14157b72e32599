//! JSONL input files (the catalog, the help articles) read line by line: a bad line is reported
//! with its number and skipped; it never fails the rest of the file.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A line that was skipped, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based, as editors count.
    pub line: usize,
    pub reason: String,
}

/// One record type of a JSONL file, identified by a key no two lines may share.
pub trait Record: DeserializeOwned {
    fn key(&self) -> &str;
    /// Why a line whose key repeats an earlier line's is skipped.
    fn repeated(&self) -> String;
}

/// Parses one record per non-blank line. A line that is not a `T`, that `check` refuses, or
/// whose key repeats an earlier accepted line's (the first line wins) goes to the bad lines.
pub fn parse_lines<T: Record>(
    text: &str,
    check: impl Fn(&T) -> Result<(), String>,
) -> (Vec<T>, Vec<BadLine>) {
    let (mut records, mut bad) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let refused = match serde_json::from_str::<T>(raw) {
            Err(e) => Some(e.to_string()),
            Ok(record) => match check(&record) {
                Err(reason) => Some(reason),
                Ok(()) if !seen.insert(record.key().to_owned()) => Some(record.repeated()),
                Ok(()) => {
                    records.push(record);
                    None
                }
            },
        };
        if let Some(reason) = refused {
            bad.push(BadLine {
                line: i + 1,
                reason,
            });
        }
    }
    (records, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Row {
        id: String,
        n: i64,
    }

    impl Record for Row {
        fn key(&self) -> &str {
            &self.id
        }
        fn repeated(&self) -> String {
            format!("{} again", self.id)
        }
    }

    #[test]
    fn each_bad_line_is_reported_by_its_number_and_the_rest_are_kept() {
        let text = "{\"id\":\"a\",\"n\":1}\n\n  \nnot json\n{\"id\":\"b\",\"n\":-1}\n{\"id\":\"a\",\"n\":2}\n{\"id\":\"c\",\"n\":3,\"x\":0}\n  {\"id\":\"d\",\"n\":4}  ";
        let (rows, bad) = parse_lines::<Row>(text, |r| {
            if r.n < 0 {
                Err(format!("n {} is negative", r.n))
            } else {
                Ok(())
            }
        });
        let kept: Vec<_> = rows.iter().map(|r| (r.id.as_str(), r.n)).collect();
        assert_eq!(kept, [("a", 1), ("d", 4)]);
        let lines: Vec<_> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 5, 6, 7]);
        assert!(bad[0].reason.contains("expected"), "{}", bad[0].reason);
        assert_eq!(bad[1].reason, "n -1 is negative");
        assert_eq!(bad[2].reason, "a again");
        assert!(
            bad[3].reason.contains("unknown field `x`"),
            "{}",
            bad[3].reason
        );
    }

    #[test]
    fn a_refused_line_does_not_claim_its_key() {
        // The first "a" is refused, so the second is the first accepted one and is kept.
        let text = "{\"id\":\"a\",\"n\":-1}\n{\"id\":\"a\",\"n\":1}";
        let (rows, bad) = parse_lines::<Row>(text, |r| {
            if r.n < 0 {
                Err("negative".into())
            } else {
                Ok(())
            }
        });
        assert_eq!(rows.len(), 1);
        assert_eq!(
            bad,
            [BadLine {
                line: 1,
                reason: "negative".into()
            }]
        );
    }
}
