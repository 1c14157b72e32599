//! The local server's bounds, against a real socket on loopback: a client that sends nothing
//! or stalls mid-header, or idles on a keep-alive connection, is let go; connections beyond
//! the cap wait; a response that does not start in time is a JSON 503.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use shopmind_runtime::{finish_router, serve_until, ServeLimits};
use std::io::{Read, Write};
use std::net::TcpStream;

fn app() -> Router {
    let router = Router::new().route("/ok", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    finish_router(router, 1024)
}

async fn start(limits: ServeLimits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_until(app(), listener, limits, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

fn limits(header_secs: f64, max_connections: usize) -> ServeLimits {
    ServeLimits {
        max_connections,
        header_timeout: Duration::from_secs_f64(header_secs),
        request_timeout: Duration::from_secs(1),
    }
}

/// Connects (a plain blocking client, off the server's runtime threads).
async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    tokio::task::spawn_blocking(move || TcpStream::connect(addr).unwrap())
        .await
        .unwrap()
}

async fn send(stream: &TcpStream, bytes: &'static [u8]) {
    let mut s = stream.try_clone().unwrap();
    tokio::task::spawn_blocking(move || s.write_all(bytes).unwrap())
        .await
        .unwrap();
}

/// Reads until the server closes the connection: what it sent, or None if it was still open
/// after `within`.
async fn read_to_close(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut s = stream.try_clone().unwrap();
    tokio::task::spawn_blocking(move || {
        s.set_read_timeout(Some(within)).unwrap();
        let mut got = Vec::new();
        match s.read_to_end(&mut got) {
            Ok(_) => Some(String::from_utf8_lossy(&got).into_owned()),
            Err(_) => None,
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn silent_slow_and_idle_clients_are_let_go() {
    let (addr, _stop) = start(limits(0.5, 16)).await;
    // Connects and says nothing: closed (before, held until the client left).
    let mut silent = connect(addr).await;
    assert!(read_to_close(&mut silent, Duration::from_secs(5))
        .await
        .is_some());
    // Starts a request and never finishes its headers.
    let mut slow = connect(addr).await;
    send(&slow, b"GET /ok HTTP/1.1\r\nHost: x\r\n").await;
    assert!(read_to_close(&mut slow, Duration::from_secs(5))
        .await
        .is_some());
    // One answered request, then idle on keep-alive: closed too.
    let mut idle = connect(addr).await;
    send(&idle, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let answered = read_to_close(&mut idle, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let (addr, _stop) = start(limits(1.0, 1)).await;
    // The first holds the only slot (idle until its header timeout).
    let _holder = connect(addr).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut second = connect(addr).await;
    send(
        &second,
        b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let answer = read_to_close(&mut second, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Served only once the first was let go, not alongside it.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_response_that_does_not_start_in_time_is_a_json_503() {
    let (addr, _stop) = start(limits(5.0, 16)).await;
    let mut s = connect(addr).await;
    send(
        &s,
        b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let answer = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"timeout\""), "{answer}");
}

#[test]
fn limits_come_from_the_environment_with_defaults() {
    let d = ServeLimits::from_lookup(|_| None).unwrap();
    assert_eq!(d, ServeLimits::default());
    let set = ServeLimits::from_lookup(|k| match k {
        "SHOPMIND_MAX_CONNECTIONS" => Some("64".into()),
        "SHOPMIND_HEADER_TIMEOUT_SECS" => Some("2.5".into()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (set.max_connections, set.header_timeout),
        (64, Duration::from_millis(2500))
    );
    let bad = ServeLimits::from_lookup(|k| (k == "SHOPMIND_MAX_CONNECTIONS").then(|| "0".into()));
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("SHOPMIND_MAX_CONNECTIONS"));
}
