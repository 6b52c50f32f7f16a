//! Connecting with one address: the companion's URL is all the app is told;
//! a wrong address says what is wrong with it.

use std::sync::Arc;

use quire_core::{ErrorCode, Quire, discovery};
use quire_testkit::client::MemoryTokens;
use quire_testkit::{PASSWORD_A, Stack};

#[tokio::test]
async fn the_companions_address_alone_finds_the_project_and_signs_in() {
    let stack = Stack::builder().with_companion().spawn().await;
    let a = stack.create_user("alice@example.com", PASSWORD_A).await;
    let address = stack.companion_url().unwrap().to_owned();

    let server = discovery::discover(&address).await.unwrap();

    assert_eq!(server.config, stack.config(Some(&address)));
    assert!(server.sign_in.password);
    assert!(server.sign_in.signup);
    assert!(server.sign_in.providers.iter().any(|p| p == "github"));
    let quire = Quire::with_token_store(server.config, Arc::new(MemoryTokens::default()));
    let user = quire
        .sign_in_with_password("alice@example.com", PASSWORD_A)
        .await
        .unwrap();
    assert_eq!(user.id, a);
}

#[tokio::test]
async fn an_address_where_something_else_answers_is_not_a_quire_server() {
    let stack = Stack::builder().with_companion().spawn().await;

    // The project's own URL answers HTTP, but it is not the companion.
    let error = discovery::discover(stack.api_base()).await.unwrap_err();

    assert_eq!(error.code(), ErrorCode::NotAQuireServer, "{error}");
    assert!(error.to_string().contains("not a Quire server"), "{error}");
}

#[tokio::test]
async fn an_address_where_nothing_answers_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);

    let error = discovery::discover(&address).await.unwrap_err();

    assert_eq!(error.code(), ErrorCode::ServerUnreachable, "{error}");
    assert!(
        error.to_string().contains("Could not reach 127.0.0.1"),
        "{error}"
    );
}

#[tokio::test]
async fn a_plain_http_address_elsewhere_is_refused_before_anything_is_sent() {
    let error = discovery::discover("http://quire.example.com")
        .await
        .unwrap_err();

    assert_eq!(error.code(), ErrorCode::InsecureServer, "{error}");
}
