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

use std::io::{BufRead as _, BufReader, Write as _};
use std::ops::Deref;
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::api::{Api, StackInfo};
use crate::stack::Builder;

/// Set in the child process.
const CHILD: &str = "QUIRE_TESTKIT_SERVE";
/// The child's line that describes its stack.
const MARKER: &str = "QUIRE_TESTKIT_STACK";

/// In the parent: starts this binary again as a child that runs the stack
/// `builder` describes, and returns it once it is up. In the child: runs
/// that stack until the parent goes away (its stdin closes), then exits.
pub async fn stack_in_child<'a>(builder: impl FnOnce() -> Builder<'a>) -> Served {
    if std::env::var_os(CHILD).is_some() {
        serve(builder()).await
    }
    Served::start()
}

async fn serve(builder: Builder<'_>) -> ! {
    let stack = builder.spawn().await;
    let info = serde_json::to_string(&stack.info).expect("a stack description");
    println!("{MARKER} {info}");
    let _ = std::io::stdout().flush();
    let parent_gone = tokio::task::spawn_blocking(|| {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    });
    let _ = parent_gone.await;
    drop(stack);
    std::process::exit(0)
}

/// A stack running in a child process. Derefs to its [`Api`]; dropping it
/// ends the child (and with it the servers and the database cluster).
pub struct Served {
    api: Api,
    stdin: Option<ChildStdin>,
    child: Child,
}

impl Served {
    fn start() -> Served {
        let exe = std::env::current_exe().expect("this binary's path");
        let mut child = Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(CHILD, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the stack's child process starts");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("the child's stdout")).lines();
        let info = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(json) = line.strip_prefix(MARKER) {
                        break serde_json::from_str::<StackInfo>(json.trim())
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
        // Whatever the child prints later (logs with TEST_LOG=1) goes to stderr, so
        // neither its pipe fills up nor the bench's own output gets mixed with it.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        Served {
            api: Api::new(info),
            stdin,
            child,
        }
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
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
