//! `cargo xtask bench` (core part): uploading a 100 MiB PDF through the core vs `curl` making
//! the same requests to the same endpoints, side by side in one run, and the core's memory
//! while it uploads.
//!
//! The stack is real and runs in this process: a throwaway PostgreSQL, the sandbox (Storage,
//! AI) and the companion, on free ports. The PDF is a real one (`%PDF-1.7` header, a page with
//! text, an xref table and trailer) padded to 100 MiB with a large stream of random bytes; the
//! core's own `check_pdf` accepts it.
//!
//! - **core**: `Quire::upload` with the default options, in a child process (this binary run
//!   again) that holds nothing but the client, so its RSS is the core's alone. A 100 MiB file is
//!   above the 6 MiB threshold, so this is the core's real path: register with the companion,
//!   TUS create, `PATCH` 6 MiB chunks with `Upload-Offset` (each streamed from disk), ingest.
//! - **curl**: the same requests with the same chunk size. curl cannot speak TUS by itself, so
//!   the bench drives it: one `curl` to register, one for the TUS create, one for every `PATCH`
//!   (chained with `--next`, so one process and one keep-alive connection, as the core has;
//!   each chunk streamed from a file with `-T`, `Expect: 100-continue` off), one to ingest.
//!   The chunk files are cut before the clock starts. The single-request Storage endpoint
//!   would not be a fair baseline: the core never uses it for a file this size (and Storage
//!   caps one request at its upload limit, 50 MB by default).
//!
//! Both clients run as separate processes against the same in-process stack, on the same two
//! cores. One asymmetry is kept in view rather than hidden: the core is timed inside its
//! process, already signed in (as the app is when a file is dropped), while every curl step
//! starts a process and a connection; so curl gets a second row counting only the time curl
//! itself reports inside its requests (`%{time_total}`). curl's own memory is not measured. Reported: end-to-end MiB/s (register → ingest accepted) and storage MiB/s (TUS
//! create → last `PATCH` answered; for the core, the `Registered` event → the last `Progress`
//! event), medians of a few runs after a warm-up, and the ratios. The core's memory: the child's
//! peak RSS during the upload (`VmHWM`, reset just before with `echo 5 > /proc/self/clear_refs`)
//! and that peak minus its RSS just before — a streaming upload should add a few chunk sizes,
//! not the file's 100 MiB. Between runs the bench waits for the companion's ingestion of the
//! previous document to finish, so it does not compete for the CPU.
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use quire_core::{CancellationToken, Config, Quire, UploadEvent, UploadOptions};
use quire_testkit::Stack;
use quire_testkit::client::MemoryTokens;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

const MIB: u64 = 1024 * 1024;
const PDF_BYTES: u64 = 100 * MIB;
const WARMUP: usize = 1;
const RUNS: usize = 5;
const EMAIL: &str = "bench-upload@example.test";
const PASSWORD: &str = "bench password, long enough";
/// Set in the child process that runs the core's upload.
const CHILD: &str = "QUIRE_BENCH_UPLOAD_CHILD";
/// How long ingestion of one document may take before the bench goes on anyway.
const SETTLE: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return child().await;
    }
    // A 100 MiB PDF is over Quire's limit (the `documents` bucket's 50 MiB, Storage's default
    // global limit): this bench's own stack raises both, explicitly, so the bench measures a
    // large upload. Nothing else runs with these limits.
    let stack = Stack::builder()
        .token_delay_ms(0)
        .sandbox(|c| c.max_upload_bytes = 256 * MIB)
        .with_companion()
        .spawn()
        .await;
    stack
        .db
        .admin()
        .await
        .execute(
            "update storage.buckets set file_size_limit = $1 where id = 'documents'",
            &[&((256 * MIB) as i64)],
        )
        .await?;
    stack.create_user(EMAIL, PASSWORD).await;
    let token = stack.session(EMAIL, PASSWORD).await.token;
    let options = UploadOptions::default();

    let pdf = stack.dir.path().join("bench 100 MiB.pdf");
    write_pdf(&pdf, PDF_BYTES)?;
    quire_core::upload::check_pdf(&pdf, 256 * MIB).await?;
    let chunks = cut_chunks(&pdf, &stack.dir.path().join("chunks"), options.chunk_bytes)?;
    let curl = Curl {
        api: stack.api_base().to_owned(),
        anon: stack.anon_key(),
        companion: companion_url(&stack),
        token: token.clone(),
    };

    let runs = measure(&stack, &token, &curl, &pdf, &chunks).await?;
    let chunk_mib = options.chunk_bytes as f64 / MIB as f64;
    print_throughput(&runs, chunk_mib);
    print_memory(&runs.core, chunk_mib);
    Ok(())
}

