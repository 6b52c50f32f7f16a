//! `cargo xtask bench load`: many people asking at once. Questions arrive open-loop — at a set
//! rate for a set time, whether or not the earlier ones have been answered — each from an
//! account of its own, and the agent calls the search tool in every answer. Two paths side by
//! side in one run, at each rate:
//!
//! - **companion**: `POST /api/chat` with the user's token (a new conversation, the account's
//!   three chunk ids), the whole path of ARCHITECTURE.md, "Ask";
//! - **platform**: the same agent's `POST /api/agents/{id}/run/stream` called directly with the
//!   service key, the same three chunks as by-value `context_items` and the same instruction
//!   item, whose `session_token` is a real one (its `tool_sessions` row made beforehand), so the
//!   agent makes the same tool call, answered by the same tool endpoint. What it leaves out is
//!   exactly the companion's own work: the user's token, the run slot, the conversation and
//!   its platform session, re-reading the chunks, the turn's rows, the token, `chat_events`.
//!
//! Printed per rate and path: p50/p99 time to the first delta and to `complete`, answers per
//! second, errors (busy = 429/503 with `Retry-After`; failed; hung = no end in 60 s), and what
//! an answer cost the database (transactions, `pg_stat_database.xact_commit` deltas; the most
//! connections open, `pg_stat_activity`; the sandbox's `/rest/v1` requests and their round
//! trips) and the companion (its platform calls, and the mean time of each stage of an answer,
//! from its `/metrics`). Then a second companion replica in a process of its own shares the
//! load; and a single-row select through the sandbox's `/rest/v1` against a direct connection.
//!
//! The servers run in child processes (this binary run again, `quire_testkit::serve`): the
//! sandbox, the first companion and PostgreSQL in one, the replica in another.
//!
//! Flags (after `--`): `--rates 1,2,4` (questions per second), `--seconds 6` (per rate and
//! path), `--pool N` (the sandbox's connections per pool; 10 by default), `--no-replica`,
//! `--no-rest`, `--busy N` (each companion's `QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT`, the
//! replica's too; with it the two companions take the highest rate asked, past what one
//! may hold, instead of half of it), `--only companion|platform` (one path, e.g. under a
//! profiler). Numbers are printed, never asserted.
//!
//! The database starts with history — 5,000 people with a document, a conversation and an
//! answer — and is analyzed, as a live project's is: on empty tables the plans a connection
//! caches while they are tiny are sequential scans, kept as they grow.
//!
//! After the table, the targets: at each rate, the companion's p99 first delta and
//! throughput against the platform path's, its errors, and whether the platform path kept up;
//! then what the CPU an answer costs allows: both paths share the machine's cores, so where
//! the platform path saturates them the companion path carries at most the ratio of their
//! costs of its throughput.
//!
//! What an answer cost the machine is printed too: CPU milliseconds per answer, from `/proc`,
//! in all and split into PostgreSQL's processes, this load generator, and the rest (the
//! servers: the sandbox and the companions). With two companions, the second's process alone
//! (it holds nothing else): the companion's own CPU an answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use quire_testkit::serve::Served;
use quire_testkit::{Api, Stack};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

const QUESTION: &str = "How long is the warranty on the motor?";
const PAGES: [&str; 3] = [
    "The X200 motor is covered by a warranty of five years from the date of purchase.",
    "Keep the receipt: the warranty on the motor needs it, and the blades are not covered.",
    "Clean the filter every month; a blocked filter makes the motor run hot.",
];
const PATIENCE: Duration = Duration::from_secs(60);
/// Fewer answers than this have no 99th percentile worth comparing (at 1 q/s for 4 s, the
/// p99 is the slowest of four).
const P99_LEAST_ANSWERS: usize = 50;
/// People with history in the database before the bench begins ([`Bench::seed_history`]).
const HISTORY_USERS: usize = 5_000;
const DEFAULT_RATES: [f64; 5] = [1.0, 16.0, 48.0, 96.0, 128.0];
const DEFAULT_SECONDS: f64 = 6.0;
/// Connections each side of the REST comparison keeps busy.
const REST_CLIENTS: usize = 8;
const REST_SECONDS: f64 = 4.0;

