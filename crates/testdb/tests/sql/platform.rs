//! db/platform: the roles and schemas a Powabase project has, with the
//! privileges each platform service needs and nothing more.

use crate::fixtures::{TwoUsers, assert_denied};
use quire_testdb::TestDb;
use quire_testdb::tokio_postgres::error::SqlState;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn roles_have_the_attributes_their_services_need() {
    // Arrange
    let db = TestDb::new().await;

    // Act
    let rows = db.admin().await
        .query(
            "select rolname::text, rolcanlogin, rolinherit, rolbypassrls, rolsuper, \
               array(select b.rolname::text from pg_auth_members m join pg_roles b on b.oid = m.roleid \
                     where m.member = r.oid order by 1) \
             from pg_roles r \
             where rolname in ('anon', 'authenticated', 'service_role', 'authenticator', \
               'supabase_auth_admin', 'supabase_storage_admin', 'supabase_realtime_admin', 'powabase_ai_admin') \
             order by 1",
            &[],
        )
        .await
        .unwrap();
    let roles: Vec<(String, bool, bool, bool, bool, Vec<String>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();

    // Assert: (name, login, inherit, bypassrls, superuser, may SET ROLE to)
    let api = || {
        vec![
            "anon".to_owned(),
            "authenticated".to_owned(),
            "service_role".to_owned(),
        ]
    };
    assert_eq!(
        roles,
        vec![
            ("anon".into(), false, false, false, false, vec![]),
            ("authenticated".into(), false, false, false, false, vec![]),
            ("authenticator".into(), true, false, false, false, api()),
            (
                "powabase_ai_admin".into(),
                true,
                false,
                false,
                false,
                vec![]
            ),
            ("service_role".into(), false, false, true, false, vec![]),
            (
                "supabase_auth_admin".into(),
                true,
                false,
                false,
                false,
                vec![]
            ),
            (
                "supabase_realtime_admin".into(),
                true,
                false,
                true,
                false,
                api()
            ),
            (
                "supabase_storage_admin".into(),
                true,
                false,
                false,
                false,
                api()
            ),
        ]
    );
}

#[tokio::test]
async fn authenticator_has_no_privileges_of_its_own() {
    // Arrange
    let t = TwoUsers::new().await;
    let authenticator = t.db.client_as("authenticator").await;

    // Act
    let documents = authenticator.query("select * from documents", &[]).await;
    let users = authenticator.query("select * from auth.users", &[]).await;
    let set_role = authenticator.batch_execute("set role postgres").await;
    let anon_login = quire_testdb::tokio_postgres::connect(
        &t.db.url_as("anon"),
        quire_testdb::tokio_postgres::NoTls,
    )
    .await;

    // Assert
    assert_denied(documents);
    assert_denied(users);
    assert_denied(set_role);
    let err = anon_login.err().expect("anon cannot log in");
    assert_eq!(
        err.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
    );
}

#[tokio::test]
async fn auth_helpers_read_the_request_claims() {
    // Arrange
    let t = TwoUsers::new().await;
    let helpers = "select auth.uid(), auth.role(), auth.email(), auth.jwt() ->> 'aud'";

    // Act
    let a = t.as_a().query_one(helpers, &[]).await.unwrap();
    let anon = t.db.as_anon().query_one(helpers, &[]).await.unwrap();
    // Older PostgREST and Storage set request.jwt.claim.<name> instead.
    let legacy: Option<Uuid> =
        t.db.admin()
            .await
            .query_one(
                "select set_config('request.jwt.claim.sub', $1, false), auth.uid()",
                &[&t.b.to_string()],
            )
            .await
            .unwrap()
            .get(1);

    // Assert
    assert_eq!(a.get::<_, Option<Uuid>>(0), Some(t.a));
    assert_eq!(a.get::<_, String>(1), "authenticated");
    assert_eq!(a.get::<_, String>(2), "a@example.com");
    assert_eq!(a.get::<_, String>(3), "authenticated");
    assert_eq!(anon.get::<_, Option<Uuid>>(0), None);
    assert_eq!(anon.get::<_, String>(1), "anon");
    assert_eq!(legacy, Some(t.b));
}

#[tokio::test]
async fn auth_tables_are_the_auth_services_alone() {
    // Arrange
    let t = TwoUsers::new().await;
    let gotrue = t.db.client_as("supabase_auth_admin").await;

    // Act
    let by_a = t.as_a().query("select id from auth.users", &[]).await;
    let by_anon = t.db.as_anon().query("select id from auth.users", &[]).await;
    let by_service =
        t.db.as_service()
            .query("select id from auth.refresh_tokens", &[])
            .await;
    let session: Uuid = gotrue
        .query_one(
            "insert into sessions (id, user_id) values (gen_random_uuid(), $1) returning id",
            &[&t.a],
        )
        .await
        .unwrap()
        .get(0);
    let token = gotrue
        .execute(
            "insert into refresh_tokens (token, user_id, session_id) values ('t1', $1, $2)",
            &[&t.a, &session],
        )
        .await;
    let upper_case = gotrue
        .execute(
            "insert into users (id, email) values (gen_random_uuid(), 'Mixed@Example.com')",
            &[],
        )
        .await;

    // Assert
    assert_denied(by_a);
    assert_denied(by_anon);
    assert_denied(by_service);
    assert_eq!(token.unwrap(), 1);
    assert_eq!(
        upper_case.unwrap_err().code(),
        Some(&SqlState::CHECK_VIOLATION)
    );
}

#[tokio::test]
async fn storage_path_helpers_match_supabase() {
    // Arrange
    let db = TestDb::new().await;
    let caller = db.as_anon();

    // Act
    let row = caller
        .query_one(
            "select storage.foldername('a/b/c.pdf'), (storage.foldername('a/b/c.pdf'))[1], \
               storage.foldername('c.pdf'), storage.filename('a/b/c.pdf'), \
               storage.extension('a/b/c.tar.gz'), storage.extension('a/noext')",
            &[],
        )
        .await
        .unwrap();

    // Assert
    assert_eq!(row.get::<_, Vec<String>>(0), vec!["a", "b"]);
    assert_eq!(row.get::<_, String>(1), "a");
    assert!(row.get::<_, Vec<String>>(2).is_empty());
    assert_eq!(row.get::<_, String>(3), "c.pdf");
    assert_eq!(row.get::<_, String>(4), "gz");
    assert_eq!(
        row.get::<_, String>(5),
        "noext",
        "no dot: the whole file name, as upstream"
    );
}

#[tokio::test]
async fn storage_service_acts_as_the_callers_role() {
    // Arrange
    let t = TwoUsers::new().await;
    let storage = t.db.client_as("supabase_storage_admin").await;
    let name = format!("{}/{}.pdf", t.a, Uuid::new_v4());

    // Act: what Storage does per request, as B uploading into A's folder.
    storage.batch_execute("begin").await.unwrap();
    storage
        .execute(
            "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)",
            &[&json!({"sub": t.b, "role": "authenticated"}).to_string()],
        )
        .await
        .unwrap();
    let upload = storage
        .execute(
            "insert into storage.objects (bucket_id, name, owner) values ('documents', $1, $2)",
            &[&name, &t.b],
        )
        .await;
    storage.batch_execute("rollback").await.unwrap();
    let as_itself = storage
        .query("select count(*) from storage.objects", &[])
        .await;

    // Assert
    assert_denied(upload);
    assert!(as_itself.is_ok(), "the owner reads its tables");
}

#[tokio::test]
async fn the_ai_schema_is_closed_to_users_and_open_to_the_service_role() {
    // Arrange
    let t = TwoUsers::new().await;
    let ai = t.db.client_as("powabase_ai_admin").await;

    // Act
    let source: Uuid = ai
        .query_one(
            "insert into ai.sources (name, file_type, content_hash) values ('a.pdf', 'application/pdf', repeat('a', 64)) \
             returning id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let duplicate = ai
        .execute("insert into ai.sources (name, file_type, content_hash) values ('b.pdf', 'pdf', repeat('a', 64))", &[])
        .await;
    let bad_status = ai
        .execute(
            "update ai.sources set extraction_status = 'done' where id = $1",
            &[&source],
        )
        .await;
    let by_a = t.as_a().query("select id from ai.sources", &[]).await;
    let by_anon = t.db.as_anon().query("select id from ai.chunks", &[]).await;
    let by_service =
        t.db.as_service()
            .query("select id from ai.sources", &[])
            .await
            .unwrap();

    // Assert
    assert_eq!(
        duplicate.unwrap_err().code(),
        Some(&SqlState::UNIQUE_VIOLATION)
    );
    assert_eq!(
        bad_status.unwrap_err().code(),
        Some(&SqlState::CHECK_VIOLATION)
    );
    assert_denied(by_a);
    assert_denied(by_anon);
    assert_eq!(by_service.len(), 1);
}

#[tokio::test]
async fn ai_status_columns_accept_exactly_the_platforms_values() {
    // Arrange
    let db = TestDb::new().await;
    let ai = db.client_as("powabase_ai_admin").await;
    ai.batch_execute(
        "insert into ai.sources (id, name, file_type) values ('00000000-0000-4000-8000-000000000001', 'a', 'pdf'); \
         insert into ai.knowledge_bases (id, name) values ('00000000-0000-4000-8000-000000000002', 'kb'); \
         insert into ai.indexed_sources (id, knowledge_base_id, source_id) \
           values ('00000000-0000-4000-8000-000000000003', '00000000-0000-4000-8000-000000000002', \
                   '00000000-0000-4000-8000-000000000001'); \
         insert into ai.agents (id, name, model) values ('00000000-0000-4000-8000-000000000004', 'agent', 'm'); \
         insert into ai.agent_sessions (id, session_id, agent_id) \
           values ('00000000-0000-4000-8000-000000000005', 'sess_0123456789ab', '00000000-0000-4000-8000-000000000004'); \
         insert into ai.agent_runs (id, session_id, run_id) \
           values ('00000000-0000-4000-8000-000000000006', '00000000-0000-4000-8000-000000000005', 'run_0123456789ab');",
    )
    .await
    .unwrap();
    let cases = [
        (
            "ai.sources",
            "extraction_status",
            "00000000-0000-4000-8000-000000000001",
            &[
                "pending",
                "extracting",
                "extracted",
                "attention_required",
                "failed",
                "cancelled",
            ][..],
        ),
        (
            "ai.indexed_sources",
            "index_status",
            "00000000-0000-4000-8000-000000000003",
            &["pending", "indexing", "indexed", "failed", "cancelled"][..],
        ),
        (
            "ai.agent_runs",
            "status",
            "00000000-0000-4000-8000-000000000006",
            &["pending", "running", "completed", "failed"][..],
        ),
    ];

    for (table, column, id, allowed) in cases {
        // Act
        let sql = format!("update {table} set {column} = $1 where id = '{id}'");
        let unknown = ai.execute(&sql, &[&"done"]).await;

        // Assert
        for value in allowed {
            assert_eq!(
                ai.execute(&sql, &[value]).await.unwrap(),
                1,
                "{table}.{column} = {value}"
            );
        }
        assert_eq!(
            unknown.unwrap_err().code(),
            Some(&SqlState::CHECK_VIOLATION),
            "{table}.{column}"
        );
    }
}

#[tokio::test]
async fn realtime_notifies_the_sandbox_server_of_each_message() {
    // Arrange
    let t = TwoUsers::new().await;
    let (listener, mut connection) = quire_testdb::tokio_postgres::connect(
        &t.db.url_as("supabase_realtime_admin"),
        quire_testdb::tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let quire_testdb::tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener
        .batch_execute("listen realtime_messages")
        .await
        .unwrap();

    // Act
    let c = crate::fixtures::chat(&t.db, t.a).await;

    // Assert
    let (channel, payload) = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification")
        .unwrap();
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
    let id: Uuid =
        t.db.admin()
            .await
            .query_one(
                "select id from realtime.messages where payload ->> 'message_id' = $1",
                &[&c.message.to_string()],
            )
            .await
            .unwrap()
            .get(0);
    assert_eq!(channel, "realtime_messages");
    assert_eq!(
        payload,
        json!({"id": id, "topic": format!("user:{}", t.a), "private": true})
    );
}

#[tokio::test]
async fn a_snapshot_tells_the_sandbox_server_exactly_what_committed_since() {
    // Arrange: a message whose transaction began first but commits last.
    let t = TwoUsers::new().await;
    let late = t.db.admin().await;
    let early = t.db.admin().await;
    let reader = t.db.client_as("supabase_realtime_admin").await;
    let send = "select realtime.send('{}', 'delta', $1, true)";
    late.batch_execute("begin").await.unwrap();
    late.execute(send, &[&"user:late"]).await.unwrap();
    early.execute(send, &[&"user:early"]).await.unwrap();

    // Act
    let first = reader
        .query(
            "select pg_current_snapshot()::text, topic from realtime.messages",
            &[],
        )
        .await
        .unwrap();
    let snapshot: String = first[0].get(0);
    late.batch_execute("commit").await.unwrap();
    let since = reader
        .query(
            "select topic from realtime.messages \
             where sandbox_xid >= pg_snapshot_xmin($1::text::pg_snapshot) \
               and not pg_visible_in_snapshot(sandbox_xid, $1::text::pg_snapshot)",
            &[&snapshot],
        )
        .await
        .unwrap();

    // Assert
    let topics = |rows: &[quire_testdb::tokio_postgres::Row]| {
        rows.iter()
            .map(|r| r.get::<_, String>("topic"))
            .collect::<Vec<_>>()
    };
    assert_eq!(topics(&first), vec!["user:early"]);
    assert_eq!(topics(&since), vec!["user:late"]);
}

#[tokio::test]
async fn the_sql_trees_apply_again_without_change() {
    // Arrange
    let db = TestDb::new().await;
    let admin = db.admin().await;
    let shape = "select (select count(*) from pg_policies), (select count(*) from pg_indexes \
                 where schemaname in ('public', 'auth', 'storage', 'realtime', 'ai')), \
                 (select count(*) from storage.buckets), \
                 (select count(*) from information_schema.role_table_grants where grantee = 'authenticated')";
    let before = admin.query_one(shape, &[]).await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    // Act
    for tree in ["db/platform", "db/app"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(tree))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let sql = std::fs::read_to_string(&file).unwrap();
            admin
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("re-applying {}: {e}", file.display()));
        }
    }

    // Assert
    let after = admin.query_one(shape, &[]).await.unwrap();
    for i in 0..4 {
        assert_eq!(
            before.get::<_, i64>(i),
            after.get::<_, i64>(i),
            "column {i}"
        );
    }
}
