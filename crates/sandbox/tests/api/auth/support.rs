//! Small helpers shared by the Auth tests.

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use quire_testkit::Stack;

pub const PASSWORD_A: &str = "correct horse battery";
pub const PASSWORD_B: &str = "another staple 42";

/// The claims of a JWT, decoded without verification.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A base64url (no padding) string of `value`'s JSON.
pub fn b64_json(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A PKCE verifier as supabase-js makes one (56 random bytes, hex) and its
/// S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier: String = (0..4)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect::<String>()[..112]
        .to_owned();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// The value of the hidden `state` field of the sign-in page.
pub fn form_state(html: &str) -> String {
    let marker = "name=\"state\" value=\"";
    let start = html.find(marker).expect("the page has a state field") + marker.len();
    let end = html[start..].find('"').expect("the state value ends") + start;
    html[start..end].to_owned()
}

/// Two signed-up users, A and B: their sessions.
pub async fn two_users(app: &Stack) -> (Value, Value) {
    let a = app.signed_up("alice@example.com", PASSWORD_A).await;
    let b = app.signed_up("bob@example.com", PASSWORD_B).await;
    (a, b)
}

/// `session[field]` as a string.
pub fn field<'a>(session: &'a Value, name: &str) -> &'a str {
    session[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name} in {session}"))
}

/// The user id of a session.
pub fn user_id(session: &Value) -> Uuid {
    Uuid::parse_str(session["user"]["id"].as_str().expect("user.id")).expect("a uuid")
}

/// How many rows `sql` (a `select count(*) …` with `$1 = id`) counts.
pub async fn count(app: &Stack, sql: &str, id: Uuid) -> i64 {
    app.db
        .admin()
        .await
        .query_one(sql, &[&id])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}