struct Options {
    rates: Vec<f64>,
    seconds: f64,
    replica: bool,
    rest: bool,
    /// The sandbox's connections per pool (`QUIRE_SANDBOX_DB_POOL_SIZE`), when not its default.
    pool: Option<usize>,
    /// Each companion's answers in flight, when not its default.
    busy: Option<usize>,
    /// Only this path (`--only companion|platform`), e.g. under a profiler.
    only: Option<Path>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        rates: DEFAULT_RATES.to_vec(),
        seconds: DEFAULT_SECONDS,
        replica: true,
        rest: true,
        pool: None,
        busy: None,
        only: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rates" => {
                let list = args.next().context("--rates takes a list: 1,2,4")?;
                options.rates = list
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()
                    .context("--rates takes numbers")?;
            }
            "--seconds" => {
                options.seconds = args.next().context("--seconds N")?.parse()?;
            }
            "--pool" => options.pool = Some(args.next().context("--pool N")?.parse()?),
            "--busy" => options.busy = Some(args.next().context("--busy N")?.parse()?),
            "--only" => {
                options.only = Some(match args.next().as_deref() {
                    Some("companion") => Path::Companion,
                    Some("platform") => Path::Platform,
                    _ => anyhow::bail!("--only companion|platform"),
                });
            }
            "--no-replica" => options.replica = false,
            "--no-rest" => options.rest = false,
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The child gets the same flags: the pool size is the sandbox's.
    let options = options()?;
    let pool = options.pool;
    let busy = options.busy;
    let mut stack = quire_testkit::serve::stack_in_child(|| {
        Stack::builder()
            .sandbox(move |c| {
                if let Some(size) = pool {
                    c.db.db_pool_size = size;
                }
            })
            .companion(move |c| {
                c.metrics_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
                if let Some(limit) = busy {
                    c.limits.max_answers_in_flight = limit;
                }
                // No documents are uploaded: no worker polls the queue.
                c.ingest.workers = 0;
            })
    })
    .await;
    if let Some(limit) = busy {
        stack.extra["max_answers_in_flight"] = json!(limit);
    }
    let bench = Bench::new(&stack).await?;
    bench.seed_history().await?;

    println!(
        "load (2 cores, loopback, offline model at 2 ms a piece, the agent calls the search \
         tool; open-loop arrivals, {}s per rate and path; servers in child processes)\n",
        options.seconds
    );
    print_header();
    // One of each first, not counted: connections, schema caches, plans.
    for path in [Path::Companion, Path::Platform] {
        bench.phase(path, 2.0, 2.0, &[&stack]).await?;
    }
    let mut measured = Vec::new();
    for &rate in &options.rates {
        let mut pair = (None, None);
        for path in [Path::Companion, Path::Platform] {
            if options.only.is_some_and(|only| only != path) {
                continue;
            }
            let result = bench.phase(path, rate, options.seconds, &[&stack]).await?;
            result.print(path.name(), rate);
            let summary = result.summary(rate);
            match path {
                Path::Companion => pair.0 = Some(summary),
                Path::Platform => pair.1 = Some(summary),
            }
        }
        if let (Some(companion), Some(platform)) = pair {
            measured.push((companion, platform));
        }
    }
    println!();
    print_targets(&measured);
    if options.replica {
        replicas(&bench, &stack, &options).await?;
    }
    if options.rest {
        rest_vs_direct(&stack).await?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Path {
    Companion,
    Platform,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Companion => "companion /api/chat",
            Path::Platform => "platform run/stream",
        }
    }
}

/// An account with one ready document of three chunks, and what either path sends for it.
struct Account {
    id: Uuid,
    token: String,
    chunk_ids: Vec<Uuid>,
    /// The platform path's context items and platform session.
    items: Vec<Value>,
    session_id: String,
}

struct Bench {
    api: Api,
    http: reqwest::Client,
    admin: tokio_postgres::Client,
    agent_id: Uuid,
    /// Numbers the accounts' emails.
    next_account: AtomicI64,
}

