//! Every function binary under `cargo lambda watch` (cargo-lambda's emulator of the Lambda
//! control plane and runtime API), sent the samples in `events/` with
//! `cargo lambda invoke --data-file`, against DynamoDB, S3 and SQS in the AWS emulator.
//!
//! The samples run in the order a shop meets them: behaviour events arrive (one poison record),
//! catalog and help-centre uploads are indexed, the signals schedule runs, the storefront asks
//! for recommendations and support, staff generate and approve copy, the copy schedule queues
//! the catalog and the worker drains a batch, and a shopper's data is deleted.
//!
//! cargo-lambda comes from `.venv` (`infra/scripts/build-tools.sh`, pinned), or `CARGO_LAMBDA`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use shopmind_e2e::EmulatorDeployment;
use shopmind_storage::{BlobStore, ProfileStore};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn cargo_lambda() -> PathBuf {
    let path = std::env::var_os("CARGO_LAMBDA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/cargo-lambda"));
    assert!(
        path.is_file(),
        "{} is missing: run infra/scripts/build-tools.sh (the test command does)",
        path.display()
    );
    path
}

/// A running `cargo lambda watch` on a loopback port; the whole process group (watch, the
/// `cargo run` it starts per function, the functions) is ended on drop.
struct Watch {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
    dir: PathBuf,
}

