//! `/rest/v1`: PostgREST's answers, two users per test (A acts, B must see
//! nothing of A's), anon, and hostile input against a canary table that must
//! survive. Every test checks the HTTP answer and the rows in PostgreSQL.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::{Stack, spawn_sandbox};

/// One answer: status, headers, JSON body (`Null` when empty or not JSON).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    fn rows(&self) -> &Vec<Value> {
        self.body
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {} {}", self.status, self.body))
    }
}

/// Who sends a request: the anon key as `apikey` always, and as bearer either
/// a user's access token, the anon key, the service key, or anything.
#[derive(Clone)]
enum Who {
    Anon,
    Service,
    Token(String),
}

struct Rest<'a> {
    app: &'a Stack,
}

impl<'a> Rest<'a> {
    fn new(app: &'a Stack) -> Self {
        Rest { app }
    }

    fn request(&self, method: Method, path: &str, who: &Who) -> reqwest::RequestBuilder {
        let anon = self.app.anon_key();
        let bearer = match who {
            Who::Anon => anon.clone(),
            Who::Service => self.app.service_key(),
            Who::Token(t) => t.clone(),
        };
        self.app
            .http
            .request(method, format!("{}/rest/v1{path}", self.app.api_base()))
            .header("apikey", anon)
            .header("authorization", format!("Bearer {bearer}"))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("a REST answer");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, who: &Who) -> Answer {
        self.send(self.request(Method::GET, path, who)).await
    }

    async fn post(&self, path: &str, who: &Who, body: &Value, prefer: &str) -> Answer {
        self.send(
            self.request(Method::POST, path, who)
                .header("prefer", prefer)
                .json(body),
        )
        .await
    }

    async fn patch(&self, path: &str, who: &Who, body: &Value, prefer: &str) -> Answer {
        self.send(
            self.request(Method::PATCH, path, who)
                .header("prefer", prefer)
                .json(body),
        )
        .await
    }