impl Bench {
    async fn new(stack: &Served) -> anyhow::Result<Bench> {
        Ok(Bench {
            api: (**stack).clone(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(512)
                .build()?,
            admin: stack.connect_db().await,
            agent_id: stack.info.agent_id.context("a provisioned agent")?,
            next_account: AtomicI64::new(0),
        })
    }

    /// What a live project has before anyone of this bench asks: [`HISTORY_USERS`] people with
    /// a document, a conversation, a question and an answer of six events each, and a platform
    /// session; then `analyze`. Written directly, with triggers off (history, not traffic: no
    /// broadcast). Without it every table starts empty, and the plans a connection caches
    /// while its tables are tiny — sequential scans, in foreign-key checks too — are kept
    /// as they grow: what would be measured is a new database, not the path.
    async fn seed_history(&self) -> anyhow::Result<()> {
        self.admin
            .batch_execute(&format!(
                "set session_replication_role = replica;
                 with u as (
                   insert into auth.users (id, aud, role, email, email_confirmed_at)
                   select gen_random_uuid(), 'authenticated', 'authenticated',
                          'history-' || n || '@example.test', now()
                   from generate_series(1, {HISTORY_USERS}) n
                   returning id),
                 d as (
                   insert into public.documents (owner_id, title, byte_size, status, page_count)
                   select id, 'Earlier.pdf', 1000, 'ready', 1 from u returning id, owner_id),
                 k as (
                   insert into public.document_chunks
                     (owner_id, document_id, chunk_id, page, page_end, ordinal, text)
                   select owner_id, id, gen_random_uuid(), 1, 1, 0,
                          'Minutes of an earlier meeting about the garden fence.' from d),
                 s as (
                   insert into ai.agent_sessions (session_id, agent_id)
                   select 'sess_h' || substr(md5(id::text), 1, 11), '{agent}' from u
                   returning session_id),
                 c as (
                   insert into public.conversations (owner_id, title, agent_session_id)
                   select u.id, 'Earlier', s.session_id
                   from (select id, row_number() over () r from u) u
                   join (select session_id, row_number() over () r from s) s using (r)
                   returning id, owner_id),
                 m as (
                   insert into public.chat_messages
                     (conversation_id, owner_id, seq, role, status, content)
                   select c.id, c.owner_id, q, case q when 0 then 'user' else 'assistant' end,
                          'complete', 'Earlier words.'
                   from c cross join generate_series(0, 1) q
                   returning id, conversation_id, owner_id, role)
                 insert into public.chat_events (conversation_id, message_id, owner_id, seq, kind, payload)
                 select m.conversation_id, m.id, m.owner_id, e, 'delta', '{{\"text\": \"Earlier\"}}'
                 from m cross join generate_series(0, 5) e where m.role = 'assistant';
                 reset session_replication_role;
                 analyze;",
                agent = self.agent_id,
            ))
            .await?;
        Ok(())
    }

    /// `n` new accounts, each with a ready document of [`PAGES`] (rows written directly: the
    /// ingestion path is not what this bench measures). For `path` platform, each also gets
    /// a conversation, a platform session and a live `session_token`, as the companion would
    /// have made them.
    async fn accounts(&self, n: usize, path: Path) -> anyhow::Result<Vec<Account>> {
        let first = self.next_account.fetch_add(n as i64, Ordering::Relaxed);
        let pages: Vec<String> = PAGES.iter().map(|p| (*p).to_owned()).collect();
        let rows = self
            .admin
            .query(
                "with u as (
                   insert into auth.users (id, aud, role, email, email_confirmed_at)
                   select gen_random_uuid(), 'authenticated', 'authenticated',
                          'load-' || n || '@example.test', now()
                   from generate_series($1::int8 + 1, $1::int8 + $2::int8) n
                   returning id),
                 d as (
                   insert into public.documents (owner_id, title, byte_size, status, page_count)
                   select id, 'X200 manual.pdf', 1000, 'ready', 3 from u
                   returning id, owner_id)
                 insert into public.document_chunks
                   (owner_id, document_id, chunk_id, page, page_end, ordinal, text)
                 select d.owner_id, d.id, gen_random_uuid(), c.n::int, c.n::int, c.n::int - 1, c.text
                 from d cross join unnest($3::text[]) with ordinality c(text, n)
                 returning owner_id, document_id, id, page, text",
                &[&first, &(n as i64), &pages],
            )
            .await?;
        let mut by_owner: BTreeMap<Uuid, Vec<tokio_postgres::Row>> = BTreeMap::new();
        for row in rows {
            by_owner.entry(row.get(0)).or_default().push(row);
        }
        let mut accounts = Vec::with_capacity(n);
        for (id, mut chunks) in by_owner {
            chunks.sort_by_key(|r| r.get::<_, i32>(3));
            let token = self.api.sign(&json!({
                "sub": id, "aud": "authenticated", "role": "authenticated",
                "exp": chrono_now() + 3600, "iat": chrono_now(),
            }));
            let mut account = Account {
                id,
                token,
                chunk_ids: chunks.iter().map(|r| r.get(2)).collect(),
                items: chunks
                    .iter()
                    .map(|r| {
                        json!({"text": r.get::<_, String>(4), "meta": {
                            "chunk_id": r.get::<_, Uuid>(2), "document_id": r.get::<_, Uuid>(1),
                            "page": r.get::<_, i32>(3), "page_end": r.get::<_, i32>(3),
                            "title": "X200 manual.pdf"}})
                    })
                    .collect(),
                session_id: String::new(),
            };
            if path == Path::Platform {
                self.as_the_companion_would(&mut account).await?;
            }
            accounts.push(account);
        }
        Ok(accounts)
    }

    /// What the companion makes before it calls `run/stream`: a platform session, a
    /// conversation, a `session_token` in `tool_sessions`, named in an instruction item.
    async fn as_the_companion_would(&self, account: &mut Account) -> anyhow::Result<()> {
        let service = self.api.service_key();
        let session: Value = self
            .http
            .post(format!(
                "{}/api/agents/{}/sessions",
                self.api.api_base(),
                self.agent_id
            ))
            .header("apikey", &service)
            .bearer_auth(&service)
            .json(&json!({}))
            .send()
            .await?
            .json()
            .await?;
        account.session_id = session["session_id"]
            .as_str()
            .context("a platform session")?
            .to_owned();
        let token = format!("qst_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        self.admin
            .execute(
                "with c as (insert into public.conversations (owner_id, title, agent_session_id)
                            values ($1, 'load', $2) returning id)
                 insert into public.tool_sessions (token_hash, owner_id, conversation_id, expires_at)
                 select encode(sha256(convert_to($3, 'UTF8')), 'hex'), $1, c.id,
                        now() + interval '1 hour' from c",
                &[&account.id, &account.session_id, &token],
            )
            .await?;
        account.items.push(json!({
            "text": format!(
                "To search the user's documents beyond this context, call search_my_documents \
                 with session_token = {token} and the user's question as query."
            ),
            "meta": {"kind": "instruction"},
        }));
        Ok(())
    }

