//! The connection loop, in place of `axum::serve`, which sets no timer (so
//! hyper's header-read timeout never fires) and accepts without limit: held
//! open, half-sent requests once used up the file limit and nobody was
//! served.
//!
//! - At most `max_connections` connections are open; past that the loop
//!   stops accepting and new connections wait in the kernel's backlog.
//! - One client address (IPv6: one /64) holds at most `max_per_address` of
//!   them; past that its new connections are closed as soon as accepted, so
//!   one client holding thousands open cannot fill the cap for everyone.
//!   Trusted proxies (`unlimited_peers`) carry many clients and are not
//!   counted per address.
//! - A client has `header_timeout` to send a request's headers, counted from
//!   the first byte awaited (a connection that sends nothing is closed after
//!   as long, and so is an idle keep-alive connection). HTTP/1.1 only.
//! - Once its headers are in, a request has `body_timeout` to send its
//!   body (read here, before routing, at most `MAX_BODY_BYTES` and a byte):
//!   then 408 and the connection closes.
//! - A request has `request_timeout` to be read and answered: then 408.
//! - On shutdown the listener closes, each connection finishes the request
//!   it is serving, and the loop waits for them (at most `drain_timeout`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use app::error::{AppError, ErrorKind};
use app::server::gate::Cidr;

use crate::MAX_BODY_BYTES;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    /// Open connections one client address (IPv6: one /64) may hold.
    pub max_per_address: usize,
    /// Peers not counted per address: the trusted proxies.
    pub unlimited_peers: Arc<[Cidr]>,
    pub header_timeout: Duration,
    /// Time to receive a request's body once its headers are in.
    pub body_timeout: Duration,
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
    let per_address = Arc::new(PerAddress::default());
    let mut last_refused: Option<std::time::Instant> = None;
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
        let held = if limits.unlimited_peers.iter().any(|range| range.contains(remote.ip())) {
            None
        } else {
            match per_address.enter(remote.ip(), limits.max_per_address) {
                Some(held) => Some(held),
                None => {
                    if last_refused.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                        tracing::warn!(
                            peer = %remote.ip(),
                            max = limits.max_per_address,
                            "too many connections from one address: closing its new ones"
                        );
                        last_refused = Some(std::time::Instant::now());
                    }
                    // Closed at once; the slot is free again.
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let service =
            hyper::service::service_fn(handler(router.clone(), remote, limits.body_timeout, limits.request_timeout));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(held);
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

/// One request: the peer address for the extractors, the body read
/// within its deadline, the router, and the request deadline.
fn handler(
    router: Router,
    remote: SocketAddr,
    body_timeout: Duration,
    request_timeout: Duration,
) -> impl Fn(Request<Incoming>) -> Answer + Clone {
    move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        let api = req.uri().path().starts_with("/api/");
        let router = router.clone();
        Box::pin(async move {
            let answer = async {
                let req = match tokio::time::timeout(body_timeout, read_body(req)).await {
                    Ok(Ok(req)) => req,
                    Ok(Err(unreadable)) => return Ok(unreadable),
                    Err(_) => return Ok(timed_out(api)),
                };
                router.oneshot(req).await
            };
            match tokio::time::timeout(request_timeout, answer).await {
                Ok(answer) => answer,
                Err(_) => Ok(timed_out(api)),
            }
        })
    }
}

/// Reads the body into memory: at most `MAX_BODY_BYTES` and one more byte,
/// enough for the router's size limit to refuse it with 413 as before.
async fn read_body(req: Request<Incoming>) -> Result<Request<Body>, Response> {
    let (mut parts, body) = req.into_parts();
    if body.is_end_stream() {
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while bytes.len() <= MAX_BODY_BYTES {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "request body unreadable");
                let mut res = (StatusCode::BAD_REQUEST, "The request body could not be read.").into_response();
                res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Err(res);
            }
        }
    }
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Open connections per client address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address, until dropped.
struct Held {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Held> {
        let key = address_key(ip);
        let mut open = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(Held { table: self.clone(), key })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// IPv4 as it is (IPv4-mapped IPv6 too); IPv6 per /64, the block one
/// subscriber usually holds (as the guessing limits count them).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
        v4 => v4,
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpSocket, TcpStream};

