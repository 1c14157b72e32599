//! The `shopmind` binary end to end: `embed` on the command line and `serve` over real TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::path::Path;

use common::{http, models_dir, shopmind, Server};

#[test]
fn embed_prints_one_unit_vector_per_text() {
    let out = shopmind()
        .args(["embed", "red dress", "我的订单"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "use-multilingual-v3-int8");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let e: Vec<f64> = data[1]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(e.len(), 512);
    let norm = e.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3);
}

#[test]
fn a_missing_runtime_exits_non_zero_with_instructions() {
    let out = shopmind()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so.1.31.1")
        .args(["embed", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ONNX Runtime library not found") && err.contains("setup.sh"),
        "{err}"
    );
}

#[test]
fn serve_demo_seeds_sample_data_and_every_route_answers_over_tcp() {
    let data = std::env::temp_dir().join(format!("shopmind-cli-test-{}", std::process::id()));
    let mut cmd = shopmind();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--demo", "--data-dir"])
        .arg(&data)
        .env("SHOPMIND_STAFF_TOKEN", "cli-test-staff-token")
        .env("SHOPMIND_COPY_GENERATOR", "off")
        // Extractive, searched as written: this test is about the routes, not the 1.5B model
        // (routes.rs is).
        .env("SHOPMIND_SUPPORT_GENERATE", "off")
        .env("SHOPMIND_SUPPORT_TRANSLATE", "off");
    let server = Server::start(cmd);
    let addr = server.addr.clone();

    let health = http(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.contains("\"encoder_loaded\":true"),
        "--demo loads the model: {health}"
    );

    let body = r#"{"texts":["linen summer dress"]}"#;
    let resp = http(&addr, &format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"dimension\":512"));

    let spec = http(
        &addr,
        "GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(spec.starts_with("HTTP/1.1 200"), "{spec}");
    let body: serde_json::Value =
        serde_json::from_str(spec.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["openapi"], "3.1.0");
    assert!(
        body["paths"]["/v1/copy/drafts/{product_id}/{channel}/{locale}/review"]["post"].is_object()
    );

    let bad = http(&addr, "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nConnection: close\r\n\r\n{\"te");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

    // --demo indexed the sample catalog and help articles: recommend and support answer.
    let similar = http(
        &addr,
        "GET /v1/items/dress-linen/similar?limit=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(similar.starts_with("HTTP/1.1 200"), "{similar}");
    assert!(
        similar.contains("\"item_id\":\"dress-"),
        "another dress is most similar: {similar}"
    );
    let created = http(
        &addr,
        "POST /v1/support/conversations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let id = created
        .split("\"conversation_id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    // The local server gives guests tokens: the conversation answers to that token only.
    let guest = created
        .split("\"guest_token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let body = r#"{"text":"How many days do I have to return a dress?"}"#;
    let message = |auth: &str| {
        http(&addr, &format!(
            "POST /v1/support/conversations/{id}/messages HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let without = message("");
    assert!(without.starts_with("HTTP/1.1 404"), "{without}");
    let reply = message(&format!("Authorization: Bearer {guest}\r\n"));
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("\"article_id\":\"returns\""), "{reply}");

    // Copy is staff only: refused without the token, a validated draft with it.
    let body = r#"{"product":{"id":"dress-linen","title":"Linen summer dress","attributes":{"material":"linen"}},"channel":"sms","locale":"en"}"#;
    let copy = |auth: &str| {
        http(&addr, &format!(
            "POST /v1/copy HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let refused = copy("");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let draft = copy("Authorization: Bearer cli-test-staff-token\r\n");
    assert!(draft.starts_with("HTTP/1.1 201"), "{draft}");
    assert!(draft.contains("\"status\":\"pending_review\""), "{draft}");
    assert!(draft.contains("\"passed\":true"), "{draft}");

    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn copy_batch_writes_drafts_and_resumes() {
    let data = tempfile::tempdir().unwrap();
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/samples/catalog.jsonl");
    let run = || {
        shopmind()
            .args([
                "copy",
                "batch",
                "--no-model",
                "--limit",
                "3",
                "--channels",
                "sms,push",
            ])
            .arg("--catalog")
            .arg(&catalog)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap()
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains("6 jobs due (6 missing, 0 stale)"), "{out}");
    assert!(out.contains("6 drafts in"), "{out}");
    // Run again: everything is current, nothing is redone.
    let second = run();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.contains("0 jobs due") && out.contains("6 current"),
        "{out}"
    );
    let bad = shopmind()
        .args(["copy", "batch", "--channels", "fax", "--catalog"])
        .arg(&catalog)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown channel \"fax\""));
}

#[test]
fn aws_init_creates_tables_once_against_the_emulator() {
    let endpoint = std::env::var("SHOPMIND_TEST_AWS_ENDPOINT").expect(
        "SHOPMIND_TEST_AWS_ENDPOINT: run infra/scripts/test.sh, which starts the AWS emulator",
    );
    let prefix = format!("cli{}-", std::process::id());
    let run = || {
        shopmind()
            .arg("aws-init")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("SHOPMIND_TABLE_PREFIX", &prefix)
            .env("SHOPMIND_BUCKET", format!("{prefix}bucket"))
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    for table in ["profiles", "conversations", "drafts", "idempotency"] {
        assert!(out.contains(&format!("created {prefix}{table}")), "{out}");
    }
    assert!(
        out.contains(&format!("created s3://{prefix}bucket")),
        "{out}"
    );
    let second = run();
    assert!(String::from_utf8_lossy(&second.stdout).contains("already exist"));
}

#[test]
fn generate_batch_answers_every_prompt_in_order_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prompts.jsonl");
    let model = models_dir().join("smollm2-135m-instruct");
    let run = |lines: &str, chat: bool| {
        std::fs::write(&file, lines).unwrap();
        let mut cmd = shopmind();
        cmd.args(["generate", "--model"])
            .arg(&model)
            .args(["--max-tokens", "3", "--rows", "2", "--batch"])
            .arg(&file);
        if chat {
            cmd.arg("--chat");
        }
        cmd.output().unwrap()
    };
    let out = run(
        "{\"id\": \"a\", \"prompt\": \"Say hi.\"}\n\n{\"id\": 2, \"prompt\": \"Count to three.\", \"system\": \"Be brief.\"}\n{\"id\": \"c\", \"prompt\": \"Name a colour.\"}\n",
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three prompts over two batches (2 + 1 rows), in the file's order, ids as given.
    assert_eq!(
        lines.iter().map(|l| l["id"].clone()).collect::<Vec<_>>(),
        vec![
            serde_json::json!("a"),
            serde_json::json!(2),
            serde_json::json!("c")
        ]
    );
    for l in &lines {
        assert!(l["text"].is_string(), "{l}");
        assert!(l["generated_tokens"].as_u64().unwrap() <= 3, "{l}");
    }
    // Refused before the model loads, naming the line.
    let out = run("{\"id\": 1, \"prompt\": \"ok\"}\n{\"id\": 2}\n", true);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        "{\"id\": 1, \"prompt\": \"ok\", \"system\": \"s\"}\n",
        false,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs --chat"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run("\n", true);
    assert!(!out.status.success());
}

/// The sample shopper token of events/README.md for `u-1001` (signed with the sample secret).
fn sample_token() -> String {
    let raw = shopmind_e2e::sample_event("apigw/recommend-for-you.json");
    raw["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_owned()
}

/// The README's walkthrough: a new shopper gets the cold-start list; events sent to
/// `POST /v1/events` (the shopper from the token) make it personal at once, with reasons, and
/// the signals schedule turns other shoppers' sessions into co-views.
#[test]
fn events_over_http_make_the_for_you_list_personal() {
    let data = std::env::temp_dir().join(format!("shopmind-events-test-{}", std::process::id()));
    let mut cmd = shopmind();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--demo", "--data-dir"])
        .arg(&data)
        .env(
            "SHOPMIND_SHOPPER_HMAC_SECRET",
            "sample-events-shop-secret-not-for-production",
        )
        .env("SHOPMIND_LOCAL_SIGNALS_SECS", "0.5")
        .env("SHOPMIND_INDEX_REFRESH_SECS", "0.2")
        .env("SHOPMIND_COPY_GENERATOR", "off")
        .env("SHOPMIND_SUPPORT_GENERATE", "off")
        .env("SHOPMIND_SUPPORT_TRANSLATE", "off");
    let server = Server::start(cmd);
    let addr = server.addr.clone();
    let token = sample_token();
    let for_you = || {
        common::json(
            &addr,
            "GET",
            "/v1/users/u-1001/recommendations?limit=5",
            Some(&token),
            None,
        )
    };
    let (status, before) = for_you();
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["cold_start"], true, "{before}");
    assert!(!before["items"].as_array().unwrap().is_empty(), "{before}");

    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let send = |bearer: Option<&str>, events: serde_json::Value| {
        common::json(
            &addr,
            "POST",
            "/v1/events",
            bearer,
            Some(&serde_json::json!({ "events": events })),
        )
    };
    // Another shopper's session: the desk lamp and the reading light viewed together.
    let (status, anon) = send(
        None,
        serde_json::json!([
            {"event_id": "a1", "anonymous_id": "visitor-7", "session_id": "s-7", "type": "view", "item_id": "lamp-desk", "timestamp": now},
            {"event_id": "a2", "anonymous_id": "visitor-7", "session_id": "s-7", "type": "view", "item_id": "lamp-reading", "timestamp": now},
            {"event_id": "a3", "user_id": "u-1001", "type": "purchase", "item_id": "lamp-floor", "timestamp": now},
        ]),
    );
    assert_eq!(status, 200, "{anon}");
    assert_eq!(
        (anon["applied"].as_u64(), anon["refused"].as_u64()),
        (Some(2), Some(1)),
        "{anon}"
    );
    assert!(
        anon["results"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("token"),
        "{anon}"
    );

    // u-1001, from the token: views a lamp; an event naming u-2002 is refused.
    let (status, mine) = send(
        Some(&token),
        serde_json::json!([
            {"event_id": "m1", "session_id": "s-1", "type": "view", "item_id": "lamp-desk", "timestamp": now},
            {"event_id": "m2", "user_id": "u-2002", "type": "view", "item_id": "dress-wrap", "timestamp": now},
        ]),
    );
    assert_eq!(status, 200, "{mine}");
    let statuses: Vec<_> = mine["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["applied", "refused"], "{mine}");

    // Personal at once (the profile), with reasons pointing at what the shopper viewed.
    let (_, after) = for_you();
    assert_eq!(after["cold_start"], false, "{after}");
    assert_eq!(after["personalised"], true, "{after}");
    let items = after["items"].as_array().unwrap();
    assert!(
        items.iter().all(|i| i["item_id"] != "lamp-desk"),
        "seen items are not offered again: {after}"
    );
    assert!(
        items.iter().any(|i| i["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["item_id"] == "lamp-desk")),
        "a reason points at the viewed lamp: {after}"
    );
    // Within a few schedule ticks the other shopper's co-view shows as a collaborative reason.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, list) = for_you();
        let co_viewed = list["items"].as_array().unwrap().iter().any(|i| {
            i["item_id"] == "lamp-reading"
                && i["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["source"] == "collaborative")
        });
        if co_viewed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no co-view reason after the signals schedule: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    // Retried as a client would: nothing changes.
    let (_, again) = send(
        Some(&token),
        serde_json::json!([{"event_id": "m1", "session_id": "s-1", "type": "view", "item_id": "lamp-desk", "timestamp": now}]),
    );
    assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    // A body that is not a batch is refused whole.
    let (status, bad) = send(Some(&token), serde_json::json!([]));
    assert_eq!(status, 422, "{bad}");
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}