    /// One path at `rate` questions a second for `seconds`, open-loop; the companions in
    /// `companions` take turns. Returns what was measured.
    async fn phase(
        &self,
        path: Path,
        rate: f64,
        seconds: f64,
        companions: &[&Served],
    ) -> anyhow::Result<Phase> {
        let n = ((rate * seconds).round() as usize).max(1);
        let accounts = self.accounts(n, path).await?;
        let before = Counters::read(self, companions).await?;
        let sampler = ConnectionSampler::start(self.api.clone());
        let start = Instant::now();
        let mut asked = Vec::with_capacity(n);
        for (i, account) in accounts.into_iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            let request = match path {
                Path::Companion => {
                    let companion = companions[i % companions.len()];
                    self.http
                        .post(format!(
                            "{}/api/chat",
                            companion.companion_url().context("a companion")?
                        ))
                        .bearer_auth(&account.token)
                        .json(&json!({"message": QUESTION, "chunk_ids": account.chunk_ids}))
                }
                Path::Platform => {
                    let service = self.api.service_key();
                    self.http
                        .post(format!(
                            "{}/api/agents/{}/run/stream",
                            self.api.api_base(),
                            self.agent_id
                        ))
                        .header("apikey", &service)
                        .bearer_auth(&service)
                        .header("Accept", "text/event-stream")
                        .json(
                            &json!({"message": QUESTION, "session_id": account.session_id,
                                      "context_items": account.items, "citations_enabled": true}),
                        )
                }
            };
            asked.push(tokio::spawn(answer(request, path)));
        }
        let mut answers = Vec::with_capacity(n);
        for task in asked {
            answers.push(task.await?);
        }
        let took = start.elapsed();
        let max_connections = sampler.stop().await;
        // Backends report their transactions within a second of going idle.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = Counters::read(self, companions).await?;
        Ok(Phase {
            answers,
            took,
            max_connections,
            cost: after.minus(&before),
        })
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How one question went.
enum Outcome {
    Answered {
        first_delta: Duration,
        complete: Duration,
    },
    /// Refused at once with a status that says to come back (429/503 with `Retry-After`).
    Busy,
    Failed(String),
    /// No end within [`PATIENCE`].
    Hung,
}

/// Sends `request` and reads its stream to the end.
async fn answer(request: reqwest::RequestBuilder, path: Path) -> Outcome {
    let (delta, end) = match path {
        Path::Companion => ("delta", "complete"),
        Path::Platform => ("content_delta", "complete"),
    };
    let start = Instant::now();
    match tokio::time::timeout(PATIENCE, read_stream(request, delta, end, start)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Hung,
    }
}

async fn read_stream(
    request: reqwest::RequestBuilder,
    delta: &str,
    end: &str,
    start: Instant,
) -> Outcome {
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return Outcome::Failed(format!("no answer: {err}")),
    };
    let status = response.status().as_u16();
    if status != 200 {
        let retry = response.headers().contains_key("retry-after");
        let body = response.text().await.unwrap_or_default();
        return if retry && (status == 429 || status == 503) {
            Outcome::Busy
        } else {
            Outcome::Failed(format!("{status} {body}"))
        };
    }
    let mut response = response;
    let mut buffer = String::new();
    let mut first_delta = None;
    loop {
        let piece = match response.chunk().await {
            Ok(Some(piece)) => piece,
            Ok(None) => break,
            Err(_) => return Outcome::Failed("the stream broke off".to_owned()),
        };
        buffer.push_str(&String::from_utf8_lossy(&piece));
        while let Some(at) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..at + 2).collect();
            let (name, data) = event_of(&frame);
            if name == delta {
                first_delta.get_or_insert_with(|| start.elapsed());
            } else if name == end {
                return match first_delta {
                    Some(first_delta) if data["status"] != "failed" => Outcome::Answered {
                        first_delta,
                        complete: start.elapsed(),
                    },
                    _ => Outcome::Failed(format!("ended without an answer: {data}")),
                };
            } else if name == "error" {
                return Outcome::Failed(format!("error event: {data}"));
            }
        }
    }
    Outcome::Failed("the stream ended before complete".to_owned())
}

/// An SSE frame's event name (its `event:` line, or the data's `event`/`type`) and data.
fn event_of(frame: &str) -> (String, Value) {
    let mut name = None;
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
    let name = name.unwrap_or_else(|| {
        data.get("event")
            .or_else(|| data.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    });
    (name, data)
}

/// Counters read before and after a phase.
#[derive(Default, Clone)]
struct Counters {
    xacts: f64,
    rest_requests: f64,
    rest_round_trips: f64,
    /// The companions' platform calls, by service.
    platform_calls: BTreeMap<String, f64>,
    /// The companions' `quire_answer_stage_seconds` sums and counts, by stage.
    stages: BTreeMap<String, (f64, f64)>,
    /// Each companion's `quire_busy_refusals_total`, in the order given.
    busy_refusals: Vec<f64>,
    /// Each companion's process: its CPU milliseconds and the answers it wrote (the count of
    /// its `answer` stage), in the order given. The first shares its process with the sandbox.
    processes: Vec<(f64, f64)>,
    cpu: Cpu,
}

/// CPU time used so far, in milliseconds (`/proc`, Linux only; zeros elsewhere).
#[derive(Default, Clone, Copy)]
struct Cpu {
    /// The whole machine's busy time (`/proc/stat`: all but idle and iowait).
    machine: f64,
    /// PostgreSQL's processes (`comm` = `postgres`) that are running now.
    postgres: f64,
    /// This process: the load generator.
    generator: f64,
}

/// A process's `comm` and its CPU time in ticks, from its `/proc/<pid>/stat`.
fn process(stat: &str) -> Option<(String, f64)> {
    // pid (comm) state ppid … utime(14) stime(15): fields after the comm's ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        comm,
        f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?,
    ))
}

/// The CPU ticks process `pid` (or `self`) used so far; 0 when it cannot be read.
fn process_ticks(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| process(&s))
        .map_or(0.0, |(_, t)| t)
}

/// USER_HZ, which /proc reports in, is 100 on Linux.
fn ticks_to_ms(ticks: f64) -> f64 {
    ticks * 1000.0 / 100.0
}