impl Watch {
    fn start(env_file: &Path, dir: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("watch.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = std::process::Command::new(cargo_lambda())
            .args(["lambda", "watch", "--ignore-changes", "-A", "127.0.0.1"])
            .args(["-P", &port.to_string()])
            .arg("--env-file")
            .arg(env_file)
            .current_dir(workspace())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        let watch = Self {
            child,
            port,
            log,
            dir: dir.to_path_buf(),
        };
        let mut watch = watch;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = watch.child.try_wait().unwrap();
            assert!(
                exited.is_none(),
                "cargo lambda watch exited ({exited:?}):\n{}",
                watch.log_tail()
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "cargo lambda watch did not listen on {port}:\n{}",
                watch.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        watch
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `cargo lambda invoke FUNCTION --data-file FILE`: the function's answer, or its error.
    fn invoke_file(&self, function: &str, file: &Path) -> Result<Value, String> {
        let out = std::process::Command::new(cargo_lambda())
            .args(["lambda", "invoke", function, "-A", "127.0.0.1"])
            .args(["-P", &self.port.to_string(), "--output-format", "json"])
            .arg("--data-file")
            .arg(file)
            .current_dir(workspace())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_str(&stdout).map_err(|e| format!("{e}: {stdout}"))
    }

    /// Invokes with a sample from `events/`; a function error fails the test with the log.
    fn invoke(&self, function: &str, sample: &str) -> Value {
        self.answer(function, sample, &workspace().join("events").join(sample))
    }

    /// Invokes with `event` (a sample edited for this run), written to a file first.
    fn invoke_value(&self, function: &str, name: &str, event: &Value) -> Value {
        let file = self.dir.join(name);
        std::fs::write(&file, serde_json::to_vec_pretty(event).unwrap()).unwrap();
        self.answer(function, name, &file)
    }

    fn answer(&self, function: &str, what: &str, file: &Path) -> Value {
        self.invoke_file(function, file).unwrap_or_else(|e| {
            panic!(
                "{function} <- {what}: {e}\n--- watch log ---\n{}",
                self.log_tail()
            )
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

fn sample(name: &str) -> Value {
    let path = workspace().join("events").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// An API Gateway answer: its status and parsed JSON body.
fn http(answer: &Value) -> (u64, Value) {
    let status = answer["statusCode"].as_u64().unwrap_or(0);
    let body = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

fn failures(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch response: {answer}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect()
}

/// Points a support sample at the conversation this run created.
fn in_conversation(name: &str, id: &str) -> Value {
    let text = serde_json::to_string(&sample(name))
        .unwrap()
        .replace("c_0f1e2d3c4b5a69788796a5b4c3d2e1f0", id);
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_its_samples_under_cargo_lambda_watch() {
    let deployment = EmulatorDeployment::create("cl").await;
    let store = &deployment.store;
    let samples = workspace().join("infra/samples");
    // Where the sample events say the uploads are.
    for (key, file) in [
        ("catalog/winter sale(2026).jsonl", "catalog.jsonl"),
        ("kb/help.jsonl", "kb/help.jsonl"),
        ("kb/intents.json", "kb/intents.json"),
    ] {
        let body = std::fs::read(samples.join(file)).unwrap();
        store.put_blob(key, body.into()).await.unwrap();
    }
    let (sqs, queue_url) =
        shopmind_e2e::create_queue(&format!("copy-jobs-{}", std::process::id())).await;

    let dir = tempfile::tempdir().unwrap();
    let env = deployment.env(&[
        (
            "SHOPMIND_MODELS_DIR",
            shopmind_e2e::models_dir().to_string_lossy().into_owned(),
        ),
        // The sample events are dated 2026-11-28; keep them inside the window for good.
        ("SHOPMIND_EVENT_RETENTION_DAYS", "36500".into()),
        // The composer writes the copy: the generator is exercised by the copy crate's tests.
        ("SHOPMIND_COPY_GENERATOR", "off".into()),
        // Support answers extractively and searches as written: its generated answers and
        // translated search are tested in routes.rs, and a 1.5 GB model loading in the
        // background would only slow the other functions here.
        ("SHOPMIND_SUPPORT_GENERATE", "off".into()),
        ("SHOPMIND_SUPPORT_TRANSLATE", "off".into()),
        ("SHOPMIND_COPY_QUEUE_URL", queue_url.clone()),
        // The sample events carry shopper tokens signed with this (events/README.md).
        (
            "SHOPMIND_SHOPPER_HMAC_SECRET",
            "sample-events-shop-secret-not-for-production".into(),
        ),
        (
            "SHOPMIND_CATALOG_KEY",
            "catalog/winter sale(2026).jsonl".into(),
        ),
        // The console as deployed: Cognito's hosted sign-in.
        ("SHOPMIND_CONSOLE_SIGN_IN", "cognito".into()),
        (
            "SHOPMIND_COGNITO_DOMAIN",
            "https://shopmind-staff.auth.eu-west-1.amazoncognito.com".into(),
        ),
        ("SHOPMIND_COGNITO_CLIENT_ID", "4examplec1ient1d".into()),
    ]);
    let env_file = dir.path().join("functions.env");
    // Quoted: the catalog key holds a space and parentheses.
    let lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    std::fs::write(&env_file, lines.join("\n") + "\n").unwrap();
    let watch = Watch::start(&env_file, dir.path());

    // Behaviour events: the poison record alone comes back for SQS to retry.
    let answer = watch.invoke("profile-updater", "sqs/behaviour-events-batch.json");
    assert_eq!(
        failures(&answer),
        ["a7e3d2c1-5b6f-4e8d-9c0b-1a2b3c4d5e03"],
        "{answer}"
    );
    let profile = store.get_profile("u-1001").await.unwrap().unwrap();
    assert_eq!(profile.value["counts"]["purchase"], 1, "{}", profile.value);

    // Storefront batches as StorefrontEventsApi queues them: u-1001's from the token (its event
    // naming u-2002 dropped, not retried), and an anonymous visitor's search.
    let answer = watch.invoke("profile-updater", "sqs/storefront-events-batch.json");
    assert!(failures(&answer).is_empty(), "{answer}");
    let profile = store.get_profile("u-1001").await.unwrap().unwrap();
    assert_eq!(profile.value["counts"]["view"], 2, "{}", profile.value);
    assert!(store.get_profile("u-2002").await.unwrap().is_none());
    let visitor = store.get_profile("visitor-42").await.unwrap().unwrap();
    assert_eq!(visitor.value["counts"]["search"], 1, "{}", visitor.value);

    // Uploads and the signals schedule.
    let answer = watch.invoke("indexer", "s3/catalog-object-created.json");
    assert_eq!(answer["catalogs"][0]["report"]["items"], 20, "{answer}");
    let answer = watch.invoke("indexer", "eventbridge/s3-kb-articles-created.json");
    assert!(answer["kb"]["articles"].as_u64() > Some(0), "{answer}");
    let answer = watch.invoke("indexer", "eventbridge/s3-kb-intents-created.json");
    assert!(answer["intents"].is_object(), "{answer}");
    let answer = watch.invoke("indexer", "eventbridge/signals-schedule.json");
    // The backend's two and the storefront's two (u-1001's view, the visitor's search).
    assert_eq!(answer["signals"]["events"], 4, "{answer}");

    // The storefront: recommendations with reasons.
    let (status, page) = http(&watch.invoke("recommend", "apigw/recommend-similar.json"));
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{page}");
    assert!(items.iter().all(|i| i["item_id"] != "lamp-desk"), "{page}");
    assert!(
        items
            .iter()
            .all(|i| !i["reasons"].as_array().unwrap().is_empty()),
        "{page}"
    );
    let (status, page) = http(&watch.invoke("recommend", "apigw/recommend-for-you.json"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["cold_start"], false, "{page}");
    assert!(!page["items"].as_array().unwrap().is_empty(), "{page}");

    // Support: a conversation, an answer with citations, an escalation, and a stranger refused.
    let (status, created) = http(&watch.invoke("support", "apigw/support-start.json"));
    assert_eq!(status, 201, "{created}");
    let id = created["conversation_id"].as_str().unwrap().to_owned();
    let ask = in_conversation("apigw/support-message.json", &id);
    let (status, reply) = http(&watch.invoke_value("support", "ask.json", &ask));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["citations"][0]["article_id"], "returns", "{reply}");
    assert_eq!(reply["escalate"], false, "{reply}");
    let upset = in_conversation("apigw/support-message-escalate.json", &id);
    let (status, reply) = http(&watch.invoke_value("support", "upset.json", &upset));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["escalate"], true, "{reply}");
    let read = in_conversation("apigw/support-read.json", &id);
    let (status, conversation) = http(&watch.invoke_value("support", "read.json", &read));
    assert_eq!(status, 200, "{conversation}");
    // Handed off: in the agents' queue for a Cognito sign-in with the group, not for an
    // editor's; an agent's reply reaches the shopper, who never sees the agent's name.
    let (status, queue) = http(&watch.invoke("support", "apigw/staff-conversations-list.json"));
    assert_eq!(status, 200, "{queue}");
    assert!(
        queue["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["conversation_id"] == id.as_str()),
        "{queue}"
    );
    let (status, refused) =
        http(&watch.invoke("support", "apigw/staff-conversations-list-editor.json"));
    assert_eq!(status, 403, "{refused}");
    let answer = in_conversation("apigw/staff-conversation-reply.json", &id);
    let (status, replied) = http(&watch.invoke_value("support", "reply.json", &answer));
    assert_eq!(status, 201, "{replied}");
    assert_eq!(replied["status"], "agent_replied", "{replied}");
    let (_, seen) = http(&watch.invoke_value("support", "read-again.json", &read));
    let agent = seen["turns"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(agent["role"], "agent", "{seen}");
    assert!(agent.get("by").is_none(), "{seen}");
    // A machine caller (IAM) reads the staff view: who answered, as signed in.
    let staff_read = in_conversation("apigw/staff-conversation-read.json", &id);
    let (status, staff_view) = http(&watch.invoke_value("support", "staff-read.json", &staff_read));
    assert_eq!(status, 200, "{staff_view}");
    assert_eq!(
        staff_view["turns"].as_array().unwrap().last().unwrap()["by"],
        "cognito:lee",
        "{staff_view}"
    );
    let done = in_conversation("apigw/staff-conversation-resolve.json", &id);
    let (status, resolved) = http(&watch.invoke_value("support", "resolve.json", &done));
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved", "{resolved}");

    let stranger = in_conversation("apigw/support-read-other-shopper.json", &id);
    let (status, refused) = http(&watch.invoke_value("support", "stranger.json", &stranger));
    assert_eq!(status, 404, "{refused}");
    // The sample's own id names no conversation.
    let (status, _) = http(&watch.invoke("support", "apigw/support-read.json"));
    assert_eq!(status, 404);

    // Staff: copy needs IAM; a draft is generated, listed, read and approved.
    let (status, refused) =
        http(&watch.invoke("copywriter", "apigw/copy-generate-unauthorised.json"));
    assert_eq!(status, 403, "{refused}");
    let (status, generated) = http(&watch.invoke("copywriter", "apigw/copy-generate.json"));
    assert_eq!(status, 201, "{generated}");
    assert_eq!(
        generated["draft"]["status"], "pending_review",
        "{generated}"
    );
    assert_eq!(
        generated["draft"]["validation"]["passed"], true,
        "{generated}"
    );
    let (status, list) = http(&watch.invoke("copywriter", "apigw/copy-drafts-list.json"));
    assert_eq!(status, 200, "{list}");
    assert!(
        list["drafts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["product_id"] == "dress-linen" && d["channel"] == "social_post"),
        "{list}"
    );
    let (status, draft) = http(&watch.invoke("copywriter", "apigw/copy-draft-get.json"));
    assert_eq!(status, 200, "{draft}");
    let (status, reviewed) = http(&watch.invoke("copywriter", "apigw/copy-draft-review.json"));
    assert_eq!(status, 200, "{reviewed}");
    assert_eq!(reviewed["draft"]["status"], "approved", "{reviewed}");

    // The console's calls, as an editor signed in with Cognito: the live check finds the
    // invented guarantee; bulk approval answers per draft (one reviewed already, one unknown).
    let (status, checked) = http(&watch.invoke("copywriter", "apigw/copy-draft-check.json"));
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["validation"]["passed"], false, "{checked}");
    let rules: Vec<&str> = checked["validation"]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"guarantee") && rules.contains(&"superlative"),
        "{checked}"
    );
    let (status, bulk) = http(&watch.invoke("copywriter", "apigw/copy-drafts-bulk-review.json"));
    assert_eq!(status, 200, "{bulk}");
    let codes: Vec<u64> = bulk["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["error"]["status"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(codes, [409, 404], "{bulk}");

    // The console itself: the page, and sign-in settings that name the Cognito client.
    let page = watch.invoke("console", "apigw/console-page.json");
    assert_eq!(page["statusCode"], 200, "{page}");
    assert!(page["body"]
        .as_str()
        .unwrap_or("")
        .contains("Shopmind staff console"));
    let (status, settings) = http(&watch.invoke("console", "apigw/console-asset.json"));
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["sign_in"]["mode"], "cognito", "{settings}");
    assert_eq!(
        settings["sign_in"]["client_id"], "4examplec1ient1d",
        "{settings}"
    );

    // Queued copy jobs: the truncated record alone fails.
    let answer = watch.invoke("copywriter", "sqs/copy-jobs-batch.json");
    assert_eq!(
        failures(&answer),
        ["c0a1e2b3-0000-4000-8000-000000000002"],
        "{answer}"
    );

    // The copy schedule queues the catalog's missing drafts; the worker drains a batch of them.
    let answer = watch.invoke("copy-scheduler", "eventbridge/copy-schedule.json");
    let mut queued = shopmind_e2e::drain_queue(&sqs, &queue_url).await;
    // 20 products × pdp_description × en. The batch above wrote dress-linen's from a job whose
    // product differs from the catalog's line, so that draft is stale and comes again.
    assert_eq!(answer["due"]["missing"], 19, "{answer}");
    assert_eq!(answer["due"]["stale"], 1, "{answer}");
    assert_eq!(queued.records.len(), 20, "{answer}");
    queued.records.truncate(10);
    let batch = serde_json::to_value(&queued).unwrap();
    let answer = watch.invoke_value("copywriter", "queued.json", &batch);
    assert!(failures(&answer).is_empty(), "{answer}");

    // Right to be forgotten: refused without IAM, then everything of u-1001 goes.
    let (status, refused) = http(&watch.invoke(
        "profile-updater",
        "apigw/forget-user-data-unauthorised.json",
    ));
    assert_eq!(status, 403, "{refused}");
    let (status, forgotten) = http(&watch.invoke("profile-updater", "apigw/forget-user-data.json"));
    assert_eq!(status, 200, "{forgotten}");
    assert_eq!(forgotten["profile"], true, "{forgotten}");
    assert_eq!(forgotten["conversations"], 1, "{forgotten}");
    // evt-0001 and evt-0002 from the backend, web-0001 from the storefront.
    assert_eq!(forgotten["idempotency_records"], 3, "{forgotten}");
    assert!(store.get_profile("u-1001").await.unwrap().is_none());
}
