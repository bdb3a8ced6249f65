//! The HTTP listener of `serve`'s own metrics: `GET /metrics` (OpenMetrics
//! text) on its own address, on a thread with its own small runtime, apart
//! from any other listener `serve` has.

use super::Metrics;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The content type of the exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("metrics listener on {addr}: {source}")]
pub struct ListenError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// A running listener; stops when dropped.
pub struct Listener {
    /// The address it listens on (the port chosen when 0 was asked).
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn exposition(metrics: Arc<Mutex<Metrics>>) -> axum::response::Response {
    let text = match metrics.lock() {
        Ok(m) => m.encode(),
        Err(_) => {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "metrics unavailable",
            )
                .into_response();
        }
    };
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}

/// Binds `addr` now (so a taken address is reported at once) and serves
/// `GET /metrics` from `metrics` until dropped.
pub fn start(addr: SocketAddr, metrics: Arc<Mutex<Metrics>>) -> Result<Listener, ListenError> {
    let fail = |source| ListenError { addr, source };
    let socket = std::net::TcpListener::bind(addr).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    let local = socket.local_addr().map_err(fail)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(fail)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(socket) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("metrics listener on {local}: {e}");
                    return;
                }
            };
            let app = Router::new().route("/metrics", get(move || exposition(metrics.clone())));
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("metrics listener on {local}: {e}");
            }
        });
    });
    tracing::info!("metrics on http://{local}/metrics");
    Ok(Listener {
        addr: local,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn serves_the_exposition_and_refuses_a_taken_address() {
        let m = Arc::new(Mutex::new(Metrics::default()));
        let l = start("127.0.0.1:0".parse().expect("addr"), m.clone()).expect("listens");
        let mut s = std::net::TcpStream::connect(l.addr).expect("connect");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("openmetrics-text"), "{answer}");
        assert!(answer.contains("sextant_applier_queue_depth"), "{answer}");
        let err = start(l.addr, m).err().expect("the address is taken");
        assert!(err.to_string().contains(&l.addr.to_string()), "{err}");
    }
}
