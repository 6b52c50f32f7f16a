//! `/storage/v1`: buckets, uploads (raw, multipart, signed, resumable),
//! downloads with `Range`, signed URLs, listing, deletion — each checked on
//! the HTTP answer, the `storage.objects` rows and the files on disk.
//!
//! Two users in every test: A owns `<A uid>/<doc id>.pdf` in the private
//! bucket `files`, which the harness gives the own-folder policies a Supabase
//! project typically has (insert, select and delete under one's first
//! folder); B (and anon) must never read, list, download, sign, overwrite or
//! delete it, nor write into A's folder. Quire's own `documents` bucket is
//! stricter (db/app/80_document_files.sql): its tests are at the end.
//! Hostile input: keys with `..`, absolute paths, NUL bytes, over-long
//! names; malformed, expired, wrong-secret, `alg: none` and role-tampered
//! tokens; bodies over the limit; clients that go away mid-upload.
//!
//! Each test starts its own sandbox on its own database and data directory
//! (so it can choose the upload limit and look at the files).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use quire_sandbox::jwt::JwtKeys;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use quire_testkit::{Stack, spawn_sandbox_with};

/// The bucket of most tests: private, PDF only, 50 MiB, own-folder policies.
const DOCS: &str = "files";

/// The bucket, and policies as a Supabase project's own-folder examples
/// write them (no UPDATE policy).
const FILES_BUCKET: &str = "
insert into storage.buckets (id, name, public, allowed_mime_types, file_size_limit)
values ('files', 'files', false, array['application/pdf'], 52428800);
create policy own_folder_uploads on storage.objects for insert to authenticated
  with check (bucket_id = 'files' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy own_folder_reads on storage.objects for select to authenticated
  using (bucket_id = 'files' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy own_folder_deletes on storage.objects for delete to authenticated
  using (bucket_id = 'files' and (storage.foldername(name))[1] = (select auth.uid())::text);";

/// A running sandbox (the shared harness's [`Stack`]), its data directory,
/// and ways to poke it.
struct Env {
    app: Stack,
    data_dir: PathBuf,
    keys: JwtKeys,
}

struct User {
    id: Uuid,
    token: String,
}

impl Env {
    async fn start() -> Env {
        Env::with_limit(quire_sandbox::config::DEFAULT_MAX_UPLOAD_BYTES).await
    }

    /// A sandbox whose single-request upload limit is `limit` bytes.
    async fn with_limit(limit: u64) -> Env {
        let mut data_dir = None;
        let app = spawn_sandbox_with(|config| {
            config.max_upload_bytes = limit;
            data_dir = Some(config.data_dir.clone());
        })
        .await;
        app.db
            .admin()
            .await
            .batch_execute(FILES_BUCKET)
            .await
            .expect("the files bucket and its policies");
        let keys = JwtKeys::new(app.sandbox.jwt_secret());
        Env {
            app,
            data_dir: data_dir.expect("the harness passes its config"),
            keys,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/storage/v1{path}", self.app.api_base())
    }

    fn addr(&self) -> SocketAddr {
        self.app.sandbox.addr()
    }

    fn anon(&self) -> String {
        self.app.sandbox.anon_key().expose_secret().to_owned()
    }

    fn service(&self) -> String {
        self.app
            .sandbox
            .service_role_key()
            .expose_secret()
            .to_owned()
    }

    fn sign(&self, claims: &Value) -> String {
        self.keys.sign(claims)
    }

    /// A confirmed user and an access token as GoTrue would issue it.
    async fn user(&self, tag: &str) -> User {
        let id = self
            .app
            .db
            .create_user(&format!("{tag}-{}@example.test", Uuid::new_v4()))
            .await;
        let now = chrono::Utc::now().timestamp();
        let token = self.sign(&json!({
            "sub": id, "role": "authenticated", "aud": "authenticated",
            "iat": now, "exp": now + 3600, "session_id": Uuid::new_v4(),
        }));
        User { id, token }
    }

    /// A request with the anon `apikey` and `token` as the bearer.
    fn req(&self, method: Method, path: &str, token: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(method, self.url(path))
            .header("apikey", self.anon())
            .bearer_auth(token)
    }

    /// A raw-body upload of `bytes` as `application/pdf`.
    async fn upload(
        &self,
        token: &str,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        upsert: bool,
    ) -> reqwest::Response {
        self.req(Method::POST, &format!("/object/{bucket}/{key}"), token)
            .header("content-type", "application/pdf")
            .header("x-upsert", upsert.to_string())
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap()
    }

    async fn download(&self, token: &str, bucket: &str, key: &str) -> reqwest::Response {
        self.req(
            Method::GET,
            &format!("/object/authenticated/{bucket}/{key}"),
            token,
        )
        .send()
        .await
        .unwrap()
    }

    async fn list(&self, token: &str, bucket: &str, body: Value) -> (StatusCode, Value) {
        let res = self
            .req(Method::POST, &format!("/object/list/{bucket}"), token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (res.status(), res.json().await.unwrap())
    }

    /// The `storage.objects` row of `bucket/key`, read as the superuser.
    async fn row(&self, bucket: &str, key: &str) -> Option<Value> {
        self.app
            .db
            .admin()
            .await
            .query_opt(
                "select jsonb_build_object('id', id, 'owner', owner, 'owner_id', owner_id, \
                   'version', version, 'metadata', metadata, 'user_metadata', user_metadata) \
                 from storage.objects where bucket_id = $1 and name = $2",
                &[&bucket, &key],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    }

    async fn row_count(&self) -> i64 {
        self.app
            .count("select count(*) from storage.objects", &[])
            .await
    }

    /// Every file under `<data>/storage/<bucket>`.
    fn object_files(&self, bucket: &str) -> Vec<PathBuf> {
        files_under(&self.data_dir.join("storage").join(bucket))
    }

    /// The file holding `bucket/key` at `version`.
    fn object_file(&self, bucket: &str, key: &str, version: &str) -> PathBuf {
        self.data_dir
            .join("storage")
            .join(bucket)
            .join(key)
            .join(format!("~{version}"))
    }

    /// Temporary files of uploads in flight.
    fn tmp_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir.join("storage-uploads/tmp"))
    }

    /// Files of resumable uploads in progress.
    fn resumable_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir.join("storage-uploads/tus"))
    }

    /// Creates a bucket with the service key.
    async fn create_bucket(&self, body: Value) {
        let res = self
            .req(Method::POST, "/bucket", &self.service())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{}",
            res.text().await.unwrap()
        );
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn pdf(text: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {text}\n%%EOF\n").into_bytes()
}

/// `n` bytes that differ from position to position.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn doc_key(owner: Uuid) -> String {
    format!("{owner}/{}.pdf", Uuid::new_v4())
}

/// Storage's error answer: HTTP status and JSON body.
async fn error_of(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let body = res.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    (status, json)
}

/// Asserts Storage's "HTTP 400, real status in `statusCode`" answer.
async fn assert_storage_error(res: reqwest::Response, status: &str, code: &str) -> Value {
    let (http, body) = error_of(res).await;
    assert_eq!(http, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    body
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Sends raw bytes (a request line with characters a URL library would
/// normalise away) and returns the whole response.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("the server answers")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends a request head and part of its body, then hangs up.
async fn send_and_cut(addr: SocketAddr, head: &str, partial_body: &[u8]) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(partial_body).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
}

fn status_of(raw: &str) -> u16 {
    raw.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

// ----- uploads and downloads -------------------------------------------------

#[tokio::test]
async fn an_upload_is_a_row_as_the_owner_and_a_file_renamed_into_place() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let bytes = pdf("first");

    let res = env.upload(&a.token, DOCS, &key, &bytes, false).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["Key"], format!("{DOCS}/{key}"));

    let row = env.row(DOCS, &key).await.expect("the row exists");
    assert_eq!(body["Id"], row["id"]);
    assert_eq!(row["owner"], a.id.to_string());
    assert_eq!(row["owner_id"], a.id.to_string());
    let md = &row["metadata"];
    assert_eq!(md["size"], bytes.len());
    assert_eq!(md["contentLength"], bytes.len());
    assert_eq!(md["mimetype"], "application/pdf");
    assert_eq!(md["cacheControl"], "no-cache");
    assert_eq!(md["httpStatusCode"], 200);
    assert_eq!(md["eTag"].as_str().unwrap().len(), 34, "a quoted MD5");

    let version = row["version"].as_str().unwrap();
    let file = env.object_file(DOCS, &key, version);
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    assert_eq!(env.object_files(DOCS), vec![file]);
    assert!(env.tmp_files().is_empty());

    for path in [
        format!("/object/authenticated/{DOCS}/{key}"),
        format!("/object/{DOCS}/{key}"),
    ] {
        let res = env.req(Method::GET, &path, &a.token).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/pdf");
        assert_eq!(
            res.headers()["etag"].to_str().unwrap(),
            md["eTag"].as_str().unwrap()
        );
        assert_eq!(res.headers()["accept-ranges"], "bytes");
        assert_eq!(res.headers()["cache-control"], "no-cache");
        assert!(res.headers().contains_key("last-modified"));
        assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
    }

    let info: Value = env
        .req(Method::GET, &format!("/object/info/{DOCS}/{key}"), &a.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["id"], row["id"]);
    assert_eq!(info["name"], key);
    assert_eq!(info["bucket_id"], DOCS);
    assert_eq!(info["version"], version);
    assert_eq!(info["size"], bytes.len());
    assert_eq!(info["content_type"], "application/pdf");
    assert_eq!(info["etag"], md["eTag"]);
}

#[tokio::test]
async fn multipart_uploads_as_supabase_js_sends_them() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let bytes = pdf("multipart");
    let form = reqwest::multipart::Form::new()
        .text("cacheControl", "3600")
        .text("metadata", r#"{"title":"Notes"}"#)
        .part(
            "",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("blob")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let res = env
        .req(Method::POST, &format!("/object/{DOCS}/{key}"), &a.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let row = env.row(DOCS, &key).await.unwrap();
    assert_eq!(row["metadata"]["cacheControl"], "max-age=3600");
    assert_eq!(row["metadata"]["mimetype"], "application/pdf");
    assert_eq!(row["user_metadata"], json!({"title": "Notes"}));
    let res = env.download(&a.token, DOCS, &key).await;
    assert_eq!(res.headers()["cache-control"], "max-age=3600");
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // The bucket takes PDFs only, whichever way the type is given.
    let form = reqwest::multipart::Form::new().part(
        "",
        reqwest::multipart::Part::bytes(b"<html>".to_vec())
            .file_name("x.html")
            .mime_str("text/html")
            .unwrap(),
    );
    let res = env
        .req(
            Method::POST,
            &format!("/object/{DOCS}/{}", doc_key(a.id)),
            &a.token,
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body = assert_storage_error(res, "415", "InvalidMimeType").await;
    assert_eq!(body["error"], "invalid_mime_type");
    assert_eq!(env.row_count().await, 1);
    assert!(env.tmp_files().is_empty());
}

#[tokio::test]
async fn range_requests_get_206_and_416() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let bytes = pattern(1000);
    assert_eq!(
        env.upload(&a.token, DOCS, &key, &bytes, false)
            .await
            .status(),
        StatusCode::OK
    );

    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=500-5000", 500, 999),
    ] {
        let res = env
            .req(
                Method::GET,
                &format!("/object/authenticated/{DOCS}/{key}"),
                &a.token,
            )
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            res.headers()["content-range"],
            format!("bytes {start}-{end}/1000")
        );
        assert_eq!(
            res.headers()["content-length"],
            (end - start + 1).to_string()
        );
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            &bytes[start..=end],
            "{range}"
        );
    }

    let res = env
        .req(Method::GET, &format!("/object/{DOCS}/{key}"), &a.token)
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()["content-range"], "bytes */1000");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["statusCode"], "416");
    assert_eq!(body["code"], "InvalidRange");

    // A range another user asks for is still nothing.
    let b = env.user("b").await;
    let res = env
        .req(Method::GET, &format!("/object/{DOCS}/{key}"), &b.token)
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "404", "NoSuchKey").await;

    let res = env
        .req(
            Method::GET,
            &format!("/object/{DOCS}/{key}?download=my%20notes.pdf"),
            &a.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["content-disposition"],
        "attachment; filename=my%20notes.pdf; filename*=UTF-8''my%20notes.pdf;"
    );
    let res = env
        .req(
            Method::GET,
            &format!("/object/{DOCS}/{key}?download"),
            &a.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-disposition"], "attachment;");
}

