//! The routes through `oneshot`, with the real encoder behind them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use shopmind_embed_api::{router, EmbedLimits, EmbedResponse, EmbedState};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_runtime::finish_router;
use tower::ServiceExt;

fn models_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn app_with(lookup: impl Fn(&str) -> Option<String>) -> axum::Router {
    let cfg = InferenceConfig::from_lookup(lookup).unwrap();
    let state = EmbedState {
        encoder: Arc::new(LazyEncoder::new(cfg)),
        limits: EmbedLimits {
            max_texts: 4,
            max_chars: 100,
        },
    };
    finish_router(router(state), 64 * 1024)
}

fn app() -> axum::Router {
    let dir = models_dir().to_string_lossy().into_owned();
    app_with(move |k| (k == "SHOPMIND_MODELS_DIR").then(|| dir.clone()))
}

async fn send(app: axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn embed(body: &str) -> Request<Body> {
    Request::post("/v1/embeddings")
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn embeds_texts_in_order() {
    let (status, body) = send(app(), embed(r#"{"texts":["red dress","blue jeans"]}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let resp: EmbedResponse = serde_json::from_value(body).unwrap();
    assert_eq!(resp.model, "use-multilingual-v3-int8");
    assert_eq!(resp.dimension, 512);
    assert_eq!(resp.data.len(), 2);
    assert_eq!(resp.data[1].index, 1);
    assert_eq!(resp.data[0].embedding.len(), 512);
    assert_ne!(resp.data[0].embedding, resp.data[1].embedding);
}

#[tokio::test]
async fn healthz_does_not_load_the_model() {
    let (status, body) = send(app(), Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["encoder_loaded"], false);
}

#[tokio::test]
async fn bad_inputs_get_contract_errors() {
    for (body, status) in [
        (r#"{"texts":[]}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"texts":[" "]}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"text":"a"}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"texts":["a","b","c","d","e"]}"#,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (r#"{"texts":["a"#, StatusCode::BAD_REQUEST),
    ] {
        let (got, json) = send(app(), embed(body)).await;
        assert_eq!(got, status, "{body} -> {json}");
        assert!(json["error"]["message"].is_string());
    }
    let long = format!(r#"{{"texts":["{}"]}}"#, "x".repeat(101));
    let (got, json) = send(app(), embed(&long)).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("texts[0]"));
}

#[tokio::test]
async fn a_missing_model_is_503_not_a_crash() {
    let app = app_with(|k| (k == "SHOPMIND_MODELS_DIR").then(|| "/nonexistent-models".to_owned()));
    let (status, body) = send(app, embed(r#"{"texts":["hello"]}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
}