impl Cpu {
    fn now() -> Cpu {
        let ms = ticks_to_ms;
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let line = stat.lines().next()?.to_owned();
                let n: Vec<f64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal
                Some(n.iter().sum::<f64>() - n.get(3)? - n.get(4)?)
            })
            .unwrap_or(0.0);
        let mut postgres = 0.0;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
                    && let Some((comm, ticks)) = process(&stat)
                    && comm == "postgres"
                {
                    postgres += ticks;
                }
            }
        }
        let generator = process_ticks("self");
        Cpu {
            machine: ms(machine),
            postgres: ms(postgres),
            generator: ms(generator),
        }
    }

    fn minus(self, before: Cpu) -> Cpu {
        Cpu {
            machine: self.machine - before.machine,
            postgres: self.postgres - before.postgres,
            generator: self.generator - before.generator,
        }
    }
}

impl Counters {
    async fn read(bench: &Bench, companions: &[&Served]) -> anyhow::Result<Counters> {
        let row = bench
            .admin
            .query_one(
                "select (xact_commit + xact_rollback)::float8 from pg_stat_database \
                 where datname = current_database()",
                &[],
            )
            .await?;
        let cpu = Cpu::now();
        let stats = companions[0].stats().await;
        let mut platform_calls = BTreeMap::new();
        let mut stages: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        let mut busy_refusals = Vec::new();
        let mut processes = Vec::new();
        for companion in companions {
            let metrics = metrics(&bench.http, companion).await?;
            processes.push((
                ticks_to_ms(process_ticks(&companion.pid().to_string())),
                metrics
                    .get("quire_answer_stage_seconds_count{stage=\"answer\"}")
                    .copied()
                    .unwrap_or(0.0),
            ));
            busy_refusals.push(
                metrics
                    .get("quire_busy_refusals_total")
                    .copied()
                    .unwrap_or(0.0),
            );
            for (name, value) in &metrics {
                if let Some(service) = name
                    .strip_prefix("quire_platform_requests_total{service=\"")
                    .and_then(|s| s.strip_suffix("\"}"))
                {
                    *platform_calls.entry(service.to_owned()).or_default() += value;
                }
            }
            for (stage, (sum, count)) in stage_sums(&metrics) {
                let entry = stages.entry(stage.to_owned()).or_default();
                entry.0 += sum;
                entry.1 += count;
            }
        }
        Ok(Counters {
            xacts: row.get(0),
            rest_requests: stats["rest_requests"].as_f64().unwrap_or(0.0),
            rest_round_trips: stats["rest_db_round_trips"].as_f64().unwrap_or(0.0),
            platform_calls,
            stages,
            busy_refusals,
            processes,
            cpu,
        })
    }

    fn minus(&self, before: &Counters) -> Counters {
        let mut platform_calls = self.platform_calls.clone();
        for (service, value) in &before.platform_calls {
            *platform_calls.entry(service.clone()).or_default() -= value;
        }
        let mut stages = self.stages.clone();
        for (stage, (sum, count)) in &before.stages {
            let entry = stages.entry(stage.clone()).or_default();
            entry.0 -= sum;
            entry.1 -= count;
        }
        Counters {
            stages,
            // The two reads of pg_stat_database are transactions too.
            xacts: self.xacts - before.xacts - 1.0,
            rest_requests: self.rest_requests - before.rest_requests,
            rest_round_trips: self.rest_round_trips - before.rest_round_trips,
            platform_calls,
            busy_refusals: self
                .busy_refusals
                .iter()
                .zip(&before.busy_refusals)
                .map(|(after, before)| after - before)
                .collect(),
            processes: self
                .processes
                .iter()
                .zip(&before.processes)
                .map(|(after, before)| (after.0 - before.0, after.1 - before.1))
                .collect(),
            cpu: self.cpu.minus(before.cpu),
        }
    }
}

/// A companion's `/metrics`, as `name{labels}` → value.
async fn metrics(http: &reqwest::Client, served: &Served) -> anyhow::Result<BTreeMap<String, f64>> {
    let url = served.extra["metrics_url"]
        .as_str()
        .context("the companion's metrics listener")?;
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect())
}

/// Samples how many connections the database has open, every 100 ms, on a connection of its
/// own (counted, and its own transactions left out of nothing: a phase's `xacts` include them,
/// 10 a second, which [`Phase::print`] subtracts).
struct ConnectionSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<i64>,
}

const SAMPLES_PER_SEC: f64 = 10.0;

impl ConnectionSampler {
    fn start(api: Api) -> ConnectionSampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let db = api.connect_db().await;
            let mut most = 0;
            loop {
                if let Ok(row) = db
                    .query_one(
                        "select count(*) from pg_stat_activity where datname = current_database()",
                        &[],
                    )
                    .await
                {
                    most = most.max(row.get::<_, i64>(0));
                }
                tokio::select! {
                    _ = &mut stopped => return most,
                    () = tokio::time::sleep(Duration::from_secs_f64(1.0 / SAMPLES_PER_SEC)) => {}
                }
            }
        });
        ConnectionSampler { stop, task }
    }

    async fn stop(self) -> i64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

struct Phase {
    answers: Vec<Outcome>,
    took: Duration,
    max_connections: i64,
    cost: Counters,
}

fn print_header() {
    println!(
        "  {:<20} {:>5} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>6} {:>6} {:>9} {:>9}",
        "path",
        "q/s",
        "1st p50",
        "1st p99",
        "end p50",
        "end p99",
        "ans/s",
        "busy/fail/h",
        "xact/a",
        "conns",
        "rest/a",
        "db rt/a",
    );
}

