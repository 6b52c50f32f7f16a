//! `GET /authorize` and its sign-in page: the sandbox's stand-in for an OAuth
//! provider.
//!
//! GoTrue's `/authorize` sends the browser to the provider and, after the
//! provider's callback, to `redirect_to` with `?code=` (PKCE) or tokens in
//! the fragment (implicit flow). Here the provider is a small sign-in page
//! served by the sandbox itself: `GET` validates the request like GoTrue
//! (provider, PKCE parameters, `redirect_to`), records the PKCE flow state
//! and shows the page; the page `POST`s email and password back, and on
//! success the browser is sent on exactly as GoTrue would send it. Errors
//! after the page go back to `redirect_to` as `error`, `error_code`,
//! `error_description` in the query and the fragment.
//!
//! The form carries a signed, expiring `state` (HS256 under a key derived
//! from the project secret, so it can never pass as an API token) naming the
//! flow; the page has no script and a strict Content-Security-Policy.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use super::error::{AuthError, code};
use super::sessions::{self, AuthMethod, ClientInfo};
use super::{password, pkce, redirect, users};
use crate::jwt::JwtKeys;
use crate::state::AppState;

/// GoTrue's built-in providers, as its `/settings` lists them; those the
/// project enabled ([`crate::Config::oauth_providers`]) get the sandbox's
/// sign-in page.
pub(crate) const PROVIDERS: &[&str] = &[
    "apple",
    "azure",
    "bitbucket",
    "discord",
    "facebook",
    "figma",
    "fly",
    "github",
    "gitlab",
    "google",
    "kakao",
    "keycloak",
    "linkedin",
    "linkedin_oidc",
    "notion",
    "slack",
    "slack_oidc",
    "snapchat",
    "spotify",
    "twitch",
    "twitter",
    "workos",
    "zoom",
];

