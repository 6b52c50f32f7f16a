//! A forwarding proxy in front of the sandbox that breaks off every
//! `run/stream` response after a number of content deltas: the platform's
//! stream dying mid-answer, on demand.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures_util::StreamExt as _;

/// A forwarding proxy in front of the sandbox that cuts every
/// `run/stream` response after `deltas` content deltas.
pub struct Proxy {
    upstream: String,
    deltas: usize,
    /// How many streams were cut.
    pub cut: AtomicUsize,
    http: reqwest::Client,
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let mut upstream = proxy
        .http
        .request(parts.method.clone(), format!("{}{path}", proxy.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    if !path.contains("/run/stream") {
        return response
            .body(Body::from_stream(answer.bytes_stream()))
            .unwrap();
    }
    // Pass frames through until the n-th content delta, then break off.
    let limit = proxy.deltas;
    let state = proxy.clone();
    let frames = cut_after(answer.bytes_stream(), limit, state);
    response.body(Body::from_stream(frames)).unwrap()
}

fn cut_after(
    upstream: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send + 'static,
    limit: usize,
    proxy: Arc<Proxy>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    let upstream = Box::pin(upstream);
    futures_util::stream::unfold(
        (upstream, String::new(), 0usize, false),
        move |(mut upstream, mut buffer, mut seen, done)| {
            let proxy = proxy.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(end) = buffer.find("\n\n") {
                        let frame: String = buffer.drain(..end + 2).collect();
                        if frame.contains("\"content_delta\"") {
                            seen += 1;
                            if seen > limit {
                                proxy.cut.fetch_add(1, Ordering::SeqCst);
                                let broken = std::io::Error::other("cut by the test proxy");
                                return Some((Err(broken), (upstream, buffer, seen, true)));
                            }
                        }
                        return Some((
                            Ok(bytes::Bytes::from(frame)),
                            (upstream, buffer, seen, false),
                        ));
                    }
                    match upstream.next().await {
                        Some(Ok(piece)) => buffer.push_str(&String::from_utf8_lossy(&piece)),
                        _ => return None,
                    }
                }
            }
        },
    )
}

pub async fn start_proxy(upstream: String, deltas: usize) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        upstream,
        deltas,
        cut: AtomicUsize::new(0),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), proxy)
}
