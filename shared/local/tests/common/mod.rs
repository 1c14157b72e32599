//! What the `shopmind` binary's tests share: the binary with the models, a server on a free
//! port, and one HTTP/1.1 exchange over a plain socket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each test uses some

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn models_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

pub fn shopmind() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shopmind"));
    cmd.env("SHOPMIND_MODELS_DIR", models_dir())
        .env_remove("ORT_DYLIB_PATH");
    cmd
}

/// `shopmind serve` on a free port of 127.0.0.1; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// `cmd` is `shopmind()` with its `serve` arguments and environment set.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let addr = loop {
            assert!(Instant::now() < deadline, "server did not start");
            let line = lines.next().expect("server exited").unwrap();
            if let Some(rest) = line.strip_prefix("shopmind listening on http://") {
                break rest.trim().to_owned();
            }
        };
        // Keep reading its output so a full pipe never blocks the server.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request (with `Connection: close`), the whole response as text.
pub fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A JSON request; the status and the parsed body.
pub fn json(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.map_or(String::new(), |b| b.to_string());
    let resp = http(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, rest) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    // `shopmind serve` answers JSON with a length, or chunked for streams (not used here).
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (
        status,
        serde_json::from_str(rest).unwrap_or(serde_json::Value::Null),
    )
}