/// The `q` quantile of `values` (nearest rank below); `None` when there are none.
fn percentile(mut values: Vec<Duration>, q: f64) -> Option<Duration> {
    values.sort();
    let at = ((values.len() as f64 * q) as usize).min(values.len().saturating_sub(1));
    values.get(at).copied()
}

/// What the targets compare of one path at one rate.
struct Summary {
    rate: f64,
    /// `None` with fewer than [`P99_LEAST_ANSWERS`] answers: too few for a 99th percentile.
    p99_first_delta: Option<Duration>,
    answers_per_sec: f64,
    /// Busy, failed and hung.
    errors: usize,
    /// The machine's CPU time per answer, in milliseconds; `None` with no answer.
    cpu_ms: Option<f64>,
}

impl Summary {
    /// Whether the path kept up: every question answered, at the rate asked (within 5 %).
    fn sustained(&self) -> bool {
        self.errors == 0 && self.answers_per_sec >= 0.95 * self.rate
    }
}

/// The targets, printed (never asserted): at each rate, the companion's p99 first
/// delta against the platform path's (at most 1.5x) and its throughput (at least 0.8x); and
/// which of the rates asked the platform path sustained, the highest of them being where the
/// targets are meant.
fn print_targets(measured: &[(Summary, Summary)]) {
    if measured.is_empty() {
        return;
    }
    println!(
        "targets: companion against platform, p99 first delta <= 1.5x, throughput >= 0.8x, \
         zero errors while the platform path sustains the rate"
    );
    println!(
        "  {:>5} {:>16} {:>16} {:>17} {:>17}",
        "q/s", "p99 1st ratio", "throughput ratio", "companion errors", "platform sustains"
    );
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    for (companion, platform) in measured {
        let p99 = match (companion.p99_first_delta, platform.p99_first_delta) {
            (Some(c), Some(p)) if !p.is_zero() => {
                let ratio = c.as_secs_f64() / p.as_secs_f64();
                format!("{ratio:.2}x {}", mark(ratio <= 1.5))
            }
            _ => format!("n < {P99_LEAST_ANSWERS}"),
        };
        let throughput = if platform.answers_per_sec > 0.0 {
            let ratio = companion.answers_per_sec / platform.answers_per_sec;
            format!("{ratio:.2}x {}", mark(ratio >= 0.8))
        } else {
            "-".to_owned()
        };
        println!(
            "  {:>5} {:>16} {:>16} {:>17} {:>17}",
            companion.rate,
            p99,
            throughput,
            format!("{} {}", companion.errors, mark(companion.errors == 0)),
            if platform.sustained() { "yes" } else { "no" },
        );
    }
    match measured.iter().rev().find(|(_, p)| p.sustained()) {
        Some((_, platform)) if measured.last().is_some_and(|(_, p)| p.sustained()) => println!(
            "  the platform path sustained every rate asked, up to {} q/s: its saturation is \
             higher still (ask higher rates to find it)",
            platform.rate
        ),
        Some((_, platform)) => println!(
            "  the highest rate asked that the platform path sustained: {} q/s",
            platform.rate
        ),
        None => println!("  the platform path sustained none of the rates asked"),
    }
    print_cpu_bound(measured);
    println!();
}

/// What the CPU an answer costs allows: both paths share this machine's cores, so where the
/// platform path saturates them the companion path, costing more an answer, can carry at most
/// the platform path's cost over its own of the platform path's throughput. Taken at the
/// highest rate the platform path sustained (the nearest to its saturation that was measured).
fn print_cpu_bound(measured: &[(Summary, Summary)]) {
    let Some((companion, platform)) = measured.iter().rev().find(|(_, p)| p.sustained()) else {
        return;
    };
    let (Some(c), Some(p)) = (companion.cpu_ms, platform.cpu_ms) else {
        return;
    };
    println!(
        "  cpu an answer at {} q/s: companion path {c:.1} ms, platform path {p:.1} ms; where the \
         platform path saturates the cores they share, the companion path can carry at most \
         {:.2}x its throughput; 0.8x needs the companion's own work at most {:.1} ms an \
         answer (it is {:.1})",
        platform.rate,
        p / c,
        p / 0.8 - p,
        c - p,
    );
}

impl Phase {
    fn summary(&self, rate: f64) -> Summary {
        let firsts: Vec<Duration> = self.answered().iter().map(|a| a.0).collect();
        let answered = firsts.len();
        Summary {
            rate,
            p99_first_delta: if answered < P99_LEAST_ANSWERS {
                None
            } else {
                percentile(firsts, 0.99)
            },
            answers_per_sec: answered as f64 / self.took.as_secs_f64(),
            errors: self.answers.len() - answered,
            cpu_ms: (answered > 0).then(|| self.cost.cpu.machine / answered as f64),
        }
    }

    fn answered(&self) -> Vec<(Duration, Duration)> {
        self.answers
            .iter()
            .filter_map(|a| match a {
                Outcome::Answered {
                    first_delta,
                    complete,
                } => Some((*first_delta, *complete)),
                _ => None,
            })
            .collect()
    }

