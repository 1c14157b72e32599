//! The copywriter's routes called through the router behind the staff guard (as `shopmind
//! serve` mounts them), on the embedded store. The trap products run on the real generator;
//! the state-machine and error tests use a scripted model so they say what they test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use copywriter::{router, CopyConfig, CopyState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shopmind_copy::{ModelProvider, TextModel};
use shopmind_inference::{ChatMessage, FinishReason, GenerateOptions, Generation, LazyGenerator};
use shopmind_runtime::{staff_only, StaffAuth};
use shopmind_storage::embedded::EmbeddedStore;
use tower::ServiceExt;

const TOKEN: &str = "test-staff-token-0123";

/// Writes what it is told, in order; then the same last text again.
#[derive(Debug)]
struct Scripted(Mutex<Vec<String>>);

impl TextModel for Scripted {
    fn id(&self) -> &str {
        "scripted"
    }
    fn complete(
        &self,
        prompts: &[Vec<ChatMessage>],
        _: &GenerateOptions,
    ) -> shopmind_copy::Result<Vec<Generation>> {
        let mut texts = self.0.lock().unwrap();
        Ok(prompts
            .iter()
            .map(|_| {
                let text = if texts.len() > 1 {
                    texts.remove(0)
                } else {
                    texts.first().cloned().unwrap_or_default()
                };
                Generation {
                    text,
                    tokens: Vec::new(),
                    prompt_tokens: 0,
                    finish: FinishReason::Eos,
                    timing: Default::default(),
                }
            })
            .collect())
    }
}

struct Provide(Arc<dyn TextModel>);

impl std::fmt::Debug for Provide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.id())
    }
}

#[async_trait::async_trait]
impl ModelProvider for Provide {
    async fn model(&self) -> Result<Arc<dyn TextModel>, String> {
        Ok(self.0.clone())
    }
}

fn app_with(models: Arc<dyn ModelProvider>) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let config = CopyConfig::from_lookup(|_| None).unwrap();
    let service = config.service(store, models);
    let app = staff_only(
        router(CopyState {
            service,
            config: Arc::new(config),
        }),
        StaffAuth::local(Some(TOKEN)).unwrap(),
    );
    (
        shopmind_runtime::finish_router(app, shopmind_runtime::DEFAULT_BODY_LIMIT),
        dir,
    )
}

fn scripted(texts: &[&str]) -> Arc<dyn ModelProvider> {
    Arc::new(Provide(Arc::new(Scripted(Mutex::new(
        texts.iter().map(|s| s.to_string()).collect(),
    )))))
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_raw(app, method, uri, body.map(|b| b.to_string()), Some(TOKEN)).await
}

async fn call_raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<String>,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn hose(attrs: Value) -> Value {
    json!({
        "product": {"id": "hose-fitting", "title": "Garden hose fitting", "brand": "Acme",
            "category": "Garden > Watering", "price": 12.5, "currency": "EUR",
            "attributes": attrs,
            "selling_points": ["Fits standard garden taps", "Twist-on, no tools needed"]},
        "channel": "social_post", "locale": "en", "variants": 1
    })
}

const GOOD: &str = "Garden hose fitting in copper with a 9/16 inch thread. Fits standard garden taps, twist-on with no tools needed.";

