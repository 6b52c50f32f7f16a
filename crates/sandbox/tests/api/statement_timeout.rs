//! `statement_timeout` per role, as on a Supabase project: db/platform sets
//! anon 3 s, authenticated 8 s and authenticator (PostgREST's login, so the
//! default of every role without its own, service_role included) 8 s, and
//! PostgREST applies the impersonated role's settings in each request
//! (docs/platform-contract.md, "PostgREST"). Two users: A's slow request is
//! cut; B's requests run.

use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::{Stack, spawn_sandbox};

/// A request's status and JSON body.
async fn rpc(app: &Stack, function: &str, bearer: &str, body: Value) -> (u16, Value) {
    let res = app
        .http
        .post(format!("{}/rest/v1/rpc/{function}", app.api_base()))
        .header("apikey", app.anon_key())
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn user_token(app: &Stack, uid: Uuid) -> String {
    let now = chrono::Utc::now().timestamp();
    app.sign(
        &json!({"sub": uid, "role": "authenticated", "aud": "authenticated",
                     "iat": now, "exp": now + 3600}),
    )
}

#[tokio::test]
async fn each_request_runs_under_its_roles_statement_timeout() {
    // Arrange
    let app = spawn_sandbox().await;
    app.db
        .admin()
        .await
        .batch_execute(
            "create function public.timeout() returns text language sql stable as $$
               select current_setting('statement_timeout') $$;
             create function public.nap(seconds float8) returns int language sql volatile as $$
               select 1 from pg_sleep(seconds) $$;
             grant execute on function public.timeout(), public.nap(float8)
               to anon, authenticated, service_role;",
        )
        .await
        .unwrap();
    let a = user_token(&app, app.db.create_user("a@example.com").await);
    let b = user_token(&app, app.db.create_user("b@example.com").await);

    // Act
    let anon = rpc(&app, "timeout", &app.anon_key(), json!({})).await;
    let user = rpc(&app, "timeout", &a, json!({})).await;
    let service = rpc(&app, "timeout", &app.service_key(), json!({})).await;
    let slow_anon = rpc(&app, "nap", &app.anon_key(), json!({"seconds": 4})).await;
    let quick_b = rpc(&app, "nap", &b, json!({"seconds": 0.1})).await;

    // Assert
    assert_eq!(anon, (200, json!("3s")));
    assert_eq!(user, (200, json!("8s")));
    assert_eq!(service, (200, json!("8s")));
    assert_eq!(slow_anon.0, 500, "{}", slow_anon.1);
    assert_eq!(slow_anon.1["code"], "57014", "{}", slow_anon.1);
    assert_eq!(quick_b, (200, json!(1)));
}
