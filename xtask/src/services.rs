//! Background processes of the dev stack (the sandbox, the companion) and of the demo (the app,
//! and on a machine without a display its Xvfb, D-Bus and keyring): started detached with their
//! logs next to their pid files, tracked by those pid files, stopped with SIGTERM (then SIGKILL).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{self, cmd};

/// One background service of the stack.
pub struct Service {
    /// Short name, used for `.quire/<name>.pid` and `.quire/<name>.log`.
    pub name: &'static str,
    /// The workspace package that builds it (empty for a system program).
    pub package: &'static str,
    /// The binary's file name; a pid whose command line lacks it is not this service.
    pub binary: &'static str,
}

pub const SANDBOX: Service = Service {
    name: "sandbox",
    package: "quire-sandbox",
    binary: "quire-sandbox",
};

pub const COMPANION: Service = Service {
    name: "companion",
    package: "quire-companion",
    binary: "quire-companion",
};

impl Service {
    fn pid_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pid", self.name))
    }

    pub fn log_file(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.log", self.name))
    }

    /// The pid of the running service, if its pid file names a live process.
    pub fn running_pid(&self, dir: &Path) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file(dir))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        if cmdline.is_empty() {
            // Empty while the process is still in execve (just started): its name is already in
            // /proc/<pid>/stat, cut to 15 bytes. A zombie's is empty too: that one has exited.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let comm = stat.split_once('(')?.1.rsplit_once(')')?.0;
            let short = &self.binary[..self.binary.len().min(15)];
            return (comm == short && !is_zombie(pid)).then_some(pid);
        }
        // A recycled pid would belong to some other program.
        String::from_utf8_lossy(&cmdline)
            .contains(self.binary)
            .then_some(pid)
    }

    /// Builds the service's binary (quietly when it is up to date) and returns its path.
    pub fn build(&self) -> Result<PathBuf> {
        util::step(&format!("stack: building {}", self.package));
        cmd("cargo")
            .args(["build", "--quiet", "-p", self.package])
            .current_dir(util::repo_root())
            .run()?;
        Ok(util::target_dir().join("debug").join(self.binary))
    }

    /// Starts the binary detached (own process group, stdio to the log file), with the command
    /// (arguments, environment, standard input) as `configure` leaves it.
    pub fn start_with(
        &self,
        dir: &Path,
        binary: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> Result<u32> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file(dir))?;
        let mut command = Command::new(binary);
        command
            .current_dir(util::repo_root())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        configure(&mut command);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        std::fs::write(self.pid_file(dir), format!("{pid}\n"))?;
        Ok(pid)
    }

    /// Stops the service if it runs: SIGTERM, up to 10 s for a graceful exit, then SIGKILL.
    pub fn stop(&self, dir: &Path) -> Result<bool> {
        let Some(pid) = self.running_pid(dir) else {
            let _ = std::fs::remove_file(self.pid_file(dir));
            return Ok(false);
        };
        signal(pid, "TERM");
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid) {
            if start.elapsed() > Duration::from_secs(10) {
                signal(pid, "KILL");
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(self.pid_file(dir));
        Ok(true)
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Waits until `GET http://<addr><path>` answers 200, or fails naming the log to read.
pub fn wait_healthy(addr: &str, path: &str, within: Duration, log: &Path) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if http_status(addr, path).is_some_and(|s| s == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "{addr}{path} did not answer within {within:?}; see {}",
        log.display()
    )
}

/// The status code of a plain HTTP/1.0 GET, if the server answers at all.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A plain HTTP/1.0 request with a JSON body; returns the status code.
pub fn http_post_json(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Result<u16> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP answer from {addr}{path}"))
}