/// Every run's samples, and how ingestion of each upload ended.
struct Runs {
    core: Vec<Sample>,
    curl: Vec<Sample>,
    outcomes: Vec<String>,
}

/// The median of `f` over `runs`.
fn median(runs: &[Sample], f: fn(&Sample) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Uploads the file through the core and with curl, in turns, waiting for each ingestion.
async fn measure(
    stack: &Stack,
    token: &str,
    curl: &Curl,
    pdf: &Path,
    chunks: &[PathBuf],
) -> anyhow::Result<Runs> {
    let mut core_runs = Vec::new();
    let mut curl_runs = Vec::new();
    let mut outcomes = Vec::new();
    for run in 0..WARMUP + RUNS {
        // Alternate which goes first, so neither always meets a warmer (or busier) stack.
        for core_first in [run % 2 == 0, run % 2 != 0] {
            let (sample, document) = if core_first {
                core_upload(stack, pdf).await?
            } else {
                curl.upload(pdf, chunks).await?
            };
            outcomes.push(settle(stack, token, document).await?);
            if run >= WARMUP {
                if core_first {
                    core_runs.push(sample);
                } else {
                    curl_runs.push(sample);
                }
            }
        }
    }

    Ok(Runs {
        core: core_runs,
        curl: curl_runs,
        outcomes,
    })
}

/// The throughput table: the core, curl, curl's time inside its requests, and the ratios.
fn print_throughput(runs: &Runs, chunk_mib: f64) {
    let (core_runs, curl_runs, outcomes) = (&runs.core, &runs.curl, &runs.outcomes);
    let mibps = |s: f64| PDF_BYTES as f64 / MIB as f64 / s;
    let (core_total, core_storage) = (
        median(core_runs, |s| s.total),
        median(core_runs, |s| s.storage),
    );
    let (curl_total, curl_storage) = (
        median(curl_runs, |s| s.total),
        median(curl_runs, |s| s.storage),
    );
    println!(
        "100 MiB PDF upload (2 cores, loopback), TUS with {chunk_mib:.0} MiB chunks; medians of \
         {RUNS} runs after {WARMUP} warm-up"
    );
    println!("  {:<38} {:>22} {:>22}", "", "end-to-end", "storage (TUS)");
    for (name, total, storage) in [
        (
            "core Quire::upload (child process)",
            core_total,
            core_storage,
        ),
        ("curl, the same requests", curl_total, curl_storage),
        (
            "  curl: its time inside the requests",
            median(curl_runs, |s| s.in_requests_total),
            median(curl_runs, |s| s.in_requests_storage),
        ),
    ] {
        println!(
            "  {name:<38} {:>9.1} MiB/s {:>6.2}s {:>9.1} MiB/s {:>6.2}s",
            mibps(total),
            total,
            mibps(storage),
            storage
        );
    }
    let (inside_total, inside_storage) = (
        median(curl_runs, |s| s.in_requests_total),
        median(curl_runs, |s| s.in_requests_storage),
    );
    println!(
        "  ratio core/curl throughput: end-to-end {:.2}x, storage {:.2}x \
         (against curl's time inside the requests: {:.2}x, {:.2}x)",
        curl_total / core_total,
        curl_storage / core_storage,
        inside_total / core_total,
        inside_storage / core_storage
    );
    println!(
        "  end-to-end = register → TUS create → PATCHes → ingest accepted; storage = TUS create → \
         last PATCH answered.\n  \
         The core is timed inside its own process, signed in. curl runs one process per step \
         (register, create,\n  every PATCH with --next over one connection, ingest), each \
         starting cold; its last row leaves that start-up out."
    );
    let mut ingested: Vec<(&str, usize)> = Vec::new();
    for outcome in outcomes {
        match ingested.iter_mut().find(|(o, _)| o == outcome) {
            Some((_, n)) => *n += 1,
            None => ingested.push((outcome, 1)),
        }
    }
    let ingested: Vec<String> = ingested.iter().map(|(o, n)| format!("{n} {o}")).collect();
    println!(
        "  ingestion of the {} uploads, awaited between runs: {}\n",
        outcomes.len(),
        ingested.join(", ")
    );
}

/// The core's memory while it uploads: peak RSS, RSS before, and the difference in chunks.
fn print_memory(core_runs: &[Sample], chunk_mib: f64) {
    let kib = |f: fn(&Sample) -> f64| median(core_runs, f) / 1024.0;
    let reset = core_runs.iter().all(|s| s.hwm_reset);
    let peak = kib(|s| s.hwm_kib);
    let before = kib(|s| s.rss_before_kib);
    let added = kib(|s| s.hwm_kib - s.rss_before_kib);
    let max_added = core_runs
        .iter()
        .map(|s| s.hwm_kib - s.rss_before_kib)
        .fold(0.0, f64::max)
        / 1024.0;
    println!(
        "the core's memory during the upload (its own process; the stack runs in the bench's)"
    );
    println!(
        "  {:<38} {peak:>9.1} MiB{}",
        "peak RSS (VmHWM)",
        if reset {
            " (reset just before the upload)"
        } else {
            " (since the process started: clear_refs unavailable)"
        }
    );
    println!("  {:<38} {before:>9.1} MiB", "RSS just before the upload");
    println!(
        "  {:<38} {added:>9.1} MiB (max {max_added:.1}) = {:.1} chunks; the file is {} MiB\n",
        "peak − before",
        added / chunk_mib,
        PDF_BYTES / MIB
    );
}

/// The companion's URL (the bench's stack always has one).
fn companion_url(stack: &Stack) -> String {
    stack.companion_url().expect("a companion").to_owned()
}

/// One upload's timings (seconds) and, for the core, its memory (KiB).
#[derive(Debug, Default)]
struct Sample {
    total: f64,
    storage: f64,
    /// curl only: the same spans counting only the time curl reports inside its requests
    /// (`%{time_total}`), without starting the processes.
    in_requests_total: f64,
    in_requests_storage: f64,
    rss_before_kib: f64,
    hwm_kib: f64,
    hwm_reset: bool,
}

/// Runs the core's upload in a child process; returns its sample and the document's id.
async fn core_upload(stack: &Stack, pdf: &Path) -> anyhow::Result<(Sample, Uuid)> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .env(CHILD, "1")
        .env("QUIRE_BENCH_API", stack.api_base())
        .env("QUIRE_BENCH_ANON", stack.anon_key())
        .env("QUIRE_BENCH_COMPANION", companion_url(stack))
        .env("QUIRE_BENCH_FILE", pdf)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "the core's upload failed ({}): {stdout}",
        output.status
    );
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .ok_or_else(|| anyhow::anyhow!("the child printed no result: {stdout}"))?
        .parse()?;
    let number = |key: &str| result[key].as_f64().unwrap_or(f64::NAN);
    Ok((
        Sample {
            total: number("total_s"),
            storage: number("storage_s"),
            rss_before_kib: number("rss_before_kib"),
            hwm_kib: number("hwm_kib"),
            hwm_reset: result["hwm_reset"].as_bool().unwrap_or(false),
            ..Sample::default()
        },
        result["document_id"].as_str().unwrap_or_default().parse()?,
    ))
}

