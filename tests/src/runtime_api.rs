//! A Lambda Runtime API on 127.0.0.1 for driving a function's real `bootstrap` binary the way
//! Lambda does: the binary polls `GET /2018-06-01/runtime/invocation/next`, gets a queued
//! event, and posts its answer to `…/{id}/response` (or `…/{id}/error`). Tests and benches
//! start the binary with `AWS_LAMBDA_RUNTIME_API` set to [`RuntimeApi::address`] and the
//! other variables from [`RuntimeApi::lambda_env`].
//!
//! Every instant is recorded, so a cold start (process start → first answer) and the
//! time to the first poll (init done) can be measured from outside the process.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{oneshot, Notify};

/// What the function answered for one invocation.
#[derive(Debug)]
pub struct Answer {
    /// `true` for `…/response`, `false` for `…/error`.
    pub ok: bool,
    pub body: serde_json::Value,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, Bytes)>,
    waiting: HashMap<String, oneshot::Sender<Answer>>,
    first_poll: Option<Instant>,
    init_error: Option<String>,
    next_id: u64,
}

struct Shared {
    state: Mutex<State>,
    queued: Notify,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("addr", &self.addr)
            .finish()
    }
}

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            queued: Notify::new(),
        });
        crate::serve_http(listener, shared.clone(), handle);
        Ok(Self { addr, shared })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The variables Lambda sets for every function, pointing at this API.
    pub fn lambda_env(&self, function: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Queues one event; the receiver resolves when the function answers it.
    pub fn invoke(&self, event: &serde_json::Value) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        let mut s = lock(&self.shared);
        s.next_id += 1;
        let id = format!("req-{}", s.next_id);
        s.waiting.insert(id.clone(), tx);
        s.queue.push_back((
            id,
            Bytes::from(serde_json::to_vec(event).unwrap_or_default()),
        ));
        drop(s);
        self.shared.queued.notify_one();
        rx
    }

    /// When the function first asked for an event (its init was done).
    pub fn first_poll(&self) -> Option<Instant> {
        lock(&self.shared).first_poll
    }

    /// What the function reported through `/runtime/init/error`, if it failed to start.
    pub fn init_error(&self) -> Option<String> {
        lock(&self.shared).init_error.clone()
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == Method::GET && path == "/2018-06-01/runtime/invocation/next" {
        loop {
            // Register for the wake-up before looking, so an event queued in between is seen.
            let notified = shared.queued.notified();
            let next = {
                let mut s = lock(&shared);
                s.first_poll.get_or_insert_with(Instant::now);
                s.queue.pop_front()
            };
            if let Some((id, event)) = next {
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    + Duration::from_secs(30);
                let mut r = reply(StatusCode::OK, event);
                let h = r.headers_mut();
                let arn = "arn:aws:lambda:us-east-1:123456789012:function:local";
                for (k, v) in [
                    ("lambda-runtime-aws-request-id", id),
                    (
                        "lambda-runtime-deadline-ms",
                        deadline.as_millis().to_string(),
                    ),
                    ("lambda-runtime-invoked-function-arn", arn.to_string()),
                    ("lambda-runtime-trace-id", "Root=1-00000000-0".to_string()),
                    ("content-type", "application/json".to_string()),
                ] {
                    if let Ok(v) = v.parse() {
                        h.insert(k, v);
                    }
                }
                return Ok(r);
            }
            notified.await;
        }
    }
    if method == Method::POST && path == "/2018-06-01/runtime/init/error" {
        lock(&shared).init_error = Some(String::from_utf8_lossy(&body).into_owned());
        return Ok(reply(StatusCode::ACCEPTED, Bytes::new()));
    }
    if method == Method::POST {
        let rest = path.strip_prefix("/2018-06-01/runtime/invocation/");
        let parts = rest.and_then(|r| r.split_once('/'));
        if let Some((id, kind @ ("response" | "error"))) = parts {
            let at = Instant::now();
            let waiter = lock(&shared).waiting.remove(id);
            if let Some(tx) = waiter {
                let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
                });
                let _ = tx.send(Answer {
                    ok: kind == "response",
                    body,
                    at,
                });
                return Ok(reply(StatusCode::ACCEPTED, Bytes::new()));
            }
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                Bytes::from("unknown request id"),
            ));
        }
    }
    Ok(reply(StatusCode::NOT_FOUND, Bytes::new()))
}

/// One start of a function binary under a fresh [`RuntimeApi`].
#[derive(Debug)]
pub struct ColdStart {
    /// Process start → the function's first poll (its init finished).
    pub init: Duration,
    /// Process start → the first event's answer.
    pub first_answer: Duration,
    /// The same event again, on the now warm process: invoke → answer.
    pub warm_answer: Duration,
    /// The first answer's body (the function's response, e.g. an API Gateway response).
    pub first_body: serde_json::Value,
}

/// Starts `binary` as `function` against `api`, with `env`; its stderr is kept for errors.
fn spawn(
    binary: &str,
    function: &str,
    api: &RuntimeApi,
    env: &[(String, String)],
) -> Result<tokio::process::Child, String> {
    tokio::process::Command::new(binary)
        .envs(api.lambda_env(function))
        .envs(env.iter().cloned())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {binary}: {e}"))
}

/// Starts `binary` with `env` (plus the Lambda variables), sends `event` twice, and stops it.
/// A failure carries the binary's stderr.
pub async fn cold_start(
    binary: &str,
    function: &str,
    env: &[(String, String)],
    event: &serde_json::Value,
) -> Result<ColdStart, String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = spawn(binary, function, &api, env)?;
    let wait = |rx: oneshot::Receiver<Answer>| async {
        match tokio::time::timeout(Duration::from_secs(300), rx).await {
            Ok(Ok(a)) if a.ok => Ok(a),
            Ok(Ok(a)) => Err(format!("the function reported an error: {}", a.body)),
            _ => Err(format!(
                "no answer from the function (init error: {:?})",
                api.init_error()
            )),
        }
    };
    let first = match wait(api.invoke(event)).await {
        Ok(a) => a,
        Err(e) => {
            let _ = child.start_kill();
            let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
            return Err(format!("{e}\n{}", String::from_utf8_lossy(&out.stderr)));
        }
    };
    let sent = Instant::now();
    let warm = wait(api.invoke(event)).await?;
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(ColdStart {
        init: api.first_poll().map_or(Duration::ZERO, |t| t - started),
        first_answer: first.at - started,
        warm_answer: warm.at - sent,
        first_body: first.body,
    })
}

/// Starts `binary` with `env` (plus the Lambda variables), sends each event in turn, and
/// stops it. Each answer is the function's response, or its reported error (`ok: false`).
pub async fn invoke_all(
    binary: &str,
    function: &str,
    env: &[(String, String)],
    events: &[serde_json::Value],
) -> Result<Vec<Answer>, String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let mut child = spawn(binary, function, &api, env)?;
    let mut answers = Vec::new();
    for event in events {
        match tokio::time::timeout(Duration::from_secs(300), api.invoke(event)).await {
            Ok(Ok(a)) => answers.push(a),
            _ => {
                let _ = child.start_kill();
                let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
                return Err(format!(
                    "no answer from the function (init error: {:?})\n{}",
                    api.init_error(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    Ok(answers)
}
