//! A stack in a child process, for the benches whose numbers are a client's
//! latency: the servers' tasks then run on another process's threads, so
//! the client's measurements do not include their scheduling. The bench's
//! binary runs itself again as the child (as the upload bench runs its
//! client), so nothing needs building first.
//!
//! ```no_run
//! # async fn bench() {
//! // First thing in the bench's `main`: in the child this serves and never returns.
//! let stack = quire_testkit::serve::stack_in_child(|| quire_testkit::Stack::builder()).await;
//! let user = stack.user("bench@example.test").await;
//! # }
//! ```
//!
//! The parent can ask the child for its counters ([`Served::stats`]: the
//! sandbox's database round trips) and, with feature `stack`, start a
//! second companion of the same stack in a process of its own
//! ([`Served::replica`]).

use std::io::{BufRead as _, BufReader, Write as _};
use std::ops::Deref;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::{Api, StackInfo};
use crate::stack::Builder;

/// Set in the child process: `1` for a stack, `companion` for a replica.
const CHILD: &str = "QUIRE_TESTKIT_SERVE";
/// The child's line that describes what it serves.
const MARKER: &str = "QUIRE_TESTKIT_STACK";
/// The child's line with what its servers counted, one per `stats` line read.
const STATS: &str = "QUIRE_TESTKIT_STATS";
/// A replica's stack (its [`StackInfo`] and what [`Served::extra`] says), as JSON.
#[cfg(feature = "stack")]
const REPLICA_OF: &str = "QUIRE_TESTKIT_REPLICA_OF";

/// In the parent: starts this binary again as a child that runs the stack
/// `builder` describes, and returns it once it is up. In the child: runs
/// that stack until the parent goes away (its stdin closes), then exits.
pub async fn stack_in_child<'a>(builder: impl FnOnce() -> Builder<'a>) -> Served {
    match std::env::var(CHILD).as_deref() {
        Ok("1") => serve(builder()).await,
        #[cfg(feature = "stack")]
        Ok("companion") => serve_replica().await,
        _ => Served::start(&[]),
    }
}

async fn serve(builder: Builder<'_>) -> ! {
    let stack = builder.spawn().await;
    #[allow(unused_mut)]
    let mut extra = json!({});
    #[cfg(feature = "stack")]
    if stack.companion.is_some() {
        extra = json!({
            "tool_secret": stack.tool_secret(),
            "metrics_url": stack.companion().metrics_addr().map(|a| format!("http://{a}")),
        });
    }
    announce(&stack.info, &extra);
    answer_until_parent_goes(sandbox_stats).await;
    drop(stack);
    std::process::exit(0)
}

/// What the sandbox of this process counted.
fn sandbox_stats() -> Value {
    json!({
        "rest_requests": quire_sandbox::rest::requests(),
        "rest_db_round_trips": quire_sandbox::rest::db_round_trips(),
    })
}

fn announce(info: &StackInfo, extra: &Value) {
    let described = json!({"info": info, "extra": extra});
    println!("{MARKER} {described}");
    let _ = std::io::stdout().flush();
}

/// Answers each `stats` line on stdin with a [`STATS`] line of `stats()`,
/// until stdin closes (the parent went away).
async fn answer_until_parent_goes(stats: fn() -> Value) {
    let (tx, mut lines) = mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        if line.trim() == "stats" {
            println!("{STATS} {}", stats());
            let _ = std::io::stdout().flush();
        }
    }
}

