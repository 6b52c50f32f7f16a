//! `quire-companion migrate`, the binary against real databases: one with
//! db/platform only (a Powabase project before Quire), one that is no
//! project at all. What a deployer sees: the exit status, the lines printed,
//! and what the database holds afterwards — including the migration history
//! a later `supabase db push` reads (docs/platform-contract.md §10).

use std::process::Output;

use quire_companion::migrate::{self, Migration};
use quire_testdb::TestDb;
use quire_testdb::tokio_postgres::Client;

async fn migrate_cli(db: &TestDb, args: &[&str]) -> Output {
    migrate_with(&db.url(), args).await
}

/// `migrate` with no arguments, against `url`.
async fn migrate_at(url: &str) -> Output {
    migrate_with(url, &[]).await
}

async fn migrate_with(url: &str, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"))
        .env_clear()
        .env("QUIRE_COMPANION_LOG", "warn")
        .env(migrate::DATABASE_URL, url)
        .arg("migrate")
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The history's rows: (version, name, statements).
async fn history(admin: &Client) -> Vec<(String, String, Vec<String>)> {
    admin
        .query(
            "select version, name, statements from supabase_migrations.schema_migrations \
             order by version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn exists(admin: &Client, relation: &str) -> bool {
    admin
        .query_one("select to_regclass($1) is not null", &[&relation])
        .await
        .unwrap()
        .get(0)
}

fn files() -> Vec<Migration> {
    migrate::migrations()
}

#[tokio::test]
async fn db_app_is_applied_once_and_recorded_as_the_supabase_cli_records_it() {
    let db = TestDb::platform_only().await;
    let admin = db.admin().await;
    assert!(!exists(&admin, "public.documents").await);

    let first = migrate_cli(&db, &[]).await;
    let (stdout, stderr) = text(&first);
    assert!(first.status.success(), "{stdout}{stderr}");
    for m in files() {
        assert!(stdout.contains(&format!("applied  {}", m.file)), "{stdout}");
    }
    let last = files().last().unwrap().version;
    assert!(
        stdout.contains(&format!("db/app is at version {last}")),
        "{stdout}"
    );
    // The schema is there: tables, the bucket, the realtime policy.
    assert!(exists(&admin, "public.documents").await);
    assert!(exists(&admin, "public.chat_events").await);
    let bucket: i64 = admin
        .query_one(
            "select file_size_limit from storage.buckets where id = 'documents'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bucket, 52_428_800);

    // The CLI's table, column for column (`CreateMigrationTable`).
    let columns: Vec<(String, String, String)> = admin
        .query(
            "select column_name::text, data_type::text, is_nullable::text \
             from information_schema.columns \
             where table_schema = 'supabase_migrations' and table_name = 'schema_migrations' \
             order by ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("version", "text", "NO"),
        ("statements", "ARRAY", "YES"),
        ("name", "text", "YES"),
    ];
    assert_eq!(
        columns,
        expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    let key: String = admin
        .query_one(
            "select string_agg(a.attname, ',') from pg_index i \
             join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
             where i.indrelid = 'supabase_migrations.schema_migrations'::regclass and i.indisprimary",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, "version");

    // One row per file: the version and name `supabase db push` reads from
    // the file's name (`^([0-9]+)_(.*)\.sql$`), the file as one statement.
    let rows = history(&admin).await;
    let expected: Vec<(String, String, Vec<String>)> = files()
        .iter()
        .map(|m| {
            let statement = m.sql.trim().trim_end_matches(';').to_owned();
            (m.version.to_owned(), m.name.to_owned(), vec![statement])
        })
        .collect();
    assert_eq!(rows, expected);
    assert_eq!(rows[0].0, "00");
    assert_eq!(rows[0].1, "prerequisites");

    // Again: nothing to do, nothing changed.
    let second = migrate_cli(&db, &[]).await;
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("applied  "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "db/app is up to date on postgres@127.0.0.1:{}/{}: version {last}",
            db.port(),
            db.name()
        )),
        "{stdout}"
    );
    assert_eq!(history(&admin).await, expected);
}

#[tokio::test]
async fn dry_run_changes_nothing_and_status_lists_applied_and_pending() {
    let db = TestDb::platform_only().await;
    let admin = db.admin().await;

    let dry = migrate_cli(&db, &["--dry-run"]).await;
    let (stdout, stderr) = text(&dry);
    assert!(dry.status.success(), "{stdout}{stderr}");
    for m in files() {
        assert!(
            stdout.contains(&format!("would apply  {}", m.file)),
            "{stdout}"
        );
    }
    assert!(stdout.contains("nothing was changed"), "{stdout}");
    assert!(
        !exists(&admin, "public.documents").await,
        "the dry run applied nothing"
    );
    assert!(
        !exists(&admin, "supabase_migrations.schema_migrations").await,
        "the dry run created no history"
    );

    // A database migrated by an older binary: the last two files are new.
    assert!(migrate_cli(&db, &[]).await.status.success());
    let all = files();
    let (old, new) = all.split_at(all.len() - 2);
    for m in new {
        admin
            .execute(
                "delete from supabase_migrations.schema_migrations where version = $1",
                &[&m.version],
            )
            .await
            .unwrap();
    }

    let status = migrate_cli(&db, &["status"]).await;
    let (stdout, stderr) = text(&status);
    assert!(status.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let mut expected: Vec<String> = old.iter().map(|m| format!("applied  {}", m.file)).collect();
    expected.extend(new.iter().map(|m| format!("pending  {}", m.file)));
    expected.push(format!(
        "db/app on postgres@127.0.0.1:{}/{}: {} applied (version {}), 2 pending",
        db.port(),
        db.name(),
        old.len(),
        old.last().unwrap().version
    ));
    assert_eq!(lines, expected);

    let dry = migrate_cli(&db, &["--dry-run"]).await;
    let (stdout, _) = text(&dry);
    let would: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("would apply"))
        .collect();
    assert_eq!(
        would,
        new.iter()
            .map(|m| format!("would apply  {}", m.file))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        history(&admin).await.len(),
        old.len(),
        "the dry run recorded nothing"
    );

    let apply = migrate_cli(&db, &[]).await;
    let (stdout, _) = text(&apply);
    let applied: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("applied  "))
        .collect();
    assert_eq!(
        applied,
        new.iter()
            .map(|m| format!("applied  {}", m.file))
            .collect::<Vec<_>>()
    );
    assert_eq!(history(&admin).await.len(), all.len());
}

#[tokio::test]
async fn a_database_that_is_not_a_powabase_project_is_refused_and_left_alone() {
    // No auth schema: a project's database it is not.
    let db = TestDb::platform_only().await;
    let admin = db.admin().await;
    admin
        .batch_execute("drop schema auth cascade")
        .await
        .unwrap();
    let refused = migrate_cli(&db, &[]).await;
    let (stdout, stderr) = text(&refused);
    assert!(!refused.status.success(), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "the database at postgres@127.0.0.1:{}/{} is not a Powabase project's: it has no auth schema. \
             db/app needs the project's auth, storage and realtime schemas",
            db.port(),
            db.name()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("point QUIRE_COMPANION_DATABASE_URL at the project's own database"),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was applied"), "{stderr}");
    assert!(!exists(&admin, "public.documents").await);
    assert!(!exists(&admin, "supabase_migrations.schema_migrations").await);

    // A bare PostgreSQL database (in a cluster that has the platform's
    // roles): everything it lacks is named.
    let bare = TestDb::empty().await;
    let refused = migrate_cli(&bare, &["status"]).await;
    let (_, stderr) = text(&refused);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("it has no auth schema, no storage schema, no realtime schema. "),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_file_that_fails_leaves_nothing_of_itself_and_stops_the_rest() {
    let db = TestDb::platform_only().await;
    let admin = db.admin().await;
    // Something in the way of 10_documents.sql: a view where its table goes.
    admin
        .batch_execute("create view public.documents as select 1 as id")
        .await
        .unwrap();
    let failed = migrate_cli(&db, &[]).await;
    let (stdout, stderr) = text(&failed);
    assert!(!failed.status.success(), "{stdout}");
    assert!(stdout.contains("applied  00_prerequisites.sql"), "{stdout}");
    assert!(
        stderr.contains("applying db/app/10_documents.sql failed, and nothing of it was applied: "),
        "{stderr}"
    );
    let versions: Vec<String> = history(&admin).await.into_iter().map(|r| r.0).collect();
    assert_eq!(versions, ["00"]);
    assert!(
        !exists(&admin, "public.document_chunks").await,
        "rolled back"
    );
    assert!(
        !exists(&admin, "public.conversations").await,
        "stopped there"
    );
}

#[tokio::test]
async fn two_migrations_at_once_take_turns_and_record_each_file_once() {
    let db = TestDb::platform_only().await;
    // Both plan before either applies anything: the lock they take turns on is held until
    // both wait for it, so each has found every file pending.
    let holder = db.admin().await;
    holder
        .query_one("select pg_advisory_lock($1)", &[&migrate::LOCK_KEY])
        .await
        .unwrap();
    let both = tokio::spawn({
        let url = db.url();
        async move { tokio::join!(migrate_at(&url), migrate_at(&url)) }
    });
    // Within the 4 s a migrate waits for the lock before it gives up.
    let mut waiting = 0;
    for _ in 0..300 {
        waiting = holder
            .query_one(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted \
                 and database = (select oid from pg_database where datname = current_database())",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0);
        if waiting == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    holder
        .query_one("select pg_advisory_unlock($1)", &[&migrate::LOCK_KEY])
        .await
        .unwrap();
    assert_eq!(waiting, 2, "both migrates wait for the lock");
    let (a, b) = both.await.unwrap();

    let mut said = String::new();
    for output in [&a, &b] {
        let (stdout, stderr) = text(output);
        assert!(output.status.success(), "{stdout}{stderr}");
        said += &stdout;
    }
    // Each file was applied by one of them, and the other said so.
    for m in files() {
        let line = |prefix: &str| format!("{prefix}  {}\n", m.file);
        assert_eq!(said.matches(&line("applied")).count(), 1, "{said}");
        assert_eq!(
            said.matches(&line("applied by another migrate meanwhile"))
                .count(),
            1,
            "{said}"
        );
    }
    let versions: Vec<String> = history(&db.admin().await)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    let expected: Vec<&str> = files().iter().map(|m| m.version).collect();
    assert_eq!(versions, expected);
}

#[tokio::test]
async fn without_a_database_url_migrate_says_which_variable_to_set() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_quire-companion"))
        .env_clear()
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "QUIRE_COMPANION_DATABASE_URL is not set: set it to the project's database URL"
        ),
        "{stderr}"
    );
}