    fn print(&self, name: &str, rate: f64) {
        let answered = self.answered();
        let quantile = |pick: fn(&(Duration, Duration)) -> Duration, q: f64| {
            percentile(answered.iter().map(pick).collect(), q)
                .map_or_else(|| "-".to_owned(), |d| format!("{:.0?}", d))
        };
        let (mut busy, mut failed, mut hung) = (0, 0, 0);
        let mut first_failure = None;
        for a in &self.answers {
            match a {
                Outcome::Busy => busy += 1,
                Outcome::Failed(why) => {
                    failed += 1;
                    first_failure.get_or_insert(why.clone());
                }
                Outcome::Hung => hung += 1,
                Outcome::Answered { .. } => {}
            }
        }
        let n = answered.len().max(1) as f64;
        let sampler = self.took.as_secs_f64() * SAMPLES_PER_SEC;
        println!(
            "  {name:<20} {rate:>5} {:>9} {:>9} {:>9} {:>9} {:>7.1} {:>11} {:>6.1} {:>6} {:>9} {:>9}",
            quantile(|a| a.0, 0.50),
            quantile(|a| a.0, 0.99),
            quantile(|a| a.1, 0.50),
            quantile(|a| a.1, 0.99),
            answered.len() as f64 / self.took.as_secs_f64(),
            format!("{busy}/{failed}/{hung}"),
            (self.cost.xacts - sampler) / n,
            self.max_connections,
            format!("{:.1}", self.cost.rest_requests / n),
            format!("{:.1}", self.cost.rest_round_trips / n),
        );
        if !self.cost.platform_calls.is_empty() {
            let calls: Vec<String> = self
                .cost
                .platform_calls
                .iter()
                .filter(|(_, v)| **v > 0.0)
                .map(|(service, v)| format!("{service} {:.1}", v / n))
                .collect();
            let refused: Vec<String> = self
                .cost
                .busy_refusals
                .iter()
                .map(|n| format!("{n:.0}"))
                .collect();
            println!(
                "  {:<20} companion's platform calls per answer: {}; busy refusals on /metrics: {}",
                "",
                calls.join(", "),
                refused.join(" + ")
            );
        }
        let stages: Vec<String> = STAGES
            .iter()
            .filter_map(|stage| {
                let (sum, count) = self.cost.stages.get(*stage)?;
                (*count > 0.0).then(|| format!("{stage} {:.0}", sum / count * 1000.0))
            })
            .collect();
        if !stages.is_empty() {
            println!("  {:<20} mean ms per stage: {}", "", stages.join(", "));
        }
        let cpu = self.cost.cpu;
        println!(
            "  {:<20} cpu ms per answer: {:.1} in all = postgres {:.1} + servers {:.1} + load generator {:.1}",
            "",
            cpu.machine / n,
            cpu.postgres / n,
            (cpu.machine - cpu.postgres - cpu.generator) / n,
            cpu.generator / n,
        );
        if let Some(why) = first_failure {
            println!("  {:<20} first failure: {}", "", cut(&why, 160));
        }
    }
}

fn cut(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

/// The stages of an answer the companion times (`quire_answer_stage_seconds`), in order.
const STAGES: [&str; 10] = [
    "auth",
    "conversation",
    "chunks",
    "turn",
    "run_start",
    "first_delta",
    "tool_call",
    "event_write",
    "complete",
    "answer",
];

/// `quire_answer_stage_seconds` from a scrape: stage → (seconds in all, times).
fn stage_sums(metrics: &BTreeMap<String, f64>) -> BTreeMap<&str, (f64, f64)> {
    let mut stages: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (name, value) in metrics {
        let Some(rest) = name.strip_prefix("quire_answer_stage_seconds_") else {
            continue;
        };
        let Some((kind, stage)) = rest.split_once("{stage=\"") else {
            continue;
        };
        let entry = stages.entry(stage.trim_end_matches("\"}")).or_default();
        match kind {
            "sum" => entry.0 = *value,
            "count" => entry.1 = *value,
            _ => {}
        }
    }
    stages
}

/// A second companion in a process of its own: both take turns at the highest rate asked,
/// and afterwards no run slot is left held and every answer's rows are whole.
async fn replicas(bench: &Bench, stack: &Served, options: &Options) -> anyhow::Result<()> {
    let highest = options.rates.iter().copied().fold(1.0, f64::max);
    let rate = if options.busy.is_some() {
        highest
    } else {
        highest / 2.0
    };
    let limit = options
        .busy
        .map_or_else(|| "default".to_owned(), |n| n.to_string());
    println!(
        "two companions (the second in a process of its own), {rate} q/s, answers in flight \
         each: {limit}:"
    );
    print_header();
    let one = bench
        .phase(Path::Companion, rate, options.seconds, &[stack])
        .await?;
    one.print("one companion", rate);
    // The replica registers the search tool at its own URL: from now on it answers the
    // tool calls of both.
    let replica = stack.replica();
    bench
        .phase(Path::Companion, 2.0, 2.0, &[stack, &replica])
        .await?;
    let holders = HolderSampler::start(bench.api.clone());
    let two = bench
        .phase(Path::Companion, rate, options.seconds, &[stack, &replica])
        .await?;
    let holders = holders.stop().await;
    two.print("two companions", rate);
    // The replica's process holds nothing but a companion: what it used is the companion's
    // own work for the answers it wrote.
    if let Some(&(cpu_ms, answers)) = two.cost.processes.get(1)
        && answers > 0.0
    {
        println!(
            "  {:<20} the second companion's process alone: {:.1} ms of CPU an answer it \
             wrote ({answers:.0} answers)",
            "",
            cpu_ms / answers,
        );
    }
    let left: i64 = bench
        .admin
        .query_one("select count(*) from private.run_slots", &[])
        .await?
        .get(0);
    let broken: i64 = bench
        .admin
        .query_one(
            "select count(*) from public.chat_messages m
             where m.role = 'assistant' and (m.status <> 'complete' or
               (select count(*) from public.chat_events e where e.message_id = m.id)
               <> (select max(seq) + 1 from public.chat_events e where e.message_id = m.id))",
            &[],
        )
        .await?
        .get(0);
    println!(
        "  run slots held at once, by companion: {holders:?}; left held after: {left}; \
         answers not complete or with a gap in their seqs: {broken}\n"
    );
    drop(replica);
    Ok(())
}

/// The most run slots each companion held at once.
struct HolderSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<BTreeMap<String, i64>>,
}

