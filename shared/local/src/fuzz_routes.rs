//! Every route of the local app (each function's router, exactly as Lambda runs it) fed
//! generated requests: any method, path segments of any bytes, query strings, content types,
//! credentials (a real shopper or staff token, garbage, other schemes) and bodies (random
//! bytes, random JSON, the route's own fields with values of any type). Whatever comes in,
//! no request may get a 5xx or panic the handler, and every refusal is the JSON error shape
//! with `nosniff` (issue 21).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use proptest::prelude::*;
use tower::ServiceExt;

use crate::{app, seed_demo, AppParts};

const STAFF_TOKEN: &str = "fuzz-staff-token-0123456789";
const SHOP_SECRET: &[u8] = b"fuzz-shop-secret-fuzz-shop-secret";
const SESSION_SECRET: &[u8] = b"fuzz-session-secret-fuzz-session";

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    shopper_token: String,
    _dir: tempfile::TempDir,
}

/// The demo data indexed into a fresh store, and the app over it; built once for all cases.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (app, shopper_token) = rt.block_on(async {
            let store = Arc::new(crate::open_store(dir.path()).unwrap());
            let inference = shopmind_e2e::local_inference();
            let encoder = Arc::new(shopmind_inference::LazyEncoder::new(inference.clone()));
            seed_demo(store.as_ref(), encoder.get().await.unwrap())
                .await
                .unwrap();
            let models = shopmind_e2e::models_dir().to_string_lossy().into_owned();
            let shoppers = shopmind_runtime::ShopperAuth::with_secrets(SHOP_SECRET, SESSION_SECRET);
            let token = shoppers
                .issue_shopper(
                    "demo-shopper",
                    shopmind_storage::now_secs(),
                    std::time::Duration::from_secs(3600),
                )
                .unwrap();
            let app = app(AppParts {
                encoder,
                limits: shopmind_embed_api::EmbedLimits::from_env().unwrap(),
                store,
                recs: recommend::RecommendConfig::default(),
                // Extractive answers, composer-only copy: the routes' input handling is under
                // test here, not the generator (tested in its own crates).
                support_cfg: support::SupportConfig::from_lookup(|k| match k {
                    "SHOPMIND_MODELS_DIR" => Some(models.clone()),
                    "SHOPMIND_SUPPORT_GENERATE" | "SHOPMIND_SUPPORT_TRANSLATE" => {
                        Some("off".into())
                    }
                    _ => None,
                })
                .unwrap(),
                model_cache_dir: inference.model_cache_dir.clone(),
                copy_cfg: copywriter::CopyConfig::from_lookup(|k| {
                    (k == "SHOPMIND_COPY_GENERATOR").then(|| "off".into())
                })
                .unwrap(),
                generator: Arc::new(shopmind_inference::LazyGenerator::new(&inference)),
                staff: shopmind_runtime::StaffAuth::local(Some(STAFF_TOKEN)).unwrap(),
                shoppers: Arc::new(shoppers),
                updater_cfg: Default::default(),
                signals_due: Default::default(),
            });
            (app, token)
        });
        World {
            rt,
            app,
            shopper_token,
            _dir: dir,
        }
    })
}

/// Every route (method, path with `{}` for each parameter).
const ROUTES: [(&str, &str); 14] = [
    ("GET", "/healthz"),
    ("POST", "/v1/embeddings"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/users/{}/recommendations"),
    ("GET", "/v1/items/{}/similar"),
    ("POST", "/v1/support/conversations"),
    ("GET", "/v1/support/conversations/{}"),
    ("POST", "/v1/support/conversations/{}/messages"),
    ("POST", "/v1/copy"),
    ("GET", "/v1/copy/drafts"),
    ("GET", "/v1/copy/drafts/{}/{}/{}"),
    ("POST", "/v1/copy/drafts/{}/{}/{}/review"),
    ("DELETE", "/v1/users/{}/data"),
    ("POST", "/v1/events"),
];

/// A path segment: a real id, or any characters percent-encoded, or raw bytes escaped.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("dress-linen".to_owned()),
        Just("demo-shopper".to_owned()),
        Just("social_post".to_owned()),
        Just("en".to_owned()),
        Just("c_00000000000000000000000000000000".to_owned()),
        "[a-z0-9_|:-]{0,12}",
        any::<String>().prop_map(|s| percent(s.as_bytes())),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| percent(&b)),
        Just("x".repeat(300)),
    ]
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// A route's own method most of the time, any other now and then; its path with generated
/// parameters.
fn route() -> impl Strategy<Value = (&'static str, String)> {
    let other = prop_oneof![Just("GET"), Just("POST"), Just("DELETE"), Just("PUT")];
    (
        0..ROUTES.len(),
        0..5u8,
        other,
        segment(),
        segment(),
        segment(),
    )
        .prop_map(|(r, pick, other, a, b, c)| {
            let (own, template) = ROUTES[r];
            let mut path = template.to_owned();
            for s in [a, b, c] {
                path = path.replacen("{}", &s, 1);
            }
            (if pick == 0 { other } else { own }, path)
        })
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("limit"),
        Just("context"),
        Just("category"),
        Just("status"),
        Just("cursor"),
        Just("user_id"),
        Just("exclude_purchased"),
        Just("admin"),
    ];
    let value = prop_oneof![
        Just("3".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("true".to_owned()),
        Just("pending_review".to_owned()),
        any::<String>().prop_map(|s| percent(s.as_bytes())),
    ];
    proptest::collection::vec((key, value), 0..3).prop_map(|pairs| {
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        }
    })
}