/// The child: signs in, then uploads the file with `Quire::upload` and reports on stdout.
async fn child() -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set"));
    let quire = Quire::with_token_store(
        Config::new(
            &var("QUIRE_BENCH_API")?,
            &var("QUIRE_BENCH_ANON")?,
            &var("QUIRE_BENCH_COMPANION")?,
        )?,
        Arc::new(MemoryTokens::default()),
    );
    quire.sign_in_with_password(EMAIL, PASSWORD).await?;
    let file = PathBuf::from(var("QUIRE_BENCH_FILE")?);

    let (events, mut received) = mpsc::unbounded_channel();
    let watcher = tokio::spawn(async move {
        let (mut registered, mut stored) = (None, None);
        while let Some(event) = received.recv().await {
            let at = Instant::now();
            match event {
                UploadEvent::Registered { .. } => registered = Some(at),
                // The last report is the one after the last PATCH was answered.
                UploadEvent::Progress { .. } => stored = Some(at),
                _ => {}
            }
        }
        (registered, stored)
    });

    // Peak RSS from here on (Linux ≥ 4.0); RSS now, with the client signed in and idle.
    let hwm_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before_kib = proc_status_kib("VmRSS")?;
    let start = Instant::now();
    let mut results = quire
        .upload(
            std::slice::from_ref(&file),
            &UploadOptions::default(),
            Some(events),
            CancellationToken::new(),
        )
        .await;
    let total = start.elapsed();
    let hwm_kib = proc_status_kib("VmHWM")?;
    let document = results
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no result"))??;
    let (registered, stored) = watcher.await?;
    let storage = match (registered, stored) {
        (Some(r), Some(s)) => s.saturating_duration_since(r).as_secs_f64(),
        _ => anyhow::bail!("no Registered or Progress event"),
    };
    println!(
        "RESULT {}",
        json!({
            "total_s": total.as_secs_f64(),
            "storage_s": storage,
            "rss_before_kib": rss_before_kib,
            "hwm_kib": hwm_kib,
            "hwm_reset": hwm_reset,
            "document_id": document.id,
        })
    );
    Ok(())
}

