//! The harness: [`spawn_app`] starts a real sandbox on port 0 against a fresh
//! database of its own (`quire-testdb`), and [`TestApp`] has one method per
//! endpoint. Logs are silent unless `TEST_LOG=1`.

use std::sync::Once;

use quire_sandbox::{Config, Sandbox};
use quire_testdb::TestDb;
use reqwest::{Method, RequestBuilder, Response};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A running sandbox, its database and an HTTP client.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub base: String,
    /// A client that does not follow redirects (the tests look at them).
    pub client: reqwest::Client,
    /// The sandbox's own database.
    pub db: TestDb,
    pub sandbox: Sandbox,
    _data_dir: TempDir,
}

/// A sandbox with test defaults: cheap password hashing, everything else as
/// configured by default.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A sandbox whose configuration `adjust` changes first (e.g. short token
/// lifetimes).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let db = TestDb::new().await;
    let data_dir = tempfile::tempdir().expect("a temp data directory");
    let mut config = Config::new(data_dir.path(), db.url());
    config.password_hash_memory_kib = argon2::Params::MIN_M_COST;
    adjust(&mut config);
    let sandbox = quire_sandbox::spawn(config)
        .await
        .expect("the sandbox starts");
    TestApp {
        base: sandbox.api_base().to_owned(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client"),
        db,
        sandbox,
        _data_dir: data_dir,
    }
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok_and(|v| !v.is_empty() && v != "0") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "debug".into()),
                )
                .with_test_writer()
                .try_init();
        }
    });
}

/// A response's status and JSON body (`Null` when the body is not JSON).
pub async fn json_of(response: Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

impl TestApp {
    /// The anon key.
    pub fn anon_key(&self) -> String {
        self.sandbox.anon_key().expose_secret().to_owned()
    }

    /// The service-role key.
    pub fn service_key(&self) -> String {
        self.sandbox.service_role_key().expose_secret().to_owned()
    }

    /// The project's JWT secret.
    pub fn jwt_secret(&self) -> String {
        self.sandbox.jwt_secret().expose_secret().to_owned()
    }

    /// Signs `claims` with the project secret (HS256), as GoTrue would.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        quire_sandbox::jwt::JwtKeys::new(self.sandbox.jwt_secret()).sign(claims)
    }

    /// A request to `path` with the service key as `apikey` and bearer, as a
    /// trusted backend sends it.
    pub fn api(&self, method: Method, path: &str) -> RequestBuilder {
        let key = self.service_key();
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("apikey", &key)
            .bearer_auth(key)
    }

    /// A request to `path` with the anon `apikey` and, when given, a bearer
    /// token (anon key as bearer otherwise, as supabase-js sends it).
    pub fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let anon = self.anon_key();
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("apikey", &anon)
            .bearer_auth(bearer.unwrap_or(&anon))
    }

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

    /// Signs up and returns the session (panics unless it is 200).
    pub async fn signed_up(&self, email: &str, password: &str) -> Value {
        let (status, body) = json_of(self.signup(email, password).await).await;
        assert_eq!(status, 200, "signup of {email}: {body}");
        body
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
            .client
            .get(format!("{}/auth/v1/user", self.base))
            .header("apikey", self.anon_key());
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
        self.client
            .get(format!("{}/auth/v1/authorize", self.base))
            .query(query)
            .send()
            .await
            .expect("authorize")
    }

    /// `POST /auth/v1/authorize` with the page's form fields.
    pub async fn submit_sign_in(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(format!("{}/auth/v1/authorize", self.base))
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
        let key = self.service_key();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("apikey", &key)
            .bearer_auth(bearer.unwrap_or(&key));
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
        self.client
            .get(format!("{}/auth/v1/health", self.base))
            .send()
            .await
            .expect("health")
    }
}