/// A JSON value of any shape, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::from),
        Just(serde_json::json!("<script>alert(1)</script>")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(field(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names the routes read, and others.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("text".to_owned()),
        Just("texts".to_owned()),
        Just("events".to_owned()),
        Just("event_id".to_owned()),
        Just("user_id".to_owned()),
        Just("locale".to_owned()),
        Just("product".to_owned()),
        Just("id".to_owned()),
        Just("title".to_owned()),
        Just("attributes".to_owned()),
        Just("channel".to_owned()),
        Just("decision".to_owned()),
        Just("reviewer".to_owned()),
        "[a-z_]{1,8}",
    ]
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    Shopper,
    Staff,
    Raw(String),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        3 => Just(Auth::None),
        3 => Just(Auth::Shopper),
        3 => Just(Auth::Staff),
        1 => Just(Auth::Raw("bearer not.a.token".into())),
        1 => Just(Auth::Raw("Basic Zm9vOmJhcg==".into())),
        1 => "[ -~]{0,40}".prop_map(Auth::Raw),
    ]
}

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        2 => Just(None),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        4 => json().prop_map(|v| Some(v.to_string().into_bytes())),
        3 => fields().prop_map(|v| Some(v.to_string().into_bytes())),
    ]
}

/// An object of the fields the routes read, each with a value of any type.
fn fields() -> impl Strategy<Value = serde_json::Value> {
    proptest::collection::btree_map(field(), json(), 1..5)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
}

/// Mostly JSON, as a client that means it would send; sometimes none or a form's.
fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        1 => Just(None),
        6 => Just(Some("application/json")),
        1 => Just(Some("application/json; charset=utf-8")),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/x-www-form-urlencoded")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn no_input_gets_a_5xx_and_every_refusal_is_the_json_shape(
        (method, path) in route(),
        query in query(),
        auth in auth(),
        ctype in content_type(),
        body in body(),
        stream in any::<bool>(),
    ) {
        let w = world();
        let uri = format!("{path}{query}");
        let mut req = Request::builder().method(method).uri(&uri);
        match &auth {
            Auth::None => {}
            Auth::Shopper => req = req.header("authorization", format!("Bearer {}", w.shopper_token)),
            Auth::Staff => req = req.header("authorization", format!("Bearer {STAFF_TOKEN}")),
            Auth::Raw(v) => req = req.header("authorization", v.as_str()),
        }
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        if stream {
            req = req.header("accept", "text/event-stream");
        }
        let body = match &body {
            Some(b) => {
                req = req.header("content-length", b.len().to_string());
                Body::from(b.clone())
            }
            None => Body::empty(),
        };
        let Ok(req) = req.body(body) else {
            // The http crate refuses the URI or a header itself: nothing reaches a route.
            return Ok(());
        };
        let (status, headers, bytes) = w.rt.block_on(async {
            let resp = w.app.clone().oneshot(req).await.unwrap();
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            (parts.status, parts.headers, bytes)
        });
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(!status.is_server_error(), "{method} {uri} ({auth:?}, {ctype:?}) → {status}: {text}");
        prop_assert_eq!(headers.get("x-content-type-options").map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
        if status.is_client_error() {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| TestCaseError::fail(format!("{method} {uri} → {status}, not JSON ({e}): {text}")))?;
            prop_assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{method} {uri} → {status}: {text}");
        }
    }
}
