//! The encoder against an independent Python reference, and its behaviour under load and
//! failure.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use serde::Deserialize;
use shopmind_inference::{cosine, Encoder, EncoderOptions, InferenceError, VerifiedModel};

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<RefSentence>,
}

#[derive(Deserialize)]
struct RefSentence {
    text: String,
    tokens: usize,
    truncated: bool,
    vector: Vec<f32>,
}

fn reference() -> Reference {
    let raw = include_str!("fixtures/reference_embeddings.json");
    serde_json::from_str(raw).unwrap()
}

#[test]
fn agrees_with_python_onnxruntime_reference() {
    let reference = reference();
    assert!(reference.sentences.len() >= 20);
    assert!(
        reference.sentences.iter().any(|s| s.truncated),
        "fixture needs a long input"
    );
    let texts: Vec<&str> = reference
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    // Batched and length-sorted here; one at a time and unpadded in the reference.
    for batch in [1, 5, 32] {
        let got = common::encoder(batch).embed(&texts).unwrap();
        for (r, g) in reference.sentences.iter().zip(&got) {
            let cos = cosine(&r.vector, &g.vector);
            assert!(
                cos >= 0.9999,
                "batch {batch}: cosine {cos} for {:?}",
                r.text
            );
            assert_eq!(g.tokens, r.tokens, "token count for {:?}", r.text);
            assert_eq!(g.truncated, r.truncated, "truncation flag for {:?}", r.text);
            let norm: f32 = g.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4);
        }
    }
}

#[test]
fn paraphrases_score_closer_than_unrelated_pairs() {
    let enc = common::encoder(32);
    let cases = [
        (
            "Where is my package?",
            "My order has not arrived yet",
            "Do you sell garden hoses?",
        ),
        (
            "How do I return these shoes?",
            "I want to send the sneakers back",
            "What is the capital of France?",
        ),
        (
            "a warm winter jacket",
            "an insulated coat for cold weather",
            "a stainless steel frying pan",
        ),
        ("我的订单在哪里", "我的包裹到哪了", "这件衬衫是什么颜色"),
    ];
    for (a, para, unrelated) in cases {
        let v = enc.embed(&[a, para, unrelated]).unwrap();
        let close = cosine(&v[0].vector, &v[1].vector);
        let far = cosine(&v[0].vector, &v[2].vector);
        assert!(
            close > far + 0.1,
            "{a:?}: paraphrase {close} vs unrelated {far}"
        );
    }
}

#[test]
fn empty_input_gives_no_vectors() {
    let enc = common::encoder(8);
    let none: [&str; 0] = [];
    assert!(enc.embed(&none).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_match_sequential_ones() {
    let enc = common::encoder(4);
    let texts: Vec<String> = (0..48)
        .map(|i| {
            format!(
                "product number {i} with {} extra words",
                "many ".repeat(i % 7)
            )
        })
        .collect();
    let sequential = enc.embed(&texts).unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let enc = enc.clone();
        let mine: Vec<String> = texts.iter().skip(t % 3).step_by(3).cloned().collect();
        tasks.push(tokio::task::spawn_blocking(move || {
            (t, enc.embed(&mine).unwrap())
        }));
    }
    for task in tasks {
        let (t, got) = task.await.unwrap();
        let expected: Vec<_> = sequential.iter().skip(t % 3).step_by(3).collect();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(expected) {
            assert!(cosine(&g.vector, &e.vector) > 0.99999);
        }
    }
}

#[test]
fn missing_model_is_its_own_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = VerifiedModel::open(tmp.path()).unwrap_err();
    assert!(
        matches!(err, InferenceError::ManifestMissing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("fetch the model"));

    let dir = common::copy_of_model();
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = VerifiedModel::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, InferenceError::ModelFileMissing { .. }),
        "{err}"
    );
}

#[test]
fn checksum_mismatch_is_its_own_error() {
    let dir = common::copy_of_model();
    let model = dir.path().join("model.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // one flipped bit
    std::fs::write(&model, bytes).unwrap();
    let err = VerifiedModel::open(dir.path()).unwrap_err();
    match err {
        InferenceError::ChecksumMismatch { file, .. } => assert_eq!(file, "model.onnx"),
        other => panic!("expected a checksum mismatch, got {other}"),
    }
}

#[test]
fn corrupt_model_is_its_own_error() {
    let dir = common::copy_of_model();
    common::replace_and_resign(dir.path(), "model.onnx", b"this is not an ONNX protobuf");
    let verified = VerifiedModel::open(dir.path()).unwrap();
    let err = Encoder::load(common::runtime(), &verified, &EncoderOptions::default()).unwrap_err();
    assert!(matches!(err, InferenceError::ModelLoad { .. }), "{err}");
}

#[test]
fn a_broken_tokenizer_is_its_own_error() {
    let dir = common::copy_of_model();
    common::replace_and_resign(dir.path(), "tokenizer.json", b"{not json");
    let verified = VerifiedModel::open(dir.path()).unwrap();
    let err = Encoder::load(common::runtime(), &verified, &EncoderOptions::default()).unwrap_err();
    assert!(matches!(err, InferenceError::TokenizerLoad { .. }), "{err}");
}

#[test]
fn detects_token_type_ids_input() {
    // all-MiniLM-L6-v2's BERT graph takes token_type_ids.
    assert!(common::encoder(8).wants_token_type_ids());
}
