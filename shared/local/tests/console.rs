//! The staff console in a real browser: headless Chromium over WebDriver (chromedriver)
//! against `shopmind serve`. A person approves a draft, edits one into a violation and sees
//! it refused with the finding, rejects one with a note, approves a Chinese one in bulk, and
//! answers a handed-off conversation, whose reply the shopper then reads. Screenshots of both
//! screens go to `docs/screenshots/` (or `SHOPMIND_SCREENSHOT_DIR`) for the README.
//!
//! Needs Chromium and chromedriver: `infra/scripts/install-browser.sh` (which test.sh runs)
//! installs them; `SHOPMIND_TEST_CHROMEDRIVER` names the driver when it is not on PATH.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{json, shopmind, Server};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const TOKEN: &str = "console-test-staff-token";
const WAIT: Duration = Duration::from_secs(20);

struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let path =
            std::env::var("SHOPMIND_TEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {path} ({e}): run infra/scripts/test.sh, or \
                     infra/scripts/install-browser.sh, which installs Chromium and chromedriver"
                )
            });
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self, profile: &Path) -> Client {
        // As the machine notes say: no sandbox as root, and none of Chromium's own traffic
        // (this machine's network refuses it).
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1440,1100".into(),
            "--lang=en-US".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
        ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the element's text contains `want`; its text then.
async fn text_of(page: &Client, css: &str, want: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(el) = page.find(Locator::Css(css)).await {
            last = el.text().await.unwrap_or_default();
            if last.contains(want) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never showed {want:?}; it showed {last:?}");
}

async fn click(page: &Client, css: &str) {
    page.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn type_into(page: &Client, css: &str, text: &str) {
    let el = page
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn open_draft(page: &Client, key: &str) {
    click(page, &format!("tr[data-key=\"{key}\"] .open-draft")).await;
    let (_, channel_locale) = key.split_once('/').unwrap();
    text_of(page, "#draft-h", &channel_locale.replace('/', ", ")).await;
}

fn screenshots_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"))
}

async fn screenshot(page: &Client, name: &str) -> PathBuf {
    let dir = screenshots_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let png = page.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(&path, png).unwrap();
    path
}

fn draft(addr: &str, key: &str) -> Value {
    let (status, body) = json(
        addr,
        "GET",
        &format!("/v1/copy/drafts/{key}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["draft"].clone()
}

/// The draft has `status`; its newest audit entry.
fn last_review(addr: &str, key: &str, status: &str) -> Value {
    let d = draft(addr, key);
    assert_eq!(d["status"], status, "{d}");
    d["audit"]
        .as_array()
        .and_then(|a| a.last())
        .cloned()
        .unwrap()
}

/// Drafts to review (template copy: this test is about the console, not the model) and a
/// conversation the assistant handed off. The conversation's id and the shopper's token.
fn seed(addr: &str) -> (String, String) {
    let dress = json!({ "id": "dress-linen", "title": "Linen summer dress", "brand": "Norda",
        "price": 79, "currency": "EUR", "attributes": { "material": "linen", "colour": "sand" },
        "selling_points": ["Airy midi cut", "Tie waist"] });
    let mug = json!({ "id": "mug-ceramic", "title": "手工陶瓷马克杯", "brand": "Norda",
        "price": 59, "currency": "CNY", "attributes": { "材质": "陶瓷", "容量": "350毫升" },
        "selling_points": ["可用洗碗机清洗"] });
    for (product, channel, locale) in [
        (&dress, "social_post", "en"),
        (&dress, "sms", "en"),
        (&dress, "pdp_description", "en"),
        (&mug, "social_post", "zh-CN"),
    ] {
        let body = json!({ "product": product, "channel": channel, "locale": locale });
        let (status, out) = json(addr, "POST", "/v1/copy", Some(TOKEN), Some(&body));
        assert_eq!(status, 201, "{out}");
    }
    let (status, created) = json(addr, "POST", "/v1/support/conversations", None, None);
    assert_eq!(status, 201, "{created}");
    let id = created["conversation_id"].as_str().unwrap().to_owned();
    let guest = created["guest_token"].as_str().unwrap().to_owned();
    let upset = json!({ "text": "This is ridiculous, order 10442 is two weeks late and nobody answers. I want to talk to a human now" });
    let (status, reply) = json(
        addr,
        "POST",
        &format!("/v1/support/conversations/{id}/messages"),
        Some(&guest),
        Some(&upset),
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["handoff_status"], "handed_off", "{reply}");
    (id, guest)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_reviews_copy_and_answers_a_handoff_in_the_console() {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = shopmind();
    cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("SHOPMIND_STAFF_TOKEN", TOKEN)
        .env("SHOPMIND_COPY_GENERATOR", "off")
        .env("SHOPMIND_SUPPORT_GENERATE", "off")
        .env("SHOPMIND_SUPPORT_TRANSLATE", "off");
    let server = Server::start(cmd);
    let addr = server.addr.clone();
    let (conversation, guest) = seed(&addr);

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let page = driver.browser(profile.path()).await;
    page.goto(&format!("http://{addr}/staff")).await.unwrap();

    // A wrong token is refused on the sign-in form; the right one opens the copy queue.
    type_into(&page, "#token", "not-the-staff-token").await;
    click(&page, "#signin-token button[type=submit]").await;
    text_of(&page, "#status", "Sign-in refused").await;
    type_into(&page, "#token", TOKEN).await;
    click(&page, "#signin-token button[type=submit]").await;
    text_of(&page, "#drafts tbody", "mug-ceramic").await;
    type_into(&page, "#reviewer", "Ana").await;
    // The name is kept when the field loses focus (a `change` event).
    click(&page, "#copy-h").await;

    // Approve the social post as written.
    open_draft(&page, "dress-linen/social_post/en").await;
    text_of(&page, "#draft", "Product facts").await;
    text_of(&page, "#draft", "material").await;
    click(&page, "#approve").await;
    text_of(&page, "#status", "Approved.").await;
    let last = last_review(&addr, "dress-linen/social_post/en", "approved");
    assert_eq!(
        (
            last["action"].as_str(),
            last["actor"].as_str(),
            last["reviewer"].as_str()
        ),
        (Some("approved"), Some("local-token"), Some("Ana")),
        "{last}"
    );

    // Edit the SMS into an invented guarantee and a superlative: the live check shows the
    // findings as they type, and saving is refused with them.
    open_draft(&page, "dress-linen/sms/en").await;
    type_into(
        &page,
        "#edit-text",
        "The best linen dress in the world, guaranteed to last.",
    )
    .await;
    let findings = text_of(&page, "#edit-findings", "guarantee").await;
    assert!(
        findings.to_lowercase().contains("superlative"),
        "{findings}"
    );
    let shot_copy = screenshot(&page, "console-copy-review.png").await;
    click(&page, "#save-edit").await;
    let refused = text_of(&page, "#edit-result", "Not saved").await;
    assert!(
        refused.to_lowercase().contains("best") || refused.contains("superlative"),
        "{refused}"
    );
    assert_eq!(
        draft(&addr, "dress-linen/sms/en")["status"],
        "pending_review"
    );

    // Reject it with a note instead.
    type_into(
        &page,
        "#reject-note",
        "Too generic for SMS; mention the tie waist",
    )
    .await;
    click(&page, "#reject").await;
    text_of(&page, "#status", "Rejected.").await;
    let last = last_review(&addr, "dress-linen/sms/en", "rejected");
    assert_eq!(
        last["note"], "Too generic for SMS; mention the tie waist",
        "{last}"
    );
    // The audit trail on screen has the rejection and its note.
    text_of(&page, "#audit", "mention the tie waist").await;

    // Bulk-approve the Chinese draft from the queue.
    text_of(&page, "#drafts tbody", "陶瓷").await;
    open_draft(&page, "mug-ceramic/social_post/zh-CN").await;
    text_of(&page, "#draft", "350毫升").await;
    let shot_zh = screenshot(&page, "console-copy-review-zh.png").await;
    click(
        &page,
        "tr[data-key=\"mug-ceramic/social_post/zh-CN\"] .pick",
    )
    .await;
    click(&page, "#bulk-approve").await;
    text_of(&page, "#status", "Approved 1 of 1.").await;
    assert_eq!(
        draft(&addr, "mug-ceramic/social_post/zh-CN")["status"],
        "approved"
    );

    // The support inbox: the handed-off conversation, answered by a person.
    click(&page, "#tab-support").await;
    let listed = text_of(&page, "#conversations", "asked_for_human").await;
    assert!(
        listed.contains("10442"),
        "the last turns are shown: {listed}"
    );
    click(
        &page,
        &format!("li[data-id=\"{conversation}\"] .open-conversation"),
    )
    .await;
    text_of(&page, "#conversation-h", &conversation).await;
    type_into(
        &page,
        "#reply-text",
        "Sorry about the wait — order 10442 left our warehouse today.",
    )
    .await;
    let shot_support = screenshot(&page, "console-support-inbox.png").await;
    click(&page, "#send-reply").await;
    text_of(&page, "#status", "Reply sent.").await;
    text_of(&page, "#turns", "left our warehouse today").await;

    // The shopper reads the reply in their conversation; staff names stay with staff.
    let path = format!("/v1/support/conversations/{conversation}");
    let (status, seen) = json(&addr, "GET", &path, Some(&guest), None);
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["handoff_status"], "agent_replied", "{seen}");
    let agent: Vec<&Value> = seen["turns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["role"] == "agent")
        .collect();
    assert_eq!(agent.len(), 1, "{seen}");
    assert!(agent[0]["text"]
        .as_str()
        .unwrap()
        .contains("left our warehouse today"));
    assert!(agent[0].get("by").is_none(), "{seen}");

    // Resolve it: gone from the waiting list, resolved for the shopper.
    click(&page, "#resolve").await;
    text_of(&page, "#status", "Resolved.").await;
    text_of(&page, "#conversations", "No conversations here.").await;
    let (_, seen) = json(&addr, "GET", &path, Some(&guest), None);
    assert_eq!(seen["handoff_status"], "resolved", "{seen}");

    page.close().await.unwrap();
    drop(server);
    println!(
        "screenshots: {} {} {}",
        shot_copy.display(),
        shot_zh.display(),
        shot_support.display()
    );
}
