//! A TCP proxy in front of the sandbox that can cut connections: the core's
//! reconnecting and resuming against a flaky network, without touching the
//! sandbox.

use std::sync::Arc;

/// A TCP proxy in front of the sandbox that can cut connections: every
/// connection open at [`Proxy::cut`], or the one that has sent more than
/// [`Proxy::cut_after_upload`] bytes towards the server. Stands in for a
/// flaky network without touching the sandbox.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    upload_budget: Arc<std::sync::atomic::AtomicI64>,
    stall: Arc<std::sync::atomic::AtomicBool>,
    pub cuts: Arc<std::sync::atomic::AtomicU64>,
    trap: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    /// Bytes sent towards the server so far, over all connections.
    pub uploaded: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let upload_budget = Arc::new(AtomicI64::new(i64::MAX));
        let cuts = Arc::new(AtomicU64::new(0));
        let uploaded = Arc::new(AtomicU64::new(0));
        let stall = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let trap = Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let (cut_tx, budget, cut_count, uploaded_total, stalling, trapped) = (
            cut.clone(),
            upload_budget.clone(),
            cuts.clone(),
            uploaded.clone(),
            stall.clone(),
            trap.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_tx.subscribe();
                let (budget, cut_count, uploaded_total, stalling, trapped) = (
                    budget.clone(),
                    cut_count.clone(),
                    uploaded_total.clone(),
                    stalling.clone(),
                    trapped.clone(),
                );
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let upstream = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buffer = vec![0u8; 64 * 1024];
                        loop {
                            let n = client_read.read(&mut buffer).await.unwrap_or(0);
                            if n == 0 {
                                let _ = server_write.shutdown().await;
                                // Keep the downstream half going until it ends.
                                std::future::pending::<()>().await;
                            }
                            uploaded_total.fetch_add(n as u64, Ordering::SeqCst);
                            if budget.fetch_sub(n as i64, Ordering::SeqCst) - (n as i64) < 0 {
                                budget.store(i64::MAX, Ordering::SeqCst);
                                if stalling.load(Ordering::SeqCst) {
                                    // Hold the connection, forward nothing more.
                                    std::future::pending::<()>().await;
                                }
                                cut_count.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                            if server_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                            let mut trap = trapped.lock().unwrap();
                            if trap.as_ref().is_some_and(|pattern| {
                                buffer[..n].windows(pattern.len()).any(|w| w == pattern)
                            }) {
                                // Sent on, and the connection dropped before
                                // its answer can come back.
                                *trap = None;
                                cut_count.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                    };
                    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
                    tokio::select! {
                        () = upstream => {}
                        _ = downstream => {}
                        _ = cut_rx.changed() => { cut_count.fetch_add(1, Ordering::SeqCst); }
                    }
                });
            }
        });
        Proxy {
            addr,
            cut,
            upload_budget,
            stall,
            cuts,
            trap,
            uploaded,
        }
    }

    /// `http://<proxy>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection open now.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Sends on the next request that contains `pattern` (e.g. its request
    /// line), then drops its connection before the answer comes back: the
    /// server did the work, the client never heard; once.
    pub fn cut_answer_to(&self, pattern: &str) {
        *self.trap.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }

    /// Stops forwarding (without closing) once more than `bytes` have been
    /// sent towards the server: a connection that hangs.
    pub fn stall_after_upload(&self, bytes: i64) {
        self.stall.store(true, std::sync::atomic::Ordering::SeqCst);
        self.upload_budget
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
    }

    /// Drops the connection that makes the total sent towards the server
    /// (over all connections, from now) exceed `bytes`; once.
    pub fn cut_after_upload(&self, bytes: i64) {
        self.upload_budget
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
    }
}