#[tokio::test]
async fn staff_token_is_required() {
    let (app, _dir) = app_with(scripted(&[GOOD]));
    let body = Some(hose(json!({"material": "copper"})).to_string());
    let (s, v) = call_raw(&app, "POST", "/v1/copy", body.clone(), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = call_raw(&app, "POST", "/v1/copy", body, Some("wrong-token-0123456")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = call_raw(&app, "GET", "/v1/copy/drafts", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn review_state_machine_and_unchanged_products() {
    let (app, _dir) = app_with(scripted(&[GOOD]));
    let attrs = json!({"material": "copper", "thread": "9/16 inch"});
    let (s, v) = call(&app, "POST", "/v1/copy", Some(hose(attrs.clone()))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["outcome"], "created");
    assert_eq!(v["draft"]["status"], "pending_review");
    assert_eq!(v["draft"]["text"], GOOD);
    assert_eq!(v["draft"]["variants"][0]["validation"]["passed"], true);
    assert_eq!(
        v["draft"]["plan"]["facts"][0]["value"],
        "Fits standard garden taps"
    );
    let version = v["version"].as_u64().unwrap();

    // The same inputs again: not regenerated.
    let (s, v) = call(&app, "POST", "/v1/copy", Some(hose(attrs.clone()))).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );
    assert_eq!(v["version"].as_u64(), Some(version));

    let review = "/v1/copy/drafts/hose-fitting/social_post/en/review";
    // The console's check as the reviewer types: the same findings an edit would be refused
    // for, and nothing changes.
    let check = "/v1/copy/drafts/hose-fitting/social_post/en/check";
    let (s, v) = call(
        &app,
        "POST",
        check,
        Some(json!({"text": "The best copper fitting, guaranteed for 10 years."})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["validation"]["passed"], false, "{v}");
    let rules: Vec<&str> = v["validation"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert!(!rules.is_empty(), "{v}");
    let (s, v) = call(&app, "POST", check, Some(json!({"text": GOOD}))).await;
    assert_eq!(
        (s, &v["validation"]["passed"]),
        (StatusCode::OK, &json!(true)),
        "{v}"
    );
    let (s, _) = call(&app, "POST", check, Some(json!({"text": "  "}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/copy/drafts/nope/social_post/en/check",
        Some(json!({"text": GOOD})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // An edit that invents a fact is refused with the reason, and changes nothing.
    let (s, v) = call(
        &app,
        "POST",
        review,
        Some(json!({"decision": "edit", "reviewer": "ana",
            "text": "The best copper fitting, guaranteed for 10 years."})),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("superlative") && msg.contains("\"10 years\""),
        "{msg}"
    );

    let (s, v) = call(
        &app,
        "POST",
        review,
        Some(json!({"decision": "approve", "reviewer": "ana", "note": "ok"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["draft"]["status"], "approved");
    let audit: Vec<&str> = v["draft"]["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(audit, vec!["generated", "approved"]);
    // Who is recorded is who signed in; the name given is kept beside it.
    assert_eq!(v["draft"]["audit"][1]["actor"], "local-token");
    assert_eq!(v["draft"]["audit"][1]["reviewer"], "ana");

    // Changed attributes do not overwrite an approved draft.
    let changed = json!({"material": "brass", "thread": "9/16 inch"});
    let (s, v) = call(&app, "POST", "/v1/copy", Some(hose(changed.clone()))).await;
    assert_eq!((s, v["outcome"].as_str()), (StatusCode::OK, Some("kept")));
    assert_eq!(v["draft"]["text"], GOOD);
    assert_eq!(v["draft"]["status"], "approved");

    // Reviewing an approved draft again is a conflict.
    let (s, _) = call(
        &app,
        "POST",
        review,
        Some(json!({"decision": "reject", "reviewer": "ben"})),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);

    // A rejected draft is regenerated when its inputs change, keeping its audit trail.
    let mut zh = hose(attrs.clone());
    zh["locale"] = json!("zh-CN");
    zh["channel"] = json!("sms");
    let (s, _) = call(&app, "POST", "/v1/copy", Some(zh.clone())).await;
    assert_eq!(s, StatusCode::CREATED);
    let zh_review = "/v1/copy/drafts/hose-fitting/sms/zh-CN/review";
    let (s, _) = call(
        &app,
        "POST",
        zh_review,
        Some(json!({"decision": "reject", "reviewer": "ben"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&app, "POST", "/v1/copy", Some(zh.clone())).await;
    assert_eq!(
        v["outcome"], "unchanged",
        "rejected with the same inputs stays"
    );
    zh["product"]["attributes"]["colour"] = json!("green");
    let (s, v) = call(&app, "POST", "/v1/copy", Some(zh)).await;
    assert_eq!(
        (s, v["outcome"].as_str()),
        (StatusCode::OK, Some("regenerated"))
    );
    assert_eq!(v["draft"]["status"], "pending_review");
    let actions: Vec<&str> = v["draft"]["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["generated", "rejected", "regenerated"]);
    // The scripted text is English: wrong for zh-CN, so the composer wrote the draft.
    assert_eq!(v["draft"]["source"], "fallback", "{v}");
    assert_eq!(v["draft"]["validation"]["passed"], true, "{v}");
    assert_eq!(v["draft"]["stats"]["failures"]["wrong_language"], 2, "{v}");

    // Edit: stored as edited with the reviewer's text.
    let (s, v) = call(
        &app,
        "POST",
        "/v1/copy/drafts/hose-fitting/sms/zh-CN/review",
        Some(json!({"decision": "edit", "reviewer": "ana",
            "text": "Acme 铜制花园水管接头，适配标准水龙头，无需工具即可安装。"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["draft"]["status"], "edited");

    // Listing by status.
    let (s, v) = call(&app, "GET", "/v1/copy/drafts?status=approved", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["drafts"].as_array().unwrap().len(), 1);
    assert_eq!(v["drafts"][0]["product_id"], "hose-fitting");
    let (s, v) = call(&app, "GET", "/v1/copy/drafts/hose-fitting/sms/zh-CN", None).await;
    assert_eq!(
        (s, v["draft"]["status"].as_str()),
        (StatusCode::OK, Some("edited"))
    );
}

#[tokio::test]
async fn drafts_are_listed_across_pages() {
    let (app, _dir) = app_with(scripted(&[GOOD]));
    for i in 0..5 {
        let mut req = hose(json!({"material": "copper", "thread": "9/16 inch"}));
        req["product"]["id"] = json!(format!("p{i}"));
        let (s, _) = call(&app, "POST", "/v1/copy", Some(req)).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/copy/drafts?status=pending_review&limit=2".to_owned();
    loop {
        let (s, v) = call(&app, "GET", &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let page = v["drafts"].as_array().unwrap();
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .map(|d| d["product_id"].as_str().unwrap().to_owned()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => uri = format!("/v1/copy/drafts?status=pending_review&limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["p0", "p1", "p2", "p3", "p4"]);
    let (s, _) = call(&app, "GET", "/v1/copy/drafts?status=published", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = call(&app, "GET", "/v1/copy/drafts?cursor=nonsense", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn drafts_filter_by_channel_and_locale_and_approve_in_bulk() {
    let (app, _dir) = app_with(scripted(&[GOOD]));
    // p0..p5: social posts; even ones in en, odd ones zh-CN; and p0 also as an sms.
    for i in 0..6 {
        let mut req = hose(json!({"material": "copper", "thread": "9/16 inch"}));
        req["product"]["id"] = json!(format!("p{i}"));
        if i % 2 == 1 {
            req["locale"] = json!("zh-CN");
        }
        let (s, v) = call(&app, "POST", "/v1/copy", Some(req)).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let mut sms = hose(json!({"material": "copper", "thread": "9/16 inch"}));
    sms["product"]["id"] = json!("p0");
    sms["channel"] = json!("sms");
    assert_eq!(
        call(&app, "POST", "/v1/copy", Some(sms)).await.0,
        StatusCode::CREATED
    );
    // Filtered pages of 2 across the listing: every en social post, nothing else.
    let mut seen = Vec::new();
    let base = "/v1/copy/drafts?status=pending_review&channel=social_post&locale=en&limit=2";
    let mut uri = base.to_owned();
    loop {
        let (s, v) = call(&app, "GET", &uri, None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        for d in v["drafts"].as_array().unwrap() {
            assert_eq!(
                (&d["channel"], &d["locale"]),
                (&json!("social_post"), &json!("en")),
                "{d}"
            );
            seen.push(d["product_id"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => uri = format!("{base}&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["p0", "p2", "p4"]);
    let (_, v) = call(&app, "GET", "/v1/copy/drafts?channel=sms", None).await;
    assert_eq!(v["drafts"].as_array().unwrap().len(), 1, "{v}");

    // Bulk approve: each draft on its own; an unknown one fails alone.
    let draft = |p: &str| json!({"product_id": p, "channel": "social_post", "locale": "en"});
    let (s, v) = call(
        &app,
        "POST",
        "/v1/copy/drafts/review",
        Some(json!({"decision": "approve", "drafts": [draft("p0"), draft("p2"), draft("nope")]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(
        (&r[0]["status"], &r[1]["status"]),
        (&json!("approved"), &json!("approved")),
        "{v}"
    );
    assert_eq!(r[2]["error"]["status"], 404, "{v}");
    // Approving again is a conflict for that draft.
    let (_, v) = call(
        &app,
        "POST",
        "/v1/copy/drafts/review",
        Some(json!({"decision": "approve", "drafts": [draft("p0")]})),
    )
    .await;
    assert_eq!(v["results"][0]["error"]["status"], 409, "{v}");
    let (_, v) = call(&app, "GET", "/v1/copy/drafts/p2/social_post/en", None).await;
    assert_eq!(v["draft"]["audit"][1]["actor"], "local-token", "{v}");
    for bad in [
        json!({"decision": "reject", "drafts": [draft("p4")]}),
        json!({"decision": "approve", "drafts": []}),
    ] {
        let (s, _) = call(&app, "POST", "/v1/copy/drafts/review", Some(bad.clone())).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let (app, _dir) = app_with(scripted(&[GOOD]));
    let mut no_title = hose(json!({}));
    no_title["product"].as_object_mut().unwrap().remove("title");
    let mut fax = hose(json!({}));
    fax["channel"] = json!("fax");
    let mut empty_title = hose(json!({}));
    empty_title["product"]["title"] = json!("");
    let huge = hose(json!({"notes": "x".repeat(20_000)}));
    for (body, status, needle) in [
        (
            no_title,
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `title`",
        ),
        (
            fax,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant `fax`",
        ),
        (
            empty_title,
            StatusCode::UNPROCESSABLE_ENTITY,
            "title must not be empty",
        ),
        (huge, StatusCode::PAYLOAD_TOO_LARGE, "product.attributes is"),
    ] {
        let (s, v) = call(&app, "POST", "/v1/copy", Some(body)).await;
        assert_eq!(s, status, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
    }
    let (s, v) = call_raw(
        &app,
        "POST",
        "/v1/copy",
        Some("{\"product\":".into()),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = call(&app, "GET", "/v1/copy/drafts/nope/sms/en", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = call(&app, "GET", "/v1/copy/drafts/nope/fax/en", None).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = call(
        &app,
        "POST",
        "/v1/copy/drafts/nope/sms/en/review",
        Some(json!({"decision": "approve", "reviewer": "ana"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Words and numbers a small model likes to add; the trap products state none of them.
fn independent_violations(text: &str, allowed_numbers: &[&str]) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut found: Vec<String> = [
        "best",
        "#1",
        "guarantee",
        "100%",
        "perfect quality",
        "world-class",
        "ultimate",
        "eco-friendly",
        "sustainable",
        "organic",
        "waterproof",
        "steel",
        "leather",
        "最",
        "第一",
        "唯一",
        "顶级",
        "极品",
    ]
    .iter()
    .filter(|w| lower.contains(*w))
    .map(|w| w.to_string())
    .collect();
    let mut number = String::new();
    for c in text.chars().chain([' ']) {
        if c.is_ascii_digit() || (c == '.' && !number.is_empty()) {
            number.push(c);
        } else if !number.is_empty() {
            let n = number.trim_end_matches('.').to_owned();
            if !allowed_numbers.contains(&n.as_str()) {
                found.push(n);
            }
            number.clear();
        }
    }
    found
}

/// The real default generator (Qwen2.5-1.5B) on products that give it every chance to invent: no numbers
/// but the price, no materials, no claims. Whatever it writes, the stored draft must hold
/// none of the traps (checked here by a plain word and digit scan, not by the validator).
#[tokio::test]
async fn trap_products_on_the_real_generator_store_no_violation() {
    let generator = Arc::new(LazyGenerator::new(&shopmind_e2e::local_inference()));
    let (app, _dir) = app_with(generator);
    let traps = [
        json!({"product": {"id": "trap-serum", "title": "Night face serum", "brand": "Lumen",
                "category": "Beauty > Skincare", "price": 39, "currency": "EUR",
                "attributes": {"skin_type": "all skin types", "scent": "unscented"},
                "selling_points": ["Light texture", "Absorbs quickly"]},
               "channel": "social_post", "locale": "en", "variants": 2}),
        json!({"product": {"id": "trap-speaker", "title": "Portable speaker", "brand": "Tono",
                "category": "Audio", "price": 59, "currency": "EUR",
                "attributes": {"colour": "black", "connection": "Bluetooth"},
                "selling_points": ["Clip for bags", "Simple pairing"]},
               "channel": "sms", "locale": "en", "variants": 2}),
        json!({"product": {"id": "trap-mug", "title": "陶瓷马克杯", "brand": "Cuppa",
                "category": "Kitchen", "price": 15, "currency": "CNY",
                "attributes": {"material": "ceramic", "colour": "white"},
                "selling_points": ["可用洗碗机清洗"]},
               "channel": "push", "locale": "zh-CN", "variants": 1}),
    ];
    let allowed: [&[&str]; 3] = [&["39", "39.00"], &["59", "59.00"], &["15", "15.00"]];
    for (trap, allowed) in traps.into_iter().zip(allowed) {
        let (s, v) = call(&app, "POST", "/v1/copy", Some(trap.clone())).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let draft = &v["draft"];
        assert_eq!(draft["validation"]["passed"], true, "{draft}");
        assert_eq!(draft["model"], shopmind_inference::DEFAULT_GENERATOR_DIR);
        for variant in draft["variants"].as_array().unwrap() {
            let text = variant["text"].as_str().unwrap();
            assert!(!text.is_empty());
            let bad = independent_violations(text, allowed);
            assert!(
                bad.is_empty(),
                "{}: {text:?} holds {bad:?}",
                trap["product"]["id"]
            );
        }
        let stats = &draft["stats"];
        println!(
            "{}: source {} generated {} passed {} repaired {} failed {} failures {}\n  {:?}",
            trap["product"]["id"],
            draft["source"],
            stats["generated"],
            stats["passed"],
            stats["repaired"],
            stats["failed"],
            stats["failures"],
            draft["text"].as_str().unwrap()
        );
    }
}