/// Query parameters of `/authorize` that are GoTrue's own or that a
/// provider ignores (`skip_http_redirect`, which supabase-js adds): anything
/// else reaches the provider.
const GOTRUE_PARAMS: &[&str] = &[
    "provider",
    "redirect_to",
    "scopes",
    "code_challenge",
    "code_challenge_method",
    "invite_token",
    "skip_http_redirect",
];

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;min-height:100vh;display:grid;place-items:center;background:#f4f4f5;color:#18181b;\
font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif}\
main{width:min(24rem,calc(100vw - 2rem));background:#fff;border:1px solid #e4e4e7;border-radius:12px;\
padding:2rem;box-shadow:0 1px 3px rgba(0,0,0,.06)}\
h1{font-size:1.375rem;margin:0 0 .25rem}\
p{margin:0 0 1.25rem;color:#52525b}\
label{display:block;font-weight:600;font-size:.875rem;margin:.75rem 0 .25rem}\
input{width:100%;padding:.625rem .75rem;border:1px solid #d4d4d8;border-radius:8px;font:inherit}\
input:focus-visible,button:focus-visible{outline:3px solid #2563eb;outline-offset:2px}\
.actions{display:flex;gap:.75rem;margin-top:1.5rem}\
button{flex:1;padding:.625rem;border-radius:8px;border:1px solid #18181b;background:#18181b;color:#fff;\
font:inherit;font-weight:600;cursor:pointer}\
button.secondary{background:#fff;color:#18181b;border-color:#d4d4d8}\
.error{color:#b91c1c;background:#fef2f2;border:1px solid #fecaca;border-radius:8px;padding:.5rem .75rem}\
.note{margin:1.5rem 0 0;font-size:.8125rem;color:#71717a}";

#[derive(Serialize, serde::Deserialize)]
struct AuthorizeState {
    exp: i64,
    redirect_to: String,
    provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow_state_id: Option<Uuid>,
}

/// Signs and checks the page's `state`, under a key derived from the project
/// secret: a state can never be mistaken for an API token, nor the reverse.
fn state_keys(state: &AppState) -> JwtKeys {
    let mut digest = Sha256::new();
    digest.update(b"quire-sandbox/authorize-state\0");
    digest.update(state.keys.jwt_secret().expose_secret().as_bytes());
    let derived = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.finalize());
    JwtKeys::new(&SecretString::from(derived))
}

/// `GET /authorize?provider=…&redirect_to=…&code_challenge=…&code_challenge_method=s256`.
pub(crate) async fn start(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AuthError> {
    let provider = query.get("provider").map(String::as_str).unwrap_or("");
    if !PROVIDERS.contains(&provider) {
        return Err(AuthError::validation(format!(
            "Unsupported provider: provider {provider} could not be found"
        )));
    }
    // GoTrue's `OAuthProviderConfiguration::ValidateOAuth`.
    if !super::meta::enabled(&state, provider) {
        return Err(AuthError::validation(
            "Unsupported provider: provider is not enabled",
        ));
    }
    let challenge = query
        .get("code_challenge")
        .map(String::as_str)
        .unwrap_or("");
    let method = query
        .get("code_challenge_method")
        .map(String::as_str)
        .unwrap_or("");
    let method = pkce::validate_params(method, challenge)?;
    let target =
        redirect::Rule::of(&state.config).resolve(query.get("redirect_to").map(String::as_str));

    let flow_state_id = match method {
        Some(method) => {
            let id = Uuid::new_v4();
            let client = state
                .db
                .auth
                .get()
                .await
                .map_err(|e| AuthError::internal("Database error creating flow state", e))?;
            client
                .execute(
                    "insert into auth.flow_state (id, auth_code, code_challenge_method, code_challenge, \
                       provider_type, redirect_to, authentication_method, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, now(), now())",
                    &[
                        &id,
                        &Uuid::new_v4().to_string(),
                        &method.as_str(),
                        &challenge,
                        &provider,
                        &target.as_str(),
                        &AuthMethod::OAuth.as_str(),
                    ],
                )
                .await
                .map_err(|e| AuthError::internal("Database error creating flow state", e))?;
            Some(id)
        }
        None => None,
    };

    // From here on the page plays the provider. GoTrue passes every query
    // parameter but its own to the provider, where they override the
    // `client_id`, `redirect_uri` and `state` GoTrue sets: a real provider
    // then fails (GitHub: unknown client). See docs/platform-contract.md.
    if let Some(name) = query.keys().find(|k| !GOTRUE_PARAMS.contains(&k.as_str())) {
        return Ok(message_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request is not valid",
            &format!(
                "The provider received the query parameter “{name}”, which GoTrue passes on \
                 unchanged and which overrides its own. Send only provider, redirect_to, scopes, \
                 code_challenge and code_challenge_method to /authorize."
            ),
        ));
    }

    let expiry = i64::try_from(state.config.flow_state_expiry_secs).unwrap_or(300);
    let form_state = state_keys(&state).sign(&AuthorizeState {
        exp: Utc::now().timestamp() + expiry,
        redirect_to: target.to_string(),
        provider: provider.to_owned(),
        flow_state_id,
    });
    Ok(page(
        StatusCode::OK,
        &PageContent {
            form_state: &form_state,
            provider,
            target: &target,
            email: "",
            error: None,
        },
    ))
}

/// `POST /authorize` (the page's form): signs the person in and sends the
/// browser on to `redirect_to`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    from: ClientInfo,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");

    let Some(flow) = state_keys(&state)
        .verify(field("state"))
        .ok()
        .and_then(|caller| {
            serde_json::from_value::<AuthorizeState>(serde_json::Value::Object(
                caller.claims().clone(),
            ))
            .ok()
        })
    else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "This sign-in page has expired",
            "Go back to the app and start signing in again.",
        );
    };
    let Ok(target) = Url::parse(&flow.redirect_to) else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "This sign-in page is not valid",
            "Go back to the app and start signing in again.",
        );
    };

    if field("action") == "cancel" {
        return error_redirect(
            &target,
            &AuthError::OAuth {
                error: "access_denied",
                description: "The user has denied your application access.".into(),
            },
        );
    }

    let email = field("email").trim();
    let again = |message: &str| {
        page(
            StatusCode::BAD_REQUEST,
            &PageContent {
                form_state: field("state"),
                provider: &flow.provider,
                target: &target,
                email,
                error: Some(message),
            },
        )
    };

    let client = match state.db.auth.get().await {
        Ok(client) => client,
        Err(e) => {
            return error_redirect(
                &target,
                &AuthError::internal("Database error finding user", e),
            );
        }
    };
    let user = match users::find_by_email(&client, email).await {
        Ok(user) => user.filter(|u| u.deleted_at.is_none()),
        Err(e) => return error_redirect(&target, &e),
    };
    drop(client);
    // An unknown address costs the same Argon2 work as a wrong password
    // (`password::verify_for_sign_in`).
    let hash = user.as_ref().and_then(|u| u.encrypted_password.clone());
    let memory_kib = state.config.password_hash_memory_kib;
    let matches =
        password::verify_for_sign_in(field("password").to_owned(), hash, memory_kib).await;
    let Some(user) = user.filter(|_| matches) else {
        return again("Invalid login credentials");
    };
    if !user.is_confirmed() {
        return again("Email not confirmed");
    }
    if user.is_banned() {
        return error_redirect(
            &target,
            &AuthError::forbidden(code::USER_BANNED, "User is banned"),
        );
    }

    match flow.flow_state_id {
        Some(flow_id) => match complete_pkce(&state, flow_id, user.id).await {
            Ok(auth_code) => redirect_found(&with_query(&target, &[("code", auth_code.as_str())])),
            Err(error) => error_redirect(&target, &error),
        },
        None => match implicit_session(&state, user.id, &from).await {
            Ok(fragment) => {
                let mut url = target.clone();
                url.set_fragment(Some(&fragment));
                redirect_found(&url)
            }
            Err(error) => error_redirect(&target, &error),
        },
    }
}

