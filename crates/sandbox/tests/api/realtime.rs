//! `/realtime/v1`: the Phoenix socket (vsn 1.0.0), private channels checked
//! against `realtime.messages` RLS, broadcast from the database through
//! LISTEN/NOTIFY (fan-out, order, surviving a killed connection), tokens
//! (refresh, expiry), client and REST broadcasts. A plain WebSocket client
//! (tokio-tungstenite) speaks the frames by hand, as realtime-js would.

use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use quire_sandbox::Config;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;

use quire_testkit::{Stack, spawn_sandbox_with};

/// How long a test waits for a frame it expects before failing.
const PATIENCE: Duration = Duration::from_secs(15);
/// The join error delay in these tests (the real default is 5 s).
const CHANNEL_ERROR_DELAY: Duration = Duration::from_millis(300);

/// Short error delays, so refusals do not slow the suite down.
fn short_delays(config: &mut Config) {
    config.realtime.channel_error_delay_ms = CHANNEL_ERROR_DELAY.as_millis() as u64;
    config.realtime.connect_error_delay_ms = 100;
}

async fn realtime_app() -> Stack {
    spawn_sandbox_with(short_delays).await
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A GoTrue-like access token for `uid`, valid for `ttl` seconds.
fn user_token(app: &Stack, uid: Uuid, ttl: i64) -> String {
    app.sign(&json!({
        "sub": uid, "role": "authenticated", "aud": "authenticated",
        "iat": now(), "exp": now() + ttl, "session_id": Uuid::new_v4(),
    }))
}

fn private_config() -> Value {
    json!({"broadcast": {"self": false, "ack": false}, "presence": {"enabled": false, "key": ""},
           "postgres_changes": [], "private": true})
}

fn public_config() -> Value {
    json!({"broadcast": {"self": false, "ack": false}, "presence": {"enabled": false, "key": ""},
           "postgres_changes": [], "private": false})
}

/// A hand-driven Realtime client.
struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_ref: u64,
}

impl Socket {
    async fn connect(app: &Stack, apikey: &str) -> Socket {
        let url = format!(
            "{}/realtime/v1/websocket?apikey={apikey}&vsn=1.0.0",
            app.api_base().replacen("http", "ws", 1)
        );
        let (ws, _) = connect_async(url).await.expect("the socket connects");
        Socket { ws, next_ref: 0 }
    }

    async fn anon(app: &Stack) -> Socket {
        Socket::connect(app, &app.anon_key()).await
    }

    /// A socket joined to the private topic `realtime:user:<uid>` with the user's token, as
    /// Quire's follower joins it.
    async fn following(app: &Stack, uid: Uuid) -> Socket {
        let mut socket = Socket::anon(app).await;
        let token = user_token(app, uid, 3600);
        let topic = format!("realtime:user:{uid}");
        socket.joined(&topic, private_config(), Some(&token)).await;
        socket
    }

    /// Sends a frame and returns its ref.
    async fn push(
        &mut self,
        topic: &str,
        event: &str,
        payload: Value,
        join_ref: Option<&str>,
    ) -> String {
        self.next_ref += 1;
        let reference = self.next_ref.to_string();
        let frame = json!({"topic": topic, "event": event, "payload": payload,
                           "ref": reference, "join_ref": join_ref});
        self.send_text(frame.to_string()).await;
        reference
    }

    async fn send_text(&mut self, text: String) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("a frame goes out");
    }

    /// The next JSON frame (pings skipped); panics on close or after `PATIENCE`.
    async fn recv(&mut self) -> Value {
        match self.recv_within(PATIENCE).await {
            Some(frame) => frame,
            None => panic!("no frame within {PATIENCE:?}"),
        }
    }

    /// The next JSON frame within `wait`, `None` if nothing came.
    async fn recv_within(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).expect("frames are JSON"));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame of `event` on `topic`, skipping others (presence state, system).
    async fn recv_event(&mut self, topic: &str, event: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["topic"] == topic && frame["event"] == event {
                return frame;
            }
        }
    }

    /// The reply to `reference`.
    async fn reply(&mut self, reference: &str) -> Value {
        loop {
            let frame = self.recv().await;
            if frame["event"] == "phx_reply" && frame["ref"] == reference {
                return frame;
            }
        }
    }

    /// Joins `topic` and returns (join ref, reply payload).
    async fn join(&mut self, topic: &str, config: Value, token: Option<&str>) -> (String, Value) {
        let mut payload = json!({"config": config});
        if let Some(token) = token {
            payload["access_token"] = json!(token);
        }
        self.next_ref += 1;
        let reference = self.next_ref.to_string();
        let frame = json!({"topic": topic, "event": "phx_join", "payload": payload,
                           "ref": reference, "join_ref": reference});
        self.send_text(frame.to_string()).await;
        let reply = self.reply(&reference).await;
        (reference, reply["payload"].clone())
    }

    /// Joins and asserts the join succeeded; returns the join ref.
    async fn joined(&mut self, topic: &str, config: Value, token: Option<&str>) -> String {
        let (join_ref, reply) = self.join(topic, config, token).await;
        assert_eq!(reply["status"], "ok", "join of {topic}: {reply}");
        join_ref
    }

    /// Asserts that nothing arrives for `wait`.
    async fn expect_silence(&mut self, wait: Duration) {
        if let Some(frame) = self.recv_within(wait).await {
            panic!("expected silence, got {frame}");
        }
    }

    /// Waits for the server to close the socket; panics on any other frame.
    async fn expect_closed(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("the socket was not closed within {wait:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(None | Some(Err(_))) => return None,
                Ok(Some(Ok(other))) => panic!("expected a close, got {other:?}"),
            }
        }
    }
}