    async fn delete(&self, path: &str, who: &Who, prefer: &str) -> Answer {
        self.send(
            self.request(Method::DELETE, path, who)
                .header("prefer", prefer),
        )
        .await
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// An access token as GoTrue issues it.
fn user_token(app: &Stack, uid: Uuid) -> String {
    app.sign(&json!({
        "sub": uid,
        "role": "authenticated",
        "aud": "authenticated",
        "exp": now() + 3600,
        "iat": now(),
        "email": format!("{uid}@example.com"),
        "session_id": Uuid::new_v4(),
        "is_anonymous": false,
    }))
}

/// Two users with data, and a canary table every role may read and write.
struct World {
    a: Uuid,
    b: Uuid,
    a_tok: Who,
    b_tok: Who,
    a_docs: Vec<Uuid>,
    b_doc: Uuid,
    a_conv: Uuid,
}

async fn world(app: &Stack) -> World {
    let a = app.db.create_user("a@example.com").await;
    let b = app.db.create_user("b@example.com").await;
    let admin = app.db.admin().await;
    admin
        .batch_execute(
            "create table public.canary (id int primary key, note text not null);
             insert into public.canary values (1, 'alive');
             grant all on public.canary to anon, authenticated, service_role;",
        )
        .await
        .unwrap();
    let mut a_docs = Vec::new();
    for (title, status, size) in [
        ("Alpha report", "ready", 100i64),
        ("Beta notes", "ready", 200),
        ("Gamma draft", "failed", 300),
    ] {
        let id: Uuid = admin
            .query_one(
                "insert into public.documents (owner_id, title, status, byte_size) values ($1, $2, $3, $4) returning id",
                &[&a, &title, &status, &size],
            )
            .await
            .unwrap()
            .get(0);
        a_docs.push(id);
    }
    let b_doc: Uuid = admin
        .query_one(
            "insert into public.documents (owner_id, title, status, byte_size) values ($1, 'B private', 'ready', 1) returning id",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    insert_chunks(&admin, (a, &a_docs), (b, b_doc)).await;
    let a_conv: Uuid = admin
        .query_one(
            "insert into public.conversations (owner_id, title) values ($1, 'A chat') returning id",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "insert into public.conversations (owner_id, title) values ($1, 'B chat')",
            &[&b],
        )
        .await
        .unwrap();
    let message: Uuid = admin
        .query_one(
            "insert into public.chat_messages (conversation_id, owner_id, seq, role, content) values ($1, $2, 0, 'assistant', 'A secret answer') returning id",
            &[&a_conv, &a],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "insert into public.chat_events (conversation_id, message_id, owner_id, seq, kind, payload) values ($1, $2, $3, 0, 'delta', '{\"text\": \"A secret answer\"}')",
            &[&a_conv, &message, &a],
        )
        .await
        .unwrap();
    World {
        a,
        b,
        a_tok: Who::Token(user_token(app, a)),
        b_tok: Who::Token(user_token(app, b)),
        a_docs,
        b_doc,
        a_conv,
    }
}

/// The chunks `world` gives A's first two documents and B's.
async fn insert_chunks(
    admin: &tokio_postgres::Client,
    (a, a_docs): (Uuid, &[Uuid]),
    (b, b_doc): (Uuid, Uuid),
) {
    let chunks = [
        (
            a,
            a_docs[0],
            1,
            "The aurora borealis glows over the northern sky.",
        ),
        (
            a,
            a_docs[0],
            2,
            "Solar wind meets the magnetosphere near the poles.",
        ),
        (
            a,
            a_docs[1],
            1,
            "Photosynthesis turns light into sugar in the leaf.",
        ),
        (b, b_doc, 1, "The aurora is also the secret of user B."),
    ];
    for (i, (owner, doc, page, text)) in chunks.into_iter().enumerate() {
        admin
            .execute(
                "insert into public.document_chunks (owner_id, document_id, chunk_id, page, ordinal, text) values ($1, $2, $3, $4, $5, $6)",
                &[&owner, &doc, &Uuid::new_v4(), &page, &(i as i32), &text],
            )
            .await
            .unwrap();
    }
}

async fn count(app: &Stack, sql: &str) -> i64 {
    app.db
        .admin()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

async fn canary_alive(app: &Stack) {
    let rows = app
        .db
        .admin()
        .await
        .query("select id, note from public.canary", &[])
        .await
        .expect("the canary table still exists");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(1), "alive");
}

fn titles(a: &Answer) -> Vec<String> {
    a.rows()
        .iter()
        .map(|r| r["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn reads_are_scoped_by_row_level_security() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    let a = rest
        .get("/documents?select=id,title&order=title", &w.a_tok)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(titles(&a), ["Alpha report", "Beta notes", "Gamma draft"]);
    assert_eq!(a.header("content-range"), Some("0-2/*"));
    assert_eq!(
        a.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let b = rest.get("/documents?select=id,title", &w.b_tok).await;
    assert_eq!(titles(&b), ["B private"]);
    // B asking for A's rows by id gets nothing, not an error.
    let b_for_a = rest
        .get(&format!("/documents?id=eq.{}", w.a_docs[0]), &w.b_tok)
        .await;
    assert_eq!(
        (b_for_a.status, b_for_a.body.clone()),
        (StatusCode::OK, json!([]))
    );
    assert_eq!(b_for_a.header("content-range"), Some("*/*"));
    let chunks = rest.get("/document_chunks?select=text", &w.b_tok).await;
    assert_eq!(chunks.rows().len(), 1);
    let conv = rest.get("/conversations?select=title", &w.b_tok).await;
    assert_eq!(titles(&conv), ["B chat"]);
    for table in ["chat_messages", "chat_events"] {
        let a_rows = rest.get(&format!("/{table}"), &w.a_tok).await;
        assert_eq!(a_rows.rows().len(), 1, "{table}: {}", a_rows.body);
        let b_rows = rest.get(&format!("/{table}"), &w.b_tok).await;
        assert_eq!(b_rows.body, json!([]), "{table}");
        let b_delete = rest.delete(&format!("/{table}"), &w.b_tok, "").await;
        assert_eq!(
            (b_delete.status.as_u16(), b_delete.code()),
            (403, "42501"),
            "{table}"
        );
    }
    assert_eq!(
        count(&app, "select count(*) from public.chat_events").await,
        1
    );

    // anon has no grant on owner-scoped tables: 42501, 401 for anon.
    for table in [
        "documents",
        "document_chunks",
        "conversations",
        "chat_messages",
        "chat_events",
    ] {
        let anon = rest.get(&format!("/{table}"), &Who::Anon).await;
        assert_eq!(anon.status, 401, "{table}: {}", anon.body);
        assert_eq!(anon.code(), "42501");
        assert_eq!(anon.header("www-authenticate"), Some("Bearer"));
    }
    // The service role bypasses RLS.
    let all = rest.get("/documents?select=id", &Who::Service).await;
    assert_eq!(all.rows().len(), 4);
    // tool_sessions: no policy, so a user sees nothing.
    let ts = rest.get("/tool_sessions", &w.a_tok).await;
    assert_eq!(ts.status, 403, "{}", ts.body);
    assert_eq!(ts.code(), "42501");
}

#[tokio::test]
async fn select_filters_order_and_casts() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let get = |q: &'static str| {
        let rest = &rest;
        let tok = w.a_tok.clone();
        async move { rest.get(&format!("/documents?{q}"), &tok).await }
    };

    let r = get("select=name:title,size:byte_size::text,status&title=eq.Alpha report").await;
    assert_eq!(
        r.body,
        json!([{"name": "Alpha report", "size": "100", "status": "ready"}])
    );

    let r = get("select=title&status=neq.ready").await;
    assert_eq!(titles(&r), ["Gamma draft"]);
    let r = get("select=title&byte_size=gt.100&byte_size=lte.300&order=byte_size.desc").await;
    assert_eq!(titles(&r), ["Gamma draft", "Beta notes"]);
    let r = get("select=title&byte_size=lt.200").await;
    assert_eq!(titles(&r), ["Alpha report"]);
    let r = get("select=title&byte_size=gte.200&order=title.asc").await;
    assert_eq!(titles(&r), ["Beta notes", "Gamma draft"]);
    let r = get("select=title&title=like.*eta*").await;
    assert_eq!(titles(&r), ["Beta notes"]);
    let r = get("select=title&title=ilike.ALPHA*").await;
    assert_eq!(titles(&r), ["Alpha report"]);
    let r = get("select=title&title=in.(\"Alpha report\",Beta notes)&order=title").await;
    assert_eq!(titles(&r), ["Alpha report", "Beta notes"]);
    let r = get("select=title&title=not.in.(Alpha report,Beta notes)").await;
    assert_eq!(titles(&r), ["Gamma draft"]);
    let r = get("select=title&error=is.null&order=title.desc").await;
    assert_eq!(titles(&r), ["Gamma draft", "Beta notes", "Alpha report"]);
    let r = get("select=title&error=not.is.null").await;
    assert_eq!(r.body, json!([]));
    let r = get("select=title&or=(title.eq.Alpha report,and(byte_size.gt.250,status.eq.failed))&order=title").await;
    assert_eq!(titles(&r), ["Alpha report", "Gamma draft"]);
    let r = get("select=title&not.or=(status.eq.failed,title.like.A*)").await;
    assert_eq!(titles(&r), ["Beta notes"]);
    let r = get("select=title&order=status.asc.nullsfirst,title.desc").await;
    assert_eq!(titles(&r), ["Gamma draft", "Beta notes", "Alpha report"]);
    let r = get("select=title&title=in.()").await;
    assert_eq!(r.body, json!([]));
    let r = get("select=title&title=like(any).{Alpha*,*notes}&order=title").await;
    assert_eq!(titles(&r), ["Alpha report", "Beta notes"]);
    let r = get("select=title&title=ilike(all).{*A*,*R*}&order=title").await;
    assert_eq!(titles(&r), ["Alpha report", "Gamma draft"]);
    let r = get("select=title&byte_size=eq(any).{100,300}&order=title").await;
    assert_eq!(titles(&r), ["Alpha report", "Gamma draft"]);
    let r = get("select=title&error=isdistinct.x&status=not.isdistinct.failed").await;
    assert_eq!(titles(&r), ["Gamma draft"]);

    // A value of the wrong type is PostgreSQL's own error, as in PostgREST.
    let r = get("byte_size=eq.abc").await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "22P02"), "{}", r.body);
    // `like` on a uuid: no such operator, 42883 → 404.
    let r = get("id=like.abc*").await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "42883"), "{}", r.body);
}

#[tokio::test]
async fn full_text_search_filters() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let texts = |a: &Answer| -> Vec<String> {
        a.rows()
            .iter()
            .map(|r| r["text"].as_str().unwrap().to_owned())
            .collect()
    };
    for (q, expect) in [
        ("fts=fts.aurora", 1),
        ("fts=fts(english).glows %26 northern", 1),
        ("fts=plfts.solar wind", 1),
        ("fts=phfts(english).solar wind", 1),
        ("fts=phfts.wind solar", 0),
        ("fts=wfts.aurora or photosynthesis", 2),
        ("fts=wfts(english).\"light into sugar\"", 1),
        ("fts=not.fts.aurora", 2),
        // A text column gets to_tsvector().
        ("text=wfts(english).magnetosphere", 1),
        ("text=fts.sugar", 1),
    ] {
        let r = rest
            .get(&format!("/document_chunks?select=text&{q}"), &w.a_tok)
            .await;
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        assert_eq!(texts(&r).len(), expect, "{q}: {}", r.body);
        assert!(!texts(&r).iter().any(|t| t.contains("user B")), "{q}");
    }
}

