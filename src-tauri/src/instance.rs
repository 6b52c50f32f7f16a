//! One window per profile. A second launch of the same profile hands its
//! files ("Open with Quire") to the running window, which comes forward, and
//! exits; another profile runs its own window (the
//! end-to-end tests run A, A's second device and B at once, under one D-Bus
//! session).
//!
//! Why hand-rolled: `tauri-plugin-single-instance` keys its lock on the
//! app's identifier (on Linux a D-Bus name derived from it), so every
//! profile would be "the same instance". Here the profile's directory holds
//!
//! * `instance.lock`, locked exclusively with the OS's advisory file lock
//!   (`File::try_lock`: `flock` on Unix, `LockFileEx` on Windows), which the
//!   OS drops when the process ends however it ends — no stale locks;
//! * `instance.json`, `{port, token}` of a loopback TCP listener the running
//!   window keeps. A second launch connects and sends the token (so a stray
//!   local process cannot make the window jump), then the files it was
//!   given; the window takes them and focuses itself.
//!
//! Std only, the same on Linux, macOS and Windows.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What this launch is.
pub enum Instance {
    /// The only window of its profile: keep the guard for the app's life.
    Primary(Guard),
    /// Another window of the profile runs and was asked to come forward.
    Secondary,
}

/// The running window's lock and listener.
pub struct Guard {
    _lock: File,
    listener: TcpListener,
    token: String,
}

#[derive(Serialize, Deserialize)]
struct Address {
    port: u16,
    token: String,
}

/// Takes the profile's lock, or hands `opened` to the window holding it and
/// asks it to focus.
pub fn acquire(dir: &Path, opened: &[PathBuf]) -> std::io::Result<Instance> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("instance.lock"))?;
    // The lock's holder may be starting (lock taken, address not written
    // yet) or exiting (listener closed, lock not yet released): keep asking
    // it to focus and keep trying the lock, whichever answers first.
    let address = dir.join("instance.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match lock.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => match hand_over(&address, opened) {
                Ok(()) => return Ok(Instance::Secondary),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            },
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let address = Address {
        port: listener.local_addr()?.port(),
        token: token.clone(),
    };
    write_private(
        &dir.join("instance.json"),
        &serde_json::to_vec(&address).map_err(std::io::Error::other)?,
    )?;
    Ok(Instance::Primary(Guard {
        _lock: lock,
        listener,
        token,
    }))
}

impl Guard {
    /// Serves second launches on a thread of its own for the app's life;
    /// `launched` runs with the files of each launch that carries the token.
    pub fn serve(self, launched: impl Fn(Vec<PathBuf>) + Send + 'static) {
        std::thread::Builder::new()
            .name("quire-instance".into())
            .spawn(move || {
                let Guard {
                    _lock,
                    listener,
                    token,
                } = self;
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    // Two lines: the token, then the files as a JSON list.
                    let mut reader = BufReader::new((&stream).take(HAND_OVER_LIMIT));
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    if line.trim_end() != token {
                        continue;
                    }
                    line.clear();
                    let _ = reader.read_line(&mut line);
                    launched(serde_json::from_str(&line).unwrap_or_default());
                    let _ = stream.write_all(b"ok\n");
                }
            })
            .expect("a thread for the single-instance listener");
    }
}

/// The most a second launch may send: the token and its files.
const HAND_OVER_LIMIT: u64 = 1 << 20;

/// Sends the token and `opened` to the running window; `Ok` once it answered.
fn hand_over(path: &Path, opened: &[PathBuf]) -> std::io::Result<()> {
    let address: Address =
        serde_json::from_slice(&std::fs::read(path)?).map_err(std::io::Error::other)?;
    // JSON carries text: a name that is not UTF-8 cannot be handed over.
    let files: Vec<&str> = opened.iter().filter_map(|p| p.to_str()).collect();
    if files.len() < opened.len() {
        tracing::warn!(
            files = opened.len() - files.len(),
            "files whose names are not UTF-8 cannot be handed to the running window"
        );
    }
    let files = serde_json::to_string(&files).map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, address.port).into(),
        Duration::from_secs(2),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{}\n{files}\n", address.token).as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer)?;
    if answer.trim_end() == "ok" {
        Ok(())
    } else {
        Err(std::io::Error::other("the running window did not answer"))
    }
}

/// Writes `bytes` to `path` readable by this user only, replacing it whole.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let partial = path.with_extension("tmp");
    {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&partial)?;
        file.write_all(bytes)?;
    }
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_second_launch_focuses_the_first_and_another_profile_runs_alone() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("A"), root.path().join("B"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let Instance::Primary(first) = acquire(&a, &[]).unwrap() else {
            panic!("the first launch runs")
        };
        let launches = Arc::new(Mutex::new(Vec::new()));
        let seen = launches.clone();
        first.serve(move |files| seen.lock().unwrap().push(files));

        assert!(matches!(acquire(&a, &[]).unwrap(), Instance::Secondary));
        assert_eq!(*launches.lock().unwrap(), [Vec::<PathBuf>::new()]);
        assert!(matches!(acquire(&b, &[]).unwrap(), Instance::Primary(_)));
    }

    #[test]
    fn a_second_launch_hands_its_files_to_the_first() {
        let root = tempfile::tempdir().unwrap();
        let Instance::Primary(first) = acquire(root.path(), &[]).unwrap() else {
            panic!("the first launch runs")
        };
        let launches = Arc::new(Mutex::new(Vec::new()));
        let seen = launches.clone();
        first.serve(move |files| seen.lock().unwrap().push(files));

        let files = [
            PathBuf::from("/home/a/Lease.pdf"),
            PathBuf::from("/home/a/Tax 2024 (final).pdf"),
        ];
        assert!(matches!(
            acquire(root.path(), &files).unwrap(),
            Instance::Secondary
        ));
        assert_eq!(*launches.lock().unwrap(), [files.to_vec()]);
    }

    #[test]
    fn a_launch_while_the_last_window_is_exiting_takes_over() {
        let root = tempfile::tempdir().unwrap();
        // An exiting window: its listener is gone, its lock not yet released.
        let Instance::Primary(exiting) = acquire(root.path(), &[]).unwrap() else {
            panic!("the first launch runs")
        };
        let Guard {
            _lock, listener, ..
        } = exiting;
        drop(listener);
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(_lock);
        });
        assert!(matches!(
            acquire(root.path(), &[]).unwrap(),
            Instance::Primary(_)
        ));
        release.join().unwrap();
    }

    #[test]
    fn a_stranger_without_the_token_focuses_nothing() {
        let root = tempfile::tempdir().unwrap();
        let Instance::Primary(first) = acquire(root.path(), &[]).unwrap() else {
            panic!("the first launch runs")
        };
        let port = first.listener.local_addr().unwrap().port();
        let focused = Arc::new(AtomicUsize::new(0));
        let counter = focused.clone();
        first.serve(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
        stream
            .write_all(b"guess\n[\"/home/a/.ssh/id_ed25519\"]\n")
            .unwrap();
        let mut answer = String::new();
        let _ = BufReader::new(&stream).read_line(&mut answer);
        assert_eq!(answer, "");
        assert_eq!(focused.load(Ordering::SeqCst), 0);
    }
}
