//! What an operator watches: `GET /metrics` in Prometheus' text format
//! (version 0.0.4), served on a listener of its own
//! (`QUIRE_COMPANION_METRICS_ADDR`, off by default) so that it never faces
//! the internet beside the public routes.
//!
//! | metric | type | |
//! |---|---|---|
//! | `quire_runs_in_flight` | gauge | answers this process is writing |
//! | `quire_run_duration_seconds{outcome}` | histogram | answers it finished: `complete`, `stopped`, `failed`, `interrupted` (ended by a shutdown) |
//! | `quire_ingest_queue_documents` | gauge | documents `stored`, `extracting` or `indexing`, project-wide |
//! | `quire_ingest_queue_oldest_seconds` | gauge | since the least recent of them last moved (0 when none) |
//! | `quire_ingest_queue_scrape_ok` | gauge | 1 when the two above could be read from the database |
//! | `quire_platform_errors_total{kind}` | counter | failed platform calls, by [`error_kind`] |
//! | `quire_platform_requests_total{service}` | counter | platform calls sent, by service: `rest`, `api`, `storage`, `auth` |
//! | `quire_answer_stage_seconds{stage}` | summary | time spent in each stage of an answer ([`Metrics::stage`]) |
//! | `quire_busy_refusals_total` | counter | questions refused at once, 429 `rate_limited`, because this process already writes `QUIRE_COMPANION_MAX_ANSWERS_IN_FLIGHT` answers |
//!
//! The ingest queue is read through PostgREST at each scrape (one request,
//! [`SCRAPE_TIMEOUT`]): it is the same for every replica, so aggregate it
//! with `max`, not `sum`.
//!
//! The stages of an answer, each also a tracing span `answer_stage` with its
//! `stage` field: `auth` (the request read and its token checked),
//! `conversation` (the conversation read, or a new one's platform session
//! made), `chunks`, `turn` (`begin_chat`: the run slot, a new
//! conversation's row, the turn's rows and the run's tool session), `run_start`
//! (`run/stream` sent until its headers), `first_delta` (from the request's arrival), `tool_call` (the
//! search tool's endpoint), `event_write` (an answer's rows handed to the event writer until written, many answers' in one `append_chat_events_batch`),
//! `complete` (the final row, the tool session and the run slot, through the
//! event writer) and
//! `answer` (arrival to the final row).
//!
//! Written by hand rather than with the `prometheus-client` crate: a few
//! families of plain numbers need no registry, and the format is stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde::Deserialize;

use crate::platform::{ApiCode, Auth, PlatformError};
use crate::server::AppState;

/// Upper bounds of the run-duration buckets, in seconds.
const RUN_BUCKETS: [f64; 11] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];
/// How long a scrape waits for the ingest queue's numbers.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// Statuses of a document that is waiting for, or going through, ingestion.
const QUEUED: &str = "in.(stored,extracting,indexing)";