#[tokio::test]
async fn ranges_counts_and_content_range() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    let r = rest
        .get("/documents?select=title&order=title&limit=2", &w.a_tok)
        .await;
    assert_eq!(titles(&r), ["Alpha report", "Beta notes"]);
    assert_eq!(r.header("content-range"), Some("0-1/*"));
    assert_eq!(r.status, 200);

    let r = rest
        .send(
            rest.request(Method::GET, "/documents?select=title&order=title", &w.a_tok)
                .header("prefer", "count=exact")
                .header("range-unit", "items")
                .header("range", "1-5"),
        )
        .await;
    assert_eq!(titles(&r), ["Beta notes", "Gamma draft"]);
    assert_eq!(r.header("content-range"), Some("1-2/3"));
    assert_eq!(r.status, 206);
    assert_eq!(r.header("preference-applied"), Some("count=exact"));

    let r = rest
        .send(
            rest.request(
                Method::GET,
                "/documents?select=title&order=title&offset=1&limit=1",
                &w.a_tok,
            )
            .header("prefer", "count=exact"),
        )
        .await;
    assert_eq!(titles(&r), ["Beta notes"]);
    assert_eq!(
        (r.status.as_u16(), r.header("content-range")),
        (206, Some("1-1/3"))
    );

    let r = rest
        .send(
            rest.request(Method::GET, "/documents?select=title", &w.a_tok)
                .header("prefer", "count=exact"),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.header("content-range")),
        (200, Some("0-2/3"))
    );

    // Nothing visible: */0 for B on A's rows.
    let r = rest
        .send(
            rest.request(
                Method::GET,
                &format!("/documents?id=eq.{}", w.a_docs[0]),
                &w.b_tok,
            )
            .header("prefer", "count=exact"),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.header("content-range")),
        (200, Some("*/0"))
    );

    // An offset past the end with a count: 416 PGRST103.
    let r = rest
        .send(
            rest.request(Method::GET, "/documents?offset=10", &w.a_tok)
                .header("prefer", "count=exact"),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (416, "PGRST103"));
    assert_eq!(
        r.body["details"],
        "An offset of 10 was requested, but there are only 3 rows."
    );
    let r = rest
        .send(
            rest.request(Method::GET, "/documents", &w.a_tok)
                .header("range", "3-1"),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (416, "PGRST103"));
    let r = rest.get("/documents?limit=-1", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (416, "PGRST103"));
    let r = rest.get("/documents?limit=0", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!([])));

    // HEAD: the headers of a GET, no body.
    let r = rest
        .send(
            rest.request(Method::HEAD, "/documents", &w.a_tok)
                .header("prefer", "count=exact"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-range"), Some("0-2/3"));
    assert_eq!(r.body, Value::Null);
}

#[tokio::test]
async fn single_object_accept() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let object = |path: String, who: Who| {
        let rest = &rest;
        async move {
            rest.send(
                rest.request(Method::GET, &path, &who)
                    .header("accept", "application/vnd.pgrst.object+json"),
            )
            .await
        }
    };
    let r = object(
        format!("/documents?select=title&id=eq.{}", w.a_docs[0]),
        w.a_tok.clone(),
    )
    .await;
    assert_eq!(r.body, json!({"title": "Alpha report"}));
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.pgrst.object+json; charset=utf-8")
    );
    let r = object(
        format!("/documents?select=title&id=eq.{}", w.a_docs[0]),
        w.b_tok.clone(),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (406, "PGRST116"));
    assert_eq!(r.body["details"], "The result contains 0 rows");
    let r = object("/documents".into(), w.a_tok.clone()).await;
    assert_eq!(r.body["details"], "The result contains 3 rows");
    let r = rest
        .send(
            rest.request(Method::GET, "/documents", &w.a_tok)
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (406, "PGRST107"));

    // A singular write that touches two rows is undone.
    let r = rest
        .send(
            rest.request(Method::PATCH, "/conversations", &Who::Service)
                .header("accept", "application/vnd.pgrst.object+json")
                .header("prefer", "return=representation")
                .json(&json!({"title": "both"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (406, "PGRST116"));
    assert_eq!(
        count(
            &app,
            "select count(*) from public.conversations where title = 'both'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_users_insert_answers_as_its_return_preference_asks() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    // A creates a conversation of their own.
    let r = rest
        .post(
            "/conversations?select=title,owner_id",
            &w.a_tok,
            &json!({"owner_id": w.a, "title": "New chat"}),
            "return=representation",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body, json!([{"title": "New chat", "owner_id": w.a}]));
    assert_eq!(r.header("content-range"), Some("*/*"));
    assert_eq!(
        r.header("preference-applied"),
        Some("return=representation")
    );

    // Minimal: 201, no body.
    let r = rest
        .post(
            "/conversations",
            &w.a_tok,
            &json!({"owner_id": w.a, "title": "Quiet"}),
            "return=minimal",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (201, Value::Null));

    // headers-only: Location names the new row.
    let id = Uuid::new_v4();
    let r = rest
        .post(
            "/conversations",
            &w.a_tok,
            &json!({"id": id, "owner_id": w.a, "title": "Located"}),
            "return=headers-only",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.header("location"),
        Some(format!("/conversations?id=eq.{id}").as_str())
    );
}

#[tokio::test]
async fn b_and_anon_cannot_insert_rows_for_a_and_users_cannot_insert_documents() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    // B cannot create rows owned by A: WITH CHECK fails, 403 for a user.
    let r = rest
        .post(
            "/conversations",
            &w.b_tok,
            &json!({"owner_id": w.a, "title": "Forged"}),
            "return=minimal",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "42501"), "{}", r.body);
    assert_eq!(
        r.body["message"],
        "new row violates row-level security policy for table \"conversations\""
    );
    // anon: no grant, 401.
    let r = rest
        .post(
            "/conversations",
            &Who::Anon,
            &json!({"owner_id": w.a, "title": "Anon"}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "42501"));
    // Users may not insert documents at all (service role only).
    let r = rest
        .post(
            "/documents",
            &w.a_tok,
            &json!({"owner_id": w.a, "title": "x", "byte_size": 1}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "42501"));
    assert_eq!(
        count(
            &app,
            "select count(*) from public.conversations where title in ('Forged', 'Anon')"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_bulk_insert_takes_columns_and_missing_default_as_supabase_js_sends_them() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    // Bulk insert with ?columns= as supabase-js sends it, missing=default.
    let r = rest
        .send(
            rest.request(
                Method::POST,
                "/conversations?columns=\"owner_id\",\"title\"&select=title",
                &w.a_tok,
            )
            .header("prefer", "return=representation,missing=default")
            .json(&json!([{"owner_id": w.a, "title": "Bulk 1"}, {"owner_id": w.a}])),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body, json!([{"title": "Bulk 1"}, {"title": null}]));
}

#[tokio::test]
async fn malformed_inserts_get_postgrests_errors() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    // Keys that differ between objects: PGRST102.
    let r = rest
        .post(
            "/conversations",
            &w.a_tok,
            &json!([{"owner_id": w.a}, {"title": "x"}]),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST102"));
    assert_eq!(r.body["message"], "All object keys must match");
    // Unknown column: PGRST204.
    let r = rest
        .post(
            "/conversations",
            &w.a_tok,
            &json!({"owner_id": w.a, "nope": 1}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST204"));
    assert_eq!(
        r.body["message"],
        "Could not find the 'nope' column of 'conversations' in the schema cache"
    );
    // Invalid JSON: PGRST102.
    let r = rest
        .send(
            rest.request(Method::POST, "/conversations", &w.a_tok)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["message"].as_str()),
        (400, Some("Empty or invalid json"))
    );
}

#[tokio::test]
async fn constraint_violations_are_409_with_postgres_codes() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    // Duplicate primary key: 23505 → 409.
    let r = rest
        .post(
            "/conversations",
            &w.a_tok,
            &json!({"id": w.a_conv, "owner_id": w.a, "title": "dup"}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "23505"));
    // Foreign key: 23503 → 409 (the service role, no RLS in the way).
    let r = rest
        .post(
            "/conversations",
            &Who::Service,
            &json!({"owner_id": Uuid::new_v4(), "title": "orphan"}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "23503"));
}

#[tokio::test]
async fn upserts_merge_or_ignore_duplicates_and_b_cannot_upsert_over_as_row() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    // Upsert as supabase-js sends it: merge-duplicates with on_conflict.
    let r = rest
        .post(
            "/conversations?on_conflict=id&select=title",
            &Who::Service,
            &json!({"id": w.a_conv, "owner_id": w.a, "title": "Renamed"}),
            "resolution=merge-duplicates,return=representation",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!([{"title": "Renamed"}]));
    assert_eq!(
        r.header("preference-applied"),
        Some("resolution=merge-duplicates, return=representation")
    );
    let r = rest
        .post(
            "/conversations?on_conflict=id",
            &Who::Service,
            &json!({"id": Uuid::new_v4(), "owner_id": w.a, "title": "Upserted"}),
            "resolution=merge-duplicates",
        )
        .await;
    assert_eq!(r.status, 201);
    let r = rest
        .post(
            "/conversations?on_conflict=id",
            &Who::Service,
            &json!({"id": w.a_conv, "owner_id": w.a, "title": "Ignored"}),
            "resolution=ignore-duplicates,return=representation",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (201, json!([])));
    let title: String = app
        .db
        .admin()
        .await
        .query_one(
            "select title from public.conversations where id = $1",
            &[&w.a_conv],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "Renamed");
    // B cannot upsert over A's conversation.
    let r = rest
        .post(
            "/conversations?on_conflict=id",
            &w.b_tok,
            &json!({"id": w.a_conv, "owner_id": w.b, "title": "Stolen"}),
            "resolution=merge-duplicates",
        )
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    assert_eq!(
        count(
            &app,
            "select count(*) from public.conversations where title = 'Stolen'"
        )
        .await,
        0
    );
}

/// `/conversations?id=eq.{A's conversation}`.
fn a_conv_filter(w: &World) -> String {
    format!("/conversations?id=eq.{}", w.a_conv)
}

#[tokio::test]
async fn b_updates_and_deletes_nothing_of_as() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let conv = a_conv_filter(&w);

    // B: filtered away by RLS, nothing changes.
    let r = rest
        .patch(
            &conv,
            &w.b_tok,
            &json!({"title": "B was here"}),
            "return=representation",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (200, json!([])));
    let r = rest
        .patch(&conv, &w.b_tok, &json!({"title": "B was here"}), "")
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-range"), Some("*/*"));
    let r = rest.delete(&conv, &w.b_tok, "").await;
    assert_eq!(r.status, 204);
    let r = rest
        .delete(
            &format!("/documents?id=eq.{}", w.a_docs[0]),
            &w.b_tok,
            "return=representation",
        )
        .await;
    assert_eq!(r.body, json!([]));
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from public.conversations where id = '{}' and title = 'A chat'",
                w.a_conv
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "select count(*) from public.documents").await,
        4
    );
}

#[tokio::test]
async fn anon_cannot_update_or_delete() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let conv = a_conv_filter(&w);
    let r = rest
        .patch(&conv, &Who::Anon, &json!({"title": "anon"}), "")
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "42501"));
    let r = rest.delete(&conv, &Who::Anon, "").await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "42501"));
}

#[tokio::test]
async fn a_updates_own_row_with_representation_and_count() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let r = rest
        .patch(
            &format!("{}&select=title", a_conv_filter(&w)),
            &w.a_tok,
            &json!({"title": "Renamed"}),
            "return=representation,count=exact",
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body.clone()),
        (200, json!([{"title": "Renamed"}]))
    );
    assert_eq!(r.header("content-range"), Some("0-0/1"));
}

#[tokio::test]
async fn a_cannot_update_a_column_without_an_update_grant_nor_documents() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    // A column without an UPDATE grant: 42501.
    let r = rest
        .patch(&a_conv_filter(&w), &w.a_tok, &json!({"owner_id": w.b}), "")
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "42501"));
    // Owners may not update documents (service role only): nothing visible to update.
    let r = rest
        .patch(
            &format!("/documents?id=eq.{}", w.a_docs[0]),
            &w.a_tok,
            &json!({"title": "x"}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "42501"));
}

#[tokio::test]
async fn the_service_role_deletes_with_limit_and_order() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    // Delete with limit/order on the service role (ctid range): one row goes.
    let r = rest
        .delete(
            &format!(
                "/documents?owner_id=eq.{}&order=byte_size.desc&limit=1&select=title",
                w.a
            ),
            &Who::Service,
            "return=representation",
        )
        .await;
    assert_eq!(r.body, json!([{"title": "Gamma draft"}]), "{}", r.status);
    assert_eq!(
        count(&app, "select count(*) from public.documents").await,
        3
    );
}

#[tokio::test]
async fn a_deletes_own_row_with_count_and_bs_stays() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let r = rest
        .delete(
            &format!("/documents?id=eq.{}", w.a_docs[0]),
            &w.a_tok,
            "count=exact",
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.header("content-range")),
        (204, Some("*/1"))
    );
    assert_eq!(
        count(&app, "select count(*) from public.documents").await,
        3
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "select count(*) from public.documents where id = '{}'",
                w.b_doc
            )
        )
        .await,
        1
    );
}

