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
    SignedIn {
        /// The new account, now signed in.
        user: User,
    },
    /// A confirmation mail is on its way to `email`; sign in once the link
    /// in it is opened.
    CheckEmail {
        /// The address the mail was sent to.
        email: String,
    },
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
        "otp_expired" => Error::ResetCodeExpired,
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
/// first, and needs no mail template with the code in it. Any other link is
/// [`Error::NotAResetLink`], saying when it is another server's reset link.
fn recovery_proof(api: &Api, email: &str, pasted: &str) -> Result<Value> {
    let pasted = pasted.trim();
    if !pasted.starts_with("http://") && !pasted.starts_with("https://") {
        return Ok(json!({"type": "recovery", "email": email.trim(), "token": pasted}));
    }
    let not_a_reset_link = || Error::NotAResetLink { other_server: None };
    let link = url::Url::parse(pasted).map_err(|_| not_a_reset_link())?;
    let verify = url::Url::parse(&api.url("/auth/v1/verify")).map_err(|_| not_a_reset_link())?;
    let query: std::collections::HashMap<_, _> = link.query_pairs().into_owned().collect();
    let token = query.get("token").filter(|t| !t.is_empty());
    let a_reset_link = link.path().ends_with("/auth/v1/verify")
        && query.get("type").map(String::as_str) == Some("recovery")
        && token.is_some();
    match token {
        Some(token)
            if a_reset_link && link.origin() == verify.origin() && link.path() == verify.path() =>
        {
            Ok(json!({"type": "recovery", "token_hash": token}))
        }
        _ if a_reset_link && link.origin() != verify.origin() => Err(Error::NotAResetLink {
            other_server: Some(link.host_str().unwrap_or_default().to_owned()),
        }),
        _ => Err(not_a_reset_link()),
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
    /// (its six-digit code, or its link: this project's `/auth/v1/verify`
    /// link of type `recovery`; any other is [`Error::NotAResetLink`]), and
    /// signs in.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn api() -> Api {
        Api::new(Config::new("http://127.0.0.1:54321/", "anon", "http://127.0.0.1:9").unwrap())
    }

    #[test]
    fn a_link_pasted_that_is_not_this_servers_reset_link_says_so_and_what_to_do() {
        let ours = "http://127.0.0.1:54321/auth/v1/verify?token=abc&type=recovery";
        assert_eq!(
            recovery_proof(&api(), "a@example.com", ours).unwrap(),
            json!({"type": "recovery", "token_hash": "abc"})
        );
        for (pasted, says) in [
            (
                "https://other.example/auth/v1/verify?token=abc&type=recovery",
                "another Quire server",
            ),
            (
                "http://127.0.0.1:54321/auth/v1/verify?token=abc&type=signup",
                "not the link of a password-reset email",
            ),
            (
                "https://example.com/",
                "not the link of a password-reset email",
            ),
        ] {
            let error = recovery_proof(&api(), "a@example.com", pasted).unwrap_err();
            let message = error.to_string();
            assert_eq!(error.code(), crate::ErrorCode::BadInput, "{pasted}");
            assert!(message.contains(says), "{pasted}: {message}");
            // Quire's own check, not the server's refusal; and it says what to do.
            assert!(!message.contains("refused"), "{pasted}: {message}");
            assert!(message.contains("six-digit code"), "{pasted}: {message}");
        }
    }

    #[test]
    fn a_used_or_expired_reset_code_says_what_to_do() {
        let answer = json!({"code": 403, "error_code": "otp_expired", "msg": "Email link is invalid or has expired"});
        let message = refusal(403, &answer, "").to_string();
        assert!(!message.contains("refused"), "{message}");
        assert!(message.contains("wrong or has expired"), "{message}");
        assert!(message.contains("already used"), "{message}");
        assert!(message.contains("new reset email"), "{message}");
    }
}
