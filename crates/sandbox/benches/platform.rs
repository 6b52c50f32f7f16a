//! `cargo xtask bench` (sandbox part): what the sandbox costs over the thing it stands in front
//! of, measured side by side in one run on this machine.
//!
//! 1. A single-row `select` through `/rest/v1` (JWT check, one transaction with the role and
//!    claims set, JSON built by Postgres) vs the same statement over a direct connection
//!    as `authenticator`, with the same `set_config` preamble — requests/s, p50, p99, ratio.
//! 2. Uploading a 100 MB object through Storage's resumable (TUS) endpoint vs writing the same
//!    bytes to a file on the same disk — MB/s and ratio.
//!
//! The sandbox and its database run in a child process (this binary run again,
//! `quire_testkit::serve`), so the client's numbers do not include the server's scheduling.
//!
//! Numbers are printed, never asserted: benchmarks measure, tests decide.

use std::time::{Duration, Instant};

use base64::Engine as _;
use quire_testkit::{Api, Stack};
use serde_json::Value;

const REST_WARMUP: usize = 200;
const REST_REQUESTS: usize = 3000;
const UPLOAD_BYTES: usize = 100 * 1024 * 1024;
/// Supabase's resumable-upload guide asks for 6 MiB TUS chunks (all but the last).
const TUS_CHUNK: usize = 6 * 1024 * 1024;
/// The upload's bucket: Quire's `documents` takes only files of documents registered with the
/// companion, up to 50 MiB, so the bench has a bucket of its own, with the own-folder policies
/// of a typical Supabase project and no size limit of its own.
const BENCH_BUCKET: &str = "
insert into storage.buckets (id, name, public) values ('bench', 'bench', false);
create policy bench_own_folder_uploads on storage.objects for insert to authenticated
  with check (bucket_id = 'bench' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy bench_own_folder_reads on storage.objects for select to authenticated
  using (bucket_id = 'bench' and (storage.foldername(name))[1] = (select auth.uid())::text);";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 100 MB is over Storage's default global upload limit (50 MiB): this bench's own sandbox
    // raises it.
    let stack = quire_testkit::serve::stack_in_child(|| {
        Stack::builder().sandbox(|c| c.max_upload_bytes = 2 * UPLOAD_BYTES as u64)
    })
    .await;
    let base = stack.api_base().to_owned();
    let anon = stack.anon_key();
    let http = reqwest::Client::new();
    // The disk the sandbox's data directory is on (a temp directory, as the child's is).
    let disk_dir = tempfile::tempdir()?;

    // A user with one conversation row.
    let user = stack.user("bench@example.test").await;
    let (token, uid) = (user.token.clone(), user.id.to_string());
    let admin = stack.connect_db().await;
    admin.batch_execute(BENCH_BUCKET).await?;
    let row = admin
        .query_one(
            "insert into public.conversations (owner_id, title) values ($1::text::uuid, 'bench') returning id::text",
            &[&uid],
        )
        .await?;
    let conversation: String = row.get(0);

    println!(
        "sandbox benchmarks (2 cores, loopback, one client at a time, the sandbox in a child \
         process)\n"
    );
    rest_vs_direct(&http, &base, &anon, &token, &conversation, &stack).await?;
    upload_vs_disk(&http, &base, &anon, &token, &uid, disk_dir.path()).await?;
    Ok(())
}

struct Stats {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>, total: Duration) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Stats {
        per_sec: samples.len() as f64 / total.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

async fn rest_vs_direct(
    http: &reqwest::Client,
    base: &str,
    anon: &str,
    token: &str,
    conversation: &str,
    stack: &Api,
) -> anyhow::Result<()> {
    let url = format!("{base}/rest/v1/conversations?select=*&id=eq.{conversation}");
    let one = || async {
        let response = http
            .get(&url)
            .header("apikey", anon)
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 200,
            "REST answered {}",
            response.status()
        );
        let body = response.bytes().await?;
        anyhow::ensure!(body.len() > 2, "REST returned no row");
        Ok::<_, anyhow::Error>(())
    };
    for _ in 0..REST_WARMUP {
        one().await?;
    }
    let mut samples = Vec::with_capacity(REST_REQUESTS);
    let start = Instant::now();
    for _ in 0..REST_REQUESTS {
        let t = Instant::now();
        one().await?;
        samples.push(t.elapsed());
    }
    let rest = stats(samples, start.elapsed());

