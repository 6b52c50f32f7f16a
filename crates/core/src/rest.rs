//! PostgREST (`/rest/v1`) under the user's token: the anon key as `apikey`,
//! the access token as bearer, so row-level security decides what is seen
//! (docs/platform/supabase.md §5). Also the authorized-request helper the
//! Storage and companion clients share: a 401 triggers one refresh and one
//! retry.

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::auth::Auth;
use crate::error::{Error, Result, Service};
use crate::http::{self, Api};

/// Sends `build(token)` with the current access token; on 401 refreshes
/// (single-flight) and sends once more.
pub(crate) async fn authorized(
    auth: &Auth,
    service: Service,
    build: impl Fn(&SecretString) -> RequestBuilder,
) -> Result<Response> {
    let generation = auth.generation();
    let token = auth.access_token().await?;
    let response = http::send(service, build(&token)).await?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    let Some(generation) = generation else {
        return Err(Error::NotSignedIn);
    };
    let token = auth.rejected(generation).await?;
    http::send(service, build(&token)).await
}

/// The PostgREST client.
#[derive(Clone)]
pub(crate) struct Rest {
    api: Api,
    auth: Arc<Auth>,
}

impl Rest {
    pub fn new(api: Api, auth: Arc<Auth>) -> Rest {
        Rest { api, auth }
    }

    /// The signed-in user's id.
    pub fn user_id(&self) -> Result<uuid::Uuid> {
        self.auth.user().map(|u| u.id)
    }

    fn request(&self, method: Method, path: &str, token: &SecretString) -> RequestBuilder {
        self.api
            .http
            .request(method, self.api.url(&format!("/rest/v1/{path}")))
            .timeout(http::REQUEST_TIMEOUT)
            .header("apikey", self.api.anon_key())
            .bearer_auth(token.expose_secret())
    }

    /// `GET /rest/v1/<table>?<query>` → rows.
    pub async fn select<T: DeserializeOwned>(
        &self,
        table: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let response = authorized(&self.auth, Service::Database, |token| {
            self.request(Method::GET, table, token).query(query)
        })
        .await?;
        http::json(Service::Database, response).await
    }

    /// `POST /rest/v1/rpc/<function>` with named arguments.
    pub async fn rpc<T: DeserializeOwned>(
        &self,
        function: &str,
        args: &impl Serialize,
    ) -> Result<T> {
        let path = format!("rpc/{function}");
        let response = authorized(&self.auth, Service::Database, |token| {
            self.request(Method::POST, &path, token).json(args)
        })
        .await?;
        http::json(Service::Database, response).await
    }

    /// `POST /rest/v1/<table>` → the inserted rows.
    pub async fn insert<T: DeserializeOwned>(
        &self,
        table: &str,
        row: &impl Serialize,
    ) -> Result<Vec<T>> {
        let response = authorized(&self.auth, Service::Database, |token| {
            self.request(Method::POST, table, token)
                .header("Prefer", "return=representation")
                .json(row)
        })
        .await?;
        http::json(Service::Database, response).await
    }

    /// `PATCH /rest/v1/<table>?<filters>` → the updated rows.
    pub async fn update<T: DeserializeOwned>(
        &self,
        table: &str,
        filters: &[(&str, String)],
        changes: &impl Serialize,
    ) -> Result<Vec<T>> {
        let response = authorized(&self.auth, Service::Database, |token| {
            self.request(Method::PATCH, table, token)
                .query(filters)
                .header("Prefer", "return=representation")
                .json(changes)
        })
        .await?;
        http::json(Service::Database, response).await
    }

    /// `DELETE /rest/v1/<table>?<filters>` → how many rows went.
    pub async fn delete(&self, table: &str, filters: &[(&str, String)]) -> Result<usize> {
        let response = authorized(&self.auth, Service::Database, |token| {
            self.request(Method::DELETE, table, token)
                .query(filters)
                .header("Prefer", "return=representation")
        })
        .await?;
        let rows: Vec<serde_json::Value> = http::json(Service::Database, response).await?;
        Ok(rows.len())
    }
}

/// `eq.<value>` for a filter.
pub(crate) fn eq(value: impl std::fmt::Display) -> String {
    format!("eq.{value}")
}
