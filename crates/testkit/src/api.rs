//! [`Api`]: a method per endpoint of a running stack, wherever it runs — in
//! this process ([`crate::Stack`] derefs to one), in a bench's child process
//! ([`crate::serve`]), or the dev stack `cargo xtask stack up` describes
//! ([`StackInfo::load`]).
//!
//! Every method panics with what it was doing when the stack does not
//! answer as expected: a test fails there, with the body in the message.

use std::path::{Path, PathBuf};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

/// The password of the users [`Api::user`] signs up, and of user A elsewhere.
pub const PASSWORD_A: &str = "correct horse battery A";
/// User B's password.
pub const PASSWORD_B: &str = "correct horse battery B";

/// How to reach a stack: the fields of `.quire/stack.json` as `cargo xtask
/// stack up` writes them, the ones a child process reports ([`crate::serve`]),
/// and the ones an in-process [`crate::Stack`] fills in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackInfo {
    /// The sandbox's base URL, no trailing slash.
    pub api_url: String,
    /// The public key clients send as `apikey`, as a signed-out user.
    pub anon_key: String,
    /// The key that bypasses row-level security, to set up and inspect what
    /// a test needs.
    pub service_role_key: String,
    /// The secret the stack signs and verifies its JWTs with.
    pub jwt_secret: String,
    /// The companion's URL, when one runs.
    #[serde(default)]
    pub companion_url: Option<String>,
    /// A superuser URL of the stack's database.
    #[serde(default)]
    pub db_url: Option<String>,
    /// Quire's agent on the stack, when it is provisioned.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    /// Quire's knowledge base on the stack, when it is provisioned.
    #[serde(default)]
    pub knowledge_base_id: Option<Uuid>,
}

impl StackInfo {
    /// The stack `QUIRE_STACK` names, else the checkout's `.quire/stack.json`
    /// (the dev stack). Panics with how to get one when there is none.
    pub fn load() -> StackInfo {
        let path = std::env::var_os("QUIRE_STACK")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::repo_root().join(".quire/stack.json"));
        StackInfo::read(&path)
    }

    /// The stack described in the file at `path`.
    pub fn read(path: &Path) -> StackInfo {
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!(
                "reading the stack description {} ({e}): `cargo xtask stack up` writes it; \
                 `cargo xtask test` passes it as QUIRE_STACK",
                path.display()
            )
        });
        let info: StackInfo = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        for (name, value) in [
            ("api_url", &info.api_url),
            ("anon_key", &info.anon_key),
            ("service_role_key", &info.service_role_key),
            ("jwt_secret", &info.jwt_secret),
        ] {
            assert!(
                !value.is_empty(),
                "{} has an empty `{name}`",
                path.display()
            );
        }
        info
    }
}

/// A user with a session of its own.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's id (`auth.users.id`, the JWT's `sub`).
    pub id: Uuid,
    /// The email the user signs in with.
    pub email: String,
    /// The access token.
    pub token: String,
    /// The session's refresh token.
    pub refresh_token: String,
}

impl User {
    fn from_session(session: &Value) -> User {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        User {
            id: session["user"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("no user id in {session}")),
            email: text(&session["user"]["email"]),
            token: text(&session["access_token"]),
            refresh_token: text(&session["refresh_token"]),
        }
    }
}

/// A response's status and JSON body (`Null` when the body is not JSON).
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// A stack's endpoints, by HTTP (and its database, when [`StackInfo::db_url`]
/// is known).
#[derive(Debug, Clone)]
pub struct Api {
    /// Where the stack is and its keys.
    pub info: StackInfo,
    /// A client that does not follow redirects (tests look at them).
    pub http: reqwest::Client,
}