// ----- two users -----------------------------------------------------------

/// A's one object, the bytes and row it was stored with, and B.
struct AsObject {
    a: User,
    b: User,
    key: String,
    bytes: Vec<u8>,
    row: Value,
}

async fn a_with_one_object(env: &Env) -> AsObject {
    let a = env.user("a").await;
    let b = env.user("b").await;
    let key = doc_key(a.id);
    let bytes = pdf("a's");
    assert_eq!(
        env.upload(&a.token, DOCS, &key, &bytes, false)
            .await
            .status(),
        StatusCode::OK
    );
    let row = env.row(DOCS, &key).await.unwrap();
    AsObject {
        a,
        b,
        key,
        bytes,
        row,
    }
}

/// A's object is untouched: same row, same bytes, nothing else stored.
async fn assert_untouched(env: &Env, o: &AsObject) {
    let AsObject {
        a, key, bytes, row, ..
    } = o;
    assert_eq!(env.row(DOCS, key).await.unwrap(), *row);
    assert_eq!(env.row_count().await, 1);
    assert_eq!(env.object_files(DOCS).len(), 1);
    assert!(env.tmp_files().is_empty());
    let res = env.download(&a.token, DOCS, key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn b_and_anon_cannot_read_list_or_sign_as_object() {
    let env = Env::start().await;
    let o = a_with_one_object(&env).await;
    let (a, key) = (&o.a, &o.key);
    for token in [&o.b.token, &env.anon()] {
        // Read, info, list, sign, batch sign.
        assert_storage_error(env.download(token, DOCS, key).await, "404", "NoSuchKey").await;
        let res = env
            .req(Method::GET, &format!("/object/info/{DOCS}/{key}"), token)
            .send()
            .await
            .unwrap();
        assert_storage_error(res, "404", "NoSuchKey").await;
        let (status, listed) = env
            .list(token, DOCS, json!({"prefix": a.id.to_string()}))
            .await;
        assert_eq!((status, listed), (StatusCode::OK, json!([])));
        let (_, listed) = env.list(token, DOCS, json!({"prefix": ""})).await;
        assert_eq!(listed, json!([]), "not even A's folder shows");
        let res = env
            .req(Method::POST, &format!("/object/sign/{DOCS}/{key}"), token)
            .json(&json!({"expiresIn": 60}))
            .send()
            .await
            .unwrap();
        assert_storage_error(res, "404", "NoSuchKey").await;
        let signed: Value = env
            .req(Method::POST, &format!("/object/sign/{DOCS}"), token)
            .json(&json!({"expiresIn": 60, "paths": [key]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(signed[0]["signedURL"], Value::Null);
        assert_eq!(
            signed[0]["error"],
            "Either the object does not exist or you do not have access to it"
        );
    }
    assert_untouched(&env, &o).await;
}

#[tokio::test]
async fn b_and_anon_cannot_overwrite_as_object_or_plant_a_file_in_as_folder() {
    let env = Env::start().await;
    let o = a_with_one_object(&env).await;
    let (a, key) = (&o.a, &o.key);
    for token in [&o.b.token, &env.anon()] {
        // Overwrite (upsert), PUT, plant a new file in A's folder, signed upload URL.
        let res = env.upload(token, DOCS, key, &pdf("evil"), true).await;
        assert_storage_error(res, "403", "AccessDenied").await;
        let res = env
            .req(Method::PUT, &format!("/object/{DOCS}/{key}"), token)
            .header("content-type", "application/pdf")
            .body(pdf("evil"))
            .send()
            .await
            .unwrap();
        assert_storage_error(res, "403", "AccessDenied").await;
        let planted = doc_key(a.id);
        let res = env
            .upload(token, DOCS, &planted, &pdf("planted"), false)
            .await;
        let body = assert_storage_error(res, "403", "AccessDenied").await;
        assert_eq!(body["error"], "Unauthorized");
        assert_eq!(
            body["message"],
            "new row violates row-level security policy"
        );
        let res = env
            .req(
                Method::POST,
                &format!("/object/upload/sign/{DOCS}/{planted}"),
                token,
            )
            .send()
            .await
            .unwrap();
        assert_storage_error(res, "403", "AccessDenied").await;
    }
    assert_untouched(&env, &o).await;
}

#[tokio::test]
async fn b_and_anon_cannot_delete_as_object() {
    let env = Env::start().await;
    let o = a_with_one_object(&env).await;
    let key = &o.key;
    for token in [&o.b.token, &env.anon()] {
        // Delete, one and many.
        let res = env
            .req(Method::DELETE, &format!("/object/{DOCS}/{key}"), token)
            .send()
            .await
            .unwrap();
        assert_storage_error(res, "404", "NoSuchKey").await;
        let removed: Value = env
            .req(Method::DELETE, &format!("/object/{DOCS}"), token)
            .json(&json!({"prefixes": [key]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(removed, json!([]));
    }
    assert_untouched(&env, &o).await;
}

#[tokio::test]
async fn a_cannot_write_into_bs_folder() {
    let env = Env::start().await;
    let o = a_with_one_object(&env).await;
    let (a, b) = (&o.a, &o.b);
    // And A cannot write into B's folder either.
    let res = env
        .upload(&a.token, DOCS, &doc_key(b.id), &pdf("x"), false)
        .await;
    assert_storage_error(res, "403", "AccessDenied").await;
    assert_eq!(env.row_count().await, 1);
}

#[tokio::test]
async fn duplicates_and_upserts() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    assert_eq!(
        env.upload(&a.token, DOCS, &key, &pdf("v1"), false)
            .await
            .status(),
        StatusCode::OK
    );

    let res = env.upload(&a.token, DOCS, &key, &pdf("v2"), false).await;
    let body = assert_storage_error(res, "409", "ResourceAlreadyExists").await;
    assert_eq!(body["error"], "Duplicate");
    assert_eq!(body["message"], "The resource already exists");

    // An upsert replaces only where an UPDATE policy lets the user (Storage
    // writes it as INSERT … ON CONFLICT DO UPDATE under the caller's role).
    let update_policies: i64 = env
        .app.db
        .admin()
        .await
        .query_one(
            "select count(*) from pg_policies where schemaname = 'storage' and tablename = 'objects' \
             and cmd in ('UPDATE', 'ALL') and 'authenticated' = any(roles)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let before = env.row(DOCS, &key).await.unwrap();
    let res = env.upload(&a.token, DOCS, &key, &pdf("v3"), true).await;
    let expected = if update_policies > 0 {
        pdf("v3")
    } else {
        pdf("v1")
    };
    if update_policies > 0 {
        assert_eq!(res.status(), StatusCode::OK);
    } else {
        assert_storage_error(res, "403", "AccessDenied").await;
        assert_eq!(env.row(DOCS, &key).await.unwrap(), before);
    }
    let res = env.download(&a.token, DOCS, &key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), expected.as_slice());
    assert_eq!(env.object_files(DOCS).len(), 1);

    // In a bucket the service role writes, an upsert replaces the bytes,
    // keeps the object's id, and leaves one file: the new version's.
    env.create_bucket(json!({"name": "scratch"})).await;
    let service = env.service();
    let res = env
        .upload(&service, "scratch", "notes/a.pdf", &pdf("one"), false)
        .await;
    let first: Value = res.json().await.unwrap();
    let v1 = env.row("scratch", "notes/a.pdf").await.unwrap();
    assert_eq!(v1["owner"], Value::Null, "the service key has no sub");
    let res = env
        .upload(&service, "scratch", "notes/a.pdf", &pdf("two"), false)
        .await;
    assert_storage_error(res, "409", "ResourceAlreadyExists").await;
    let res = env
        .upload(&service, "scratch", "notes/a.pdf", &pdf("two"), true)
        .await;
    let second: Value = res.json().await.unwrap();
    assert_eq!(first["Id"], second["Id"]);
    let v2 = env.row("scratch", "notes/a.pdf").await.unwrap();
    assert_ne!(v1["version"], v2["version"]);
    assert_eq!(
        env.object_files("scratch"),
        vec![env.object_file("scratch", "notes/a.pdf", v2["version"].as_str().unwrap())]
    );
    let res = env
        .req(Method::PUT, "/object/scratch/notes/a.pdf", &service)
        .header("content-type", "text/plain")
        .body("three")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = env.download(&service, "scratch", "notes/a.pdf").await;
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "three");
    assert_eq!(env.object_files("scratch").len(), 1);
}

// ----- signed URLs --------------------------------------------------------------

/// A's two objects, `key` (with the bytes `signed`) and `other`.
async fn a_with_two_objects(env: &Env) -> (User, String, String, Vec<u8>) {
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let other = doc_key(a.id);
    let bytes = pdf("signed");
    env.upload(&a.token, DOCS, &key, &bytes, false).await;
    env.upload(&a.token, DOCS, &other, &pdf("other"), false)
        .await;
    (a, key, other, bytes)
}

/// A's signed URL for `key`, valid 60 s, and its token.
async fn signed_download(env: &Env, a: &User, key: &str) -> (String, String) {
    let signed: Value = env
        .req(
            Method::POST,
            &format!("/object/sign/{DOCS}/{key}"),
            &a.token,
        )
        .json(&json!({"expiresIn": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = signed["signedURL"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("/object/sign/{DOCS}/{key}?token=")),
        "{url}"
    );
    let token = url.split("token=").nth(1).unwrap().to_owned();
    (url, token)
}

#[tokio::test]
async fn a_signed_url_is_the_only_credential_needed_and_names_one_object() {
    let env = Env::start().await;
    let (a, key, other, bytes) = a_with_two_objects(&env).await;
    let (url, token) = signed_download(&env, &a, &key).await;
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["url"], format!("{DOCS}/{key}"));
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        60
    );

    // No Authorization, no apikey: the token is the credential.
    let res = env.app.http.get(env.url(&url)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().contains_key("expires"));
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // The token names one object only.
    let res = env
        .app
        .http
        .get(env.url(&format!("/object/sign/{DOCS}/{other}?token={token}")))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "400", "InvalidSignature").await;
}

#[tokio::test]
async fn expired_foreign_tampered_and_missing_signed_url_tokens_are_refused() {
    let env = Env::start().await;
    let (a, key, other, _) = a_with_two_objects(&env).await;
    let (_, token) = signed_download(&env, &a, &key).await;
    // Expired, foreign-secret, tampered and missing tokens.
    let now = chrono::Utc::now().timestamp();
    let expired =
        env.sign(&json!({"url": format!("{DOCS}/{key}"), "iat": now - 120, "exp": now - 60}));
    let foreign = JwtKeys::new(&SecretString::from(
        "another-project-secret-0123456789abcdef".to_owned(),
    ))
    .sign(&json!({"url": format!("{DOCS}/{key}"), "iat": now, "exp": now + 60}));
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD
        .encode(json!({"url": format!("{DOCS}/{other}"), "exp": now + 60}).to_string());
    let tampered = parts.join(".");
    for (bad, message) in [
        (expired.as_str(), "\"exp\" claim timestamp check failed"),
        (foreign.as_str(), "signature verification failed"),
        (tampered.as_str(), "signature verification failed"),
        ("garbage", "Invalid Compact JWS"),
    ] {
        let res = env
            .app
            .http
            .get(env.url(&format!("/object/sign/{DOCS}/{key}?token={bad}")))
            .send()
            .await
            .unwrap();
        let body = assert_storage_error(res, "400", "InvalidJWT").await;
        assert_eq!(body["message"], message);
    }
    let res = env
        .app
        .http
        .get(env.url(&format!("/object/sign/{DOCS}/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batch_signing_gives_a_url_per_visible_path_and_an_error_for_the_rest() {
    let env = Env::start().await;
    let (a, key, _, bytes) = a_with_two_objects(&env).await;
    // Batch: one URL per visible path, an error for the rest.
    let missing = doc_key(a.id);
    let signed: Value = env
        .req(Method::POST, &format!("/object/sign/{DOCS}"), &a.token)
        .json(&json!({"expiresIn": 60, "paths": [key, missing]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signed[0]["path"], key);
    assert_eq!(signed[0]["error"], Value::Null);
    let res = env
        .app
        .http
        .get(env.url(signed[0]["signedURL"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes.as_slice());
    assert_eq!(signed[1]["signedURL"], Value::Null);
    assert!(signed[1]["error"].is_string());
}

#[tokio::test]
async fn signed_upload_urls() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let signed: Value = env
        .req(
            Method::POST,
            &format!("/object/upload/sign/{DOCS}/{key}"),
            &a.token,
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = signed["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("/object/upload/sign/{DOCS}/{key}?token=")),
        "{url}"
    );
    assert_eq!(url.split("token=").nth(1).unwrap(), signed["token"]);

    // The token is for this key only.
    let res = env
        .app
        .http
        .put(env.url(&format!(
            "/object/upload/sign/{DOCS}/{}?token={}",
            doc_key(a.id),
            signed["token"].as_str().unwrap()
        )))
        .header("content-type", "application/pdf")
        .body(pdf("elsewhere"))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "400", "InvalidSignature").await;
    assert_eq!(env.row_count().await, 0);

    let res = env
        .app
        .http
        .put(env.url(url))
        .header("content-type", "application/pdf")
        .body(pdf("via signed url"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let row = env.row(DOCS, &key).await.unwrap();
    assert_eq!(row["owner"], a.id.to_string(), "the signer owns it");
    let res = env.download(&a.token, DOCS, &key).await;
    assert_eq!(
        res.bytes().await.unwrap().as_ref(),
        pdf("via signed url").as_slice()
    );

    // Without upsert, the same URL cannot replace what it created.
    let res = env
        .app
        .http
        .put(env.url(url))
        .header("content-type", "application/pdf")
        .body(pdf("again"))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "409", "ResourceAlreadyExists").await;
}

// ----- list and delete ------------------------------------------------------------

/// A's folder tree: `a.pdf`, `b.pdf`, `sub/c.pdf`, `sub/deeper/d.pdf`,
/// `other/e.pdf` under A's id.
async fn a_with_a_folder_tree(env: &Env) -> (User, String) {
    let a = env.user("a").await;
    let root = a.id.to_string();
    for name in [
        "b.pdf",
        "a.pdf",
        "sub/c.pdf",
        "sub/deeper/d.pdf",
        "other/e.pdf",
    ] {
        let res = env
            .upload(&a.token, DOCS, &format!("{root}/{name}"), &pdf(name), false)
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }

    (a, root)
}

/// The names of a listing, in its order.
fn names(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_listing_shows_folders_then_files_in_storages_fields() {
    let env = Env::start().await;
    let (a, root) = a_with_a_folder_tree(&env).await;
    let (status, listed) = env
        .list(
            &a.token,
            DOCS,
            json!({"prefix": root, "limit": 100, "offset": 0,
            "sortBy": {"column": "name", "order": "asc"}, "search": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&listed), ["other", "sub", "a.pdf", "b.pdf"]);
    let folder = listed[0].as_object().unwrap();
    let file = listed[2].as_object().unwrap();
    let mut keys: Vec<&String> = file.keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "id",
            "last_accessed_at",
            "metadata",
            "name",
            "updated_at"
        ]
    );
    assert_eq!(folder.keys().count(), 6);
    for field in [
        "id",
        "updated_at",
        "created_at",
        "last_accessed_at",
        "metadata",
    ] {
        assert_eq!(folder[field], Value::Null, "{field}");
    }
    assert_eq!(
        file["id"],
        env.row(DOCS, &format!("{root}/a.pdf")).await.unwrap()["id"]
    );
    assert_eq!(file["metadata"]["mimetype"], "application/pdf");
    assert!(file["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn listings_sort_page_descend_and_search_as_asked() {
    let env = Env::start().await;
    let (a, root) = a_with_a_folder_tree(&env).await;
    let cases = [
        (
            "names descending",
            json!({"prefix": format!("{root}/"), "sortBy": {"column": "name", "order": "desc"}}),
            vec!["sub", "other", "b.pdf", "a.pdf"],
        ),
        (
            "a page",
            json!({"prefix": root, "limit": 2, "offset": 1}),
            vec!["sub", "a.pdf"],
        ),
        (
            "a subfolder",
            json!({"prefix": format!("{root}/sub")}),
            vec!["deeper", "c.pdf"],
        ),
        (
            "a case-insensitive search",
            json!({"prefix": root, "search": "B"}),
            vec!["b.pdf"],
        ),
    ];
    for (case, body, expected) in cases {
        let (_, listed) = env.list(&a.token, DOCS, body).await;
        assert_eq!(names(&listed), expected, "{case}");
    }
}

#[tokio::test]
async fn the_buckets_root_lists_only_the_callers_folder() {
    let env = Env::start().await;
    let (a, root) = a_with_a_folder_tree(&env).await;
    let (_, listed) = env.list(&a.token, DOCS, json!({"prefix": ""})).await;
    assert_eq!(
        listed,
        json!([{"name": root, "id": null, "updated_at": null, "created_at": null,
        "last_accessed_at": null, "metadata": null}])
    );
}

#[tokio::test]
async fn a_hostile_sort_column_is_refused() {
    let env = Env::start().await;
    let (a, root) = a_with_a_folder_tree(&env).await;
    let res = env
        .req(Method::POST, &format!("/object/list/{DOCS}"), &a.token)
        .json(&json!({"prefix": root, "sortBy": {"column": "name; drop table storage.objects"}}))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "400", "InvalidRequest").await;
    assert_eq!(env.row_count().await, 5);
}

#[tokio::test]
async fn deletes_remove_rows_then_files() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let root = a.id;
    for name in ["x.pdf", "y.pdf", "sub/z.pdf"] {
        env.upload(&a.token, DOCS, &format!("{root}/{name}"), &pdf(name), false)
            .await;
    }
    let res = env
        .req(
            Method::DELETE,
            &format!("/object/{DOCS}/{root}/x.pdf"),
            &a.token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"message": "Successfully deleted"})
    );
    assert!(env.row(DOCS, &format!("{root}/x.pdf")).await.is_none());
    assert!(
        !env.data_dir
            .join(format!("storage/{DOCS}/{root}/x.pdf"))
            .exists()
    );

    let removed: Value = env
        .req(Method::DELETE, &format!("/object/{DOCS}"), &a.token)
        .json(&json!({"prefixes": [format!("{root}/y.pdf"), format!("{root}/sub/z.pdf"), format!("{root}/nope.pdf")]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<&str> = removed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!("{root}/sub/z.pdf"), format!("{root}/y.pdf")]
    );
    assert_eq!(removed[0]["bucket_id"], DOCS);
    assert_eq!(removed[0]["owner"], root.to_string());
    assert_eq!(env.row_count().await, 0);
    assert!(env.object_files(DOCS).is_empty());
    assert!(
        !env.data_dir.join(format!("storage/{DOCS}/{root}")).exists(),
        "empty folders go too"
    );

    let res = env
        .req(
            Method::DELETE,
            &format!("/object/{DOCS}/{root}/x.pdf"),
            &a.token,
        )
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "404", "NoSuchKey").await;
    let res = env
        .req(Method::DELETE, &format!("/object/{DOCS}"), &a.token)
        .json(&json!({"prefixes": []}))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "400", "InvalidRequest").await;
}

// ----- buckets ---------------------------------------------------------------------

/// The service role creates a public, image-only "avatars" bucket of 1 MB.
async fn with_avatars(env: &Env) {
    env.create_bucket(json!({"id": "avatars", "name": "avatars", "public": true,
        "file_size_limit": "1MB", "allowed_mime_types": ["image/*"]}))
        .await;
}

async fn get_json(env: &Env, path: &str, token: &str) -> Value {
    env.req(Method::GET, path, token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn bucket_ids(listed: &Value) -> Vec<&str> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_service_role_creates_reads_and_lists_buckets() {
    let env = Env::start().await;
    with_avatars(&env).await;
    let bucket = get_json(&env, "/bucket/avatars", &env.service()).await;
    assert_eq!(bucket["id"], "avatars");
    assert_eq!(bucket["public"], true);
    assert_eq!(bucket["file_size_limit"], 1_000_000);
    assert_eq!(bucket["allowed_mime_types"], json!(["image/*"]));
    let all = get_json(&env, "/bucket", &env.service()).await;
    assert_eq!(bucket_ids(&all), ["avatars", "documents", DOCS]);
}

#[tokio::test]
async fn a_bucket_name_already_taken_is_a_conflict() {
    let env = Env::start().await;
    with_avatars(&env).await;
    let res = env
        .req(Method::POST, "/bucket", &env.service())
        .json(&json!({"name": "avatars"}))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "409", "BucketAlreadyExists").await;
}

#[tokio::test]
async fn users_and_anon_cannot_create_buckets() {
    let env = Env::start().await;
    let a = env.user("a").await;
    for token in [&a.token, &env.anon()] {
        let res = env
            .req(Method::POST, "/bucket", token)
            .json(&json!({"name": "mine"}))
            .send()
            .await
            .unwrap();
        assert_storage_error(res, "403", "AccessDenied").await;
    }
}

#[tokio::test]
async fn a_signed_in_user_reads_the_documents_bucket_and_no_other() {
    let env = Env::start().await;
    let a = env.user("a").await;
    with_avatars(&env).await;
    // A signed-in user reads Quire's documents bucket (its size limit) and
    // no other.
    let listed = get_json(&env, "/bucket", &a.token).await;
    assert_eq!(bucket_ids(&listed), ["documents"]);
    let documents = get_json(&env, "/bucket/documents", &a.token).await;
    assert_eq!(documents["file_size_limit"], 52_428_800);
    let res = env
        .req(Method::GET, "/bucket/avatars", &a.token)
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "404", "NoSuchBucket").await;
}

#[tokio::test]
async fn anon_reads_no_bucket_not_even_a_public_one() {
    let env = Env::start().await;
    with_avatars(&env).await;
    let listed = get_json(&env, "/bucket", &env.anon()).await;
    assert_eq!(listed, json!([]));
    let res = env
        .req(Method::GET, "/bucket/documents", &env.anon())
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "404", "NoSuchBucket").await;
}

#[tokio::test]
async fn a_missing_bucket_is_not_found_and_takes_no_upload() {
    let env = Env::start().await;
    let res = env
        .req(Method::GET, "/bucket/nope", &env.service())
        .send()
        .await
        .unwrap();
    let body = assert_storage_error(res, "404", "NoSuchBucket").await;
    assert_eq!(body["message"], "Bucket not found");
    let res = env
        .upload(&env.service(), "nope", "a.pdf", &pdf("x"), false)
        .await;
    assert_storage_error(res, "404", "NoSuchBucket").await;
}

#[tokio::test]
async fn a_bucket_name_with_a_path_in_it_is_invalid() {
    let env = Env::start().await;
    let res = env
        .req(Method::POST, "/bucket", &env.service())
        .json(&json!({"name": "../escape"}))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "400", "InvalidBucketName").await;
}

#[tokio::test]
async fn public_buckets_serve_without_a_token_and_private_ones_never_do() {
    let env = Env::start().await;
    let a = env.user("a").await;
    with_avatars(&env).await;
    let res = env
        .req(Method::POST, "/object/avatars/me.png", &env.service())
        .header("content-type", "image/png")
        .body(vec![1u8, 2, 3])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = env
        .app
        .http
        .get(env.url("/object/public/avatars/me.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), &[1u8, 2, 3]);
    let key = doc_key(a.id);
    env.upload(&a.token, DOCS, &key, &pdf("private"), false)
        .await;
    let res = env
        .app
        .http
        .get(env.url(&format!("/object/public/{DOCS}/{key}")))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "404", "NoSuchBucket").await;
}

// ----- hostile input -------------------------------------------------------------------

#[tokio::test]
async fn hostile_keys_are_invalid_and_store_nothing() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let long = format!("{}/{}.pdf", a.id, "x".repeat(1100));
    let encoded_traversal = format!("{}%2F..%2F{}%2Fx.pdf", a.id, b.id);
    for key in [
        encoded_traversal.as_str(),
        "%00evil.pdf",
        &long,
        &format!("{}/caf%C3%A9.pdf", a.id),
    ] {
        let res = env.upload(&a.token, DOCS, key, &pdf("x"), false).await;
        let body = assert_storage_error(res, "400", "InvalidKey").await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid key: "),
            "{body}"
        );
    }

    // Literal `..`, `.` and an absolute path, sent as raw request lines (a
    // URL library would normalise them away).
    let anon = env.anon();
    for path in [
        format!("/storage/v1/object/{DOCS}/{}/../{}/x.pdf", a.id, b.id),
        format!("/storage/v1/object/{DOCS}/../../jwt_secret"),
        format!("/storage/v1/object/{DOCS}/{}/./x.pdf", a.id),
        format!("/storage/v1/object/{DOCS}//etc/passwd"),
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\napikey: {anon}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/pdf\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
            env.addr(),
            a.token
        );
        let raw = raw_exchange(env.addr(), request.as_bytes()).await;
        assert_eq!(status_of(&raw), 400, "{path}: {raw}");
        assert!(raw.contains("\"InvalidKey\""), "{path}: {raw}");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            env.addr(),
            a.token
        );
        let raw = raw_exchange(env.addr(), request.as_bytes()).await;
        assert_eq!(status_of(&raw), 400, "{path}: {raw}");
        assert!(
            !raw.contains("%PDF") && !raw.contains(env.keys_secret_hint()),
            "{raw}"
        );
    }

    // The same keys through the resumable endpoint.
    for key in [
        format!("{}/../{}/x.pdf", a.id, b.id),
        "/etc/passwd".to_owned(),
        "a\0b".to_owned(),
    ] {
        let res = tus_create(&env, &a.token, DOCS, &key, 10, &[]).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.text().await.unwrap().starts_with("Invalid key: "));
    }

    assert_eq!(env.row_count().await, 0);
    assert!(env.object_files(DOCS).is_empty());
    assert!(env.tmp_files().is_empty());
    assert!(env.resumable_files().is_empty());
    assert!(files_under(&env.data_dir.join("storage")).is_empty());
}

impl Env {
    /// A prefix of the JWT secret, to check no answer ever carries it.
    fn keys_secret_hint(&self) -> &str {
        &self.app.sandbox.jwt_secret().expose_secret()[..16]
    }
}

#[tokio::test]
async fn hostile_tokens_are_refused_and_do_nothing() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    env.upload(&a.token, DOCS, &key, &pdf("a"), false).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |role: &str, exp: i64| json!({"sub": a.id, "role": role, "aud": "authenticated", "iat": now, "exp": exp});

    let expired = env.sign(&claims("authenticated", now - 10));
    let foreign = JwtKeys::new(&SecretString::from(
        "another-project-secret-0123456789abcdef".to_owned(),
    ))
    .sign(&claims("service_role", now + 600));
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims("service_role", now + 600).to_string())
    );
    let parts: Vec<&str> = a.token.split('.').collect();
    let role_tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims("service_role", now + 600).to_string()),
        parts[2]
    );
    let refused = [
        ("not.a.jwt", "Invalid Compact JWS"),
        ("", "Invalid Compact JWS"),
        (expired.as_str(), "\"exp\" claim timestamp check failed"),
        (foreign.as_str(), "signature verification failed"),
        (
            alg_none.as_str(),
            "\"alg\" (Algorithm) Header Parameter value not allowed",
        ),
        (role_tampered.as_str(), "signature verification failed"),
    ];
    for (token, message) in refused {
        let mut requests = vec![
            env.app
                .http
                .post(env.url(&format!("/object/{DOCS}/{}", doc_key(a.id))))
                .body(pdf("x")),
            env.app.http.get(env.url(&format!("/object/{DOCS}/{key}"))),
            env.app
                .http
                .post(env.url(&format!("/object/list/{DOCS}")))
                .json(&json!({"prefix": a.id.to_string()})),
            env.app
                .http
                .post(env.url(&format!("/object/sign/{DOCS}/{key}")))
                .json(&json!({"expiresIn": 60})),
            env.app
                .http
                .delete(env.url(&format!("/object/{DOCS}/{key}"))),
            env.app.http.get(env.url("/bucket")),
        ];
        for request in requests.drain(..) {
            let request = if token.is_empty() {
                request
            } else {
                request.bearer_auth(token)
            };
            let res = request
                .header("content-type", "application/pdf")
                .send()
                .await
                .unwrap();
            let body = assert_storage_error(res, "403", "AccessDenied").await;
            assert_eq!(body["error"], "Unauthorized");
            assert_eq!(body["message"], message, "{token}");
        }
        let res = tus_create(&env, token, DOCS, &doc_key(a.id), 10, &[]).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }

    // Correctly signed, but a role Storage will not assume.
    for role in ["postgres", "supabase_storage_admin"] {
        let token = env.sign(&claims(role, now + 600));
        let res = env.download(&token, DOCS, &key).await;
        let (status, body) = error_of(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["statusCode"], "403");
    }

    assert_eq!(env.row_count().await, 1);
    assert_eq!(env.object_files(DOCS).len(), 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_leaves_nothing() {
    let env = Env::with_limit(64 * 1024).await;
    let a = env.user("a").await;

    // Declared too large: refused before the body is read.
    let res = env
        .upload(
            &a.token,
            DOCS,
            &doc_key(a.id),
            &pattern(64 * 1024 + 1),
            false,
        )
        .await;
    let body = assert_storage_error(res, "413", "EntityTooLarge").await;
    assert_eq!(body["error"], "Payload too large");
    assert_eq!(
        body["message"],
        "The object exceeded the maximum allowed size"
    );

    // Streamed without a length: cut off at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(pattern(8 * 1024))).collect();
    let res = env
        .req(
            Method::POST,
            &format!("/object/{DOCS}/{}", doc_key(a.id)),
            &a.token,
        )
        .header("content-type", "application/pdf")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "413", "EntityTooLarge").await;

    // In a form.
    let form = reqwest::multipart::Form::new().part(
        "",
        reqwest::multipart::Part::bytes(pattern(100 * 1024))
            .file_name("big.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let res = env
        .req(
            Method::POST,
            &format!("/object/{DOCS}/{}", doc_key(a.id)),
            &a.token,
        )
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_storage_error(res, "413", "EntityTooLarge").await;

    // Exactly the limit is fine.
    let res = env
        .upload(&a.token, DOCS, &doc_key(a.id), &pattern(64 * 1024), false)
        .await;
    assert_eq!(res.status(), StatusCode::OK);

    assert_eq!(env.row_count().await, 1);
    assert_eq!(env.object_files(DOCS).len(), 1);
    wait_until("temporary files are gone", || env.tmp_files().is_empty()).await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let head = format!(
        "POST /storage/v1/object/{DOCS}/{key} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
        env.addr(),
        a.token,
        1024 * 1024
    );
    send_and_cut(env.addr(), &head, &pattern(300 * 1024)).await;
    wait_until("the cut upload's temporary file is gone", || {
        env.tmp_files().is_empty()
    })
    .await;
    assert!(env.row(DOCS, &key).await.is_none());
    assert!(env.object_files(DOCS).is_empty());

    // Multipart, cut in the middle of the file part.
    let boundary = "quireboundary";
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"\"; filename=\"blob\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let head = format!(
        "POST /storage/v1/object/{DOCS}/{key} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{part_head}",
        env.addr(),
        a.token,
        part_head.len() + 1024 * 1024
    );
    send_and_cut(env.addr(), &head, &pattern(200 * 1024)).await;
    wait_until("the cut form's temporary file is gone", || {
        env.tmp_files().is_empty()
    })
    .await;
    assert!(env.row(DOCS, &key).await.is_none());
    assert!(env.object_files(DOCS).is_empty());

    // The server is fine afterwards, and the key is still free.
    let res = env.upload(&a.token, DOCS, &key, &pdf("whole"), false).await;
    assert_eq!(res.status(), StatusCode::OK);
}

// ----- resumable uploads (TUS) ----------------------------------------------------------------

fn tus_metadata(bucket: &str, key: &str, content_type: &str) -> String {
    format!(
        "bucketName {},objectName {},contentType {},cacheControl {},metadata {}",
        STANDARD.encode(bucket),
        STANDARD.encode(key),
        STANDARD.encode(content_type),
        STANDARD.encode("3600"),
        STANDARD.encode(r#"{"source":"tus"}"#),
    )
}

async fn tus_create(
    env: &Env,
    token: &str,
    bucket: &str,
    key: &str,
    length: usize,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = env
        .app
        .http
        .post(env.url("/upload/resumable"))
        .header("apikey", env.anon())
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header(
            "upload-metadata",
            tus_metadata(bucket, key, "application/pdf"),
        );
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

async fn tus_patch(
    env: &Env,
    token: &str,
    location: &str,
    offset: usize,
    chunk: &[u8],
) -> reqwest::Response {
    env.app
        .http
        .patch(location)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-offset", offset.to_string())
        .header("content-type", "application/offset+octet-stream")
        .body(chunk.to_vec())
        .send()
        .await
        .unwrap()
}

async fn tus_offset(env: &Env, token: &str, location: &str) -> (StatusCode, Option<usize>) {
    let res = env
        .app
        .http
        .head(location)
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    let offset = res
        .headers()
        .get("upload-offset")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (res.status(), offset)
}

/// The path and query of a TUS `Location`, for raw requests.
fn path_of(location: &str) -> &str {
    &location[location.find("/storage/v1/").unwrap()..]
}

#[tokio::test]
async fn a_resumable_upload_resumes_after_a_cut() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let file = pattern(1024 * 1024 + 123);

    let res = tus_create(&env, &a.token, DOCS, &key, file.len(), &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["tus-resumable"], "1.0.0");
    assert!(res.headers().contains_key("upload-expires"));
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!(
            "{}/storage/v1/upload/resumable/",
            env.app.api_base()
        )),
        "{location}"
    );
    let id = location.rsplit('/').next().unwrap();
    let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(id).unwrap()).unwrap();
    assert!(decoded.starts_with(&format!("{DOCS}/{key}/")), "{decoded}");
    assert_eq!(
        tus_offset(&env, &a.token, &location).await,
        (StatusCode::OK, Some(0))
    );

    // First chunk, whole.
    let chunk = 200 * 1024;
    let res = tus_patch(&env, &a.token, &location, 0, &file[..chunk]).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["upload-offset"], chunk.to_string());

    // Second chunk, cut half-way: the client goes away.
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: {chunk}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {chunk}\r\n\r\n",
        path_of(&location),
        env.addr(),
        a.token
    );
    send_and_cut(env.addr(), &head, &file[chunk..chunk + chunk / 2]).await;

    // Nothing is stored yet: no row, no object, no temporary file.
    assert!(env.row(DOCS, &key).await.is_none());
    assert!(env.object_files(DOCS).is_empty());
    assert!(env.tmp_files().is_empty());

    // Resume as a TUS client does: HEAD, then PATCH from there; a 409
    // (the cut request still finishing) means ask again.
    let mut offset = 0;
    for _ in 0..100 {
        let (status, at) = tus_offset(&env, &a.token, &location).await;
        assert_eq!(status, StatusCode::OK);
        offset = at.unwrap();
        assert!(offset >= chunk && offset <= chunk + chunk / 2, "{offset}");
        let end = (offset + chunk).min(file.len());
        let res = tus_patch(&env, &a.token, &location, offset, &file[offset..end]).await;
        if res.status() == StatusCode::CONFLICT {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(
            res.status(),
            StatusCode::NO_CONTENT,
            "{}",
            res.text().await.unwrap()
        );
        offset = end;
        break;
    }
    while offset < file.len() {
        let end = (offset + chunk).min(file.len());
        let res = tus_patch(&env, &a.token, &location, offset, &file[offset..end]).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        assert_eq!(res.headers()["upload-offset"], end.to_string());
        if end == file.len() {
            assert_eq!(res.headers()["tus-complete"], "1");
        }
        offset = end;
    }

    let row = env.row(DOCS, &key).await.expect("the upload's row");
    assert_eq!(row["owner"], a.id.to_string());
    assert_eq!(row["metadata"]["size"], file.len());
    assert_eq!(row["metadata"]["cacheControl"], "max-age=3600");
    assert_eq!(row["user_metadata"], json!({"source": "tus"}));
    assert!(decoded.ends_with(row["version"].as_str().unwrap()));
    let stored = env.object_file(DOCS, &key, row["version"].as_str().unwrap());
    assert_eq!(std::fs::read(stored).unwrap(), file, "bytes identical");
    let res = env.download(&a.token, DOCS, &key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), file.as_slice());
    assert!(env.tmp_files().is_empty());
    assert!(
        env.resumable_files()
            .iter()
            .all(|p| p.ends_with("info.json")),
        "only the completed upload's record stays: {:?}",
        env.resumable_files()
    );

    // A finished upload reports itself complete.
    assert_eq!(
        tus_offset(&env, &a.token, &location).await,
        (StatusCode::OK, Some(file.len()))
    );
}