impl HolderSampler {
    fn start(api: Api) -> HolderSampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let db = api.connect_db().await;
            let mut most: BTreeMap<String, i64> = BTreeMap::new();
            loop {
                if let Ok(rows) = db
                    .query(
                        "select holder, count(*) from private.run_slots group by holder",
                        &[],
                    )
                    .await
                {
                    for row in rows {
                        let n: i64 = row.get(1);
                        let entry = most.entry(row.get(0)).or_default();
                        *entry = (*entry).max(n);
                    }
                }
                tokio::select! {
                    _ = &mut stopped => return most,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        HolderSampler { stop, task }
    }

    async fn stop(self) -> BTreeMap<String, i64> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// A single-row select through `/rest/v1` with a user's token against the same preamble and
/// statement on a direct connection as `authenticator` (as the sandbox's platform bench does),
/// [`REST_CLIENTS`] at a time for [`REST_SECONDS`] each.
async fn rest_vs_direct(stack: &Served) -> anyhow::Result<()> {
    let user = stack.user("rest-bench@example.test").await;
    let admin = stack.connect_db().await;
    let conversation: Uuid = admin
        .query_one(
            "insert into public.conversations (owner_id, title) values ($1, 'bench') returning id",
            &[&user.id],
        )
        .await?
        .get(0);
    let http = reqwest::Client::new();
    let url = format!(
        "{}/rest/v1/conversations?select=*&id=eq.{conversation}",
        stack.api_base()
    );
    let anon = stack.anon_key();
    let token = user.token.clone();
    let before = stack.stats().await;
    let rest = closed_loop(move |_| {
        let request = http.get(&url).header("apikey", &anon).bearer_auth(&token);
        async move {
            let response = request.send().await?;
            anyhow::ensure!(
                response.status() == 200,
                "REST answered {}",
                response.status()
            );
            anyhow::ensure!(response.bytes().await?.len() > 2, "REST returned no row");
            Ok(())
        }
    })
    .await?;
    let after = stack.stats().await;
    let trips = (after["rest_db_round_trips"].as_f64().unwrap_or(0.0)
        - before["rest_db_round_trips"].as_f64().unwrap_or(0.0))
        / (after["rest_requests"].as_f64().unwrap_or(0.0)
            - before["rest_requests"].as_f64().unwrap_or(0.0))
        .max(1.0);

    let claims =
        json!({"sub": user.id, "role": "authenticated", "aud": "authenticated"}).to_string();
    let mut clients = Vec::new();
    for _ in 0..REST_CLIENTS {
        clients.push(Arc::new(tokio::sync::Mutex::new(
            stack.connect_db_as("authenticator").await,
        )));
    }
    let clients = Arc::new(clients);
    let direct = closed_loop(move |i| {
        let client = clients[i].clone();
        let claims = claims.clone();
        async move {
            let mut client = client.lock().await;
            direct_once(&mut client, &claims, conversation).await
        }
    })
    .await?;
    println!(
        "single-row select, {REST_CLIENTS} clients at once for {REST_SECONDS}s each:\n  {:<34} {:>9} {:>10} {:>10}",
        "", "req/s", "p50", "p99"
    );
    for (name, s) in [
        ("sandbox /rest/v1 (HTTP + JWT)", &rest),
        ("direct connection, same role", &direct),
    ] {
        println!("  {name:<34} {:>9.0} {:>10.0?} {:>10.0?}", s.0, s.1, s.2);
    }
    println!(
        "  ratio sandbox/direct throughput {:.2}x; database round trips per REST request {trips:.1} \
         (direct: 4)\n",
        rest.0 / direct.0
    );
    Ok(())
}

/// Runs `one` [`REST_CLIENTS`] at a time for [`REST_SECONDS`] (after a short warm-up):
/// requests a second, p50, p99.
async fn closed_loop<F, Fut>(one: F) -> anyhow::Result<(f64, Duration, Duration)>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    for i in 0..50 {
        one(i % REST_CLIENTS).await?;
    }
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(REST_SECONDS);
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..REST_CLIENTS {
        let one = one.clone();
        workers.spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                one(i).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(joined) = workers.join_next().await {
        samples.extend(joined??);
    }
    let took = start.elapsed();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Ok((samples.len() as f64 / took.as_secs_f64(), at(0.5), at(0.99)))
}

/// One request's worth of PostgREST's work, done directly: the same preamble and statement.
async fn direct_once(
    client: &mut tokio_postgres::Client,
    claims: &str,
    conversation: Uuid,
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
             (select * from public.conversations where id = $1) t",
            &[&conversation],
        )
        .await?;
    let body: String = row.get(0);
    anyhow::ensure!(body.len() > 2, "direct query returned no row");
    tx.commit().await?;
    Ok(())
}