#[tokio::test]
async fn rpc_search_chunks_is_user_scoped() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    let r = rest
        .post(
            "/rpc/search_chunks",
            &w.a_tok,
            &json!({"query": "aurora", "match_count": 5}),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let hits = r.rows();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["title"], "Alpha report");
    assert!(hits[0]["text"].as_str().unwrap().contains("borealis"));
    assert_eq!(r.header("content-range"), Some("0-0/*"));

    // B's own search never returns A's chunks, only B's.
    let r = rest
        .post(
            "/rpc/search_chunks",
            &w.b_tok,
            &json!({"query": "aurora"}),
            "",
        )
        .await;
    let hits = r.rows();
    assert_eq!(hits.len(), 1, "{}", r.body);
    assert_eq!(hits[0]["title"], "B private");
    // B restricted to A's document ids: nothing.
    let r = rest
        .post(
            "/rpc/search_chunks",
            &w.b_tok,
            &json!({"query": "aurora", "document_ids": [w.a_docs[0]]}),
            "",
        )
        .await;
    assert_eq!(r.body, json!([]));
    // anon may not execute it.
    let r = rest
        .post(
            "/rpc/search_chunks",
            &Who::Anon,
            &json!({"query": "aurora"}),
            "",
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "42501"));

    // GET for a stable function, with filters, order and select on the result.
    let r = rest
        .get("/rpc/search_chunks?query=aurora or photosynthesis&select=title,score&order=title.desc&limit=1", &w.a_tok)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(titles(&r), ["Beta notes"]);
    let r = rest
        .get(
            "/rpc/search_chunks?query=aurora or photosynthesis&title=eq.Alpha report&select=title",
            &w.a_tok,
        )
        .await;
    assert_eq!(titles(&r), ["Alpha report"]);

    // Unknown function or arguments: PGRST202.
    let r = rest
        .post("/rpc/search_chunk", &w.a_tok, &json!({"query": "x"}), "")
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "PGRST202"));
    assert_eq!(
        r.body["hint"],
        "Perhaps you meant to call the function public.search_chunks"
    );
    let r = rest
        .post("/rpc/search_chunks", &w.a_tok, &json!({"q": "x"}), "")
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "PGRST202"));
    assert_eq!(
        r.body["message"],
        "Could not find the function public.search_chunks(q) in the schema cache"
    );
    let r = rest
        .send(
            rest.request(Method::PATCH, "/rpc/search_chunks", &w.a_tok)
                .json(&json!({})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (405, "PGRST101"));
}

