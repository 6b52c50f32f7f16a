//! quire-testdb itself: isolated databases, working login roles, and a
//! cluster that disappears with the test process however it ends.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use quire_testdb::TestDb;

#[tokio::test]
async fn each_test_gets_its_own_database_cloned_from_the_template() {
    // Arrange
    let first = TestDb::new().await;
    let second = TestDb::new().await;

    // Act
    first.create_user("a@example.com").await;
    let in_second: i64 = second
        .admin()
        .await
        .query_one("select count(*) from auth.users", &[])
        .await
        .unwrap()
        .get(0);
    let tables: i64 = second
        .admin()
        .await
        .query_one(
            "select count(*) from pg_tables where schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // Assert
    assert_ne!(first.name(), second.name());
    assert_eq!(first.port(), second.port(), "one cluster per test process");
    assert_eq!(in_second, 0);
    assert_eq!(tables, 6, "the db/app tables are in every clone");
}

#[tokio::test]
async fn urls_log_in_as_the_named_role() {
    // Arrange
    let db = TestDb::new().await;

    // Act
    let (client, connection) = quire_testdb::tokio_postgres::connect(
        &db.url_as("authenticator"),
        quire_testdb::tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let who: String = client
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    let superuser: bool = db
        .admin()
        .await
        .query_one(
            "select rolsuper from pg_roles where rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // Assert
    assert_eq!(who, "authenticator");
    assert!(superuser);
    assert!(db.url().ends_with(&format!(":{}/{}", db.port(), db.name())));
}

/// Not a test on its own: the child process of
/// `the_cluster_is_removed_when_the_test_process_ends`.
#[tokio::test]
#[ignore = "run in a child process by the_cluster_is_removed_when_the_test_process_ends"]
async fn child_process_holding_a_cluster() {
    if std::env::var_os("QUIRE_TESTDB_CHILD").is_none() {
        return;
    }
    let db = TestDb::new().await;
    let pid = std::fs::read_to_string(db.cluster_dir().join("data/postmaster.pid")).unwrap();
    println!(
        "QUIRE_TESTDB_CHILD {} {}",
        pid.lines().next().unwrap(),
        db.cluster_dir().display()
    );
    // Until the parent closes our stdin (or kills us).
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new()))
        .await
        .unwrap()
        .unwrap();
}

enum Ending {
    Exit,
    Kill,
}

/// Starts the child test, waits for its cluster, ends it, and returns the
/// postmaster's pid and the cluster directory.
fn run_child(ending: Ending) -> (String, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "harness::child_process_holding_a_cluster",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("QUIRE_TESTDB_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .find_map(|l| l.ok().filter(|l| l.starts_with("QUIRE_TESTDB_CHILD ")))
        .expect("the child reports its cluster");
    let mut parts = line.split(' ').skip(1);
    let (pid, dir) = (
        parts.next().unwrap().to_owned(),
        PathBuf::from(parts.next().unwrap()),
    );
    assert!(running(&pid) && dir.exists(), "the child's cluster runs");
    match ending {
        Ending::Exit => drop(child.stdin.take()),
        Ending::Kill => child.kill().unwrap(),
    }
    child.wait().unwrap();
    (pid, dir)
}

/// Whether `pid` is a live (not zombie) process.
fn running(pid: &str) -> bool {
    let out = Command::new("ps")
        .args(["-o", "stat=", "-p", pid])
        .output()
        .unwrap();
    let stat = String::from_utf8_lossy(&out.stdout);
    !stat.trim().is_empty() && !stat.trim_start().starts_with('Z')
}

fn gone_within(pid: &str, dir: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !running(pid) && !dir.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test]
async fn the_cluster_is_removed_when_the_test_process_ends() {
    // Arrange / Act: one child exits normally, one is killed with SIGKILL.
    let exited = tokio::task::spawn_blocking(|| run_child(Ending::Exit));
    let killed = tokio::task::spawn_blocking(|| run_child(Ending::Kill));
    let (exited, killed) = (exited.await.unwrap(), killed.await.unwrap());

    // Assert
    for (how, (pid, dir)) in [("exit", exited), ("SIGKILL", killed)] {
        assert!(
            gone_within(&pid, &dir, Duration::from_secs(20)),
            "after {how}, postmaster {pid} or {} is still there",
            dir.display()
        );
    }
}
