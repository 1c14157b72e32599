//! A fault-injecting HTTP proxy for the AWS SDK → emulator path (loopback only). It answers a
//! fraction of requests with throttling errors and 500s, drops some connections, and hands back
//! all or part of some DynamoDB batch writes as unprocessed; everything else it forwards.
//!
//! Faults on writes happen before the request reaches the emulator, so a retried write is
//! never applied twice by the proxy itself. Reads (S3 GET/HEAD/LIST, DynamoDB GetItem, Query,
//! Scan) may also lose their response after the emulator answered.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};

/// Probabilities per request.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    pub throttle: f64,
    pub server_error: f64,
    pub drop_before: f64,
    pub drop_after_read: f64,
    /// Applies to BatchWriteItem only: the batch, or a part of it, is handed back unprocessed.
    pub unprocessed: f64,
    /// The share of those faults that forward a part of the batch and hand back the rest, as a
    /// busy table does; the others hand back the whole batch.
    pub partial: f64,
    /// The most batch writes in a row handed back whole: a throttled table recovers, and a
    /// store gives up after a number of attempts that take nothing (the suite's batch writes
    /// run one at a time, so the bound holds per writer).
    pub unprocessed_in_a_row: u32,
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
    pub partly_unprocessed: AtomicUsize,
}

impl FaultStats {
    pub fn summary(&self) -> String {
        let g = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        let faults = g(&self.throttled)
            + g(&self.server_errors)
            + g(&self.dropped_before)
            + g(&self.dropped_after_read)
            + g(&self.unprocessed)
            + g(&self.partly_unprocessed);
        format!(
            "{} requests, {} faults ({:.1}%): {} throttled, {} HTTP 500, {} connections dropped before forwarding, {} responses dropped after a read, {} batch writes handed back whole and {} in part; {} forwarded",
            g(&self.requests),
            faults,
            100.0 * faults as f64 / g(&self.requests).max(1) as f64,
            g(&self.throttled),
            g(&self.server_errors),
            g(&self.dropped_before),
            g(&self.dropped_after_read),
            g(&self.unprocessed),
            g(&self.partly_unprocessed),
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
    /// Batch writes handed back whole since the last one that was (partly) forwarded.
    whole_in_a_row: AtomicU32,
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
            whole_in_a_row: AtomicU32::new(0),
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
    let mut handed_back = None;
    let mut body = body;
    if dynamo_op == "BatchWriteItem" {
        if let Ok(batch) = serde_json::from_slice::<Value>(&body) {
            let fault = shared.roll() < p.unprocessed;
            let whole = fault
                && shared.roll() >= p.partial
                && shared.whole_in_a_row.load(Ordering::Relaxed) < p.unprocessed_in_a_row;
            if whole {
                // The service took none of the batch this time.
                shared.whole_in_a_row.fetch_add(1, Ordering::Relaxed);
                s.unprocessed.fetch_add(1, Ordering::Relaxed);
                let out = serde_json::json!({"UnprocessedItems": batch["RequestItems"]});
                return Ok(respond(
                    StatusCode::OK,
                    "application/x-amz-json-1.0",
                    out.to_string(),
                ));
            }
            shared.whole_in_a_row.store(0, Ordering::Relaxed);
            if fault {
                if let Some((taken, back)) = split_batch(&shared, batch) {
                    s.partly_unprocessed.fetch_add(1, Ordering::Relaxed);
                    body = Bytes::from(taken.to_string());
                    handed_back = Some(back);
                }
            }
        }
    }

    let uri = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    let mut forward = Request::builder().method(parts.method.clone()).uri(uri);
    for (k, v) in &parts.headers {
        // The body may have been cut down; the client sets the length of what it sends.
        if k != "host" && k != "content-length" {
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
    if let Some(back) = handed_back {
        if rparts.status == StatusCode::OK {
            return merge_unprocessed(rparts, &rbody, back);
        }
    }
    Ok(Response::from_parts(rparts, Full::new(rbody)))
}

/// Splits a BatchWriteItem request into the part forwarded and the part handed back, each
/// item by a coin toss; `None` when the batch cannot be split (a single item).
fn split_batch(shared: &Shared, mut batch: Value) -> Option<(Value, Map<String, Value>)> {
    let items = batch.get_mut("RequestItems")?.as_object_mut()?;
    let total: usize = items
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    if total < 2 {
        return None;
    }
    let mut back = Map::new();
    let mut left = total;
    for (table, requests) in items.iter_mut() {
        let Some(requests) = requests.as_array_mut() else {
            continue;
        };
        let mut kept = Vec::new();
        let mut returned = Vec::new();
        for r in requests.drain(..) {
            // Keep at least one item forwarded and hand back at least one.
            if left > 1 && (shared.roll() < 0.5 || (back.is_empty() && returned.is_empty())) {
                returned.push(r);
                left -= 1;
            } else {
                kept.push(r);
            }
        }
        *requests = kept;
        if !returned.is_empty() {
            back.insert(table.clone(), Value::Array(returned));
        }
    }
    items.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
    Some((batch, back))
}

/// Adds the items the proxy held back to the emulator's own `UnprocessedItems`.
fn merge_unprocessed(
    mut parts: hyper::http::response::Parts,
    body: &Bytes,
    back: Map<String, Value>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let mut out: Value = serde_json::from_slice(body).map_err(|_| Dropped)?;
    let Some(obj) = out.as_object_mut() else {
        return Err(Dropped);
    };
    let unprocessed = obj
        .entry("UnprocessedItems")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(unprocessed) = unprocessed.as_object_mut() else {
        return Err(Dropped);
    };
    for (table, items) in back {
        let slot = unprocessed
            .entry(table)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Some(slot), Value::Array(items)) = (slot.as_array_mut(), items) {
            slot.extend(items);
        }
    }
    // The body changed: its length and the emulator's checksum no longer hold.
    parts.headers.remove("content-length");
    parts.headers.remove("x-amz-crc32");
    Ok(Response::from_parts(
        parts,
        Full::new(Bytes::from(out.to_string())),
    ))
}