/// `realtime.send(payload, event, topic, private)` as the superuser (as the
/// app's SECURITY DEFINER triggers do).
async fn send_from_sql(
    db: &tokio_postgres::Client,
    topic: &str,
    event: &str,
    payload: Value,
    private: bool,
) {
    db.execute(
        "select realtime.send($1::jsonb, $2, $3, $4)",
        &[&payload, &event, &topic, &private],
    )
    .await
    .expect("realtime.send");
}

/// The `n` values of the next `count` broadcasts on `topic`, checking their
/// shape on the way.
async fn receive_numbers(socket: &mut Socket, topic: &str, count: usize) -> Vec<i64> {
    let mut seen = Vec::with_capacity(count);
    while seen.len() < count {
        let frame = socket.recv_event(topic, "broadcast").await;
        assert_eq!(frame["ref"], Value::Null);
        assert!(frame.get("join_ref").is_none(), "{frame}");
        let payload = &frame["payload"];
        assert_eq!(payload["type"], "broadcast");
        let id = payload["meta"]["id"].as_str().expect("meta.id");
        assert!(Uuid::parse_str(id).is_ok());
        seen.push(payload["payload"]["n"].as_i64().expect("payload.n"));
    }
    seen
}

#[tokio::test]
async fn a_private_user_channel_receives_sql_broadcasts_in_order_and_others_are_refused() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");

    // Arrange: Alice joins her own topic; Bob tries to join it.
    let mut alice_socket = Socket::following(&app, alice).await;
    let mut bob_socket = Socket::anon(&app).await;
    let started = Instant::now();
    let (_, refusal) = bob_socket
        .join(&topic, private_config(), Some(&user_token(&app, bob, 3600)))
        .await;

    // Assert: Bob gets Realtime's reason, after the error delay.
    assert_eq!(refusal["status"], "error");
    assert_eq!(
        refusal["response"]["reason"],
        format!(
            "Unauthorized: You do not have permissions to read from this Channel topic: user:{alice}"
        )
    );
    assert!(
        started.elapsed() >= CHANNEL_ERROR_DELAY,
        "{:?}",
        started.elapsed()
    );

    // Act: rows sent from SQL, on Alice's and on Bob's topic.
    let admin = app.db.admin().await;
    for n in 0..20 {
        send_from_sql(
            &admin,
            &format!("user:{alice}"),
            "delta",
            json!({"n": n}),
            true,
        )
        .await;
    }
    send_from_sql(
        &admin,
        &format!("user:{bob}"),
        "delta",
        json!({"n": 99}),
        true,
    )
    .await;

    // Assert: Alice gets hers, in order, with the event name and a meta id
    // equal to the id realtime.send added to the payload.
    let first = alice_socket.recv_event(&topic, "broadcast").await;
    assert_eq!(first["payload"]["event"], "delta");
    assert_eq!(first["payload"]["payload"]["n"], 0);
    assert_eq!(
        first["payload"]["meta"]["id"],
        first["payload"]["payload"]["id"]
    );
    let rest = receive_numbers(&mut alice_socket, &topic, 19).await;
    assert_eq!(rest, (1..20).collect::<Vec<_>>());
    alice_socket
        .expect_silence(Duration::from_millis(300))
        .await;
    bob_socket.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn app_triggers_broadcast_document_changes_to_their_owner_only() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let alice_topic = format!("realtime:user:{alice}");
    let mut alice_socket = Socket::following(&app, alice).await;
    let mut bob_socket = Socket::following(&app, bob).await;

    // Alice's document row goes through the documents broadcast triggers
    // (insert, then a status change), as the companion writes it.
    let admin = app.db.admin().await;
    let document: Uuid = admin
        .query_one(
            "insert into public.documents (owner_id, title, byte_size) values ($1, 'Notes', 10) returning id",
            &[&alice],
        )
        .await
        .expect("a document row")
        .get(0);
    admin
        .execute(
            "update public.documents set status = 'stored' where id = $1",
            &[&document],
        )
        .await
        .expect("a status change");

    for status in ["uploading", "stored"] {
        let frame = alice_socket.recv_event(&alice_topic, "broadcast").await;
        assert_eq!(frame["payload"]["event"], "document_status");
        assert_eq!(frame["payload"]["payload"]["status"], status);
        assert_eq!(frame["payload"]["payload"]["document_id"], json!(document));
    }
    bob_socket.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn one_hundred_subscribers_of_one_topic_each_get_every_message_once_in_order() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");
    let token = user_token(&app, alice, 3600);
    let mut sockets = Vec::new();
    for _ in 0..100 {
        let mut socket = Socket::anon(&app).await;
        socket.joined(&topic, private_config(), Some(&token)).await;
        sockets.push(socket);
    }
    let mut bob_socket = Socket::following(&app, bob).await;

    const MESSAGES: i64 = 50;
    let admin = app.db.admin().await;
    for n in 0..MESSAGES {
        send_from_sql(
            &admin,
            &format!("user:{alice}"),
            "tick",
            json!({"n": n}),
            true,
        )
        .await;
    }

    let readers = sockets.into_iter().map(|mut socket| {
        let topic = topic.clone();
        tokio::spawn(async move {
            let seen = receive_numbers(&mut socket, &topic, MESSAGES as usize).await;
            socket.expect_silence(Duration::from_millis(200)).await;
            seen
        })
    });
    for reader in futures_util::future::join_all(readers).await {
        assert_eq!(reader.unwrap(), (0..MESSAGES).collect::<Vec<_>>());
    }
    bob_socket.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn one_hundred_topics_with_one_subscriber_each_get_exactly_their_messages() {
    let app = realtime_app().await;
    let mut users = Vec::new();
    for i in 0..100 {
        users.push(app.db.create_user(&format!("user{i}@example.com")).await);
    }
    let mut sockets = Vec::new();
    for &user in &users {
        let socket = Socket::following(&app, user).await;
        sockets.push(socket);
    }

    // Interleaved: message n goes to every topic before message n + 1.
    const MESSAGES: i64 = 10;
    let admin = app.db.admin().await;
    for n in 0..MESSAGES {
        for user in &users {
            send_from_sql(
                &admin,
                &format!("user:{user}"),
                "tick",
                json!({"n": n, "to": user}),
                true,
            )
            .await;
        }
    }

    let readers = sockets.into_iter().zip(users).map(|(mut socket, user)| {
        tokio::spawn(async move {
            let topic = format!("realtime:user:{user}");
            let mut seen = Vec::new();
            for _ in 0..MESSAGES {
                let frame = socket.recv_event(&topic, "broadcast").await;
                assert_eq!(frame["payload"]["payload"]["to"], json!(user));
                seen.push(frame["payload"]["payload"]["n"].as_i64().unwrap());
            }
            socket.expect_silence(Duration::from_millis(200)).await;
            seen
        })
    });
    for reader in futures_util::future::join_all(readers).await {
        assert_eq!(reader.unwrap(), (0..MESSAGES).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn subscribers_get_every_committed_message_once_when_the_database_connection_is_killed() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");
    let token = user_token(&app, alice, 3600);
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let mut socket = Socket::anon(&app).await;
        socket.joined(&topic, private_config(), Some(&token)).await;
        sockets.push(socket);
    }
    let mut bob_socket = Socket::following(&app, bob).await;

    // A writer commits a steady stream while the sandbox's Realtime
    // connections are killed three times under it.
    const MESSAGES: i64 = 300;
    let writer = {
        let admin = app.db.admin().await;
        let topic = format!("user:{alice}");
        tokio::spawn(async move {
            for n in 0..MESSAGES {
                send_from_sql(&admin, &topic, "tick", json!({"n": n}), true).await;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    // Once by the LISTEN statement, twice by application name (which also
    // takes the Realtime pool's connections down).
    let killer = app.db.admin().await;
    let mut killed = 0;
    for kill in [
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where query ilike '%listen%' and pid <> pg_backend_pid()",
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where application_name like 'quire-sandbox/realtime%'",
        "select pg_terminate_backend(pid) from pg_stat_activity \
         where application_name like 'quire-sandbox/realtime%'",
    ] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        killed += killer.query(kill, &[]).await.unwrap().len();
    }
    writer.await.unwrap();
    assert!(
        killed >= 3,
        "the listener connection was found and killed ({killed})"
    );

    let readers = sockets.into_iter().map(|mut socket| {
        let topic = topic.clone();
        tokio::spawn(async move {
            let seen = receive_numbers(&mut socket, &topic, MESSAGES as usize).await;
            socket.expect_silence(Duration::from_millis(500)).await;
            seen
        })
    });
    for reader in futures_util::future::join_all(readers).await {
        assert_eq!(reader.unwrap(), (0..MESSAGES).collect::<Vec<_>>());
    }
    bob_socket.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout_and_heartbeats_keep_it_open() {
    let app = spawn_sandbox_with(|config| {
        short_delays(config);
        config.realtime.idle_timeout_ms = 600;
    })
    .await;

    let mut silent = Socket::anon(&app).await;
    let mut beating = Socket::anon(&app).await;
    let started = Instant::now();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let reference = beating.push("phoenix", "heartbeat", json!({}), None).await;
        let reply = beating.reply(&reference).await;
        assert_eq!(
            reply,
            json!({"topic": "phoenix", "event": "phx_reply", "ref": reference,
                   "payload": {"status": "ok", "response": {}}})
        );
    }
    silent.expect_closed(Duration::from_millis(100)).await;
    assert!(started.elapsed() >= Duration::from_millis(600));

    // Still open after 1.6 s of heartbeats every 200 ms.
    let reference = beating.push("phoenix", "heartbeat", json!({}), None).await;
    assert_eq!(beating.reply(&reference).await["payload"]["status"], "ok");
}

#[tokio::test]
async fn public_and_private_channels_of_one_name_are_separate_topics() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");

    let mut private = Socket::following(&app, alice).await;
    // Bob may join the *public* channel of that name: public channels are not checked.
    let mut public = Socket::anon(&app).await;
    public
        .joined(&topic, public_config(), Some(&user_token(&app, bob, 3600)))
        .await;

    let admin = app.db.admin().await;
    send_from_sql(
        &admin,
        &format!("user:{alice}"),
        "secret",
        json!({"n": 1}),
        true,
    )
    .await;
    send_from_sql(
        &admin,
        &format!("user:{alice}"),
        "open",
        json!({"n": 2}),
        false,
    )
    .await;

    let frame = private.recv_event(&topic, "broadcast").await;
    assert_eq!(frame["payload"]["event"], "secret");
    let frame = public.recv_event(&topic, "broadcast").await;
    assert_eq!(frame["payload"]["event"], "open");
    private.expect_silence(Duration::from_millis(300)).await;
    public.expect_silence(Duration::from_millis(100)).await;
}

/// Alice's private channel, joined on a socket with a token valid `ttl` seconds.
struct Joined {
    alice: Uuid,
    topic: String,
    socket: Socket,
    join_ref: String,
}

async fn alices_channel(app: &Stack, ttl: i64) -> Joined {
    let alice = app.db.create_user("alice@example.com").await;
    let topic = format!("realtime:user:{alice}");
    let mut socket = Socket::anon(app).await;
    let join_ref = socket
        .joined(&topic, private_config(), Some(&user_token(app, alice, ttl)))
        .await;
    Joined {
        alice,
        topic,
        socket,
        join_ref,
    }
}

/// Alice's private channel, joined, gets a fresh token of hers.
#[tokio::test]
async fn a_refreshed_token_keeps_the_channel_receiving() {
    let app = realtime_app().await;
    let Joined {
        alice,
        topic,
        mut socket,
        join_ref,
    } = alices_channel(&app, 60).await;
    let admin = app.db.admin().await;

    // Refreshed: the channel stays and keeps receiving.
    socket
        .push(
            &topic,
            "access_token",
            json!({"access_token": user_token(&app, alice, 3600)}),
            Some(&join_ref),
        )
        .await;
    socket.expect_silence(Duration::from_millis(300)).await;
    send_from_sql(
        &admin,
        &format!("user:{alice}"),
        "after_refresh",
        json!({"n": 1}),
        true,
    )
    .await;
    let frame = socket.recv_event(&topic, "broadcast").await;
    assert_eq!(frame["payload"]["event"], "after_refresh");
}

/// Alice's channel gets an expired token.
#[tokio::test]
async fn an_expired_token_closes_the_channel_with_realtimes_message() {
    let app = realtime_app().await;
    let Joined {
        alice,
        topic,
        mut socket,
        join_ref,
    } = alices_channel(&app, 3600).await;

    // Expired: system error with Realtime's text, then phx_close with the join ref.
    let expired = app.sign(&json!({"sub": alice, "role": "authenticated", "exp": now() - 10}));
    socket
        .push(
            &topic,
            "access_token",
            json!({"access_token": expired}),
            Some(&join_ref),
        )
        .await;
    let system = socket.recv().await;
    assert_eq!(system["event"], "system");
    assert_eq!(system["payload"]["status"], "error");
    assert_eq!(system["payload"]["extension"], "system");
    assert_eq!(system["payload"]["channel"], format!("user:{alice}"));
    let message = system["payload"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Token has expired ") && message.ends_with(" seconds ago"),
        "{message}"
    );
    let close = socket.recv().await;
    assert_eq!(
        close,
        json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": join_ref})
    );
}

/// Alice's channel gets a token signed with another secret.
#[tokio::test]
async fn a_forged_token_closes_the_channel() {
    let app = realtime_app().await;
    let Joined {
        alice,
        topic,
        mut socket,
        join_ref,
    } = alices_channel(&app, 3600).await;

    let forged = quire_sandbox::jwt::JwtKeys::new(&SecretString::from(
        "another-secret-of-more-than-32-bytes!!".to_owned(),
    ))
    .sign(&json!({"sub": alice, "role": "authenticated", "exp": now() + 3600}));
    socket
        .push(
            &topic,
            "access_token",
            json!({"access_token": forged}),
            Some(&join_ref),
        )
        .await;
    let system = socket.recv_event(&topic, "system").await;
    assert_eq!(
        system["payload"]["message"],
        "Failed to validate JWT signature"
    );
    assert_eq!(socket.recv().await["event"], "phx_close");
}

/// Alice's channel gets Bob's valid token.
#[tokio::test]
async fn another_users_token_closes_the_channel_and_nothing_more_arrives() {
    let app = realtime_app().await;
    let Joined {
        alice,
        topic,
        mut socket,
        join_ref,
    } = alices_channel(&app, 3600).await;
    let bob = app.db.create_user("bob@example.com").await;
    let admin = app.db.admin().await;

    // Another user's valid token: re-authorized, refused, closed.
    socket
        .push(
            &topic,
            "access_token",
            json!({"access_token": user_token(&app, bob, 3600)}),
            Some(&join_ref),
        )
        .await;
    let system = socket.recv_event(&topic, "system").await;
    assert_eq!(
        system["payload"]["message"],
        format!("You do not have permissions to read from this Channel topic: user:{alice}")
    );
    assert_eq!(socket.recv().await["event"], "phx_close");
    send_from_sql(
        &admin,
        &format!("user:{alice}"),
        "after_close",
        json!({"n": 2}),
        true,
    )
    .await;
    socket.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_channel_is_closed_when_its_token_expires() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");
    let mut socket = Socket::anon(&app).await;
    let join_ref = socket
        .joined(&topic, private_config(), Some(&user_token(&app, alice, 2)))
        .await;
    let mut bob_socket = Socket::following(&app, bob).await;

    let system = socket.recv().await;
    assert_eq!(system["event"], "system");
    assert_eq!(system["payload"]["status"], "error");
    let message = system["payload"]["message"].as_str().unwrap();
    // "0 seconds ago" unless the machine is very slow.
    assert!(
        message.starts_with("Token has expired ") && message.ends_with(" seconds ago"),
        "{message}"
    );
    let close = socket.recv().await;
    assert_eq!(
        close,
        json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": join_ref})
    );
    // Bob's long-lived channel is untouched.
    bob_socket.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn client_broadcasts_honour_self_ack_and_the_insert_policy() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;

    // Public: ack replies, the sender is skipped unless `self`.
    let room = "realtime:room:lobby";
    let ack_config = json!({"broadcast": {"self": false, "ack": true}, "presence": {"enabled": false}, "private": false});
    let self_config = json!({"broadcast": {"self": "true", "ack": "false"}, "presence": {"enabled": false}, "private": false});
    let mut sender = Socket::anon(&app).await;
    let sender_ref = sender
        .joined(room, ack_config, Some(&user_token(&app, alice, 3600)))
        .await;
    let mut listener = Socket::anon(&app).await;
    let listener_ref = listener
        .joined(room, self_config, Some(&user_token(&app, bob, 3600)))
        .await;

    let message = json!({"type": "broadcast", "event": "typing", "payload": {"on": true}});
    let reference = sender
        .push(room, "broadcast", message.clone(), Some(&sender_ref))
        .await;
    assert_eq!(
        sender.reply(&reference).await["payload"],
        json!({"status": "ok", "response": {}})
    );
    let received = listener.recv_event(room, "broadcast").await;
    assert_eq!(
        received,
        json!({"topic": room, "event": "broadcast", "payload": message, "ref": null})
    );
    sender.expect_silence(Duration::from_millis(200)).await;

    listener
        .push(
            room,
            "broadcast",
            json!({"type": "broadcast", "event": "echo", "payload": {}}),
            Some(&listener_ref),
        )
        .await;
    assert_eq!(
        listener.recv_event(room, "broadcast").await["payload"]["event"],
        "echo"
    );
    assert_eq!(
        sender.recv_event(room, "broadcast").await["payload"]["event"],
        "echo"
    );

    // Private `user:<alice>` has no INSERT policy: Alice's send is dropped,
    // with no reply even though she asked for acks.
    let topic = format!("realtime:user:{alice}");
    let private_ack = json!({"broadcast": {"self": true, "ack": true}, "presence": {"enabled": false}, "private": true});
    let token = user_token(&app, alice, 3600);
    let mut alice_socket = Socket::anon(&app).await;
    let alice_ref = alice_socket.joined(&topic, private_ack, Some(&token)).await;
    let mut alice_other_device = Socket::anon(&app).await;
    alice_other_device
        .joined(&topic, private_config(), Some(&token))
        .await;
    alice_socket
        .push(
            &topic,
            "broadcast",
            json!({"type": "broadcast", "event": "forged", "payload": {}}),
            Some(&alice_ref),
        )
        .await;
    alice_socket
        .expect_silence(Duration::from_millis(500))
        .await;
    alice_other_device
        .expect_silence(Duration::from_millis(100))
        .await;
}

#[tokio::test]
async fn rest_broadcasts_reach_subscribers_and_private_ones_need_the_insert_policy() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");
    let mut alice_socket = Socket::following(&app, alice).await;
    let mut bob_socket = Socket::following(&app, bob).await;

    let post = |bearer: Option<String>, body: Value| {
        let mut request = app
            .http
            .post(format!("{}/realtime/v1/api/broadcast", app.api_base()))
            .header("apikey", app.anon_key())
            .json(&body);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    let private_message = |event: &str| json!({"messages": [{"topic": format!("user:{alice}"), "event": event, "payload": {"x": 1}, "private": true}]});

    // As the service role: accepted and delivered, without a meta id.
    let response = post(Some(app.service_key()), private_message("from_backend"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let frame = alice_socket.recv_event(&topic, "broadcast").await;
    assert_eq!(
        frame["payload"],
        json!({"type": "broadcast", "event": "from_backend", "payload": {"x": 1}})
    );

    // As Alice herself: 202, but there is no INSERT policy, so it is dropped.
    let response = post(
        Some(user_token(&app, alice, 3600)),
        private_message("from_alice"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    alice_socket
        .expect_silence(Duration::from_millis(300))
        .await;

    // Without a valid token: 401.
    let forged = quire_sandbox::jwt::JwtKeys::new(&SecretString::from(
        "another-secret-of-more-than-32-bytes!!".to_owned(),
    ))
    .sign(&json!({"role": "service_role", "exp": now() + 60}));
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/realtime/v1/api/broadcast", app.api_base()))
        .bearer_auth(forged)
        .json(&private_message("forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"message": "Unauthorized"})
    );
    alice_socket
        .expect_silence(Duration::from_millis(200))
        .await;
    bob_socket.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn connect_refusals_are_http_errors() {
    let app = realtime_app().await;
    let ws_base = format!(
        "{}/realtime/v1/websocket",
        app.api_base().replacen("http", "ws", 1)
    );
    let refusal = |url: String| async move {
        match connect_async(url).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                        .unwrap_or(Value::Null);
                (response.status().as_u16(), body)
            }
            other => panic!("expected an HTTP refusal, got {:?}", other.map(|_| ())),
        }
    };

    let (status, body) = refusal(format!("{ws_base}?vsn=1.0.0")).await;
    assert_eq!(status, 401);
    assert!(body["error"].is_string(), "{body}");

    let expired = app.sign(&json!({"role": "anon", "exp": now() - 5}));
    let (status, body) = refusal(format!("{ws_base}?vsn=1.0.0&apikey={expired}")).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Token has expired"),
        "{body}"
    );

    let no_role = app.sign(&json!({"exp": now() + 60}));
    let (status, body) = refusal(format!("{ws_base}?vsn=1.0.0&apikey={no_role}")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Fields `role` and `exp` are required in JWT");

    let (status, body) = refusal(format!("{ws_base}?vsn=3.0.0&apikey={}", app.anon_key())).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("vsn=2.0.0"),
        "{body}"
    );
    // The last of repeated parameters counts, as Phoenix (Plug) reads them.
    let (status, _) = refusal(format!(
        "{ws_base}?vsn=1.0.0&apikey={}&vsn=3.0.0",
        app.anon_key()
    ))
    .await;
    assert_eq!(status, 400);

    // The x-api-key header works in place of the query parameter.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{ws_base}?vsn=1.0.0"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("x-api-key", app.anon_key().parse().unwrap());
    assert!(connect_async(request).await.is_ok());
}

#[tokio::test]
async fn the_phoenix_protocol_edges_behave_like_realtime() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let mut socket = Socket::anon(&app).await;

    // Garbage does not hurt the socket.
    for text in ["", "{", "[]", "null", r#"{"topic":1}"#, "\u{1}"] {
        socket.send_text(text.to_owned()).await;
    }
    socket
        .ws
        .send(Message::binary(vec![0u8, 1, 2]))
        .await
        .unwrap();
    let reference = socket.push("phoenix", "heartbeat", json!({}), None).await;
    assert_eq!(socket.reply(&reference).await["payload"]["status"], "ok");

    // A topic without `realtime:` and a message to a channel never joined.
    let (_, reply) = socket.join("room:1", public_config(), None).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );
    let reference = socket
        .push("realtime:never", "broadcast", json!({}), None)
        .await;
    assert_eq!(
        socket.reply(&reference).await["payload"],
        json!({"status": "error", "response": {"reason": "unmatched topic"}})
    );

    // An empty name.
    let (_, reply) = socket.join("realtime:", public_config(), None).await;
    assert_eq!(
        reply,
        json!({"status": "error", "response": {"reason": "TopicNameRequired: You must provide a topic name"}})
    );

    // A public join answers with an empty postgres_changes list.
    let topic = "realtime:room:1";
    let (first_ref, reply) = socket.join(topic, public_config(), None).await;
    assert_eq!(
        reply,
        json!({"status": "ok", "response": {"postgres_changes": []}})
    );

    // A second join of the same topic closes the first channel.
    socket.next_ref += 1;
    let second_ref = socket.next_ref.to_string();
    let frame = json!({"topic": topic, "event": "phx_join", "payload": {"config": public_config()},
                       "ref": second_ref, "join_ref": second_ref});
    socket.send_text(frame.to_string()).await;
    assert_eq!(
        socket.recv().await,
        json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": first_ref})
    );
    assert_eq!(socket.recv().await["payload"]["status"], "ok");

    // Messages carrying the old join ref are ignored.
    let reference = socket
        .push(topic, "phx_leave", json!({}), Some(&first_ref))
        .await;
    socket.expect_silence(Duration::from_millis(200)).await;
    let _ = reference;

    // phx_leave: reply ok, then phx_close with the join ref.
    let reference = socket
        .push(topic, "phx_leave", json!({}), Some(&second_ref))
        .await;
    assert_eq!(
        socket.recv().await,
        json!({"topic": topic, "event": "phx_reply", "ref": reference,
               "payload": {"status": "ok", "response": {}}})
    );
    assert_eq!(
        socket.recv().await,
        json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": second_ref})
    );

    // An expired channel token is refused with Realtime's reason; no token at
    // all falls back to the connect token (anon), which the policy refuses.
    let private_topic = format!("realtime:user:{alice}");
    let expired = app.sign(&json!({"sub": alice, "role": "authenticated", "exp": now() - 3}));
    let (_, reply) = socket
        .join(&private_topic, private_config(), Some(&expired))
        .await;
    let reason = reply["response"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("InvalidJWTToken: Token has expired "),
        "{reason}"
    );
    let (_, reply) = socket.join(&private_topic, private_config(), None).await;
    assert_eq!(
        reply["response"]["reason"],
        format!(
            "Unauthorized: You do not have permissions to read from this Channel topic: user:{alice}"
        )
    );
    let (_, reply) = socket
        .join(
            &private_topic,
            private_config(),
            Some(&user_token(&app, bob, 3600)),
        )
        .await;
    assert_eq!(reply["status"], "error");
}

#[tokio::test]
async fn presence_tracks_and_reports_diffs() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let room = "realtime:room:presence";
    let config = |key: &str| json!({"broadcast": {"self": false, "ack": false}, "presence": {"enabled": true, "key": key}, "private": false});

    let mut watcher = Socket::anon(&app).await;
    watcher
        .joined(room, config("bob"), Some(&user_token(&app, bob, 3600)))
        .await;
    assert_eq!(
        watcher.recv_event(room, "presence_state").await["payload"],
        json!({})
    );

    let mut member = Socket::anon(&app).await;
    let member_ref = member
        .joined(room, config("alice"), Some(&user_token(&app, alice, 3600)))
        .await;
    let reference = member
        .push(
            room,
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"status": "online"}}),
            Some(&member_ref),
        )
        .await;
    assert_eq!(member.reply(&reference).await["payload"]["status"], "ok");
    let diff = watcher.recv_event(room, "presence_diff").await;
    assert_eq!(
        diff["payload"]["joins"]["alice"]["metas"][0]["status"],
        "online"
    );
    assert!(diff["payload"]["joins"]["alice"]["metas"][0]["phx_ref"].is_string());

    let reference = member
        .push(
            room,
            "presence",
            json!({"type": "presence", "event": "track", "payload": "online"}),
            Some(&member_ref),
        )
        .await;
    assert_eq!(
        member.reply(&reference).await["payload"],
        json!({"status": "error", "response": {"reason": "Presence track payload must be a map"}})
    );

    drop(member);
    let diff = watcher.recv_event(room, "presence_diff").await;
    assert_eq!(
        diff["payload"]["leaves"]["alice"]["metas"][0]["status"],
        "online"
    );
}

