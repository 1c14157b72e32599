//! The error contract, exercised through a small router the way every function uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use serde::Deserialize;
use shopmind_runtime::{finish_router, ApiError, Json, Query};
use tower::ServiceExt;

#[derive(Deserialize)]
struct Greeting {
    name: String,
}

#[derive(Deserialize)]
struct Page {
    #[allow(dead_code)]
    limit: u32,
}

fn app() -> Router {
    let router = Router::new()
        .route(
            "/v1/greet",
            post(|Json(g): Json<Greeting>| async move {
                if g.name.is_empty() {
                    return Err(ApiError::unprocessable("name is empty"));
                }
                Ok(Json(serde_json::json!({ "hello": g.name })))
            }),
        )
        .route(
            "/v1/page",
            axum::routing::get(|Query(_p): Query<Page>| async { "ok" }),
        )
        // Routes whose extractors are axum's own, whose rejections are plain text.
        .route(
            "/v1/items/{id}",
            axum::routing::get(|Path(id): Path<String>| async move { id }),
        )
        .route(
            "/v1/raw",
            post(|raw: axum::body::Bytes| async move { raw.len().to_string() }),
        );
    finish_router(router, 64)
}

async fn call(req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn code(v: &serde_json::Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<missing>")
}

#[tokio::test]
async fn valid_request_passes() {
    let (status, body) = call(post_json("/v1/greet", r#"{"name":"ada"}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["hello"], "ada");
}

#[tokio::test]
async fn malformed_json_is_400_with_its_position() {
    let (status, body) = call(post_json("/v1/greet", "{\"name\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "malformed_json");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("line 1 column"), "{msg}");
}

#[tokio::test]
async fn wrong_shape_is_422() {
    let (status, body) = call(post_json("/v1/greet", r#"{"name": 3}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&body), "validation_failed");
    let (status, _) = call(post_json("/v1/greet", r#"{"name": ""}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(100));
    let (status, body) = call(post_json("/v1/greet", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "payload_too_large");
}

#[tokio::test]
async fn missing_content_type_is_415() {
    let req = Request::post("/v1/greet")
        .body(Body::from(r#"{"name":"a"}"#))
        .unwrap();
    let (status, body) = call(req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(code(&body), "unsupported_media_type");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_same_shape() {
    let (status, body) = call(Request::get("/v1/nope").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&body), "not_found");
    let (status, body) = call(Request::get("/v1/greet").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code(&body), "method_not_allowed");
}

#[tokio::test]
async fn bad_query_is_422() {
    let (status, body) = call(
        Request::get("/v1/page?limit=lots")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
    let (status, _) = call(
        Request::get("/v1/page?limit=3")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn internal_errors_do_not_leak_details() {
    let err = ApiError::internal("connection string postgres://secret@db");
    assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!err.message.contains("secret"));
}

#[tokio::test]
async fn the_lambda_observer_passes_requests_through() {
    let observed = shopmind_runtime::observe("test-fn", "Shopmind", app());
    let mut req = post_json("/v1/greet", r#"{"name":"ada"}"#);
    req.extensions_mut().insert(lambda_http::Context::default());
    let resp = observed.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], br#"{"hello":"ada"}"#);
    // Errors keep their contract shape through the observer.
    let resp = observed.oneshot(post_json("/v1/greet", "{")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_path_that_is_not_utf8_is_400_in_the_json_shape() {
    // Was `400 text/plain` before the contract layer (issue 21 finding 6).
    let resp = app()
        .oneshot(
            Request::get("/v1/items/%FF%FE")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code(&body), "bad_request");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn an_oversized_raw_body_is_413_in_the_json_shape() {
    let (status, body) = call(post_json("/v1/raw", &"x".repeat(100))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(&body), "payload_too_large");
    let (status, _) = call(post_json("/v1/raw", "{}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415_on_every_route() {
    // A cross-site form posts text/plain or form bodies; a raw-body route took them before.
    let raw = |ctype: &str| {
        Request::post("/v1/raw")
            .header("content-type", ctype)
            .header("content-length", "2")
            .body(Body::from("{}"))
            .unwrap()
    };
    for ctype in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ] {
        let (status, body) = call(raw(ctype)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ctype}");
        assert_eq!(code(&body), "unsupported_media_type");
    }
    // JSON with parameters and +json types pass; so does a request with no body at all.
    for ctype in [
        "application/json; charset=utf-8",
        "application/merge-patch+json",
    ] {
        assert_eq!(call(raw(ctype)).await.0, StatusCode::OK, "{ctype}");
    }
    let req = Request::post("/v1/raw").body(Body::empty()).unwrap();
    assert_eq!(call(req).await.0, StatusCode::OK);
}

#[tokio::test]
async fn every_response_says_nosniff() {
    for req in [
        post_json("/v1/greet", r#"{"name":"ada"}"#),
        post_json("/v1/greet", "{"),
        Request::get("/v1/nope").body(Body::empty()).unwrap(),
    ] {
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    }
}

#[test]
fn the_bearer_scheme_is_matched_without_regard_to_case() {
    use axum::http::HeaderMap;
    let with = |v: &str| {
        let mut h = HeaderMap::new();
        h.insert("authorization", v.parse().unwrap());
        h
    };
    for v in ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "] {
        assert_eq!(shopmind_runtime::bearer_token(&with(v)), Some("abc"), "{v}");
    }
    for v in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", "Token abc"] {
        assert_eq!(shopmind_runtime::bearer_token(&with(v)), None, "{v}");
    }
    assert_eq!(shopmind_runtime::bearer_token(&HeaderMap::new()), None);
}