/// The counters this process keeps (cheap to share: one per companion).
#[derive(Debug, Default)]
pub struct Metrics {
    runs: Mutex<BTreeMap<&'static str, Histogram>>,
    platform_errors: Mutex<BTreeMap<&'static str, u64>>,
    platform_requests: Mutex<BTreeMap<&'static str, u64>>,
    /// Per stage of an answer: how many times, and seconds in all.
    stages: Mutex<BTreeMap<&'static str, (u64, f64)>>,
    busy_refusals: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; RUN_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// An answer ended after `took`: `outcome` is `complete`, `stopped`,
    /// `failed` or `interrupted`.
    pub fn run_finished(&self, outcome: &'static str, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = runs.entry(outcome).or_default();
        for (bound, count) in RUN_BUCKETS.iter().zip(histogram.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// A platform call failed ([`error_kind`]).
    pub fn platform_error(&self, err: &PlatformError) {
        let mut errors = self
            .platform_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *errors.entry(error_kind(err)).or_default() += 1;
    }

    /// A platform call was sent to `service` (`rest`, `api`, `storage`, `auth`).
    pub fn platform_request(&self, service: &'static str) {
        let mut requests = self
            .platform_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *requests.entry(service).or_default() += 1;
    }

    /// A question was refused because every place for an answer in flight
    /// was taken.
    pub fn busy_refused(&self) {
        self.busy_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// A stage of an answer took `took` (see the module's list).
    pub fn stage_took(&self, stage: &'static str, took: Duration) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let (count, sum) = stages.entry(stage).or_default();
        *count += 1;
        *sum += took.as_secs_f64();
    }

    /// Runs `work` as the stage `stage` of an answer: inside a tracing span
    /// `answer_stage`, timed into `quire_answer_stage_seconds`.
    pub async fn stage<T>(&self, stage: &'static str, work: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = work
            .instrument(tracing::info_span!("answer_stage", stage))
            .await;
        self.stage_took(stage, started.elapsed());
        out
    }

    /// The text of a scrape.
    fn render(&self, runs_in_flight: usize, queue: Option<&Queue>) -> String {
        let mut out = String::new();
        family(
            &mut out,
            "quire_runs_in_flight",
            "gauge",
            "Answers this process is writing.",
        );
        let _ = writeln!(out, "quire_runs_in_flight {runs_in_flight}");

        family(
            &mut out,
            "quire_run_duration_seconds",
            "histogram",
            "Time from question to the answer's last row, by outcome.",
        );
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (outcome, h) in &runs {
            let name = "quire_run_duration_seconds";
            for (bound, count) in RUN_BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{outcome=\"{outcome}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{outcome=\"{outcome}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "{name}_sum{{outcome=\"{outcome}\"}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{outcome=\"{outcome}\"}} {}", h.count);
        }

        render_queue(&mut out, queue);

        family(
            &mut out,
            "quire_platform_errors_total",
            "counter",
            "Platform calls that failed, by kind.",
        );
        let errors = self
            .platform_errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (kind, count) in errors {
            let _ = writeln!(
                out,
                "quire_platform_errors_total{{kind=\"{kind}\"}} {count}"
            );
        }
        family(
            &mut out,
            "quire_busy_refusals_total",
            "counter",
            "Questions refused at once because this process writes as many answers as it may.",
        );
        let _ = writeln!(
            out,
            "quire_busy_refusals_total {}",
            self.busy_refusals.load(Ordering::Relaxed)
        );
        self.render_work(&mut out);
        out
    }

    /// The platform calls sent and the answers' stages.
    fn render_work(&self, out: &mut String) {
        family(
            out,
            "quire_platform_requests_total",
            "counter",
            "Platform calls sent, by service.",
        );
        let requests = self
            .platform_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (service, count) in requests {
            let _ = writeln!(
                out,
                "quire_platform_requests_total{{service=\"{service}\"}} {count}"
            );
        }
        family(
            out,
            "quire_answer_stage_seconds",
            "summary",
            "Time spent in each stage of an answer.",
        );
        let stages = self
            .stages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (stage, (count, sum)) in stages {
            let name = "quire_answer_stage_seconds";
            let _ = writeln!(out, "{name}_sum{{stage=\"{stage}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{stage=\"{stage}\"}} {count}");
        }
    }
}

fn render_queue(out: &mut String, queue: Option<&Queue>) {
    family(
        out,
        "quire_ingest_queue_documents",
        "gauge",
        "Documents stored, extracting or indexing (project-wide).",
    );
    family(
        out,
        "quire_ingest_queue_oldest_seconds",
        "gauge",
        "Seconds since the least recent of them last moved; 0 when none.",
    );
    family(
        out,
        "quire_ingest_queue_scrape_ok",
        "gauge",
        "1 when the ingest queue could be read at this scrape.",
    );
    match queue {
        Some(queue) => {
            let _ = writeln!(out, "quire_ingest_queue_documents {}", queue.depth);
            let _ = writeln!(
                out,
                "quire_ingest_queue_oldest_seconds {}",
                queue.oldest_seconds
            );
            let _ = writeln!(out, "quire_ingest_queue_scrape_ok 1");
        }
        None => {
            let _ = writeln!(out, "quire_ingest_queue_scrape_ok 0");
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The kind a failed platform call is counted under: `unreachable` (no
/// answer), `timeout`, `unreadable` (an answer that could not be read),
/// or what the answer meant ([`ApiCode`]): `service_key_refused`,
/// `unavailable` (408, 429, 5xx), `insufficient_credits`,
/// `model_without_key`, `not_found`, `conflict`, … Expected answers
/// (`lease_lost`, `duplicate_source`, `user_limit`) are counted too; alert
/// on `unreachable`, `timeout`, `unavailable` and `service_key_refused`.
pub fn error_kind(err: &PlatformError) -> &'static str {
    match err {
        PlatformError::Transport { source, .. } if source.is_timeout() => "timeout",
        PlatformError::Transport { .. } => "unreachable",
        PlatformError::Decode { .. } => "unreadable",
        PlatformError::Status { code, .. } => match code {
            ApiCode::ModelWithoutKey => "model_without_key",
            ApiCode::BadRequest => "bad_request",
            ApiCode::ServiceKeyRefused => "service_key_refused",
            ApiCode::UserTokenRefused => "user_token_refused",
            ApiCode::Forbidden => "forbidden",
            ApiCode::InsufficientCredits => "insufficient_credits",
            ApiCode::NotFound => "not_found",
            ApiCode::DuplicateSource(_) => "duplicate_source",
            ApiCode::LeaseLost => "lease_lost",
            ApiCode::UserLimit(_) => "user_limit",
            ApiCode::Conflict => "conflict",
            ApiCode::TooLarge => "too_large",
            ApiCode::Unavailable => "unavailable",
            ApiCode::Other => "other",
        },
    }
}

/// The ingest queue as one scrape read it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Queue {
    depth: u64,
    oldest_seconds: f64,
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let queue = match tokio::time::timeout(SCRAPE_TIMEOUT, read_queue(&state)).await {
        Ok(Ok(queue)) => Some(queue),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "metrics: could not read the ingest queue");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: reading the ingest queue took too long");
            None
        }
    };
    let text = state.metrics.render(state.runs.len(), queue.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One PostgREST read as the service role: the least recently changed
/// queued document, and (`count=exact`, in `Content-Range`) how many there are.
async fn read_queue(state: &AppState) -> Result<Queue, PlatformError> {
    #[derive(Deserialize)]
    struct Row {
        updated_at: chrono::DateTime<chrono::Utc>,
    }
    let what = "GET /rest/v1/documents (ingest queue)";
    let request = state
        .platform
        .request(Method::GET, "/rest/v1/documents", Auth::Service)
        .query(&[
            ("select", "updated_at"),
            ("status", QUEUED),
            ("order", "updated_at.asc"),
            ("limit", "1"),
        ])
        .header("Prefer", "count=exact")
        .timeout(SCRAPE_TIMEOUT);
    let response = state.platform.send(what, request).await?;
    let total = response
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|range| range.rsplit('/').next())
        .and_then(|n| n.parse::<u64>().ok());
    let bytes = response
        .bytes()
        .await
        .map_err(|source| PlatformError::Transport {
            what: what.to_owned(),
            source,
        })?;
    let rows: Vec<Row> = serde_json::from_slice(&bytes).map_err(|e| PlatformError::Decode {
        what: what.to_owned(),
        detail: e.to_string(),
        body: format!("({} bytes of rows, not kept)", bytes.len()),
    })?;
    let Some(total) = total else {
        return Err(PlatformError::Decode {
            what: what.to_owned(),
            detail: "no total in Content-Range".to_owned(),
            body: String::new(),
        });
    };
    let oldest_seconds = rows.first().map_or(0.0, |row| {
        let age = chrono::Utc::now() - row.updated_at;
        age.to_std().unwrap_or_default().as_secs_f64()
    });
    Ok(Queue {
        depth: total,
        oldest_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_is_prometheus_text() {
        let metrics = Metrics::default();
        metrics.run_finished("complete", Duration::from_millis(1500));
        metrics.run_finished("complete", Duration::from_secs(700));
        metrics.run_finished("interrupted", Duration::from_millis(200));
        let text = metrics.render(
            3,
            Some(&Queue {
                depth: 4,
                oldest_seconds: 12.5,
            }),
        );
        for line in [
            "# TYPE quire_runs_in_flight gauge",
            "quire_runs_in_flight 3",
            "# TYPE quire_run_duration_seconds histogram",
            "quire_run_duration_seconds_bucket{outcome=\"complete\",le=\"1\"} 0",
            "quire_run_duration_seconds_bucket{outcome=\"complete\",le=\"2.5\"} 1",
            "quire_run_duration_seconds_bucket{outcome=\"complete\",le=\"600\"} 1",
            "quire_run_duration_seconds_bucket{outcome=\"complete\",le=\"+Inf\"} 2",
            "quire_run_duration_seconds_count{outcome=\"complete\"} 2",
            "quire_run_duration_seconds_sum{outcome=\"complete\"} 701.5",
            "quire_run_duration_seconds_bucket{outcome=\"interrupted\",le=\"0.5\"} 1",
            "quire_ingest_queue_documents 4",
            "quire_ingest_queue_oldest_seconds 12.5",
            "quire_ingest_queue_scrape_ok 1",
            "# TYPE quire_platform_errors_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        metrics.platform_request("rest");
        metrics.platform_request("rest");
        metrics.stage_took("turn", Duration::from_millis(250));
        let text = metrics.render(0, None);
        for line in [
            "quire_platform_requests_total{service=\"rest\"} 2",
            "quire_answer_stage_seconds_sum{stage=\"turn\"} 0.25",
            "quire_answer_stage_seconds_count{stage=\"turn\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let unread = metrics.render(0, None);
        assert!(
            unread.contains("quire_ingest_queue_scrape_ok 0"),
            "{unread}"
        );
        assert!(
            !unread.contains("quire_ingest_queue_documents 0"),
            "an unread queue is not an empty one"
        );
    }

    #[test]
    fn platform_errors_are_counted_by_what_they_meant() {
        let metrics = Metrics::default();
        let status = |status: u16| PlatformError::Status {
            what: "x".into(),
            status,
            code: ApiCode::read(status, "", true),
            body: String::new(),
        };
        metrics.platform_error(&status(503));
        metrics.platform_error(&status(502));
        metrics.platform_error(&status(401));
        let text = metrics.render(0, None);
        assert!(
            text.contains("quire_platform_errors_total{kind=\"unavailable\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("quire_platform_errors_total{kind=\"service_key_refused\"} 1"),
            "{text}"
        );
    }
}