/// A `kB` field of `/proc/self/status`.
fn proc_status_kib(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))
}

/// The same requests as the core, made with `curl`.
struct Curl {
    api: String,
    anon: String,
    companion: String,
    token: String,
}

impl Curl {
    async fn upload(&self, pdf: &Path, chunks: &[PathBuf]) -> anyhow::Result<(Sample, Uuid)> {
        let bytes = std::fs::metadata(pdf)?.len();
        let title = pdf
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let start = Instant::now();
        let (document, storage_path, register_in) = self.register(&title, bytes).await?;
        let registered_at = Instant::now();
        let (location, create_in) = self.create(&storage_path, bytes).await?;
        let patch_in = self.patch(&location, chunks).await?;
        let stored_at = Instant::now();
        let ingest_in = self.ingest(document).await?;
        let total = start.elapsed();
        Ok((
            Sample {
                total: total.as_secs_f64(),
                storage: stored_at.duration_since(registered_at).as_secs_f64(),
                in_requests_total: register_in + create_in + patch_in + ingest_in,
                in_requests_storage: create_in + patch_in,
                ..Sample::default()
            },
            document,
        ))
    }

    fn bearer(&self) -> String {
        format!("Authorization: Bearer {}", self.token)
    }

    fn apikey(&self) -> String {
        format!("apikey: {}", self.anon)
    }