/// A's resumable upload of `len` bytes to `key`, created: its location.
async fn started_upload(env: &Env, a: &User, key: &str, len: usize) -> String {
    let res = tus_create(env, &a.token, DOCS, key, len, &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn b_and_anon_cannot_start_a_resumable_upload_into_as_folder() {
    let env = Env::with_limit(100 * 1024).await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let key = doc_key(a.id);
    let file = pattern(100 * 1024);

    // B cannot start an upload into A's folder; anon neither.
    let res = tus_create(&env, &b.token, DOCS, &key, file.len(), &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        res.text().await.unwrap(),
        "new row violates row-level security policy"
    );
    let res = tus_create(&env, &env.anon(), DOCS, &key, file.len(), &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn malformed_resumable_creations_get_tus_errors() {
    let env = Env::with_limit(100 * 1024).await;
    let a = env.user("a").await;
    let key = doc_key(a.id);

    // Protocol errors.
    let res = env
        .app
        .http
        .post(env.url("/upload/resumable"))
        .bearer_auth(&a.token)
        .header("upload-length", "10")
        .header(
            "upload-metadata",
            tus_metadata(DOCS, &key, "application/pdf"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    let res = env
        .app
        .http
        .post(env.url("/upload/resumable"))
        .bearer_auth(&a.token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "10")
        .header("upload-metadata", "bucketName !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = tus_create(&env, &a.token, "nope", &key, 10, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.text().await.unwrap(), "Bucket not found");
}

#[tokio::test]
async fn only_the_creator_sees_or_writes_a_resumable_upload() {
    let env = Env::with_limit(100 * 1024).await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let key = doc_key(a.id);
    let file = pattern(100 * 1024);
    let location = started_upload(&env, &a, &key, file.len()).await;

    // Only the creator sees or writes the upload.
    assert_eq!(
        tus_offset(&env, &b.token, &location).await.0,
        StatusCode::NOT_FOUND
    );
    let res = tus_patch(&env, &b.token, &location, 0, &file[..10]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = env
        .app
        .http
        .delete(&location)
        .bearer_auth(&b.token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_wrong_offset_or_a_chunk_past_the_end_is_refused() {
    let env = Env::with_limit(100 * 1024).await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let file = pattern(100 * 1024);
    let location = started_upload(&env, &a, &key, file.len()).await;

    // Wrong offset, chunk past the end.
    let res = tus_patch(&env, &a.token, &location, 5, &file[..10]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.text().await.unwrap(), "Upload-Offset conflict\n");
    let res = tus_patch(&env, &a.token, &location, 0, &file[..60 * 1024]).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = tus_patch(&env, &a.token, &location, 60 * 1024, &pattern(50 * 1024)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.text().await.unwrap(), "upload's size exceeded\n");
}

#[tokio::test]
async fn a_second_writer_mid_chunk_gets_409_and_the_first_completes_the_upload() {
    let env = Env::with_limit(100 * 1024).await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let file = pattern(100 * 1024);
    let location = started_upload(&env, &a, &key, file.len()).await;
    let res = tus_patch(&env, &a.token, &location, 0, &file[..60 * 1024]).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // A second writer while one is mid-chunk: 409.
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: {}\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        path_of(&location),
        env.addr(),
        a.token,
        60 * 1024,
        40 * 1024
    );
    let mut first = tokio::net::TcpStream::connect(env.addr()).await.unwrap();
    first.write_all(head.as_bytes()).await.unwrap();
    first.write_all(&file[60 * 1024..70 * 1024]).await.unwrap();
    first.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let res = tus_patch(&env, &a.token, &location, 60 * 1024, &file[60 * 1024..]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    // The first writer finishes its chunk and completes the upload.
    first.write_all(&file[70 * 1024..]).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = first.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert_eq!(status_of(&answer), 204, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("tus-complete: 1"),
        "{answer}"
    );
    let res = env.download(&a.token, DOCS, &key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), file.as_slice());
}

#[tokio::test]
async fn a_finished_resumable_upload_cannot_be_terminated_nor_its_key_created_again() {
    let env = Env::with_limit(100 * 1024).await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let file = pattern(100 * 1024);
    let location = started_upload(&env, &a, &key, file.len()).await;
    let res = tus_patch(&env, &a.token, &location, 0, &file).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);

    // A finished upload cannot be terminated; an existing key cannot be
    // uploaded again without upsert.
    let res = env
        .app
        .http
        .delete(&location)
        .bearer_auth(&a.token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = tus_create(&env, &a.token, DOCS, &key, 10, &[]).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.text().await.unwrap(), "The resource already exists");
}

#[tokio::test]
async fn tus_options_need_no_token() {
    let env = Env::with_limit(100 * 1024).await;
    // OPTIONS needs no token.
    let res = env
        .app
        .http
        .request(Method::OPTIONS, env.url("/upload/resumable"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["tus-version"], "1.0.0");
    assert!(
        res.headers()["tus-extension"]
            .to_str()
            .unwrap()
            .contains("creation")
    );
}

#[tokio::test]
async fn a_resumable_upload_over_the_global_limit_is_refused_at_creation() {
    // Storage's TUS `maxSize` is the global FILE_SIZE_LIMIT (or the bucket's,
    // when lower): resumable uploads are no way around it.
    let env = Env::with_limit(64 * 1024).await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let key = doc_key(a.id);

    let res = tus_create(&env, &a.token, DOCS, &key, 64 * 1024 + 1, &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.text().await.unwrap(), "Maximum size exceeded\n");
    assert!(env.row(DOCS, &key).await.is_none());
    assert!(env.resumable_files().is_empty(), "no upload was created");
    let res = env.download(&b.token, DOCS, &key).await;
    assert_ne!(res.status(), StatusCode::OK, "B sees nothing");

    let res = env
        .app
        .http
        .request(Method::OPTIONS, env.url("/upload/resumable"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["tus-max-size"], (64 * 1024).to_string());

    let res = tus_create(&env, &a.token, DOCS, &key, 64 * 1024, &[]).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_bucket_limit_below_the_global_one_applies_to_every_upload() {
    let env = Env::start().await;
    env.create_bucket(json!({"id": "small", "name": "small", "file_size_limit": 1000}))
        .await;
    let service = env.service();

    let res = env
        .upload(&service, "small", "big.pdf", &pattern(1001), false)
        .await;
    let body = assert_storage_error(res, "413", "EntityTooLarge").await;
    assert_eq!(body["error"], "Payload too large");
    assert_eq!(
        body["message"],
        "The object exceeded the maximum allowed size"
    );
    let res = tus_create(&env, &service, "small", "big.pdf", 1001, &[]).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.text().await.unwrap(), "Maximum size exceeded\n");
    assert!(env.row("small", "big.pdf").await.is_none());

    let res = env
        .upload(&service, "small", "fits.pdf", &pattern(1000), false)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_abandoned_resumable_upload_stores_nothing() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let key = doc_key(a.id);
    let res = tus_create(&env, &a.token, DOCS, &key, 500 * 1024, &[]).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let head = format!(
        "PATCH {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTus-Resumable: 1.0.0\r\n\
         Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        path_of(&location),
        env.addr(),
        a.token,
        500 * 1024
    );
    send_and_cut(env.addr(), &head, &pattern(100 * 1024)).await;

    // What arrived is kept for a resume, and nothing else exists.
    let mut offset = None;
    for _ in 0..100 {
        let at = tus_offset(&env, &a.token, &location).await.1;
        if at == offset && at.is_some() {
            break;
        }
        offset = at;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let offset = offset.unwrap();
    assert!(offset <= 100 * 1024);
    assert!(env.row(DOCS, &key).await.is_none());
    assert!(env.object_files(DOCS).is_empty());
    assert!(env.tmp_files().is_empty());
    let staged: u64 = env
        .resumable_files()
        .iter()
        .filter(|p| p.ends_with("data"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(staged, offset as u64);

    // Terminating it removes what was staged.
    let res = env
        .app
        .http
        .delete(&location)
        .bearer_auth(&a.token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(env.resumable_files().is_empty());
    assert_eq!(
        tus_offset(&env, &a.token, &location).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(env.row_count().await, 0);
}

/// Storage validates bodies with Fastify's ajv (`coerceTypes`): a number or
/// boolean sent as a string (supabase-py sends `expiresIn` as one) is read as
/// the type the schema asks for; what cannot be coerced is still refused.
#[tokio::test]
async fn json_types_are_coerced_as_storage_does() {
    let env = Env::start().await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let key = doc_key(a.id);
    env.upload(&a.token, DOCS, &key, &pdf("coerced"), false)
        .await;
    let sign = |token: &str, body: Value| {
        env.req(Method::POST, &format!("/object/sign/{DOCS}/{key}"), token)
            .json(&body)
            .send()
    };

    // A's "60" is 60 seconds, on one URL and on the batch route.
    let signed: Value = sign(&a.token, json!({"expiresIn": "60"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = signed["signedURL"].as_str().expect("a signed URL");
    let token = url.split("token=").nth(1).unwrap();
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        payload["exp"].as_i64().unwrap() - payload["iat"].as_i64().unwrap(),
        60
    );
    let batch: Value = env
        .req(Method::POST, &format!("/object/sign/{DOCS}"), &a.token)
        .json(&json!({"expiresIn": "60", "paths": [key]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(batch[0]["signedURL"].is_string(), "{batch}");

    // B still cannot sign A's object, coerced or not.
    let res = sign(&b.token, json!({"expiresIn": "60"})).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Not integers, even as strings.
    for bad in [json!("1.5"), json!("sixty"), json!(""), json!([60, 61])] {
        let res = sign(&a.token, json!({"expiresIn": bad})).await.unwrap();
        let (status, body) = error_of(res).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["message"], "body/expiresIn must be integer", "{bad}");
    }

    // A bucket's "public": "true" is true.
    env.create_bucket(json!({"id": "shown", "name": "shown", "public": "true"}))
        .await;
    let bucket: Value = env
        .req(Method::GET, "/bucket/shown", &env.service())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bucket["public"], true);
}

// ----- when an upload is checked, and how it is written -------------------------------------

/// An upload sent as far as `sent` bytes of a `length`-byte body, on a raw
/// connection, after Storage has checked it: its body is being received.
struct HalfUpload {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl HalfUpload {
    async fn start(env: &Env, token: &str, bucket: &str, key: &str, body: Vec<u8>) -> HalfUpload {
        let head = format!(
            "POST /storage/v1/object/{bucket}/{key} HTTP/1.1\r\nHost: {}\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/pdf\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            env.addr(),
            body.len()
        );
        let (first, rest) = body.split_at(body.len() / 2);
        let mut stream = tokio::net::TcpStream::connect(env.addr()).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first).await.unwrap();
        stream.flush().await.unwrap();
        // Storage reads the body only after the caller's right to write the
        // key was checked; the body lands in a temporary file.
        wait_until("the first upload's body is being received", || {
            !env.tmp_files().is_empty()
        })
        .await;
        HalfUpload {
            stream,
            rest: rest.to_vec(),
        }
    }

    /// Sends the rest of the body; the answer's status and body.
    async fn finish(mut self) -> (u16, String) {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), self.stream.read_to_end(&mut out))
            .await
            .expect("the server answers")
            .unwrap();
        let raw = String::from_utf8_lossy(&out).into_owned();
        let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (status_of(&raw), body)
    }
}

/// `%PDF-` and a body of `len` bytes in all.
fn pdf_of_len(tag: u8, len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.resize(len, tag);
    bytes
}

#[tokio::test]
async fn an_upload_is_checked_before_its_body_and_its_row_written_by_the_super_user() {
    // Storage checks the caller's right with a rolled-back probe before it
    // reads the body, then writes the row as its super user with an upsert
    // (supabase/storage `Uploader.canUpload`, `completeUpload`): of two
    // uploads that both passed the check, the one that ends last is the
    // object, though the bucket has no UPDATE policy.
    let env = Env::start().await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let key = doc_key(a.id);
    let b_key = doc_key(b.id);
    assert_eq!(
        env.upload(&b.token, DOCS, &b_key, &pdf("b's"), false)
            .await
            .status(),
        StatusCode::OK
    );

    // Act: the first upload passes its check; a second one to the same key
    // is stored meanwhile; then the first one's body ends.
    let first = HalfUpload::start(&env, &a.token, DOCS, &key, pdf_of_len(b'1', 512 * 1024)).await;
    let second = env
        .upload(&a.token, DOCS, &key, &pdf("second"), false)
        .await;
    assert_eq!(second.status(), StatusCode::OK);
    let (status, body) = first.finish().await;

    // Assert: no UPDATE policy, yet the first upload replaced the second.
    assert_eq!(status, 200, "{body}");
    let stored = env.download(&a.token, DOCS, &key).await;
    assert_eq!(
        stored.bytes().await.unwrap().as_ref(),
        pdf_of_len(b'1', 512 * 1024).as_slice()
    );
    assert_eq!(env.object_files(DOCS).len(), 2, "A's one version and B's");
    let res = env.download(&b.token, DOCS, &b_key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), pdf("b's").as_slice());
    let res = env.download(&b.token, DOCS, &key).await;
    assert_ne!(res.status(), StatusCode::OK, "B never reads A's object");
}

/// A document of `owner`, `uploading`, as the companion registers it; its
/// storage path.
async fn uploading_document(env: &Env, owner: Uuid) -> String {
    let id: Uuid = env
        .app
        .db
        .admin()
        .await
        .query_one(
            "insert into public.documents (owner_id, title, byte_size) values ($1, 'Manual', 1) \
             returning id",
            &[&owner],
        )
        .await
        .unwrap()
        .get(0);
    format!("{owner}/{id}.pdf")
}

#[tokio::test]
async fn a_documents_file_is_written_once_even_by_an_upload_that_passed_its_check() {
    // Arrange: Quire's bucket (db/app/80_document_files.sql).
    let env = Env::start().await;
    let a = env.user("a").await;
    let b = env.user("b").await;
    let a_key = uploading_document(&env, a.id).await;
    let b_key = uploading_document(&env, b.id).await;
    let b_upload = env
        .upload(&b.token, "documents", &b_key, &pdf("b's"), false)
        .await;
    assert_eq!(b_upload.status(), StatusCode::OK);

    // Act: A's first upload passes its check; a second one is stored (and
    // would be the one the companion checks); then the first one ends.
    let first = HalfUpload::start(
        &env,
        &a.token,
        "documents",
        &a_key,
        pdf_of_len(b'1', 512 * 1024),
    )
    .await;
    let second = env
        .upload(&a.token, "documents", &a_key, &pdf("checked"), false)
        .await;
    assert_eq!(second.status(), StatusCode::OK);
    let (status, body) = first.finish().await;
    let upsert = env
        .upload(&a.token, "documents", &a_key, &pdf("upsert"), true)
        .await;
    let delete = env
        .req(
            Method::DELETE,
            &format!("/object/documents/{a_key}"),
            &a.token,
        )
        .send()
        .await
        .unwrap();
    let elsewhere = env
        .upload(&a.token, "documents", &doc_key(a.id), &pdf("x"), false)
        .await;
    let huge = tus_create(
        &env,
        &a.token,
        "documents",
        &uploading_document(&env, a.id).await,
        5 * 1024 * 1024 * 1024,
        &[],
    )
    .await;
    let not_a_pdf = env
        .req(
            Method::POST,
            &format!("/object/documents/{}", uploading_document(&env, a.id).await),
            &a.token,
        )
        .header("content-type", "text/html")
        .body("<script>alert(1)</script>")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["statusCode"], "403", "{body}");
    assert_storage_error(upsert, "403", "AccessDenied").await;
    assert_ne!(delete.status(), StatusCode::OK);
    assert_storage_error(elsewhere, "403", "AccessDenied").await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_storage_error(not_a_pdf, "415", "InvalidMimeType").await;
    let stored = env.download(&a.token, "documents", &a_key).await;
    assert_eq!(
        stored.bytes().await.unwrap().as_ref(),
        pdf("checked").as_slice()
    );
    assert_eq!(
        env.object_files("documents").len(),
        2,
        "A's one file and B's"
    );
    wait_until("temporary files are gone", || env.tmp_files().is_empty()).await;
    let res = env.download(&b.token, "documents", &b_key).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), pdf("b's").as_slice());
    let res = env.download(&b.token, "documents", &a_key).await;
    assert_ne!(res.status(), StatusCode::OK, "B never reads A's file");
}