/// Functions created by the test: what the request preamble set, a `RAISE`,
/// a volatile write, a scalar and a void function.
async fn test_functions(app: &Stack) {
    app.db
        .admin()
        .await
        .batch_execute(
            "create function public.whoami() returns json language sql stable as $$
               select json_build_object(
                 'user', current_user,
                 'sub', auth.uid(),
                 'claims_role', current_setting('request.jwt.claims', true)::json->>'role',
                 'method', current_setting('request.method', true),
                 'path', current_setting('request.path', true),
                 'apikey', current_setting('request.headers', true)::json->>'apikey',
                 'search_path', current_setting('search_path'),
                 'read_only', current_setting('transaction_read_only'))
             $$;
             create function public.boom(message text) returns void language plpgsql as $$
               begin raise exception '%', message; end $$;
             create function public.add(a int, b int default 1) returns int language sql immutable as $$ select a + b $$;
             create function public.note(t text) returns void language sql volatile as $$
               insert into public.canary values (2, t) $$;
             create function public.teapot() returns void language plpgsql as $$
               begin perform set_config('response.status', '418', true);
                     raise sqlstate 'PT402' using message = 'pay up'; end $$;
             grant execute on all functions in schema public to anon, authenticated;",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn every_request_runs_like_postgrest() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    test_functions(&app).await;
    let rest = Rest::new(&app);

    let r = rest.post("/rpc/whoami", &w.a_tok, &json!({}), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["user"], "authenticated");
    assert_eq!(r.body["sub"], json!(w.a));
    assert_eq!(r.body["method"], "POST");
    assert_eq!(r.body["path"], "/rpc/whoami");
    assert_eq!(r.body["apikey"], app.anon_key());
    assert_eq!(
        r.body["search_path"],
        "\"public\", \"public\", \"extensions\""
    );
    // Stable: a read-only transaction even on POST.
    assert_eq!(r.body["read_only"], "on");
    let r = rest.get("/rpc/whoami", &Who::Anon).await;
    assert_eq!(r.body["user"], "anon");
    assert_eq!(r.body["claims_role"], "anon");
    assert_eq!(r.body["sub"], Value::Null);
    let r = rest
        .send(
            rest.request(Method::GET, "/rpc/whoami", &Who::Service)
                .header("accept-profile", "public"),
        )
        .await;
    assert_eq!(r.body["user"], "service_role");
    assert_eq!(r.header("content-profile"), Some("public"));

    // Scalars, defaults, GET arguments.
    let r = rest.get("/rpc/add?a=2", &w.a_tok).await;
    assert_eq!(r.body, json!(3));
    let r = rest
        .post("/rpc/add", &w.a_tok, &json!({"a": 2, "b": 5}), "")
        .await;
    assert_eq!(r.body, json!(7));
    // RAISE → P0001 → 400.
    let r = rest
        .post("/rpc/boom", &w.a_tok, &json!({"message": "no way"}), "")
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code(), r.body["message"].as_str()),
        (400, "P0001", Some("no way"))
    );
    // PT402: the status in the code.
    let r = rest.post("/rpc/teapot", &w.a_tok, &json!({}), "").await;
    assert_eq!((r.status.as_u16(), r.code()), (402, "PT402"));
    // A volatile function over GET runs read-only: 25006 → 405, nothing written.
    let r = rest.get("/rpc/note?t=x", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (405, "25006"), "{}", r.body);
    assert_eq!(count(&app, "select count(*) from public.canary").await, 1);
    // Over POST it writes; void → 204.
    let r = rest
        .post("/rpc/note", &w.a_tok, &json!({"t": "written"}), "")
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(count(&app, "select count(*) from public.canary").await, 2);
    // A GET on a table runs read-only too.
    let r = rest.get("/canary", &w.a_tok).await;
    assert_eq!(r.rows().len(), 2);
}

