//! The grounding check against the development sentences labelled by reading
//! (`infra/eval/copy/labels/dev.jsonl`, how they were labelled: docs/copy.md). The labels are
//! the reference, written by a person, not by this code; the floors are a little under what
//! the check scores today, so a change that makes it miss inventions or refuse much more fails
//! here. The held-out figures come from `shopmind eval grounding` on the test labels.

use std::collections::BTreeMap;
use std::path::Path;

use shopmind_copy::{checks::ground_sentence, parse_catalog, Channel, CopyRequest, Locale, Rules};

#[derive(serde::Deserialize)]
struct Label {
    product_id: String,
    channel: Channel,
    locale: Locale,
    sentence: String,
    invented: bool,
}

#[test]
fn grounding_finds_the_labelled_inventions_on_the_development_set() {
    let eval = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/eval/copy");
    let mut products = BTreeMap::new();
    for file in ["dev-en.jsonl", "dev-zh.jsonl"] {
        let (parsed, bad) = parse_catalog(&std::fs::read_to_string(eval.join(file)).unwrap());
        assert!(bad.is_empty(), "{file}: {} bad lines", bad.len());
        products.extend(parsed.into_iter().map(|p| (p.id.clone(), p)));
    }
    let rules = Rules::default();
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    let mut n = 0;
    for line in std::fs::read_to_string(eval.join("labels/dev.jsonl"))
        .unwrap()
        .lines()
    {
        let l: Label = serde_json::from_str(line).unwrap();
        let req = CopyRequest {
            product: products[&l.product_id].clone(),
            channel: l.channel,
            locale: l.locale,
            tone: None,
            audience: None,
            max_chars: None,
            variants: None,
        };
        // Lexical only: the model verifier needs the generator (measured by the CLI).
        let flagged = ground_sentence(&req, &rules, &l.sentence, None).flagged(None);
        n += 1;
        match (l.invented, flagged) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            _ => {}
        }
    }
    assert!(n >= 300, "{n} labelled sentences");
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fn_) as f64;
    assert!(recall >= 0.92, "recall {recall:.3} (tp {tp}, fn {fn_})");
    assert!(
        precision >= 0.65,
        "precision {precision:.3} (tp {tp}, fp {fp})"
    );
}
