//! The Quire companion's routes the client uses, under the user's token:
//! `POST /api/chat` (SSE), `POST /api/chat/{message_id}/stop`,
//! `POST /api/chat/{message_id}/regenerate` (SSE),
//! `POST /api/documents`, `POST /api/documents/{id}/ingest`,
//! `DELETE /api/documents/{id}`. The core never calls the platform's own
//! `/api/*` management routes; only the companion does.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::{Error, Result, Service};
use crate::http::{self, Api};
use crate::rest::authorized;

#[derive(Clone)]
pub(crate) struct Companion {
    api: Api,
    auth: Arc<Auth>,
}

/// `POST /api/documents`'s answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Registered {
    pub document_id: Uuid,
    pub storage_path: String,
}

impl Companion {
    pub fn new(api: Api, auth: Arc<Auth>) -> Companion {
        Companion { api, auth }
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.api
            .http
            .request(method, self.api.companion_url(path))
            .bearer_auth(token.expose_secret())
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Response> {
        let response = authorized(&self.auth, Service::Companion, |token| {
            let request = self
                .request(method.clone(), path, token)
                .timeout(http::REQUEST_TIMEOUT);
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await?;
        http::check(Service::Companion, response).await
    }

    /// Starts an answer; the response body is its SSE stream.
    pub async fn chat(
        &self,
        conversation_id: Option<Uuid>,
        message: &str,
        chunk_ids: &[Uuid],
    ) -> Result<Response> {
        let body =
            json!({"conversation_id": conversation_id, "message": message, "chunk_ids": chunk_ids});
        let response = authorized(&self.auth, Service::Companion, |token| {
            self.request(Method::POST, "/api/chat", token)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&body)
        })
        .await?;
        let response = http::check(Service::Companion, response)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::NotFound {
                    what: "conversation".into(),
                },
                other => other,
            })?;
        Ok(response)
    }

    /// Starts a new version of the answer `message_id`; the response body
    /// is its SSE stream, as for [`Companion::chat`].
    pub async fn regenerate(&self, message_id: Uuid, chunk_ids: &[Uuid]) -> Result<Response> {
        let body = json!({ "chunk_ids": chunk_ids });
        let path = format!("/api/chat/{message_id}/regenerate");
        let response = authorized(&self.auth, Service::Companion, |token| {
            self.request(Method::POST, &path, token)
                .header(reqwest::header::ACCEPT, "text/event-stream")
                .json(&body)
        })
        .await?;
        http::check(Service::Companion, response)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::NotFound {
                    what: "answer".into(),
                },
                other => other,
            })
    }

    /// Stops a running answer; returns its final status.
    pub async fn stop(&self, message_id: Uuid) -> Result<String> {
        let response = self
            .send(Method::POST, &format!("/api/chat/{message_id}/stop"), None)
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::NotFound {
                    what: "answer".into(),
                },
                other => other,
            })?;
        let body: Value = http::json(Service::Companion, response).await?;
        Ok(body
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("stopped")
            .to_owned())
    }

    /// Registers a file about to be uploaded.
    pub async fn register(
        &self,
        title: &str,
        byte_size: u64,
        sha256: Option<&str>,
    ) -> Result<Registered> {
        let body = json!({"title": title, "byte_size": byte_size, "sha256": sha256});
        let response = self
            .send(Method::POST, "/api/documents", Some(&body))
            .await?;
        http::json(Service::Companion, response).await
    }

    /// Asks the companion to ingest an uploaded document.
    pub async fn ingest(&self, document_id: Uuid) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/api/documents/{document_id}/ingest"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Deletes a document everywhere (index, source, file, row).
    pub async fn delete_document(&self, document_id: Uuid) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("/api/documents/{document_id}"),
            None,
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound {
                what: "document".into(),
            },
            other => other,
        })
    }
}