#[tokio::test]
async fn profiles_expose_public_and_storage_only() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    for schema in ["ai", "auth", "private", "realtime", "pg_catalog"] {
        let r = rest
            .send(
                rest.request(Method::GET, "/sources", &Who::Service)
                    .header("accept-profile", schema),
            )
            .await;
        assert_eq!((r.status.as_u16(), r.code()), (406, "PGRST106"), "{schema}");
        assert_eq!(r.body["message"], format!("Invalid schema: {schema}"));
        assert_eq!(
            r.body["hint"],
            "Only the following schemas are exposed: public, storage"
        );
        let r = rest
            .send(
                rest.request(Method::POST, "/sources", &Who::Service)
                    .header("content-profile", schema)
                    .json(&json!({})),
            )
            .await;
        assert_eq!((r.status.as_u16(), r.code()), (406, "PGRST106"), "{schema}");
    }
    let r = rest
        .send(
            rest.request(Method::GET, "/buckets?select=id", &w.a_tok)
                .header("accept-profile", "storage"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-profile"), Some("storage"));
    // storage.objects is RLS-scoped: B sees none of A's objects.
    let r = rest
        .send(
            rest.request(Method::GET, "/objects", &w.b_tok)
                .header("accept-profile", "storage"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!([]));
    // A table of another schema is not found in public.
    let r = rest.get("/users", &Who::Service).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "PGRST205"));
    assert_eq!(
        r.body["message"],
        "Could not find the table 'public.users' in the schema cache"
    );
}

#[tokio::test]
async fn errors_have_postgrest_codes_and_statuses() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);

    let r = rest.get("/document", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "PGRST205"));
    assert_eq!(
        r.body["hint"],
        "Perhaps you meant the table 'public.documents'"
    );
    assert_eq!(r.header("proxy-status"), Some("PostgREST; error=PGRST205"));
    let r = rest.get("/documents?select=nope", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "42703"));
    assert_eq!(r.body["message"], "column documents.nope does not exist");
    let r = rest.get("/documents?nope=eq.1", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "42703"));
    // v14: every parameter that is not reserved must be a filter.
    let r = rest.get("/documents?id=eq1", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST100"));
    assert_eq!(
        r.body["message"],
        "\"failed to parse filter (eq1)\" (line 1, column 3)"
    );
    assert_eq!(
        r.body["details"],
        "unexpected \"1\" expecting operator (eq, gt, ...)"
    );
    let r = rest.get("/documents?a.b=noop.0", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST100"));
    assert_eq!(
        r.body["message"],
        "\"failed to parse filter (noop.0)\" (line 1, column 1)"
    );
    assert_eq!(
        r.body["details"],
        "unexpected \"o\" expecting \"not\" or operator (eq, gt, ...)"
    );
    let r = rest.get("/documents?select=count()", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST123"));
    let r = rest.get("/documents?id=eq", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST100"));
    let r = rest
        .get("/documents?select=id,owner:users(email)", &w.a_tok)
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST200"));
    let r = rest.get("/documents?order=nope.desc", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "42703"));
    let r = rest.get("/documents?select=id::regclass", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "42704"));
    let r = rest.get("/a/b/c", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "PGRST125"));
    let r = rest
        .send(rest.request(Method::TRACE, "/documents", &w.a_tok))
        .await;
    assert!(r.status.is_client_error());
    let r = rest
        .send(
            rest.request(Method::GET, "/documents", &w.a_tok)
                .header("prefer", "handling=strict, bogus"),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST122"));
    let r = rest
        .send(
            rest.request(Method::POST, "/conversations", &w.a_tok)
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "PGRST102"));
    // The key order of the body is aeson's.
    let raw = rest
        .request(Method::GET, "/nope", &w.a_tok)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with("{\"code\":\"PGRST205\",\"details\":null,\"hint\":"),
        "{raw}"
    );
}

/// Strings that break out of quoting, identifiers or statements if they are
/// ever pasted into SQL.
fn hostile_strings() -> [String; 8] {
    [
        DROP_CANARY.to_owned(),
        "\"; drop table public.canary; --".to_owned(),
        "x\") ; drop table public.canary; --".to_owned(),
        "1); drop table public.canary; select (1".to_owned(),
        "$$; drop table public.canary; $$".to_owned(),
        "é\u{202e}☃ \\ ' \" ( ) , . : * %".to_owned(),
        "nul\0byte".to_owned(),
        "a'||pg_sleep(5)||'".to_owned(),
    ]
}

const DROP_CANARY: &str = "'; drop table public.canary; --";

/// Every byte but ASCII letters and digits percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The canary lives, and A's documents and conversations are as `world` made them.
async fn nothing_ran(app: &Stack, w: &World) {
    canary_alive_with(app, 1).await;
    assert_eq!(count(app, "select count(*) from public.documents").await, 4);
    assert_eq!(
        count(
            app,
            &format!(
                "select count(*) from public.conversations where owner_id = '{}'",
                w.a
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(app, &format!("select count(*) from public.conversations where owner_id = '{}' and title = 'A chat'", w.a)).await,
        1
    );
}

/// Hostile select, filter, order, limit, table and function names in the query string.
#[tokio::test]
async fn hostile_query_strings_get_a_4xx_or_show_b_and_anon_nothing_of_as() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    test_functions(&app).await;
    let rest = Rest::new(&app);
    let hostile_strings = hostile_strings();

    let mut paths = Vec::new();
    for s in &hostile_strings {
        let e = enc(s);
        paths.push(format!("/documents?select={e}"));
        paths.push(format!("/documents?select=id,title::{e}"));
        paths.push(format!("/documents?select={e}:title"));
        paths.push(format!("/documents?title=eq.{e}"));
        paths.push(format!("/documents?title=in.({e},\"{e}\")"));
        paths.push(format!("/documents?title=fts({e}).x"));
        paths.push(format!("/documents?title=like.{e}"));
        paths.push(format!("/documents?{e}=eq.1"));
        paths.push(format!("/documents?order={e}"));
        paths.push(format!("/documents?order=title.{e}"));
        paths.push(format!("/documents?or=({e})"));
        paths.push(format!("/documents?or=(title.eq.{e},id.is.null)"));
        paths.push(format!("/documents?limit={e}&offset={e}"));
        paths.push(format!("/{e}"));
        paths.push(format!("/rpc/{e}"));
        paths.push(format!("/chat_messages?select=citations->{e}"));
        paths.push(format!("/rpc/search_chunks?query={e}"));
    }
    for (who, is_a) in [(&w.b_tok, false), (&Who::Anon, false), (&w.a_tok, true)] {
        for path in &paths {
            let r = rest.get(path, who).await;
            assert!(
                r.status.is_success() || r.status.is_client_error(),
                "{path}: {} {}",
                r.status,
                r.body
            );
            if r.status.is_success() {
                // B and anon never see A's rows, whatever the query.
                let text = r.body.to_string();
                if !is_a {
                    assert!(!text.contains("Alpha report"), "{path}: {text}");
                }
            }
        }
    }

    nothing_ran(&app, &w).await;
}

/// Hostile keys and values in JSON bodies, `columns` and `on_conflict`.
#[tokio::test]
async fn hostile_json_keys_and_values_execute_nothing() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    test_functions(&app).await;
    let rest = Rest::new(&app);
    let hostile_strings = hostile_strings();

    // JSON bodies: hostile keys and values.
    for s in &hostile_strings {
        let r = rest
            .post("/conversations", &w.b_tok, &object(s, json!(1)), "")
            .await;
        assert_eq!(r.code(), "PGRST204", "{}", r.body);
        let r = rest
            .post(
                "/conversations",
                &w.b_tok,
                &json!({"owner_id": w.b, "title": s}),
                "",
            )
            .await;
        assert!(
            r.status.as_u16() == 201 || r.status == 400,
            "{} {}",
            r.status,
            r.body
        );
        let r = rest
            .patch(
                &format!("/conversations?title=eq.{}", enc(s)),
                &w.b_tok,
                &json!({"title": s}),
                "",
            )
            .await;
        assert!(
            r.status.as_u16() == 204 || r.status == 400,
            "{} {}",
            r.status,
            r.body
        );
        let r = rest
            .post("/rpc/search_chunks", &w.b_tok, &json!({"query": s}), "")
            .await;
        assert!(
            r.status == 200 || r.status == 400,
            "{} {}",
            r.status,
            r.body
        );
        if r.status == 200 {
            assert!(!r.body.to_string().contains("borealis"));
        }
        let r = rest
            .post("/rpc/search_chunks", &w.b_tok, &object(s, json!("x")), "")
            .await;
        assert_eq!(r.code(), "PGRST202");
        let r = rest
            .post(
                &format!("/rpc/{}", enc(s)),
                &w.b_tok,
                &json!({"query": s}),
                "",
            )
            .await;
        assert_eq!(r.code(), "PGRST202");
        let r = rest
            .post(
                &format!("/conversations?columns={}", enc(s)),
                &w.b_tok,
                &json!({"title": s}),
                "",
            )
            .await;
        assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
        let r = rest
            .post(
                &format!("/conversations?on_conflict={}", enc(s)),
                &w.b_tok,
                &json!({"owner_id": w.b}),
                "resolution=merge-duplicates",
            )
            .await;
        assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    }

    nothing_ran(&app, &w).await;
}