#[tokio::test]
async fn a_private_join_may_replay_stored_broadcasts() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let topic = format!("realtime:user:{alice}");
    let admin = app.db.admin().await;
    let since = chrono::Utc::now().timestamp_millis() - 60_000;
    for n in 0..3 {
        send_from_sql(
            &admin,
            &format!("user:{alice}"),
            "stored",
            json!({"n": n}),
            true,
        )
        .await;
    }
    let replay_config = |private: bool| {
        json!({"broadcast": {"self": false, "ack": false, "replay": {"since": since, "limit": 2}},
               "presence": {"enabled": false}, "private": private})
    };

    // Alice: the newest two, oldest first, marked as replayed; then live ones.
    let mut socket = Socket::anon(&app).await;
    socket
        .joined(
            &topic,
            replay_config(true),
            Some(&user_token(&app, alice, 3600)),
        )
        .await;
    for n in [1, 2] {
        let frame = socket.recv_event(&topic, "broadcast").await;
        assert_eq!(frame["payload"]["payload"]["n"], n);
        assert_eq!(frame["payload"]["meta"]["replayed"], true);
        assert_eq!(
            frame["payload"]["meta"]["id"],
            frame["payload"]["payload"]["id"]
        );
    }
    send_from_sql(
        &admin,
        &format!("user:{alice}"),
        "live",
        json!({"n": 3}),
        true,
    )
    .await;
    let frame = socket.recv_event(&topic, "broadcast").await;
    assert_eq!(frame["payload"]["payload"]["n"], 3);
    assert!(frame["payload"]["meta"].get("replayed").is_none());

    // Bob may not replay Alice's topic; nobody may replay a public channel.
    let mut bob_socket = Socket::anon(&app).await;
    let (_, reply) = bob_socket
        .join(
            &topic,
            replay_config(true),
            Some(&user_token(&app, bob, 3600)),
        )
        .await;
    assert_eq!(
        reply["response"]["reason"],
        format!(
            "Unauthorized: You do not have permissions to read from this Channel topic: user:{alice}"
        )
    );
    let (_, reply) = bob_socket
        .join("realtime:room:1", replay_config(false), None)
        .await;
    assert_eq!(
        reply["response"]["reason"],
        "UnableToReplayMessages: Replay is not allowed for public channels"
    );
}