impl Api {
    /// The endpoints of the stack `info` describes.
    pub fn new(info: StackInfo) -> Api {
        Api {
            info,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn api_base(&self) -> &str {
        self.info.api_url.trim_end_matches('/')
    }

    /// The stack's anon key.
    pub fn anon_key(&self) -> String {
        self.info.anon_key.clone()
    }

    /// The stack's service-role key.
    pub fn service_key(&self) -> String {
        self.info.service_role_key.clone()
    }

    /// The project's JWT secret.
    pub fn jwt_secret(&self) -> String {
        self.info.jwt_secret.clone()
    }

    /// The companion's URL, when one runs.
    pub fn companion_url(&self) -> Option<&str> {
        self.info.companion_url.as_deref()
    }

    /// The Realtime socket with the anon key, protocol vsn 1.0.0.
    pub fn realtime_url(&self) -> String {
        format!(
            "{}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
            self.api_base().replacen("http", "ws", 1),
            self.info.anon_key
        )
    }

    /// Signs `claims` with the project secret (HS256), as GoTrue would.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let secret = SecretString::from(self.info.jwt_secret.clone());
        quire_sandbox::jwt::JwtKeys::new(&secret).sign(claims)
    }

    /// A superuser connection to the stack's database. Panics without a
    /// `db_url` or when it cannot connect.
    pub async fn connect_db(&self) -> quire_testdb::tokio_postgres::Client {
        use quire_testdb::tokio_postgres;
        let url = self
            .info
            .db_url
            .as_deref()
            .expect("the stack has no db_url");
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the stack's database: {e}"));
        tokio::spawn(connection);
        client
    }

    /// The count a `select count(*) …` statement returns, run as the
    /// database's superuser.
    pub async fn count(
        &self,
        sql: &str,
        params: &[&(dyn quire_testdb::tokio_postgres::types::ToSql + Sync)],
    ) -> i64 {
        self.connect_db()
            .await
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A connection to the stack's database logged in as `role` (`authenticator`, …),
    /// without any request settings. Panics without a `db_url` or when it cannot connect.
    pub async fn connect_db_as(&self, role: &str) -> quire_testdb::tokio_postgres::Client {
        use quire_testdb::tokio_postgres;
        let url = self
            .info
            .db_url
            .as_deref()
            .expect("the stack has no db_url");
        let mut config: tokio_postgres::Config = url.parse().expect("a database URL");
        config.user(role);
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to the stack's database as {role}: {e}"));
        tokio::spawn(connection);
        client
    }

    // --- Requests ---------------------------------------------------------------------------

    /// A request to `path` with the anon `apikey` and, when given, a bearer
    /// token (the anon key as bearer otherwise, as supabase-js sends it).
    pub fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_base()))
            .header("apikey", &self.info.anon_key)
            .bearer_auth(bearer.unwrap_or(&self.info.anon_key))
    }

    /// A request to `path` with the service key as `apikey` and bearer, as a
    /// trusted backend sends it.
    pub fn service(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api_base()))
            .header("apikey", &self.info.service_role_key)
            .bearer_auth(&self.info.service_role_key)
    }

    // --- Users ------------------------------------------------------------------------------

    /// A new user, signed up through Auth with [`PASSWORD_A`], and its session.
    pub async fn user(&self, email: &str) -> User {
        User::from_session(&self.signed_up(email, PASSWORD_A).await)
    }

    /// Creates a confirmed user through the admin API (no session); returns its id.
    pub async fn create_user(&self, email: &str, password: &str) -> Uuid {
        let body = json!({"email": email, "password": password, "email_confirm": true});
        let (status, created) =
            json_of(self.admin(Method::POST, None, None, Some(&body)).await).await;
        assert_eq!(status, 200, "creating {email}: {created}");
        created["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no user id in {created}"))
    }

    /// A new session of an existing user (password grant).
    pub async fn session(&self, email: &str, password: &str) -> User {
        let (status, session) = json_of(self.sign_in(email, password).await).await;
        assert_eq!(status, 200, "signing {email} in: {session}");
        User::from_session(&session)
    }

    /// Signs up and returns the session (panics unless it is 200).
    pub async fn signed_up(&self, email: &str, password: &str) -> Value {
        let (status, body) = json_of(self.signup(email, password).await).await;
        assert_eq!(status, 200, "signup of {email}: {body}");
        body
    }

    // --- Auth (/auth/v1), one method per endpoint, the response unread ----------------------

    /// `POST /auth/v1/signup`.
    pub async fn signup(&self, email: &str, password: &str) -> Response {
        self.signup_with(&json!({"email": email, "password": password}))
            .await
    }

    /// `POST /auth/v1/signup` with any body.
    pub async fn signup_with(&self, body: &Value) -> Response {
        self.request(Method::POST, "/auth/v1/signup", None)
            .json(body)
            .send()
            .await
            .expect("signup")
    }

    /// `POST /auth/v1/token?grant_type=password`.
    pub async fn sign_in(&self, email: &str, password: &str) -> Response {
        self.token("password", &json!({"email": email, "password": password}))
            .await
    }

    /// `POST /auth/v1/token?grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.token("refresh_token", &json!({"refresh_token": refresh_token}))
            .await
    }

    /// `POST /auth/v1/token?grant_type=pkce`.
    pub async fn exchange_code(&self, auth_code: &str, code_verifier: &str) -> Response {
        self.token(
            "pkce",
            &json!({"auth_code": auth_code, "code_verifier": code_verifier}),
        )
        .await
    }

    /// `POST /auth/v1/token?grant_type=<grant>` with `body`.
    pub async fn token(&self, grant: &str, body: &Value) -> Response {
        self.request(
            Method::POST,
            &format!("/auth/v1/token?grant_type={grant}"),
            None,
        )
        .json(body)
        .send()
        .await
        .expect("token")
    }

    /// `GET /auth/v1/user` with `bearer` (no bearer at all when `None`).
    pub async fn get_user(&self, bearer: Option<&str>) -> Response {
        let mut request = self
            .http
            .get(format!("{}/auth/v1/user", self.api_base()))
            .header("apikey", &self.info.anon_key);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("get user")
    }

    /// `PUT /auth/v1/user`.
    pub async fn update_user(&self, bearer: &str, body: &Value) -> Response {
        self.request(Method::PUT, "/auth/v1/user", Some(bearer))
            .json(body)
            .send()
            .await
            .expect("update user")
    }

    /// `POST /auth/v1/logout[?scope=…]`.
    pub async fn logout(&self, bearer: &str, scope: Option<&str>) -> Response {
        let path = match scope {
            Some(scope) => format!("/auth/v1/logout?scope={scope}"),
            None => "/auth/v1/logout".to_owned(),
        };
        self.request(Method::POST, &path, Some(bearer))
            .send()
            .await
            .expect("logout")
    }

    /// `GET /auth/v1/authorize?<query>` (the sign-in page).
    pub async fn authorize(&self, query: &[(&str, &str)]) -> Response {
        self.http
            .get(format!("{}/auth/v1/authorize", self.api_base()))
            .query(query)
            .send()
            .await
            .expect("authorize")
    }

    /// `POST /auth/v1/authorize` with the page's form fields.
    pub async fn submit_sign_in(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(format!("{}/auth/v1/authorize", self.api_base()))
            .form(form)
            .send()
            .await
            .expect("sign-in form")
    }

    /// `<method> /auth/v1/admin/users[/<id>]` with `bearer` (the service
    /// key when `None`).
    pub async fn admin(
        &self,
        method: Method,
        id: Option<&str>,
        bearer: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let path = match id {
            Some(id) => format!("/auth/v1/admin/users/{id}"),
            None => "/auth/v1/admin/users".to_owned(),
        };
        let key = &self.info.service_role_key;
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api_base()))
            .header("apikey", key)
            .bearer_auth(bearer.unwrap_or(key));
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("admin users")
    }

    /// `GET /auth/v1/settings`.
    pub async fn settings(&self) -> Response {
        self.request(Method::GET, "/auth/v1/settings", None)
            .send()
            .await
            .expect("settings")
    }

    /// `GET /auth/v1/health`.
    pub async fn health(&self) -> Response {
        self.http
            .get(format!("{}/auth/v1/health", self.api_base()))
            .send()
            .await
            .expect("health")
    }

    // --- REST (/rest/v1) and Storage (/storage/v1) -----------------------------------------

    /// `GET /rest/v1/<path>` as `user` (RLS applies): the rows it may see.
    pub async fn rows_as(&self, user: &User, path: &str) -> Vec<Value> {
        self.rows_with(&user.token, path).await
    }

    /// `GET /rest/v1/<path>` with the service key (RLS bypassed): what is
    /// really stored.
    pub async fn rows(&self, path: &str) -> Vec<Value> {
        let key = self.info.service_role_key.clone();
        self.rows_with(&key, path).await
    }

    async fn rows_with(&self, bearer: &str, path: &str) -> Vec<Value> {
        let response = self
            .request(Method::GET, &format!("/rest/v1/{path}"), Some(bearer))
            .send()
            .await
            .expect("GET /rest/v1");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "GET /rest/v1/{path}: {body}");
        match body {
            Value::Array(rows) => rows,
            other => panic!("GET /rest/v1/{path}: not a list: {other}"),
        }
    }

    /// `DELETE /rest/v1/<table>?id=eq.<id>` as `user` (RLS applies), straight to
    /// PostgREST and not through the companion: how many rows it deleted
    /// (panics unless 2xx).
    pub async fn delete_as(&self, user: &User, table: &str, id: &str) -> usize {
        let response = self
            .request(
                Method::DELETE,
                &format!("/rest/v1/{table}"),
                Some(&user.token),
            )
            .query(&[("id", format!("eq.{id}"))])
            .header("Prefer", "return=representation")
            .send()
            .await
            .expect("DELETE /rest/v1");
        let (status, body) = json_of(response).await;
        assert!(
            status.is_success(),
            "DELETE /rest/v1/{table}: {status} {body}"
        );
        body.as_array().map_or(0, Vec::len)
    }

    /// Whether `public.documents` holds the row `id` (read as the superuser).
    pub async fn document_exists(&self, id: Uuid) -> bool {
        self.count(
            "select count(*) from public.documents where id = $1",
            &[&id],
        )
        .await
            == 1
    }

    /// Whether the `documents` bucket holds an object at `path` (read as the
    /// superuser).
    pub async fn stored_file_exists(&self, path: &str) -> bool {
        self.count(
            "select count(*) from storage.objects where bucket_id = 'documents' and name = $1",
            &[&path],
        )
        .await
            == 1
    }

    /// `rpc/search_chunks` as `user`: the hits (panics unless 200).
    pub async fn search(&self, user: &User, query: &str) -> Vec<Value> {
        let response = self
            .request(
                Method::POST,
                "/rest/v1/rpc/search_chunks",
                Some(&user.token),
            )
            .json(&json!({"query": query}))
            .send()
            .await
            .expect("search_chunks");
        let (status, body) = json_of(response).await;
        assert_eq!(status, 200, "search_chunks: {body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Uploads `bytes` as a PDF into the `documents` bucket at `path`, as `user`.
    pub async fn put_object(&self, user: &User, path: &str, bytes: Vec<u8>) -> StatusCode {
        self.request(
            Method::POST,
            &format!("/storage/v1/object/documents/{path}"),
            Some(&user.token),
        )
        .header("content-type", "application/pdf")
        .body(bytes)
        .send()
        .await
        .expect("storage upload")
        .status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.quire/stack.json` as `cargo xtask stack up` writes it: extra fields are ignored,
    /// the ids are read.
    #[test]
    fn a_dev_stack_description_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stack.json");
        let agent = Uuid::new_v4();
        let body = json!({
            "api_url": "http://127.0.0.1:54321/", "anon_key": "anon", "service_role_key": "svc",
            "jwt_secret": "secret", "companion_url": "http://127.0.0.1:54380",
            "db_url": "postgresql://postgres:pw@127.0.0.1:54322/postgres",
            "agent_id": agent, "knowledge_base_id": Uuid::new_v4(),
            "demo_users": [{"email": "demo@quire.test", "password": "quire-demo"}],
        });
        std::fs::write(&path, body.to_string()).unwrap();
        let api = Api::new(StackInfo::read(&path));
        assert_eq!(api.api_base(), "http://127.0.0.1:54321");
        assert_eq!(api.companion_url(), Some("http://127.0.0.1:54380"));
        assert_eq!(api.info.agent_id, Some(agent));
        assert_eq!(
            api.realtime_url(),
            "ws://127.0.0.1:54321/realtime/v1/websocket?apikey=anon&vsn=1.0.0"
        );
    }

    #[test]
    #[should_panic(expected = "has an empty `anon_key`")]
    fn a_description_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stack.json");
        let body = json!({"api_url": "http://x", "anon_key": "", "service_role_key": "s",
                          "jwt_secret": "j"});
        std::fs::write(&path, body.to_string()).unwrap();
        StackInfo::read(&path);
    }
}