#[tokio::test]
async fn a_body_with_sql_after_its_json_is_refused() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    test_functions(&app).await;
    let rest = Rest::new(&app);
    let drop = DROP_CANARY;
    // A body that is not JSON at all, with SQL in it.
    let r = rest
        .send(
            rest.request(Method::POST, "/conversations", &w.b_tok)
                .header("content-type", "application/json")
                .body(format!("{{\"title\": \"x\"}}); {drop}")),
        )
        .await;
    assert_eq!(r.code(), "PGRST102");
    // The same with ?columns=, where PostgreSQL parses the JSON.
    let r = rest
        .send(
            rest.request(Method::POST, "/conversations?columns=title", &w.b_tok)
                .header("content-type", "application/json")
                .body(format!("{{\"title\": \"x\"}}'); {drop}")),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "22P02"), "{}", r.body);

    nothing_ran(&app, &w).await;
}

fn object(key: &str, value: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

async fn canary_alive_with(app: &Stack, rows: usize) {
    let found = app
        .db
        .admin()
        .await
        .query("select id, note from public.canary order by id", &[])
        .await
        .expect("the canary table still exists");
    assert_eq!(found.len(), rows);
    assert_eq!(found[0].get::<_, String>(1), "alive");
}

/// A hostile bearer token: what it is, and PostgREST's status, code and message.
type TokenCase = (&'static str, String, u16, &'static str, &'static str);

/// Tokens that are not what they claim: malformed, expired, unsigned, re-signed or edited.
fn forged_tokens(app: &Stack, w: &World) -> Vec<TokenCase> {
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let wrong_secret = |claims: Value| {
        quire_sandbox::jwt::JwtKeys::new(&secrecy::SecretString::from(
            "not-the-project-secret-not-the-project-secret".to_owned(),
        ))
        .sign(&claims)
    };
    let a_token = match &w.a_tok {
        Who::Token(t) => t.clone(),
        _ => unreachable!(),
    };
    let parts: Vec<&str> = a_token.split('.').collect();
    vec![
        (
            "malformed",
            "not-a-jwt".into(),
            401,
            "PGRST301",
            "Expected 3 parts in JWT; got 1",
        ),
        (
            "garbage",
            "a.b.c".into(),
            401,
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            "expired",
            app.sign(&json!({"sub": w.a, "role": "authenticated", "exp": now() - 120})),
            401,
            "PGRST303",
            "JWT expired",
        ),
        (
            "wrong secret claiming service_role",
            wrong_secret(json!({"role": "service_role", "exp": now() + 60})),
            401,
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            "alg none claiming service_role",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&json!({"role": "service_role", "exp": now() + 60}))
            ),
            401,
            "PGRST301",
            "Wrong or unsupported encoding algorithm",
        ),
        (
            "payload swapped to service_role",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&json!({"sub": w.a, "role": "service_role", "exp": now() + 60})),
                parts[2]
            ),
            401,
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
        (
            "payload swapped to B's sub",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&json!({"sub": w.b, "role": "authenticated", "exp": now() + 60})),
                parts[2]
            ),
            401,
            "PGRST301",
            "JWT cryptographic operation failed",
        ),
    ]
}

/// Correctly signed tokens whose claims ask for what they may not have.
fn tokens_with_hostile_claims(app: &Stack, w: &World) -> Vec<TokenCase> {
    vec![
        (
            "role postgres, correctly signed",
            app.sign(&json!({"role": "postgres", "exp": now() + 60})),
            403,
            "42501",
            "permission denied to set role \"postgres\"",
        ),
        (
            "role authenticator's login roles, correctly signed",
            app.sign(&json!({"role": "supabase_auth_admin", "exp": now() + 60})),
            403,
            "42501",
            "permission denied to set role \"supabase_auth_admin\"",
        ),
        (
            "a role that does not exist",
            app.sign(&json!({"role": "superman", "exp": now() + 60})),
            401,
            "22023",
            "role \"superman\" does not exist",
        ),
        (
            "empty bearer",
            String::new(),
            401,
            "PGRST301",
            "Empty JWT is sent in Authorization header",
        ),
        (
            "a non-string audience",
            app.sign(&json!({"sub": w.b, "role": "authenticated", "aud": 7, "exp": now() + 60})),
            401,
            "PGRST303",
            "The JWT 'aud' claim must be a string or an array of strings",
        ),
    ]
}