    /// `POST /api/documents`: the document's id, its storage path, curl's seconds.
    async fn register(&self, title: &str, bytes: u64) -> anyhow::Result<(Uuid, String, f64)> {
        let bearer = self.bearer();
        let body = json!({"title": title, "byte_size": bytes, "sha256": null}).to_string();
        let (head, out) = curl(&[
            "-X",
            "POST",
            "-H",
            &bearer,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &body,
            &format!("{}/api/documents", self.companion),
        ])
        .await?;
        let registered: Value = serde_json::from_str(&out)
            .map_err(|e| anyhow::anyhow!("register answered {head}{out} ({e})"))?;
        let document: Uuid = registered["document_id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("register answered {head}{out}"))?
            .parse()?;
        let storage_path = registered["storage_path"].as_str().unwrap_or_default();
        Ok((document, storage_path.to_owned(), curl_seconds(&head)))
    }

    /// The TUS create: the upload's location, curl's seconds.
    async fn create(&self, storage_path: &str, bytes: u64) -> anyhow::Result<(String, f64)> {
        let (bearer, apikey) = (self.bearer(), self.apikey());
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let metadata = format!(
            "Upload-Metadata: bucketName {},objectName {},contentType {},cacheControl {}",
            b64("documents"),
            b64(storage_path),
            b64("application/pdf"),
            b64("3600")
        );
        let (created, _) = curl(&[
            "-X",
            "POST",
            "-H",
            &apikey,
            "-H",
            &bearer,
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &format!("Upload-Length: {bytes}"),
            "-H",
            &metadata,
            &format!("{}/storage/v1/upload/resumable", self.api),
        ])
        .await?;
        let create_in = curl_seconds(&created);
        let created = responses(&created);
        let location = match created.as_slice() {
            [(201, headers)] => headers.get("location").cloned(),
            _ => None,
        }
        .ok_or_else(|| anyhow::anyhow!("TUS create answered {created:?}"))?;
        Ok((location, create_in))
    }

    /// Every chunk `PATCH`ed in order: curl's seconds.
    async fn patch(&self, location: &str, chunks: &[PathBuf]) -> anyhow::Result<f64> {
        let (bearer, apikey) = (self.bearer(), self.apikey());
        // Every PATCH in one curl process (`--next`), so one keep-alive connection.
        let mut args: Vec<String> = Vec::new();
        let mut offset = 0u64;
        let mut expected = Vec::new();
        for chunk in chunks {
            if offset > 0 {
                args.push("--next".into());
            }
            args.extend(
                [
                    "-sS",
                    "-w",
                    TIMING,
                    "-o",
                    "/dev/null",
                    "-D",
                    "-",
                    "-X",
                    "PATCH",
                    "-T",
                    &chunk.to_string_lossy(),
                    "-H",
                    &apikey,
                    "-H",
                    &bearer,
                    "-H",
                    "Tus-Resumable: 1.0.0",
                    "-H",
                    &format!("Upload-Offset: {offset}"),
                    "-H",
                    "Content-Type: application/offset+octet-stream",
                    "-H",
                    "Expect:",
                    location,
                ]
                .map(str::to_owned),
            );
            offset += std::fs::metadata(chunk)?.len();
            expected.push((204, offset.to_string()));
        }
        let patched = run_curl(&args).await?;
        let got: Vec<(u16, String)> = responses(&patched)
            .into_iter()
            .map(|(status, headers)| {
                (
                    status,
                    headers.get("upload-offset").cloned().unwrap_or_default(),
                )
            })
            .collect();
        anyhow::ensure!(got == expected, "TUS PATCHes answered {got:?}");
        Ok(curl_seconds(&patched))
    }

    /// `POST /api/documents/{id}/ingest`: curl's seconds.
    async fn ingest(&self, document: Uuid) -> anyhow::Result<f64> {
        let bearer = self.bearer();
        let (ingested, _) = curl(&[
            "-X",
            "POST",
            "-H",
            &bearer,
            &format!("{}/api/documents/{document}/ingest", self.companion),
        ])
        .await?;
        let status = responses(&ingested).last().map(|r| r.0);
        anyhow::ensure!(status == Some(202), "ingest answered {ingested}");
        Ok(curl_seconds(&ingested))
    }
}

/// curl's `-w` line after each request: its own time for it.
const TIMING: &str = "TIME %{time_total}\n";

/// The seconds curl reports for the requests in `dump` (its `TIME` lines), summed.
fn curl_seconds(dump: &str) -> f64 {
    dump.lines()
        .filter_map(|l| l.strip_prefix("TIME ")?.trim().parse::<f64>().ok())
        .sum()
}

/// One `curl` request: its response headers (`-D -`) and, when the body is JSON, its body.
async fn curl(args: &[&str]) -> anyhow::Result<(String, String)> {
    let dir = tempfile::tempdir()?;
    let body = dir.path().join("body");
    let mut all: Vec<String> = [
        "-sS",
        "-w",
        TIMING,
        "-D",
        "-",
        "-o",
        &body.to_string_lossy(),
    ]
    .map(str::to_owned)
    .to_vec();
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let headers = run_curl(&all).await?;
    let body = std::fs::read_to_string(&body).unwrap_or_default();
    Ok((headers, body))
}

async fn run_curl(args: &[String]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("curl")
        .args(args)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running curl (cargo xtask setup installs it): {e}"))?;
    anyhow::ensure!(
        output.status.success(),
        "curl failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Response heads as `curl -D -` prints them: (status, lower-cased headers) in order.
fn responses(dump: &str) -> Vec<(u16, std::collections::HashMap<String, String>)> {
    let mut out: Vec<(u16, std::collections::HashMap<String, String>)> = Vec::new();
    for line in dump.lines() {
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("HTTP/") {
            let status = rest
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            // A `100 Continue` head is followed by the real one.
            if out.last().is_some_and(|(s, _)| *s == 100) {
                out.pop();
            }
            out.push((status, Default::default()));
        } else if let (Some((name, value)), Some((_, headers))) =
            (line.split_once(':'), out.last_mut())
        {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    out
}

/// Waits until the companion's ingestion of `document` is over (its row, read as the user
/// through `/rest/v1`); returns its final status.
async fn settle(stack: &Stack, token: &str, document: Uuid) -> anyhow::Result<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let rows: Value = stack
            .http
            .get(format!(
                "{}/rest/v1/documents?id=eq.{document}&select=status",
                stack.api_base()
            ))
            .header("apikey", stack.anon_key())
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let status = rows[0]["status"].as_str().unwrap_or("(no row)").to_owned();
        if matches!(status.as_str(), "ready" | "failed" | "no_text") {
            return Ok(status);
        }
        if Instant::now() > deadline {
            return Ok(format!("{status} (still, after {SETTLE:?})"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes a valid one-page PDF of exactly `size` bytes: header, catalog, page tree, a page with
/// a line of text, a large stream of random bytes (an unreferenced object, which readers skip),
/// the xref table and the trailer.
fn write_pdf(path: &Path, size: u64) -> anyhow::Result<()> {
    let text = b"BT /F1 24 Tf 72 700 Td (Quire upload bench: 100 MiB) Tj ET";
    let objects: [Vec<u8>; 5] = [
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
           /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        [
            format!("<< /Length {} >>\nstream\n", text.len()).as_bytes(),
            text,
            b"\nendstream",
        ]
        .concat(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
    ];
    let mut head: Vec<u8> = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (n, body) in objects.iter().enumerate() {
        offsets.push(head.len() as u64);
        head.extend_from_slice(format!("{} 0 obj\n", n + 1).as_bytes());
        head.extend_from_slice(body);
        head.extend_from_slice(b"\nendobj\n");
    }
    offsets.push(head.len() as u64);
    // The padding's length decides the offsets after it; a few rounds find the fixed point.
    let tail_after = |pad: u64| {
        let stream_head = format!("6 0 obj\n<< /Length {pad} >>\nstream\n");
        let stream_end = b"\nendstream\nendobj\n";
        let xref_at = head.len() as u64 + stream_head.len() as u64 + pad + stream_end.len() as u64;
        let mut xref = String::from("xref\n0 7\n0000000000 65535 f \n");
        for offset in &offsets {
            xref.push_str(&format!("{offset:010} 00000 n \n"));
        }
        xref.push_str(&format!(
            "trailer\n<< /Size 7 /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n"
        ));
        (stream_head, [&stream_end[..], xref.as_bytes()].concat())
    };
    let mut pad = size - head.len() as u64;
    for _ in 0..4 {
        let (stream_head, tail) = tail_after(pad);
        pad = size - head.len() as u64 - stream_head.len() as u64 - tail.len() as u64;
    }
    let (stream_head, tail) = tail_after(pad);
    anyhow::ensure!(
        head.len() as u64 + stream_head.len() as u64 + pad + tail.len() as u64 == size,
        "the PDF's layout did not converge"
    );

    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(&head)?;
    out.write_all(stream_head.as_bytes())?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; MIB as usize];
    let mut left = pad;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // xorshift64: incompressible, cheap.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.write_all(&tail)?;
    out.into_inner()?.sync_all()?;
    Ok(())
}

/// Cuts `pdf` into files of `chunk` bytes (the last shorter), for curl's `-T`.
fn cut_chunks(pdf: &Path, dir: &Path, chunk: u64) -> anyhow::Result<Vec<PathBuf>> {
    use std::io::Read as _;
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::File::open(pdf)?;
    let mut paths = Vec::new();
    let mut buffer = vec![0u8; chunk as usize];
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match file.read(&mut buffer[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        if filled == 0 {
            return Ok(paths);
        }
        let path = dir.join(format!("{:03}", paths.len()));
        std::fs::write(&path, &buffer[..filled])?;
        paths.push(path);
    }
}
