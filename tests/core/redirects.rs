//! Redirects (issue 14, item 3): the core follows a redirect only within the
//! origin it called. A `307`/`308` re-sends the body, so a sign-in redirected
//! to another origin would hand it the password (and reqwest keeps `apikey`
//! across hosts); within the origin, following stays harmless.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use quire_core::Quire;
use quire_testkit::client::MemoryTokens;
use quire_testkit::{PASSWORD_A, PASSWORD_B, spawn_sandbox};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One request as a tiny server read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    head: String,
    body: Vec<u8>,
}

/// An answer: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, Vec<u8>);
type Handler = Arc<dyn Fn(Seen) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// A minimal HTTP/1.1 server on 127.0.0.1 (one request per connection);
/// its base URL.
async fn serve(handler: Handler) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let Some(seen) = read_request(&mut socket).await else {
                    return;
                };
                let (status, headers, body) = handler(seen).await;
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                head.push_str("\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buffer = Vec::new();
    let mut piece = [0u8; 4096];
    let end = loop {
        let n = socket.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&piece[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < end + length {
        let n = socket.read(&mut piece).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&piece[..n]);
    }
    let mut words = head.split_whitespace();
    Some(Seen {
        method: words.next()?.to_owned(),
        path: words.next()?.to_owned(),
        body: buffer[end..].to_vec(),
        head,
    })
}

fn client(api_url: &str, anon_key: &str) -> Quire {
    let config = quire_core::Config::new(api_url, anon_key, "http://127.0.0.1:9").unwrap();
    Quire::with_token_store(config, Arc::new(MemoryTokens::default()))
}

#[tokio::test]
async fn a_sign_in_redirected_to_another_origin_never_sends_the_password_there() {
    let stack = spawn_sandbox().await;
    stack.create_user("a@example.com", PASSWORD_A).await;
    stack.create_user("b@example.com", PASSWORD_B).await;

    // Another origin that records what it is sent.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let evil = serve(Arc::new(move |request| {
        log.lock().unwrap().push(request);
        Box::pin(async { (200, Vec::new(), b"{}".to_vec()) })
    }))
    .await;
    // What answers at the platform's URL sends every call there, body and all.
    let to = evil.clone();
    let front = serve(Arc::new(move |request: Seen| {
        let location = format!("{to}{}", request.path);
        Box::pin(async move { (307, vec![("location".to_owned(), location)], Vec::new()) })
    }))
    .await;

    let a = client(&front, &stack.anon_key());
    let signed_in = a.sign_in_with_password("a@example.com", PASSWORD_A).await;

    let seen = seen.lock().unwrap().clone();
    for request in &seen {
        let text = format!("{}{}", request.head, String::from_utf8_lossy(&request.body));
        assert!(
            !text.contains(PASSWORD_A),
            "{} {} reached {evil} with A's password",
            request.method,
            request.path
        );
    }
    assert!(
        seen.is_empty(),
        "nothing reaches the other origin: {seen:?}"
    );
    assert!(signed_in.is_err(), "a redirect elsewhere is not a sign-in");
    assert!(
        matches!(a.status(), quire_core::AuthStatus::SignedOut { .. }),
        "A is not signed in"
    );

    // B, on a platform that moves a route within its own origin, signs in.
    let sandbox = stack.api_base().to_owned();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let moved = serve(Arc::new(move |request: Seen| {
        let sandbox = sandbox.clone();
        let http = http.clone();
        Box::pin(async move {
            let Some(rest) = request.path.strip_prefix("/moved") else {
                let location = format!("/moved{}", request.path);
                return (307, vec![("location".to_owned(), location)], Vec::new());
            };
            let mut upstream =
                http.request(request.method.parse().unwrap(), format!("{sandbox}{rest}"));
            for line in request.head.lines().skip(1) {
                if let Some((name, value)) = line.split_once(':')
                    && !["host", "content-length", "connection"]
                        .contains(&name.trim().to_ascii_lowercase().as_str())
                {
                    upstream = upstream.header(name.trim(), value.trim());
                }
            }
            let answer = upstream.body(request.body).send().await.unwrap();
            let status = answer.status().as_u16();
            let body = answer.bytes().await.unwrap().to_vec();
            let kind = ("content-type".to_owned(), "application/json".to_owned());
            (status, vec![kind], body)
        })
    }))
    .await;
    let b = client(&moved, &stack.anon_key());
    let user = b
        .sign_in_with_password("b@example.com", PASSWORD_B)
        .await
        .expect("a redirect within the origin is followed");
    assert_eq!(user.email.as_deref(), Some("b@example.com"));
}