    // The same work PostgREST asks of Postgres, over one direct connection as authenticator.
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap_or_default();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?)?
    };
    let claims = claims.to_string();
    let mut direct_client = stack.connect_db_as("authenticator").await;
    for _ in 0..REST_WARMUP {
        direct_once(&mut direct_client, &claims, conversation).await?;
    }
    let mut samples = Vec::with_capacity(REST_REQUESTS);
    let start = Instant::now();
    for _ in 0..REST_REQUESTS {
        let t = Instant::now();
        direct_once(&mut direct_client, &claims, conversation).await?;
        samples.push(t.elapsed());
    }
    let direct = stats(samples, start.elapsed());

    println!("single-row select, {REST_REQUESTS} sequential requests");
    println!("  {:<34} {:>9} {:>10} {:>10}", "", "req/s", "p50", "p99");
    for (name, s) in [
        ("sandbox /rest/v1 (HTTP + JWT)", &rest),
        ("direct connection, same role", &direct),
    ] {
        println!(
            "  {name:<34} {:>9.0} {:>10.2?} {:>10.2?}",
            s.per_sec, s.p50, s.p99
        );
    }
    println!(
        "  ratio sandbox/direct: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x\n",
        rest.per_sec / direct.per_sec,
        rest.p50.as_secs_f64() / direct.p50.as_secs_f64(),
        rest.p99.as_secs_f64() / direct.p99.as_secs_f64(),
    );
    Ok(())
}

/// One request's worth of PostgREST's work, done directly: the same preamble and statement.
async fn direct_once(
    client: &mut tokio_postgres::Client,
    claims: &str,
    conversation: &str,
) -> anyhow::Result<()> {
    let tx = client.transaction().await?;
    tx.execute(
        "select set_config('role', 'authenticated', true), \
         set_config('request.jwt.claims', $1, true), \
         set_config('search_path', 'public', true)",
        &[&claims],
    )
    .await?;
    let row = tx
        .query_one(
            "select coalesce(json_agg(t), '[]')::text from \
             (select * from public.conversations where id = $1::text::uuid) t",
            &[&conversation],
        )
        .await?;
    let body: String = row.get(0);
    anyhow::ensure!(body.len() > 2, "direct query returned no row");
    tx.commit().await?;
    Ok(())
}

async fn upload_vs_disk(
    http: &reqwest::Client,
    base: &str,
    anon: &str,
    token: &str,
    uid: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes: Vec<u8> = (0..UPLOAD_BYTES).map(|i| (i % 251) as u8).collect();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);

    let start = Instant::now();
    let created = http
        .post(format!("{base}/storage/v1/upload/resumable"))
        .header("apikey", anon)
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", UPLOAD_BYTES.to_string())
        .header(
            "Upload-Metadata",
            format!(
                "bucketName {},objectName {},contentType {}",
                b64("bench"),
                b64(&format!("{uid}/bench.pdf")),
                b64("application/pdf")
            ),
        )
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == 201,
        "TUS create answered {}",
        created.status()
    );
    let location = created
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow::anyhow!("TUS create gave no Location"))?
        .to_owned();
    let mut offset = 0;
    while offset < bytes.len() {
        let end = (offset + TUS_CHUNK).min(bytes.len());
        let patched = http
            .patch(&location)
            .header("apikey", anon)
            .bearer_auth(token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(bytes[offset..end].to_vec())
            .send()
            .await?;
        anyhow::ensure!(
            patched.status() == 204,
            "TUS PATCH answered {}",
            patched.status()
        );
        offset = end;
    }
    let upload = start.elapsed();

    let path = data_dir.join("bench-disk-write.bin");
    let start = Instant::now();
    {
        use tokio::io::AsyncWriteExt;
        let mut file = tokio::fs::File::create(&path).await?;
        for chunk in bytes.chunks(TUS_CHUNK) {
            file.write_all(chunk).await?;
        }
        file.sync_all().await?;
    }
    let disk = start.elapsed();
    let _ = std::fs::remove_file(&path);

    let mbps = |d: Duration| UPLOAD_BYTES as f64 / (1024.0 * 1024.0) / d.as_secs_f64();
    println!("100 MB upload");
    println!(
        "  {:<34} {:>9.1} MB/s ({:.2?})",
        "sandbox TUS, 6 MiB chunks",
        mbps(upload),
        upload
    );
    println!(
        "  {:<34} {:>9.1} MB/s ({:.2?})",
        "write + fsync to the same disk",
        mbps(disk),
        disk
    );
    println!(
        "  ratio sandbox/disk throughput: {:.2}x\n",
        mbps(upload) / mbps(disk)
    );
    Ok(())
}