/// In a replica's child: a second companion of the stack [`REPLICA_OF`]
/// describes, with the same tool secret, its metrics listener on.
#[cfg(feature = "stack")]
async fn serve_replica() -> ! {
    crate::logs::init();
    let of: Value = std::env::var(REPLICA_OF)
        .ok()
        .and_then(|json| serde_json::from_str(&json).ok())
        .expect("the replica's stack in QUIRE_TESTKIT_REPLICA_OF");
    let mut info: StackInfo =
        serde_json::from_value(of["info"].clone()).expect("the replica's stack description");
    let tool_secret = of["extra"]["tool_secret"]
        .as_str()
        .expect("the stack's tool secret");
    let mut config = crate::companion::config_for(&info, tool_secret);
    config.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    // The answers-in-flight limit the parent gave its first companion, if any.
    if let Some(limit) = of["extra"]["max_answers_in_flight"].as_u64() {
        config.limits.max_answers_in_flight = usize::try_from(limit).unwrap_or(usize::MAX);
    }
    let companion = quire_companion::spawn(config)
        .await
        .expect("the replica starts");
    info.companion_url = Some(companion.url());
    let extra = json!({
        "tool_secret": tool_secret,
        "metrics_url": companion.metrics_addr().map(|a| format!("http://{a}")),
    });
    announce(&info, &extra);
    answer_until_parent_goes(|| json!({})).await;
    drop(companion);
    std::process::exit(0)
}

/// A stack (or a replica of its companion) running in a child process.
/// Derefs to its [`Api`]; dropping it ends the child (and with it the
/// servers and the database cluster).
pub struct Served {
    api: Api,
    /// What the child adds to its [`StackInfo`]: with a companion, its
    /// `tool_secret` and `metrics_url` (`null` without a metrics listener).
    pub extra: Value,
    stdin: Mutex<Option<ChildStdin>>,
    stats: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    child: Child,
}

impl Served {
    fn start(env: &[(&str, String)]) -> Served {
        let exe = std::env::current_exe().expect("this binary's path");
        let mut command = Command::new(exe);
        command
            .args(std::env::args_os().skip(1))
            .env(CHILD, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the stack's child process starts");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("the child's stdout")).lines();
        let described = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(json) = line.strip_prefix(MARKER) {
                        break serde_json::from_str::<Value>(json.trim())
                            .expect("the child's stack description");
                    }
                    eprintln!("{line}");
                }
                _ => panic!(
                    "the stack's child process ended before its stack was up ({:?})",
                    child.wait()
                ),
            }
        };
        let info: StackInfo = serde_json::from_value(described["info"].clone())
            .expect("the child's stack description");
        // Whatever the child prints later (logs with TEST_LOG=1) goes to stderr, so
        // neither its pipe fills up nor the bench's own output gets mixed with it.
        let (tx, stats) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                match line.strip_prefix(STATS) {
                    Some(json) => {
                        let _ = tx.send(serde_json::from_str(json.trim()).unwrap_or(Value::Null));
                    }
                    None => eprintln!("{line}"),
                }
            }
        });
        Served {
            api: Api::new(info),
            extra: described["extra"].clone(),
            stdin: Mutex::new(stdin),
            stats: tokio::sync::Mutex::new(stats),
            child,
        }
    }

    /// What the child's servers have counted so far: for a stack, the
    /// sandbox's `/rest/v1` requests and their database round trips
    /// (`rest_requests`, `rest_db_round_trips`).
    pub async fn stats(&self) -> Value {
        let mut stats = self.stats.lock().await;
        {
            let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
            let stdin = stdin.as_mut().expect("the child's stdin");
            writeln!(stdin, "stats").expect("asking the child for its counters");
            stdin.flush().expect("asking the child for its counters");
        }
        tokio::time::timeout(crate::PATIENCE, stats.recv())
            .await
            .ok()
            .flatten()
            .expect("the child's counters")
    }

    /// The child's process id (its CPU time is in `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A second companion of this stack in a process of its own: the same
    /// platform, database, agent and tool secret, its metrics listener on
    /// (`extra["metrics_url"]`), and `extra["max_answers_in_flight"]` when
    /// the caller set one. It registers the search tool at its own
    /// URL, as a replica behind a load balancer would at the balancer's.
    #[cfg(feature = "stack")]
    pub fn replica(&self) -> Served {
        let of = json!({"info": self.api.info, "extra": self.extra});
        Served::start(&[
            (CHILD, "companion".to_owned()),
            (REPLICA_OF, of.to_string()),
        ])
    }
}

impl Deref for Served {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        drop(self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take());
        let _ = self.child.wait();
    }
}
