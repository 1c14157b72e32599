//! The multilingual encoder (USE multilingual v3, converted by
//! infra/scripts/fetch_use_multilingual.py) against its original graph: the fixture was made
//! by the graph as shipped, with its own SentencePiece op, one text per run
//! (tests/reference/use_reference.py) — so this checks the cut-out tokenizer op, the
//! tokenizer.json built from the SentencePiece model, and the `graph` pooling together.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use serde::Deserialize;
use shopmind_inference::{cosine, Pooling, VerifiedModel, DEFAULT_ENCODER_DIR};

const USE_DIR: &str = "use-multilingual-v3-int8";

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<RefSentence>,
}

#[derive(Deserialize)]
struct RefSentence {
    text: String,
    ids: Vec<u32>,
    vector: Vec<f32>,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("fixtures/use_reference_embeddings.json")).unwrap()
}

#[test]
fn is_the_default_and_pools_in_the_graph_with_a_calibrated_threshold() {
    assert_eq!(DEFAULT_ENCODER_DIR, USE_DIR);
    let model = VerifiedModel::open(&common::model_dir(USE_DIR)).unwrap();
    let spec = model.manifest.encoder.as_ref().unwrap();
    assert_eq!((spec.pooling, spec.dimension), (Pooling::Graph, 512));
    let t = model.manifest.calibration.not_found_similarity.unwrap();
    assert!((0.0..0.5).contains(&t), "{t}");
}

#[test]
fn token_ids_equal_the_original_sentencepiece_op() {
    let dir = common::model_dir(USE_DIR);
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    for s in reference().sentences {
        let got = tok.encode(s.text.as_str(), true).unwrap();
        assert_eq!(got.get_ids(), &s.ids[..], "{:?}", s.text);
    }
}

#[test]
fn embeddings_equal_the_original_graph_alone_and_close_in_batches() {
    let reference = reference();
    let texts: Vec<&str> = reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    // One text per run is what the reference did: equal to float rounding. In a batch the
    // graph's dynamic int8 quantisation takes its scale from every row at once, so rows move
    // a little with their neighbours (measured ≥ 0.996 here).
    for (batch, floor) in [(1, 0.9999), (4, 0.99), (32, 0.99)] {
        let got = common::encoder_named(USE_DIR, batch).embed(&texts).unwrap();
        for (r, g) in reference.sentences.iter().zip(&got) {
            let cos = cosine(&r.vector, &g.vector);
            assert!(cos >= floor, "batch {batch}: cosine {cos} for {:?}", r.text);
            assert_eq!(g.tokens, r.ids.len());
        }
    }
}

#[test]
fn a_chinese_question_is_nearest_its_english_answer() {
    let enc = common::encoder_named(USE_DIR, 8);
    let v = enc
        .embed(&[
            "我想退货，需要多少天？",
            "You can return items within 30 days of delivery.",
            "Standard delivery takes 2 to 4 business days.",
            "We accept Visa, Mastercard and PayPal.",
        ])
        .unwrap();
    let sims: Vec<f32> = v[1..]
        .iter()
        .map(|e| cosine(&v[0].vector, &e.vector))
        .collect();
    assert!(sims[0] > sims[1] && sims[0] > sims[2], "{sims:?}");
}
