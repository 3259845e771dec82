//! The connection loop, in place of `axum::serve`, which sets no timer (so
//! hyper's header-read timeout never fires) and accepts without limit: held
//! open, half-sent requests once used up the file limit and nobody was
//! served.
//!
//! - At most `max_connections` connections are open; past that the loop
//!   stops accepting and new connections wait in the kernel's backlog.
//! - A client has `header_timeout` to send a request's headers, counted from
//!   the first byte awaited (a connection that sends nothing is closed after
//!   as long, and so is an idle keep-alive connection). HTTP/1.1 only.
//! - A request has `request_timeout` to be read and answered: then 408.
//! - On shutdown the listener closes, each connection finishes the request
//!   it is serving, and the loop waits for them (at most `drain_timeout`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use app::error::{AppError, ErrorKind};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub drain_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    // HTTP/1.1 only: proxies speak it to their upstreams, and the header
    // timeout then runs from the first byte awaited. (With h2c allowed, a
    // connection that sends nothing, or one byte of the HTTP/2 preface,
    // waits in protocol detection with no timer, and an HTTP/2 connection
    // answering pings is never idle.)
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_warned: Option<std::time::Instant> = None;
    loop {
        // A free slot first: at the cap, connections wait in the backlog.
        if slots.available_permits() == 0 && last_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
            tracing::warn!(max = limits.max_connections, "connection limit reached; new connections wait");
            last_warned = Some(std::time::Instant::now());
        }
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper::service::service_fn(handler(router.clone(), remote, limits.request_timeout));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing requests in flight");
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections were still busy after the drain timeout; closing them");
    }
    Ok(())
}

type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, Infallible>> + Send>>;

/// One request: the peer address for the extractors, the router, and the
/// request deadline.
fn handler(router: Router, remote: SocketAddr, timeout: Duration) -> impl Fn(Request<Incoming>) -> Answer + Clone {
    move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        let api = req.uri().path().starts_with("/api/");
        let router = router.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, router.oneshot(req.map(Body::new))).await {
                Ok(answer) => answer,
                Err(_) => Ok(timed_out(api)),
            }
        })
    }
}

/// The 408 answer; JSON on the API like every other API answer.
fn timed_out(api: bool) -> Response {
    let mut res = if api {
        AppError::new(ErrorKind::Timeout, "The request took too long to arrive or to answer. Try again.")
            .into_response()
    } else {
        (StatusCode::REQUEST_TIMEOUT, "The request took too long to arrive or to answer. Try again.").into_response()
    };
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