#[tokio::test]
async fn each_hostile_token_gets_postgrests_error_on_every_route_and_runs_nothing() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let mut cases = forged_tokens(&app, &w);
    cases.extend(tokens_with_hostile_claims(&app, &w));
    let targets = [
        (Method::GET, "/documents".to_owned(), None),
        (
            Method::DELETE,
            format!("/documents?id=eq.{}", w.a_docs[0]),
            None,
        ),
        (
            Method::PATCH,
            "/conversations".to_owned(),
            Some(json!({"title": "pwned"})),
        ),
        (
            Method::POST,
            "/canary".to_owned(),
            Some(json!({"id": 9, "note": "pwned"})),
        ),
        (
            Method::POST,
            "/rpc/search_chunks".to_owned(),
            Some(json!({"query": "aurora"})),
        ),
    ];
    for (what, token, status, code, message) in &cases {
        for (method, path, body) in &targets {
            let mut req = rest.request(method.clone(), path, &Who::Token(token.clone()));
            if let Some(b) = body {
                req = req.json(b);
            }
            let r = rest.send(req).await;
            assert_eq!(
                (
                    r.status.as_u16(),
                    r.code(),
                    r.body["message"].as_str().unwrap_or("")
                ),
                (*status, *code, *message),
                "{what} {method} {path}: {}",
                r.body
            );
            if *code == "PGRST301" || *code == "PGRST303" {
                assert!(
                    r.header("www-authenticate")
                        .unwrap()
                        .starts_with("Bearer error=\"invalid_token\"")
                );
            }
        }
    }
    canary_alive(&app).await;
    assert_eq!(
        count(&app, "select count(*) from public.documents").await,
        4
    );
    assert_eq!(
        count(
            &app,
            "select count(*) from public.conversations where title = 'pwned'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_gateway_refuses_a_request_without_a_project_api_key() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let a_token = match &w.a_tok {
        Who::Token(t) => t.clone(),
        _ => unreachable!(),
    };
    // The gateway: no apikey, or one that is not a project key.
    let r = rest
        .send(
            app.http
                .get(format!("{}/rest/v1/documents", app.api_base()))
                .bearer_auth(&a_token),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["message"].as_str()),
        (401, Some("No API key found in request"))
    );
    let r = rest
        .send(
            app.http
                .get(format!("{}/rest/v1/documents", app.api_base()))
                .header("apikey", &a_token)
                .bearer_auth(&a_token),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["message"].as_str()),
        (401, Some("Invalid authentication credentials"))
    );
}

#[tokio::test]
async fn a_token_for_another_audience_is_still_only_its_user() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    // PostgREST checks no audience (jwt-aud is unset): a token for B with
    // another audience is still only B.
    let other_aud = Who::Token(app.sign(
        &json!({"sub": w.b, "role": "authenticated", "aud": "elsewhere", "exp": now() + 60}),
    ));
    let r = rest.get("/documents?select=title", &other_aud).await;
    assert_eq!(titles(&r), ["B private"]);
    let r = rest
        .delete(&format!("/documents?id=eq.{}", w.a_docs[0]), &other_aud, "")
        .await;
    assert_eq!(r.status, 204);

    assert_eq!(
        count(&app, "select count(*) from public.documents").await,
        4
    );
}

#[tokio::test]
async fn the_schema_cache_follows_ddl() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let r = rest.get("/late", &w.a_tok).await;
    assert_eq!((r.status.as_u16(), r.code()), (404, "PGRST205"));
    let admin = app.db.admin().await;
    admin
        .batch_execute(
            "create table public.late (id int primary key);
             insert into public.late values (1);
             grant select on public.late to authenticated;",
        )
        .await
        .unwrap();
    let r = rest.get("/late", &w.a_tok).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::OK, json!([{"id": 1}]))
    );
    admin
        .batch_execute("alter table public.late add column note text default 'hi'")
        .await
        .unwrap();
    let r = rest.get("/late?select=note", &w.a_tok).await;
    assert_eq!(r.body, json!([{"note": "hi"}]), "{}", r.status);
    admin
        .batch_execute(
            "create function public.late_fn() returns int language sql stable as $$ select 42 $$;
             grant execute on function public.late_fn() to authenticated;",
        )
        .await
        .unwrap();
    let r = rest.get("/rpc/late_fn", &w.a_tok).await;
    assert_eq!(r.body, json!(42), "{}", r.status);
    // Unknown names cost a fingerprint query, not a reload, and stay unknown.
    for i in 0..20 {
        let r = rest.get(&format!("/missing_{i}"), &w.a_tok).await;
        assert_eq!(r.code(), "PGRST205");
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_unread() {
    let app = spawn_sandbox().await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    let big = "x".repeat(quire_sandbox::rest::MAX_BODY_BYTES + 1);
    let r = rest
        .send(
            rest.request(Method::POST, "/conversations", &w.a_tok)
                .header("content-type", "application/json")
                .body(format!(
                    "{{\"owner_id\": \"{}\", \"title\": \"{big}\"}}",
                    w.a
                )),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body["message"], "Request size limit exceeded");
    assert_eq!(
        count(&app, "select count(*) from public.conversations").await,
        2
    );
}

/// A request whose client goes away while its statement runs leaves no transaction open on
/// the pooled connection: with a pool of one, the next request, a write, runs in a transaction
/// of its own (before, its `BEGIN … READ WRITE` landed inside the abandoned read-only one and
/// failed with 25001), and RLS still scopes B's reads after it.
#[tokio::test]
async fn a_request_abandoned_mid_statement_leaves_no_transaction_behind() {
    let app = quire_testkit::spawn_sandbox_with(|c| c.db.db_pool_size = 1).await;
    let w = world(&app).await;
    let rest = Rest::new(&app);
    app.db
        .admin()
        .await
        .batch_execute(
            "create function public.slow_note() returns text language sql stable \
               as $$ select note from public.canary, pg_sleep(0.5) where id = 1 $$;
             grant execute on function public.slow_note() to authenticated;",
        )
        .await
        .unwrap();

    let abandoned = rest
        .request(Method::GET, "/rpc/slow_note", &w.a_tok)
        .timeout(std::time::Duration::from_millis(150))
        .send()
        .await;
    assert!(
        abandoned.as_ref().is_err_and(reqwest::Error::is_timeout),
        "{abandoned:?}"
    );
    // The abandoned statement finishes on the server meanwhile.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;

    let written = rest
        .post(
            "/canary",
            &w.a_tok,
            &json!({"id": 2, "note": "after"}),
            "return=minimal",
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    assert_eq!(
        count(&app, "select count(*) from public.canary where id = 2").await,
        1
    );
    let seen = rest.get("/documents?select=id", &w.b_tok).await;
    assert_eq!(seen.status, StatusCode::OK);
    let ids: Vec<&str> = seen
        .rows()
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [w.b_doc.to_string()]);
}
