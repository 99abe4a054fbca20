//! The admin HTTP listener (off unless `--admin ADDR:PORT`): `/metrics` (Prometheus text),
//! `/healthz` (the process answers) and `/readyz` (a policy is loaded and the server can be
//! reached). One request per connection, GET only, bounded reads.
//!
//! Owns: the tiny HTTP exchange. Does not own: the metrics (`metrics`) or the proxy.

use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves until the listener fails.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle(sock, shared)).await;
        });
    }
}

async fn handle(mut sock: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body): (&str, &str, Vec<u8>) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", shared.metrics.render()),
        ("GET", "/healthz") => ("200 OK", "text/plain", b"ok\n".to_vec()),
        ("GET", "/readyz") => match shared.upstream.probe().await {
            Ok(()) => ("200 OK", "text/plain", format!("ready; policy {}\n", shared.guard.policy().hash).into_bytes()),
            Err(e) => ("503 Service Unavailable", "text/plain", format!("not ready: {e}\n").into_bytes()),
        },
        ("GET", _) => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        _ => ("405 Method Not Allowed", "text/plain", b"GET only\n".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    sock.write_all(header.as_bytes()).await?;
    sock.write_all(&body).await?;
    sock.shutdown().await
}
