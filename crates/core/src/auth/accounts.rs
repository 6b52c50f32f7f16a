//! Accounts made and mended in the app: sign-up (`POST /auth/v1/signup`),
//! and a forgotten password (`POST /auth/v1/recover`, the mailed code
//! through `POST /auth/v1/verify`, then `PUT /auth/v1/user`);
//! docs/platform/supabase.md §3.8.

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use ts_rs::TS;

use super::gotrue::TokenResponse;
use super::{Auth, User};
use crate::error::{Error, Result, Service};
use crate::http::{self, Api};

/// How a sign-up ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SignUp {
    /// The project confirms addresses automatically: signed in.
    SignedIn { user: User },
    /// A confirmation mail is on its way to `email`; sign in once the link
    /// in it is opened.
    CheckEmail { email: String },
}

/// A GoTrue refusal as Quire's error, for the account calls.
fn refusal(status: u16, json: &Value, text: &str) -> Error {
    let code = http::auth_code_of(json).unwrap_or_default();
    let message = http::message_of(json).unwrap_or_else(|| crate::error::cut(text));
    match code.as_str() {
        "signup_disabled" => Error::SignUpClosed,
        "user_already_exists" => Error::AccountExists {
            email: String::new(),
        },
        "weak_password" => Error::WeakPassword { message },
        "otp_expired" => Error::BadInput {
            service: Service::Auth,
            message: "that code is wrong or has expired. Ask for a new one".into(),
        },
        _ if status == 429 => Error::RateLimited {
            service: Service::Auth,
        },
        _ => Error::BadInput {
            service: Service::Auth,
            message,
        },
    }
}

/// Sends `request` (anon key as `apikey`) and reads the JSON answer; a 4xx
/// becomes [`refusal`].
async fn call(api: &Api, request: reqwest::RequestBuilder) -> Result<Value> {
    let request = request
        .timeout(http::REQUEST_TIMEOUT)
        .header("apikey", api.anon_key());
    let response = http::send(Service::Auth, request).await?;
    let status = response.status();
    if status.is_client_error() {
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Err(refusal(status.as_u16(), &json, &text));
    }
    http::json(Service::Auth, response).await
}

fn session_of(answer: Value) -> Result<TokenResponse> {
    serde_json::from_value(answer.clone()).map_err(|e| Error::Unexpected {
        service: Service::Auth,
        detail: e.to_string(),
        body: crate::error::cut(&answer.to_string()),
    })
}

/// The body of `POST /verify` for a reset: `{type, email, token}` for the
/// mail's code; `{type, token_hash}` for its link, which must be this
/// project's `/auth/v1/verify` link of type `recovery` (its `token` is the
/// hash). A link pasted instead of opened is never used up by a browser
/// first, and needs no mail template with the code in it.
fn recovery_proof(api: &Api, email: &str, pasted: &str) -> Result<Value> {
    let pasted = pasted.trim();
    if !pasted.starts_with("http://") && !pasted.starts_with("https://") {
        return Ok(json!({"type": "recovery", "email": email.trim(), "token": pasted}));
    }
    let not_ours = || Error::BadInput {
        service: Service::Auth,
        message: "that is not the link of this server's password-reset email. Paste the link \
                  from the email, or type its six-digit code"
            .into(),
    };
    let link = url::Url::parse(pasted).map_err(|_| not_ours())?;
    let verify = url::Url::parse(&api.url("/auth/v1/verify")).map_err(|_| not_ours())?;
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    let token = query.get("token").filter(|t| !t.is_empty());
    match token {
        Some(token)
            if link.origin() == verify.origin()
                && link.path() == verify.path()
                && query.get("type").map(String::as_str) == Some("recovery") =>
        {
            Ok(json!({"type": "recovery", "token_hash": token}))
        }
        _ => Err(not_ours()),
    }
}

impl Auth {
    /// Creates an account with email and password. Signed in at once when
    /// the project confirms addresses automatically; otherwise the person
    /// confirms from the mail, then signs in. An address that already has
    /// an account is [`Error::AccountExists`] only where the project says so
    /// (with confirmation on, GoTrue answers as for a new one).
    pub async fn sign_up(&self, email: &str, password: &str) -> Result<SignUp> {
        let email = email.trim();
        let _flight = self.flight.lock().await;
        let request = self
            .api
            .http
            .post(self.api.url("/auth/v1/signup"))
            .bearer_auth(self.api.anon_key())
            .json(&json!({"email": email, "password": password}));
        let answer = call(&self.api, request).await.map_err(|e| match e {
            Error::AccountExists { .. } => Error::AccountExists {
                email: email.to_owned(),
            },
            other => other,
        })?;
        if answer.get("access_token").is_some() {
            let user = self.replace(session_of(answer)?).await?;
            return Ok(SignUp::SignedIn { user });
        }
        Ok(SignUp::CheckEmail {
            email: email.to_owned(),
        })
    }

    /// Mails a password-reset code to `email`. Answers the same whether or
    /// not the address has an account.
    pub async fn send_password_reset(&self, email: &str) -> Result<()> {
        let request = self
            .api
            .http
            .post(self.api.url("/auth/v1/recover"))
            .bearer_auth(self.api.anon_key())
            .json(&json!({"email": email.trim()}));
        call(&self.api, request).await.map(|_| ())
    }

    /// Sets a new password with what the person copied from the reset mail
    /// (its six-digit code, or its link: [`recovery_proof`]), and signs in.
    pub async fn reset_password(
        &self,
        email: &str,
        code_or_link: &str,
        password: &str,
    ) -> Result<User> {
        let proof = recovery_proof(&self.api, email, code_or_link)?;
        let _flight = self.flight.lock().await;
        let request = self
            .api
            .http
            .post(self.api.url("/auth/v1/verify"))
            .bearer_auth(self.api.anon_key())
            .json(&proof);
        let session = session_of(call(&self.api, request).await?)?;
        let token: SecretString = session.access_token.clone();
        let request = self
            .api
            .http
            .put(self.api.url("/auth/v1/user"))
            .bearer_auth(token.expose_secret())
            .json(&json!({"password": password}));
        call(&self.api, request).await?;
        self.replace(session).await
    }
}
