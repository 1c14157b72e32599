//! A fault-injecting HTTP proxy for the AWS SDK → emulator path (loopback only). It answers a
//! fraction of requests with throttling errors and 500s, drops some connections, and returns
//! some DynamoDB batch writes as entirely unprocessed; everything else it forwards.
//!
//! Faults on writes happen before the request reaches the emulator, so a retried write is
//! never applied twice by the proxy itself. Reads (S3 GET/HEAD/LIST, DynamoDB GetItem, Query,
//! Scan) may also lose their response after the emulator answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Probabilities per request.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub throttle: f64,
    pub server_error: f64,
    pub drop_before: f64,
    pub drop_after_read: f64,
    /// Applies to BatchWriteItem only.
    pub unprocessed: f64,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct FaultStats {
    pub requests: AtomicUsize,
    pub forwarded: AtomicUsize,
    pub throttled: AtomicUsize,
    pub server_errors: AtomicUsize,
    pub dropped_before: AtomicUsize,
    pub dropped_after_read: AtomicUsize,
    pub unprocessed: AtomicUsize,
}

impl FaultStats {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let faults = g(&self.throttled)
            + g(&self.server_errors)
            + g(&self.dropped_before)
            + g(&self.dropped_after_read)
            + g(&self.unprocessed);
        format!(
            "{} requests, {} faults ({:.1}%): {} throttled, {} HTTP 500, {} connections dropped before forwarding, {} responses dropped after a read, {} batch writes returned unprocessed; {} forwarded",
            g(&self.requests),
            faults,
            100.0 * faults as f64 / g(&self.requests).max(1) as f64,
            g(&self.throttled),
            g(&self.server_errors),
            g(&self.dropped_before),
            g(&self.dropped_after_read),
            g(&self.unprocessed),
            g(&self.forwarded)
        )
    }
}

#[derive(Debug)]
pub struct FaultProxy {
    pub addr: SocketAddr,
    pub stats: Arc<FaultStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    plan: FaultPlan,
    rng: AtomicU64,
    stats: Arc<FaultStats>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Shared {
    /// xorshift64*: deterministic for a seed, shared by all connections.
    fn roll(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        loop {
            let mut y = x;
            y ^= y >> 12;
            y ^= y << 25;
            y ^= y >> 27;
            match self
                .rng
                .compare_exchange_weak(x, y, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    return (y.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64
                        / (1u64 << 53) as f64
                }
                Err(current) => x = current,
            }
        }
    }
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}
impl std::error::Error for Dropped {}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

impl FaultProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream` (e.g. `http://127.0.0.1:5000`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(FaultStats::default());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            plan,
            rng: AtomicU64::new(plan.seed.max(1)),
            stats: stats.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let task = crate::serve_http(listener, shared, handle);
        Ok(Self { addr, stats, task })
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let s = &shared.stats;
    s.requests.fetch_add(1, Ordering::Relaxed);
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let dynamo_op = target.rsplit('.').next().unwrap_or("").to_owned();
    let is_dynamo = !target.is_empty();
    let is_read = if is_dynamo {
        matches!(
            dynamo_op.as_str(),
            "GetItem" | "Query" | "Scan" | "ListTables" | "DescribeTable"
        )
    } else {
        matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD)
    };
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let p = shared.plan;
    let r = shared.roll();

    if r < p.throttle {
        s.throttled.fetch_add(1, Ordering::Relaxed);
        return Ok(if is_dynamo {
            respond(
                StatusCode::BAD_REQUEST,
                "application/x-amz-json-1.0",
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
            )
        } else {
            respond(StatusCode::SERVICE_UNAVAILABLE, "application/xml", "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
        });
    }
    if r < p.throttle + p.server_error {
        s.server_errors.fetch_add(1, Ordering::Relaxed);
        return Ok(if is_dynamo {
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/x-amz-json-1.0",
                r#"{"__type":"com.amazon.coral.service#InternalFailure","message":"injected"}"#,
            )
        } else {
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/xml",
                "<Error><Code>InternalError</Code><Message>injected</Message></Error>",
            )
        });
    }
    if r < p.throttle + p.server_error + p.drop_before {
        s.dropped_before.fetch_add(1, Ordering::Relaxed);
        return Err(Dropped);
    }
    if dynamo_op == "BatchWriteItem" && shared.roll() < p.unprocessed {
        // The service took none of the batch this time: hand every item back as unprocessed.
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            s.unprocessed.fetch_add(1, Ordering::Relaxed);
            let out = serde_json::json!({"UnprocessedItems": v["RequestItems"]});
            return Ok(respond(
                StatusCode::OK,
                "application/x-amz-json-1.0",
                out.to_string(),
            ));
        }
    }

    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut forward = Request::builder().method(parts.method.clone()).uri(uri);
    for (k, v) in &parts.headers {
        if k != "host" {
            forward = forward.header(k, v);
        }
    }
    let forward = forward.body(Full::new(body)).map_err(|_| Dropped)?;
    let resp = shared.client.request(forward).await.map_err(|_| Dropped)?;
    s.forwarded.fetch_add(1, Ordering::Relaxed);
    let (rparts, rbody) = resp.into_parts();
    let rbody = rbody.collect().await.map_err(|_| Dropped)?.to_bytes();
    if is_read && shared.roll() < p.drop_after_read {
        s.dropped_after_read.fetch_add(1, Ordering::Relaxed);
        return Err(Dropped);
    }
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}
