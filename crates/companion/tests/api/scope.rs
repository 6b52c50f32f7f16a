//! Issue 17, item 1: a conversation limited to some documents
//! (`conversations.document_ids`, db/app/92_conversation_scope.sql). The
//! companion keeps only the client's chunks that lie in the scope, re-read
//! under the user's token, and its search tool searches only in it.

use quire_testkit::fixtures;
use quire_testkit::fixtures::MANUAL;
use quire_testkit::sse::{one, parse_sse};
use quire_testkit::{Stack, User};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const LEASE: [&str; 2] = [
    "Pets are allowed only with the landlord's written consent.",
    "The deposit is two months of rent.",
];
const PRIVATE: [&str; 1] = ["The vault code is 7431, kept in the blue pot."];

/// `POST /rest/v1/conversations` as `user`: the status and the body.
async fn create_conversation(
    app: &Stack,
    user: &User,
    document_ids: &[Uuid],
) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, "/rest/v1/conversations", Some(&user.token))
        .header("Prefer", "return=representation")
        .json(&json!({"owner_id": user.id, "title": "Scoped", "document_ids": document_ids}))
        .send()
        .await
        .unwrap();
    quire_testkit::json_of(response).await
}

fn ids(hits: &[Value]) -> Vec<Value> {
    hits.iter().map(|h| h["id"].clone()).collect()
}

fn document_ids_of(chunks: &Value) -> Vec<String> {
    chunks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["document_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A asks in a conversation limited to her lease, sending chunk ids of her
/// manual (outside the scope) and of B's document besides the lease's: the
/// run is given the lease's chunks only, the others counted as dropped. The
/// search tool, called for that conversation, finds nothing in the manual.
#[tokio::test]
async fn chunks_outside_the_scope_or_of_another_user_are_dropped_and_the_tool_keeps_to_it() {
    let app = Stack::builder().with_companion().spawn().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let lease = app
        .ready_document(&a, "Lease.pdf", fixtures::document_pdf(&LEASE))
        .await;
    let manual = app
        .ready_document(&a, "X200 manual.pdf", fixtures::document_pdf(&MANUAL))
        .await;
    app.ready_document(&b, "Private.pdf", fixtures::document_pdf(&PRIVATE))
        .await;
    let (status, body) = create_conversation(&app, &a, &[lease]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let conversation = body[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(body[0]["document_ids"], json!([lease]));

    let lease_hits = app.search(&a, "pets consent").await;
    let manual_hits = app.search(&a, "warranty motor").await;
    let b_hits = app.search(&b, "vault code").await;
    assert!(!lease_hits.is_empty() && !manual_hits.is_empty() && !b_hits.is_empty());
    assert!(
        manual_hits
            .iter()
            .all(|h| h["document_id"] == json!(manual))
    );
    let sent: Vec<Value> = [ids(&manual_hits), ids(&b_hits), ids(&lease_hits)].concat();

    let events = app
        .ask(
            &a,
            &json!({"conversation_id": conversation, "message": "Are pets allowed?",
                    "chunk_ids": sent}),
        )
        .await;
    let context = &one(&events, "context")["payload"];
    let given = document_ids_of(&context["chunks"]);
    assert_eq!(given.len(), lease_hits.len(), "{context}");
    assert!(given.iter().all(|d| *d == lease.to_string()), "{context}");
    assert_eq!(context["dropped"], manual_hits.len() + b_hits.len());
    let raw = serde_json::to_string(&events).unwrap();
    assert!(
        !raw.contains("five years") && !raw.contains("7431"),
        "{raw}"
    );

    // A new version of the answer with the same ids is held to the scope too.
    let answer = events[0]["message_id"].as_str().unwrap();
    let response = app
        .companion_request(
            Method::POST,
            &format!("/api/chat/{answer}/regenerate"),
            Some(&a.token),
        )
        .json(&json!({ "chunk_ids": sent }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let version = parse_sse(&response.text().await.unwrap());
    let context = &one(&version, "context")["payload"];
    let given = document_ids_of(&context["chunks"]);
    assert_eq!(given.len(), lease_hits.len(), "{context}");
    assert!(given.iter().all(|d| *d == lease.to_string()), "{context}");

    // The search tool, as the platform calls it during a run of that
    // conversation (a live token of A's, made as the companion makes them).
    let live = format!("qst_{}", "cd".repeat(32));
    let hash = quire_companion::tool::token_hash(&live);
    let conversation_id: Uuid = conversation.parse().unwrap();
    app.db
        .admin()
        .await
        .execute(
            "insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at) \
             values ($1, $2, $3, now() + interval '5 minutes')",
            &[&hash, &a.id, &conversation_id],
        )
        .await
        .unwrap();
    let secret = app.tool_secret();
    let (status, body) = app
        .call_tool(
            Some(&secret),
            &json!({"query": "warranty motor", "session_token": live}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["document_id"] == json!(lease)),
        "the manual is outside the scope: {body}"
    );
    assert!(!body.to_string().contains("five years"), "{body}");
    let (status, body) = app
        .call_tool(
            Some(&secret),
            &json!({"query": "pets consent", "session_token": live}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["document_id"], json!(lease), "{body}");
}

/// B cannot put A's document in a conversation of B's, on insert or on
/// update (the same 409 as for a document that does not exist), and A's
/// conversation's scope cannot be searched by B.
#[tokio::test]
async fn b_cannot_scope_a_conversation_to_a_document_of_a() {
    let app = Stack::builder().with_companion().spawn().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let lease = app
        .ready_document(&a, "Lease.pdf", fixtures::document_pdf(&LEASE))
        .await;

    let (status, body) = create_conversation(&app, &b, &[lease]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = create_conversation(&app, &b, &[Uuid::new_v4()]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = create_conversation(&app, &b, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let b_conversation = body[0]["id"].as_str().unwrap().to_owned();
    let response = app
        .request(
            Method::PATCH,
            &format!("/rest/v1/conversations?id=eq.{b_conversation}"),
            Some(&b.token),
        )
        .header("Prefer", "return=representation")
        .json(&json!({"document_ids": [lease]}))
        .send()
        .await
        .unwrap();
    let (status, body) = quire_testkit::json_of(response).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let stored = app
        .rows(&format!(
            "conversations?select=document_ids&id=eq.{b_conversation}"
        ))
        .await;
    assert_eq!(stored[0]["document_ids"], json!([]));

    let (status, body) = create_conversation(&app, &a, &[lease]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let a_conversation = body[0]["id"].as_str().unwrap().to_owned();
    let response = app
        .request(
            Method::POST,
            "/rest/v1/rpc/search_conversation_chunks",
            Some(&b.token),
        )
        .json(&json!({"query": "pets", "conversation_id": a_conversation}))
        .send()
        .await
        .unwrap();
    let (status, body) = quire_testkit::json_of(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["hint"], "conversation_not_found", "{body}");
    assert!(!body.to_string().contains("Pets"), "{body}");

    // Deleting the document drops it from A's scope: all documents again.
    let (status, body) = app.delete_document(&a, &lease.to_string()).await;
    assert!(status.is_success(), "{status} {body}");
    let stored = app
        .rows_as(
            &a,
            &format!("conversations?select=document_ids&id=eq.{a_conversation}"),
        )
        .await;
    assert_eq!(stored[0]["document_ids"], json!([]));
}