/// The next V2 (JSON array) text frame, pings skipped.
async fn recv_v2(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
) -> (Value, Value, String, String, Value) {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(text.as_str()).expect("frames are JSON");
                let parts = frame
                    .as_array()
                    .unwrap_or_else(|| panic!("a V2 array: {frame}"));
                assert_eq!(parts.len(), 5, "{frame}");
                return (
                    parts[0].clone(),
                    parts[1].clone(),
                    parts[2].as_str().unwrap().to_owned(),
                    parts[3].as_str().unwrap().to_owned(),
                    parts[4].clone(),
                );
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a V2 text frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn vsn_2_array_frames_join_heartbeat_and_broadcast() {
    let app = realtime_app().await;
    let alice = app.db.create_user("alice@example.com").await;
    let bob = app.db.create_user("bob@example.com").await;
    let url = |token: &str| {
        format!(
            "{}/realtime/v1/websocket?apikey={token}&vsn=2.0.0",
            app.api_base().replacen("http", "ws", 1)
        )
    };
    let topic = format!("realtime:user:{alice}");
    let (mut ws, _) = connect_async(url(&app.anon_key()))
        .await
        .expect("vsn 2.0.0 connects");

    // Heartbeat: [null, ref, "phoenix", "heartbeat", {}] is answered as an array.
    ws.send(Message::text(r#"[null,"1","phoenix","heartbeat",{}]"#))
        .await
        .unwrap();
    let (join_ref, reference, t, event, payload) = recv_v2(&mut ws).await;
    assert_eq!((join_ref, reference), (Value::Null, json!("1")));
    assert_eq!((t.as_str(), event.as_str()), ("phoenix", "phx_reply"));
    assert_eq!(payload, json!({"status": "ok", "response": {}}));

    // Join Alice's private topic: the reply carries the join ref.
    let join = json!(["2", "2", topic, "phx_join",
        {"config": private_config(), "access_token": user_token(&app, alice, 3600)}]);
    ws.send(Message::text(join.to_string())).await.unwrap();
    loop {
        let (join_ref, reference, t, event, payload) = recv_v2(&mut ws).await;
        if event == "phx_reply" {
            assert_eq!((join_ref, reference), (json!("2"), json!("2")));
            assert_eq!(t, topic);
            assert_eq!(payload["status"], "ok", "{payload}");
            break;
        }
    }

    // Bob on vsn 2.0.0 is refused Alice's topic.
    let (mut bob_ws, _) = connect_async(url(&app.anon_key())).await.unwrap();
    let join = json!(["1", "1", topic, "phx_join",
        {"config": private_config(), "access_token": user_token(&app, bob, 3600)}]);
    bob_ws.send(Message::text(join.to_string())).await.unwrap();
    let (_, _, _, event, payload) = recv_v2(&mut bob_ws).await;
    assert_eq!(event, "phx_reply");
    assert_eq!(payload["status"], "error", "{payload}");

    // A broadcast from SQL arrives as an array with no refs.
    let admin = app.db.admin().await;
    send_from_sql(
        &admin,
        &format!("user:{alice}"),
        "changed",
        json!({"n": 1}),
        true,
    )
    .await;
    loop {
        let (join_ref, reference, t, event, payload) = recv_v2(&mut ws).await;
        if event == "broadcast" {
            assert_eq!((join_ref, reference), (Value::Null, Value::Null));
            assert_eq!(t, topic);
            assert_eq!(payload["event"], "changed");
            assert_eq!(payload["payload"]["n"], 1);
            break;
        }
    }
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_frame() {
    let app = realtime_app().await;
    let mut socket = Socket::anon(&app).await;
    socket
        .ws
        .send(Message::Close(Some(
            tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: "bye".into(),
            },
        )))
        .await
        .unwrap();
    // The server's answering close frame, not a dropped TCP connection.
    assert_eq!(socket.expect_closed(PATIENCE).await, Some(1000));
}

/// realtime-js on vsn 2.0.0 sends a broadcast with a JSON payload as a binary
/// "user broadcast push": kind 3, the lengths of join ref, ref, topic, user
/// event and metadata, the payload encoding (1 = JSON), those strings, then
/// the payload.
fn user_broadcast_push(
    join_ref: &str,
    reference: &str,
    topic: &str,
    event: &str,
    payload: &Value,
) -> Vec<u8> {
    let mut frame = vec![
        3,
        join_ref.len() as u8,
        reference.len() as u8,
        topic.len() as u8,
        event.len() as u8,
        0,
        1,
    ];
    for part in [join_ref, reference, topic, event] {
        frame.extend_from_slice(part.as_bytes());
    }
    frame.extend_from_slice(payload.to_string().as_bytes());
    frame
}

#[tokio::test]
async fn vsn_2_binary_client_broadcasts_reach_the_topic_only() {
    let app = realtime_app().await;
    let url = format!(
        "{}/realtime/v1/websocket?apikey={}&vsn=2.0.0",
        app.api_base().replacen("http", "ws", 1),
        app.anon_key()
    );
    let config = json!({"broadcast": {"ack": true, "self": false}, "presence": {"enabled": false},
        "postgres_changes": [], "private": false});
    let mut sockets = Vec::new();
    for topic in ["realtime:room:1", "realtime:room:1", "realtime:room:2"] {
        let (mut ws, _) = connect_async(url.as_str()).await.unwrap();
        let join = json!(["1", "1", topic, "phx_join", {"config": config}]);
        ws.send(Message::text(join.to_string())).await.unwrap();
        loop {
            let (_, _, _, event, payload) = recv_v2(&mut ws).await;
            if event == "phx_reply" {
                assert_eq!(payload["status"], "ok", "{payload}");
                break;
            }
        }
        sockets.push(ws);
    }
    let [alice, bob, carol] = &mut sockets[..] else {
        unreachable!()
    };

    let frame = user_broadcast_push("1", "2", "realtime:room:1", "moved", &json!({"x": 3}));
    alice.send(Message::binary(frame)).await.unwrap();
    // Alice's ack, then Bob gets the broadcast; Carol, on another topic, nothing.
    let (join_ref, reference, _, event, payload) = recv_v2(alice).await;
    assert_eq!(
        (join_ref, reference, event.as_str()),
        (json!("1"), json!("2"), "phx_reply")
    );
    assert_eq!(payload["status"], "ok", "{payload}");
    let (_, _, topic, event, payload) = recv_v2(bob).await;
    assert_eq!(
        (topic.as_str(), event.as_str()),
        ("realtime:room:1", "broadcast")
    );
    assert_eq!(payload["event"], "moved");
    assert_eq!(payload["payload"], json!({"x": 3}));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), carol.next())
            .await
            .is_err(),
        "Carol got a frame"
    );
}