    fn limits(per_address: usize, unlimited: &[&str], body_timeout: Duration) -> Limits {
        Limits {
            max_connections: 100,
            max_per_address: per_address,
            unlimited_peers: unlimited.iter().map(|c| Cidr::parse(c).unwrap()).collect::<Vec<_>>().into(),
            header_timeout: Duration::from_secs(10),
            body_timeout,
            request_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(1),
        }
    }

    /// A small router behind the real connection loop; returns its address.
    async fn start(limits: Limits) -> SocketAddr {
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/echo", post(|body: axum::body::Bytes| async move { body.len().to_string() }))
            .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY_BYTES));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, limits, std::future::pending()));
        addr
    }

    async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap()
    }

    /// Sends `raw` and reads until the server closes or 5 s pass (far less
    /// than any timeout under test but the one configured small).
    async fn exchange(stream: &mut TcpStream, raw: &[u8]) -> String {
        let _ = stream.write_all(raw).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn connections_past_the_per_address_cap_are_closed_at_once() {
        let addr = start(limits(3, &[], Duration::from_secs(10))).await;
        // Three idle connections hold this address's share.
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(connect_from("127.0.0.1", addr).await);
        }
        // The next one is accepted after them (the backlog is in order)
        // and closed at once, long before any timeout.
        let started = std::time::Instant::now();
        let mut extra = connect_from("127.0.0.1", addr).await;
        let answer = exchange(&mut extra, GET).await;
        assert_eq!(answer, "", "refused without an answer");
        assert!(started.elapsed() < Duration::from_secs(5), "closed at once, not timed out");
        // Another address is served meanwhile.
        let mut other = connect_from("127.0.0.2", addr).await;
        assert!(exchange(&mut other, GET).await.starts_with("HTTP/1.1 200"), "other clients are served");
        // One idle connection ends: the address may open one again.
        drop(idle.pop());
        let mut served = false;
        for _ in 0..500 {
            let mut again = connect_from("127.0.0.1", addr).await;
            if exchange(&mut again, GET).await.starts_with("HTTP/1.1 200") {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(served, "a closed connection gives its place back");
    }

    #[tokio::test]
    async fn trusted_proxies_are_not_counted_per_address() {
        let addr = start(limits(2, &["127.0.0.0/8"], Duration::from_secs(10))).await;
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.push(connect_from("127.0.0.1", addr).await);
        }
        let mut stream = connect_from("127.0.0.1", addr).await;
        assert!(exchange(&mut stream, GET).await.starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
    }

    #[tokio::test]
    async fn a_slow_body_is_cut_off_with_408() {
        // A small configured limit instead of a long wait.
        let addr = start(limits(64, &[], Duration::from_millis(300))).await;
        let mut slow = connect_from("127.0.0.1", addr).await;
        let started = std::time::Instant::now();
        let answer = exchange(
            &mut slow,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // A body sent in time is read whole and passed on.
        let mut prompt = connect_from("127.0.0.1", addr).await;
        let answer = exchange(
            &mut prompt,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("11"), "{answer}");
        // Chunked too.
        let mut chunked = connect_from("127.0.0.1", addr).await;
        let answer = exchange(
            &mut chunked,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("5"), "{answer}");
        // Too large is still the router's 413.
        let mut large = connect_from("127.0.0.1", addr).await;
        let mut raw = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY_BYTES + 10
        )
        .into_bytes();
        raw.extend(std::iter::repeat_n(b'a', MAX_BODY_BYTES + 10));
        let answer = exchange(&mut large, &raw).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
}
