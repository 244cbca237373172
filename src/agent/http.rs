//! agent::http: the agent's HTTP endpoint, GET /metrics (OpenMetrics text), /healthz (the
//! process answers) and /readyz (the first full resync is done), served by hyper on a
//! thread and runtime of its own: a flood of connections, idle or not, costs that thread
//! only and never delays an event or a repair. Requests are bounded: headers must arrive
//! within HEADER_TIMEOUT and fit in MAX_REQUEST_BYTES, a connection lives at most
//! CONNECTION_LIFETIME, and at most MAX_CONNECTIONS are served at once (more are closed on
//! accept). Any other method or path is refused; request bodies are never read.
//! Must not touch the agent's state beyond reading the metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;

use super::metrics::Metrics;
use crate::error::{Error, Result};

/// Time for a client to send a request's headers (Prometheus sends them at once).
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A GET with its headers; hyper's smallest buffer, far above what a scraper sends.
const MAX_REQUEST_BYTES: usize = 8192;
/// A keep-alive connection (Prometheus keeps one per target) is closed after this; the
/// scraper opens another.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// Connections served at once: a scraper or two and the kubelet's probes need few.
const MAX_CONNECTIONS: usize = 64;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr` now (so a taken port fails the start) and serves it on a thread of its own.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("the HTTP endpoint's runtime", e))?;
    std::thread::Builder::new()
        .name("router-agent-http".into())
        .spawn(move || runtime.block_on(accept(listener, metrics)))
        .map_err(|e| Error::io("the HTTP endpoint's thread", e))?;
    Ok(bound)
}

async fn accept(listener: std::net::TcpListener, metrics: Arc<Metrics>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "the HTTP endpoint cannot listen");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BYTES);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "accepting an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Full: closed at once, so the flood holds no more than the limit.
            drop(stream);
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let connection = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |request| answer(request, Arc::clone(&metrics))),
        );
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    metrics: Arc<Metrics>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return Ok(response);
    }
    Ok(match request.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            response
        }
        "/healthz" => plain(StatusCode::OK, "ok\n"),
        "/readyz" if metrics.is_ready() => plain(StatusCode::OK, "ready\n"),
        "/readyz" => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first full resync has not finished\n",
        ),
        _ => plain(StatusCode::NOT_FOUND, "not found\n"),
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