/// Binds the flow state to the user who signed in and returns its code.
async fn complete_pkce(
    state: &AppState,
    flow_id: Uuid,
    user_id: Uuid,
) -> Result<String, AuthError> {
    let client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error finding flow state", e))?;
    let expiry = i64::try_from(state.config.flow_state_expiry_secs).unwrap_or(300);
    let row = client
        .query_opt(
            "update auth.flow_state set user_id = $2, auth_code_issued_at = now(), updated_at = now() \
             where id = $1 and user_id is null \
             returning auth_code, created_at + make_interval(secs => $3) < now()",
            &[&flow_id, &user_id, &(expiry as f64)],
        )
        .await
        .map_err(|e| AuthError::internal("Database error updating flow state", e))?
        .ok_or_else(|| {
            AuthError::not_found(
                code::FLOW_STATE_NOT_FOUND,
                "invalid flow state, no valid flow state found",
            )
        })?;
    if row.get::<_, bool>(1) {
        return Err(AuthError::unprocessable(
            code::FLOW_STATE_EXPIRED,
            "invalid flow state, flow state has expired",
        ));
    }
    users::touch_sign_in(&client, user_id).await?;
    Ok(row.get(0))
}

/// The implicit flow: a session, as URL-fragment parameters.
async fn implicit_session(
    state: &AppState,
    user_id: Uuid,
    from: &ClientInfo,
) -> Result<String, AuthError> {
    let mut client = state
        .db
        .auth
        .get()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    let session = sessions::issue(state, &tx, user_id, AuthMethod::OAuth, from).await?;
    tx.commit()
        .await
        .map_err(|e| AuthError::internal("Database error granting user", e))?;
    Ok(encode_sorted(&[
        ("access_token", session.access_token.as_str()),
        ("expires_at", &session.expires_at.to_string()),
        ("expires_in", &session.expires_in.to_string()),
        ("refresh_token", &session.refresh_token),
        ("sb", ""),
        ("token_type", "bearer"),
    ]))
}

/// `url` with `pairs` set in its query (GoTrue's `q.Set` + `q.Encode`, which
/// sorts by key).
fn with_query(url: &Url, pairs: &[(&str, &str)]) -> Url {
    let mut all: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| !pairs.iter().any(|(name, _)| name == k))
        .collect();
    all.extend(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = url.clone();
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    out.set_query(Some(&encode_sorted(&refs)));
    out
}

fn encode_sorted(pairs: &[(&str, &str)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(sorted)
        .finish()
}

/// Sends the browser back to `target` with the error in the query and the
/// fragment, as GoTrue's `redirectErrors`.
fn error_redirect(target: &Url, error: &AuthError) -> Response {
    let (kind, code) = match error {
        AuthError::OAuth { error, .. } => ((*error).to_owned(), None),
        AuthError::Http { status, code, .. } => {
            let kind = match (*code, status.as_u16()) {
                (code::USER_BANNED | code::SIGNUP_DISABLED, _) => "access_denied",
                (_, 400) => "invalid_request",
                (_, 401) => "unauthorized_client",
                (_, 403) => "access_denied",
                (_, 503) => "temporarily_unavailable",
                _ => "server_error",
            };
            (kind.to_owned(), Some(*code))
        }
        AuthError::WeakPassword { .. } => ("server_error".to_owned(), Some(code::WEAK_PASSWORD)),
    };
    let mut pairs = vec![
        ("error", kind.as_str()),
        ("error_description", error.message()),
    ];
    if let Some(code) = code {
        pairs.push(("error_code", code));
    }
    let mut url = with_query(target, &pairs);
    pairs.push(("sb", ""));
    url.set_fragment(Some(&encode_sorted(&pairs)));
    redirect_found(&url)
}

fn redirect_found(url: &Url) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

struct PageContent<'a> {
    form_state: &'a str,
    provider: &'a str,
    target: &'a Url,
    email: &'a str,
    error: Option<&'a str>,
}

fn page(status: StatusCode, content: &PageContent<'_>) -> Response {
    let provider = display_name(content.provider);
    let app = content.target.host_str().unwrap_or("the app");
    let error = content
        .error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>Sign in with {provider} · Quire sandbox</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
<h1>Sign in with {provider}</h1>\n\
<p>to continue to <strong>{app}</strong></p>\n{error}\n\
<form method=\"post\" action=\"authorize\">\n\
<input type=\"hidden\" name=\"state\" value=\"{state}\">\n\
<label for=\"email\">Email</label>\n\
<input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required autofocus value=\"{email}\">\n\
<label for=\"password\">Password</label>\n\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\n\
<div class=\"actions\">\n\
<button type=\"submit\" name=\"action\" value=\"sign_in\">Sign in</button>\n\
<button type=\"submit\" name=\"action\" value=\"cancel\" class=\"secondary\" formnovalidate>Cancel</button>\n\
</div>\n</form>\n\
<p class=\"note\">This page stands in for {provider} in the Quire sandbox: sign in with the email \
and password of a sandbox account.</p>\n</main>\n</body>\n</html>\n",
        provider = escape(&provider),
        app = escape(app),
        state = escape(content.form_state),
        email = escape(content.email),
    );
    html_response(status, html, Some(content.target))
}

fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title} · Quire sandbox</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n\
<h1>{title}</h1>\n<p>{text}</p>\n</main>\n</body>\n</html>\n",
        title = escape(title),
        text = escape(text),
    );
    html_response(status, html, None)
}

/// An HTML answer with a CSP that allows only the page's own stylesheet and
/// form posts to itself (and to `redirect_origin`, where the post redirects).
fn html_response(status: StatusCode, html: String, redirect_to: Option<&Url>) -> Response {
    let style_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
    let form_action = match redirect_to.map(|u| u.origin()) {
        Some(origin @ url::Origin::Tuple(..)) => format!("'self' {}", origin.ascii_serialization()),
        _ => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{style_hash}'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn display_name(provider: &str) -> String {
    let base = provider.split('_').next().unwrap_or(provider);
    match base {
        "github" => "GitHub".to_owned(),
        "gitlab" => "GitLab".to_owned(),
        "linkedin" => "LinkedIn".to_owned(),
        "workos" => "WorkOS".to_owned(),
        _ => {
            let mut chars = base.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
    }
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn codes_are_added_to_the_existing_query() {
        let target = Url::parse("http://127.0.0.1:5000/cb?z=1&a=2").unwrap();
        assert_eq!(
            with_query(&target, &[("code", "abc")]).as_str(),
            "http://127.0.0.1:5000/cb?a=2&code=abc&z=1"
        );
    }

    #[test]
    fn errors_go_to_query_and_fragment() {
        let target = Url::parse("http://127.0.0.1:5000/cb").unwrap();
        let response = error_redirect(
            &target,
            &AuthError::unprocessable(
                code::FLOW_STATE_EXPIRED,
                "invalid flow state, flow state has expired",
            ),
        );
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        let url = Url::parse(location).unwrap();
        let query: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["error_code"], "flow_state_expired");
        assert_eq!(query["error"], "server_error");
        let fragment = url.fragment().unwrap();
        assert!(fragment.contains("error_code=flow_state_expired"));
        assert!(fragment.ends_with("sb="));
    }

    #[test]
    fn provider_names() {
        assert_eq!(display_name("github"), "GitHub");
        assert_eq!(display_name("google"), "Google");
        assert_eq!(display_name("slack_oidc"), "Slack");
    }
}
