//! Knowledge bases (`/api/knowledge-bases`, service key only — search
//! included; powabase-ai `routes/knowledge_bases.py`,
//! docs/platform-contract.md): create, list, get (with `source_counts`),
//! update, delete; add a source (indexed in the background into `ai.chunks`
//! through `pending → indexing → indexed | failed`), list and remove indexed
//! sources; `items` (the chunks of given sources) and `search`.
//!
//! Indexing is the `chunk_embed` strategy without embeddings: chunks of the
//! page texts joined with "\n\n" ([`super::chunking`]), offsets in
//! characters of that joined text, with the platform's `meta` shape
//! `{strategy, chunk_size, pages}`: `pages` the 1-based pages a chunk spans
//! (absent without page texts), never a single `page`. Search answers
//! every `retrieval_method` but `tree_search` (which needs a `page_index`
//! knowledge base) from the chunks themselves:
//! - `full_text`: `websearch_to_tsquery` over `ai.chunks.fts`, ranked by
//!   `ts_rank_cd` normalised to `0..1` (`rank / (rank + 1)`);
//! - `vector_search`: there are no embeddings offline, so similarity is
//!   lexical: `pg_trgm`'s `word_similarity(query, text)` (`0..1`), which still
//!   finds near-miss spellings full-text search misses;
//! - `hybrid`: both lists fused by reciprocal rank (`1/(60 + rank)` summed),
//!   as the platform fuses vector and BM25 results.
//!
//! `similarity_threshold` drops results scoring below it, in each method's
//! own score.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::chunking::{self, ChunkSpec};
use super::sources::{read_page_texts, spawn_job};
use super::{
    ApiError, JsonBody, ServiceRole, contains_pattern, page_bounds, parse_id, sort_direction,
    timestamp,
};
use crate::state::AppState;

const KB_NOT_FOUND: &str = "Knowledge base not found";
const INDEXED_SOURCE_NOT_FOUND: &str = "Indexed source not found";
const STRATEGIES: [&str; 5] = [
    "chunk_embed",
    "page_index",
    "graph_index",
    "full_document",
    "doc2json",
];
const RETRIEVAL_METHODS: [&str; 4] = ["vector_search", "full_text", "hybrid", "tree_search"];
const INDEX_STATUSES: [&str; 5] = ["pending", "indexing", "indexed", "failed", "cancelled"];
/// Reciprocal-rank-fusion constant, as commonly used (and by the platform's hybrid search).
const RRF_K: f64 = 60.0;

const KB_COLUMNS: &str =
    "id, name, description, indexing_config, retrieval_config, created_at, updated_at";

/// `/api/knowledge-bases/*`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/knowledge-bases", post(create).get(list))
        .route(
            "/knowledge-bases/{id}",
            get(get_one).patch(update).delete(delete_kb),
        )
        .route(
            "/knowledge-bases/{id}/sources",
            post(add_source).get(list_sources),
        )
        .route(
            "/knowledge-bases/{id}/sources/{indexed_source_id}",
            delete(remove_source),
        )
        .route("/knowledge-bases/{id}/items", post(items))
        .route("/knowledge-bases/{id}/search", post(search))
}

fn default_indexing_config() -> Value {
    json!({"strategy": "chunk_embed", "chunk_size": ChunkSpec::default().chunk_size, "overlap": ChunkSpec::default().overlap})
}

fn default_retrieval_config(strategy: &str) -> Value {
    if strategy == "page_index" {
        json!({"method": "tree_search", "top_k": 5})
    } else {
        json!({"method": "hybrid", "top_k": 5, "context_mode": "text", "ts_language": "english"})
    }
}

fn kb_json(row: &Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>("id"),
        "name": row.get::<_, String>("name"),
        "description": row.get::<_, Option<String>>("description"),
        "indexing_config": row.get::<_, Value>("indexing_config"),
        "retrieval_config": row.get::<_, Value>("retrieval_config"),
        "created_at": timestamp(row.get("created_at")),
        "updated_at": timestamp(row.get("updated_at")),
    })
}

async fn load_kb(client: &deadpool_postgres::Client, id: Uuid) -> Result<Row, ApiError> {
    client
        .query_opt(
            &format!("select {KB_COLUMNS} from ai.knowledge_bases where id = $1"),
            &[&id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found(KB_NOT_FOUND))
}

/// Overlays `given` (an object) on `base`; 400 naming `field` otherwise.
fn merged_config(field: &str, base: Value, given: Option<&Value>) -> Result<Value, ApiError> {
    let mut merged = base;
    match given {
        None | Some(Value::Null) => {}
        Some(Value::Object(given)) => {
            let target = merged.as_object_mut().expect("configs are objects");
            for (key, value) in given {
                target.insert(key.clone(), value.clone());
            }
        }
        Some(_) => return Err(ApiError::bad_request(format!("{field} must be an object"))),
    }
    Ok(merged)
}

/// Checks an `indexing_config`: a known strategy, and one the sandbox can index.
fn check_indexing_config(config: &Value) -> Result<(), ApiError> {
    let strategy = config.get("strategy").and_then(Value::as_str).unwrap_or("");
    if !STRATEGIES.contains(&strategy) {
        return Err(ApiError::bad_request(format!(
            "Invalid indexing strategy '{strategy}'. Valid: {}",
            STRATEGIES.join(", ")
        )));
    }
    if strategy != "chunk_embed" {
        return Err(ApiError::bad_request(format!(
            "The sandbox indexes with the chunk_embed strategy only; '{strategy}' is not available offline"
        )));
    }
    for key in ["chunk_size", "overlap"] {
        if let Some(value) = config.get(key)
            && value.as_u64().is_none_or(|n| n == 0 && key == "chunk_size")
        {
            return Err(ApiError::bad_request(format!(
                "indexing_config.{key} must be a positive integer"
            )));
        }
    }
    Ok(())
}

fn check_retrieval_config(config: &Value) -> Result<(), ApiError> {
    if let Some(method) = config.get("method")
        && !method
            .as_str()
            .is_some_and(|m| RETRIEVAL_METHODS.contains(&m))
    {
        return Err(ApiError::bad_request(format!(
            "Invalid retrieval method. Valid: {}",
            RETRIEVAL_METHODS.join(", ")
        )));
    }
    if let Some(top_k) = config.get("top_k")
        && !top_k.as_u64().is_some_and(|k| (1..=100).contains(&k))
    {
        return Err(ApiError::bad_request(
            "retrieval_config.top_k must be an integer between 1 and 100",
        ));
    }
    Ok(())
}

fn name_field(body: &Map<String, Value>, required: bool) -> Result<Option<String>, ApiError> {
    match body.get("name") {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(name)) if !name.trim().is_empty() => {
            let name = name.trim().to_owned();
            if name.chars().count() > 255 {
                return Err(ApiError::bad_request("name must be at most 255 characters"));
            }
            Ok(Some(name))
        }
        _ => Err(ApiError::bad_request("name is required")),
    }
}

fn description_field(body: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match body.get("description") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(ApiError::bad_request("description must be a string")),
    }
}

// ------------------------------------------------------------ KB CRUD

async fn create(
    State(state): State<AppState>,
    _: ServiceRole,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let body = body.object();
    let name = name_field(&body, true)?;
    let description = description_field(&body)?;
    let indexing_config = merged_config(
        "indexing_config",
        default_indexing_config(),
        body.get("indexing_config"),
    )?;
    check_indexing_config(&indexing_config)?;
    let strategy = indexing_config["strategy"]
        .as_str()
        .unwrap_or("chunk_embed")
        .to_owned();
    let retrieval_config = merged_config(
        "retrieval_config",
        default_retrieval_config(&strategy),
        body.get("retrieval_config"),
    )?;
    check_retrieval_config(&retrieval_config)?;

    let client = state.db.ai.get().await?;
    let row = client
        .query_one(
            &format!(
                "insert into ai.knowledge_bases (name, description, indexing_config, retrieval_config) \
                 values ($1, $2, $3, $4) returning {KB_COLUMNS}"
            ),
            &[&name, &description, &indexing_config, &retrieval_config],
        )
        .await?;
    let mut kb = kb_json(&row);
    let kb_object = kb.as_object_mut().expect("kb_json is an object");
    kb_object.remove("created_at");
    kb_object.remove("updated_at");
    Ok((StatusCode::CREATED, axum::Json(kb)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    offset: Option<String>,
    q: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    _: ServiceRole,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page_bounds(query.limit.as_deref(), query.offset.as_deref(), 50, 200)?;
    let pattern = contains_pattern(query.q);
    let client = state.db.ai.get().await?;
    let total: i64 = client
        .query_one(
            "select count(*) from ai.knowledge_bases where ($1::text is null or name ilike $1)",
            &[&pattern],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            &format!(
                "select {KB_COLUMNS} from ai.knowledge_bases where ($1::text is null or name ilike $1) \
                 order by created_at desc, id limit $2 offset $3"
            ),
            &[&pattern, &limit, &offset],
        )
        .await?;
    Ok(axum::Json(json!({
        "knowledge_bases": rows.iter().map(kb_json).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
    }))
    .into_response())
}

async fn get_one(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, KB_NOT_FOUND)?;
    let client = state.db.ai.get().await?;
    let row = load_kb(&client, id).await?;
    let mut counts: Map<String, Value> = INDEX_STATUSES
        .iter()
        .map(|s| ((*s).to_owned(), json!(0)))
        .collect();
    let mut total = 0i64;
    for count in client
        .query(
            "select index_status, count(*) from ai.indexed_sources where knowledge_base_id = $1 group by index_status",
            &[&id],
        )
        .await?
    {
        let n: i64 = count.get(1);
        total += n;
        counts.insert(count.get::<_, String>(0), json!(n));
    }
    counts.insert("total".into(), json!(total));
    let mut kb = kb_json(&row);
    kb["source_counts"] = Value::Object(counts);
    Ok(axum::Json(kb).into_response())
}

async fn update(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, KB_NOT_FOUND)?;
    let body = body.object();
    let client = state.db.ai.get().await?;
    let current = load_kb(&client, id).await?;
    let name = name_field(&body, false)?.unwrap_or_else(|| current.get("name"));
    let description = if body.contains_key("description") {
        description_field(&body)?
    } else {
        current.get("description")
    };
    let indexing_config = merged_config(
        "indexing_config",
        current.get("indexing_config"),
        body.get("indexing_config"),
    )?;
    check_indexing_config(&indexing_config)?;
    let retrieval_config = merged_config(
        "retrieval_config",
        current.get("retrieval_config"),
        body.get("retrieval_config"),
    )?;
    check_retrieval_config(&retrieval_config)?;
    let row = client
        .query_one(
            &format!(
                "update ai.knowledge_bases set name = $2, description = $3, indexing_config = $4, \
                        retrieval_config = $5, updated_at = now() \
                 where id = $1 returning {KB_COLUMNS}"
            ),
            &[
                &id,
                &name,
                &description,
                &indexing_config,
                &retrieval_config,
            ],
        )
        .await?;
    Ok(axum::Json(kb_json(&row)).into_response())
}

async fn delete_kb(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, KB_NOT_FOUND)?;
    let client = state.db.ai.get().await?;
    let sources: i64 = client
        .query_one(
            "select count(*) from ai.indexed_sources where knowledge_base_id = $1",
            &[&id],
        )
        .await?
        .get(0);
    if client
        .execute("delete from ai.knowledge_bases where id = $1", &[&id])
        .await?
        == 0
    {
        return Err(ApiError::not_found(KB_NOT_FOUND));
    }
    let mut body = json!({"message": "Knowledge base deleted"});
    if sources > 0 {
        body["warning"] = json!(format!(
            "{sources} indexed source(s) and their chunks were removed with it."
        ));
    }
    Ok(axum::Json(body).into_response())
}

// ------------------------------------------------------------ indexed sources

async fn add_source(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let kb_id = parse_id(&id, KB_NOT_FOUND)?;
    let body = body.object();
    let source_id = match body.get("source_id") {
        Some(Value::String(raw)) if !raw.is_empty() => {
            Uuid::parse_str(raw).map_err(|_| ApiError::not_found("Source not found"))?
        }
        _ => return Err(ApiError::bad_request("source_id is required")),
    };
    let client = state.db.ai.get().await?;
    load_kb(&client, kb_id).await?;
    let source = client
        .query_opt(
            "select name, extraction_status from ai.sources where id = $1",
            &[&source_id],
        )
        .await?
        .ok_or_else(|| ApiError::not_found("Source not found"))?;
    let status: String = source.get("extraction_status");
    if status != "extracted" {
        return Err(ApiError::bad_request(format!(
            "Source must be extracted first (status: {status})"
        )));
    }
    let source_name: String = source.get("name");
    let task_id = Uuid::new_v4().to_string();
    // Re-adding resets the row; its old chunks are replaced when indexing commits.
    let row = client
        .query_one(
            "insert into ai.indexed_sources (knowledge_base_id, source_id, index_status, celery_task_id, \
                                             last_dispatched_at) \
             values ($1, $2, 'pending', $3, now()) \
             on conflict (knowledge_base_id, source_id) do update \
               set index_status = 'pending', celery_task_id = excluded.celery_task_id, \
                   last_dispatched_at = now(), indexed_at = null, stats = null, error_message = null \
             returning id",
            &[&kb_id, &source_id, &task_id],
        )
        .await?;
    let indexed_source_id: Uuid = row.get(0);
    drop(client);
    spawn_indexing(state, indexed_source_id, task_id.clone());
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "id": indexed_source_id,
            "knowledge_base_id": kb_id,
            "source_id": source_id,
            "source_name": source_name,
            "index_status": "pending",
            "task_id": task_id,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct SourcesQuery {
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_sources(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
    Query(query): Query<SourcesQuery>,
) -> Result<Response, ApiError> {
    let kb_id = parse_id(&id, KB_NOT_FOUND)?;
    let (limit, offset) = page_bounds(query.limit.as_deref(), query.offset.as_deref(), 50, 200)?;
    let status = query.status.filter(|s| !s.is_empty());
    if let Some(status) = &status
        && !INDEX_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "Invalid status '{status}'. Valid: {}",
            INDEX_STATUSES.join(", ")
        )));
    }
    let sort = match query.sort.as_deref() {
        None | Some("") | Some("created_at") => "ix.created_at",
        Some("indexed_at") => "ix.indexed_at",
        Some("name") | Some("source_name") => "s.name",
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort '{other}'. Valid: created_at, indexed_at, name"
            )));
        }
    };
    let order = format!("{} nulls last", sort_direction(query.order.as_deref())?);
    let pattern = contains_pattern(query.q);
    let client = state.db.ai.get().await?;
    load_kb(&client, kb_id).await?;
    let filter = "ix.knowledge_base_id = $1 and ($2::text is null or ix.index_status = $2) \
                  and ($3::text is null or s.name ilike $3)";
    let total: i64 = client
        .query_one(
            &format!("select count(*) from ai.indexed_sources ix join ai.sources s on s.id = ix.source_id where {filter}"),
            &[&kb_id, &status, &pattern],
        )
        .await?
        .get(0);
    // `sort` and `order` come from the fixed lists above.
    let rows = client
        .query(
            &format!(
                "select ix.id, ix.source_id, ix.index_status, ix.indexed_at, ix.stats, ix.error_message, \
                        s.name as source_name, s.file_type, s.created_at as source_created_at \
                 from ai.indexed_sources ix join ai.sources s on s.id = ix.source_id \
                 where {filter} order by {sort} {order}, ix.id limit $4 offset $5"
            ),
            &[&kb_id, &status, &pattern, &limit, &offset],
        )
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.get::<_, Uuid>("id"),
                "source_id": row.get::<_, Uuid>("source_id"),
                "index_status": row.get::<_, String>("index_status"),
                "indexed_at": row.get::<_, Option<chrono::DateTime<chrono::Utc>>>("indexed_at").map(timestamp),
                "stats": row.get::<_, Option<Value>>("stats"),
                "error_message": row.get::<_, Option<String>>("error_message"),
                "source_name": row.get::<_, String>("source_name"),
                "file_type": row.get::<_, String>("file_type"),
                "source_created_at": timestamp(row.get("source_created_at")),
            })
        })
        .collect();
    Ok(
        axum::Json(json!({"items": items, "total": total, "limit": limit, "offset": offset}))
            .into_response(),
    )
}

async fn remove_source(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath((id, indexed_source_id)): UrlPath<(String, String)>,
) -> Result<Response, ApiError> {
    let kb_id = parse_id(&id, KB_NOT_FOUND)?;
    let indexed_source_id = parse_id(&indexed_source_id, INDEXED_SOURCE_NOT_FOUND)?;
    let client = state.db.ai.get().await?;
    load_kb(&client, kb_id).await?;
    // Chunks go with the row (foreign key, on delete cascade); the source stays.
    let deleted = client
        .execute(
            "delete from ai.indexed_sources where id = $1 and knowledge_base_id = $2",
            &[&indexed_source_id, &kb_id],
        )
        .await?;
    if deleted == 0 {
        return Err(ApiError::not_found(INDEXED_SOURCE_NOT_FOUND));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ------------------------------------------------------------ indexing

fn spawn_indexing(state: AppState, indexed_source_id: Uuid, task_id: String) {
    let job_state = state.clone();
    // One job per dispatch: a re-add (new task) must not wait for the old one.
    let job_id = Uuid::parse_str(&task_id).unwrap_or(indexed_source_id);
    spawn_job(&state, "index", job_id, async move {
        if let Err(err) = index_source(&job_state, indexed_source_id, &task_id).await {
            tracing::error!(%indexed_source_id, error = %err, "indexing failed");
            let failed = async {
                let client = job_state.db.ai.get().await.map_err(|e| e.to_string())?;
                client
                    .execute(
                        "update ai.indexed_sources set index_status = 'failed', error_message = $3 \
                         where id = $1 and celery_task_id = $2 and index_status in ('pending', 'indexing')",
                        &[&indexed_source_id, &task_id, &err],
                    )
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(e) = failed.await {
                tracing::error!(%indexed_source_id, error = %e, "could not record an indexing failure");
            }
        }
    });
}

/// Queues every indexed source left `pending` or `indexing`.
pub(crate) async fn resume_indexing(state: &AppState) {
    let rows = async {
        let client = state.db.ai.get().await.map_err(|e| e.to_string())?;
        client
            .query(
                "select id, coalesce(celery_task_id, '') from ai.indexed_sources \
                 where index_status in ('pending', 'indexing') order by created_at",
                &[],
            )
            .await
            .map_err(|e| e.to_string())
    };
    match rows.await {
        Ok(rows) => {
            if !rows.is_empty() {
                tracing::info!(count = rows.len(), "resuming indexing");
            }
            for row in rows {
                spawn_indexing(state.clone(), row.get(0), row.get(1));
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not look for unfinished indexing"),
    }
}

/// The chunks of a source as the columns `ai.chunks` is filled from (one
/// `unnest` insert).
struct ChunkColumns<'a> {
    texts: Vec<&'a str>,
    ordinals: Vec<i32>,
    starts: Vec<i32>,
    ends: Vec<i32>,
    tokens: Vec<i32>,
    metas: Vec<Value>,
}

impl<'a> ChunkColumns<'a> {
    fn of(chunks: &'a [chunking::Chunk]) -> Self {
        let as_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let tokens: Vec<i32> = chunks
            .iter()
            .map(|c| as_i32(chunking::estimate_tokens(&c.text)))
            .collect();
        let metas = chunks
            .iter()
            .zip(&tokens)
            .map(|(c, tokens)| {
                let mut meta = json!({"strategy": "markdown_header", "chunk_size": tokens});
                if let Some(pages) = &c.pages {
                    meta["pages"] = json!(pages);
                }
                meta
            })
            .collect();
        ChunkColumns {
            texts: chunks.iter().map(|c| c.text.as_str()).collect(),
            ordinals: (0..chunks.len()).map(as_i32).collect(),
            starts: chunks.iter().map(|c| as_i32(c.start_char)).collect(),
            ends: chunks.iter().map(|c| as_i32(c.end_char)).collect(),
            tokens,
            metas,
        }
    }
}

/// Indexes one source into one knowledge base. The job is identified by its
/// `task_id`: if the source was re-added (a new task) or removed meanwhile,
/// the job's work is dropped. Chunks are replaced in one transaction, so
/// searches see either the old chunks or the new ones.
async fn index_source(
    state: &AppState,
    indexed_source_id: Uuid,
    task_id: &str,
) -> Result<(), String> {
    let mut client = state.db.ai.get().await.map_err(|e| e.to_string())?;
    let claimed = client
        .query_opt(
            "update ai.indexed_sources ix set index_status = 'indexing', attempts = attempts + 1, \
                    last_dispatched_at = now() \
             from ai.knowledge_bases kb, ai.sources s \
             where ix.id = $1 and ix.celery_task_id = $2 and ix.index_status in ('pending', 'indexing') \
               and kb.id = ix.knowledge_base_id and s.id = ix.source_id \
             returning ix.knowledge_base_id, ix.source_id, kb.indexing_config, s.derivatives, \
                       s.extraction_status",
            &[&indexed_source_id, &task_id],
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(row) = claimed else {
        return Ok(());
    };
    let kb_id: Uuid = row.get("knowledge_base_id");
    let source_id: Uuid = row.get("source_id");
    let config: Value = row.get("indexing_config");
    let extraction_status: String = row.get("extraction_status");
    if extraction_status != "extracted" {
        return Err(format!(
            "Source must be extracted first (status: {extraction_status})"
        ));
    }
    let pages = read_page_texts(state, &row.get("derivatives"))
        .await
        .map_err(|e| format!("reading the source's page texts: {e}"))?
        .ok_or("the source has no page texts")?;

    let spec = ChunkSpec::from_indexing_config(&config);
    let chunks = chunking::chunk_pages(&pages, spec);
    let columns = ChunkColumns::of(&chunks);
    let stats = json!({
        "chunk_count": chunks.len(),
        "page_count": pages.len(),
        "char_count": pages.iter().map(|p| p.chars().count()).sum::<usize>(),
        "token_count": columns.tokens.iter().map(|&t| i64::from(t)).sum::<i64>(),
        "chunk_size": spec.chunk_size,
        "overlap": spec.overlap,
    });

    let tx = client.transaction().await.map_err(|e| e.to_string())?;
    let still_ours = tx
        .query_opt(
            "select 1 from ai.indexed_sources where id = $1 and celery_task_id = $2 \
             and index_status = 'indexing' for update",
            &[&indexed_source_id, &task_id],
        )
        .await
        .map_err(|e| e.to_string())?;
    if still_ours.is_none() {
        return Ok(());
    }
    tx.execute(
        "delete from ai.chunks where indexed_source_id = $1",
        &[&indexed_source_id],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.execute(
        "insert into ai.chunks (indexed_source_id, knowledge_base_id, source_id, text, chunk_index, \
                                start_char, end_char, tokens, meta) \
         select $1, $2, $3, u.text, u.chunk_index, u.start_char, u.end_char, u.tokens, u.meta \
         from unnest($4::text[], $5::int[], $6::int[], $7::int[], $8::int[], $9::jsonb[]) \
              as u(text, chunk_index, start_char, end_char, tokens, meta)",
        &[
            &indexed_source_id,
            &kb_id,
            &source_id,
            &columns.texts,
            &columns.ordinals,
            &columns.starts,
            &columns.ends,
            &columns.tokens,
            &columns.metas,
        ],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.execute(
        "update ai.indexed_sources set index_status = 'indexed', indexed_at = now(), stats = $2, \
                indexing_config_snapshot = $3, error_message = null \
         where id = $1",
        &[&indexed_source_id, &stats, &config],
    )
    .await
    .map_err(|e| e.to_string())?;
    tx.commit().await.map_err(|e| e.to_string())?;
    tracing::info!(%indexed_source_id, chunks = chunks.len(), "source indexed");
    Ok(())
}

// ------------------------------------------------------------ items, search

/// `source_ids` as UUIDs: an array of UUID strings (400 otherwise).
fn uuid_list(
    value: Option<&Value>,
    field: &str,
    required: bool,
) -> Result<Option<Vec<Uuid>>, ApiError> {
    match value {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::Array(items)) if !(required && items.is_empty()) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("{field} must be a list of UUID strings"))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ if required => Err(ApiError::bad_request(format!("{field} is required"))),
        _ => Err(ApiError::bad_request(format!(
            "{field} must be a list of UUID strings"
        ))),
    }
}

fn int_field(
    body: &Map<String, Value>,
    field: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_i64().filter(|n| range.contains(n)).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{field} must be an integer between {} and {}",
                range.start(),
                range.end()
            ))
        }),
    }
}

fn chunk_json(row: &Row) -> Value {
    json!({
        "id": row.get::<_, Uuid>("id"),
        "indexed_source_id": row.get::<_, Uuid>("indexed_source_id"),
        "source_id": row.get::<_, Uuid>("source_id"),
        "text": row.get::<_, String>("text"),
        "chunk_index": row.get::<_, i32>("chunk_index"),
        "start_char": row.get::<_, Option<i32>>("start_char"),
        "end_char": row.get::<_, Option<i32>>("end_char"),
        "tokens": row.get::<_, Option<i32>>("tokens"),
        "meta": row.get::<_, Value>("meta"),
        "created_at": timestamp(row.get("created_at")),
    })
}

async fn items(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let kb_id = parse_id(&id, KB_NOT_FOUND)?;
    let body = body.object();
    let source_ids = uuid_list(body.get("source_ids"), "source_ids", true)?.unwrap_or_default();
    let limit = int_field(&body, "limit", 1000, 1..=10_000)?;
    let offset = int_field(&body, "offset", 0, 0..=i64::MAX)?;
    let client = state.db.ai.get().await?;
    let kb = load_kb(&client, kb_id).await?;
    let strategy = kb
        .get::<_, Value>("indexing_config")
        .get("strategy")
        .and_then(Value::as_str)
        .unwrap_or("chunk_embed")
        .to_owned();
    let total: i64 = client
        .query_one(
            "select count(*) from ai.chunks where knowledge_base_id = $1 and source_id = any($2)",
            &[&kb_id, &source_ids],
        )
        .await?
        .get(0);
    let rows = client
        .query(
            "select c.id, c.indexed_source_id, c.source_id, c.text, c.chunk_index, c.start_char, c.end_char, \
                    c.tokens, c.meta, c.created_at \
             from ai.chunks c \
             where c.knowledge_base_id = $1 and c.source_id = any($2) \
             order by array_position($2, c.source_id), c.chunk_index \
             limit $3 offset $4",
            &[&kb_id, &source_ids, &limit, &offset],
        )
        .await?;
    Ok(axum::Json(json!({
        "items": rows.iter().map(chunk_json).collect::<Vec<_>>(),
        "total": total,
        "strategy": strategy,
        "source_ids": source_ids,
    }))
    .into_response())
}

/// A validated knowledge-base search, as `POST …/search` takes it.
#[derive(Debug, Clone)]
pub(crate) struct SearchRequest {
    /// The user's words (`websearch_to_tsquery` syntax for full text).
    pub(crate) query: String,
    /// At most this many results.
    pub(crate) top_k: i64,
    /// `full_text`, `vector_search` or `hybrid` (see the module docs).
    pub(crate) method: String,
    /// Results scoring below this (in the method's similarity) are dropped.
    pub(crate) threshold: f64,
    /// Chunks whose `meta` contains this object (`{}` for all).
    pub(crate) filter: Value,
    /// Only chunks of these sources, when given.
    pub(crate) source_ids: Option<Vec<Uuid>>,
}

/// One search result: the chunk and its score.
#[derive(Debug, Clone)]
pub(crate) struct SearchHit {
    pub(crate) chunk_id: Uuid,
    pub(crate) text: String,
    pub(crate) score: f64,
    pub(crate) source_id: Uuid,
    pub(crate) meta: Value,
}

fn search_request(
    body: &Map<String, Value>,
    retrieval_config: &Value,
) -> Result<SearchRequest, ApiError> {
    let query = match body.get("query") {
        Some(Value::String(q)) if !q.trim().is_empty() => q.trim().to_owned(),
        _ => return Err(ApiError::bad_request("query is required")),
    };
    let default_top_k = retrieval_config
        .get("top_k")
        .and_then(Value::as_i64)
        .unwrap_or(5);
    let top_k = int_field(body, "top_k", default_top_k, 1..=100)?;
    let method = match body.get("retrieval_method") {
        None | Some(Value::Null) => retrieval_config
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("hybrid")
            .to_owned(),
        Some(Value::String(m)) if RETRIEVAL_METHODS.contains(&m.as_str()) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "retrieval_method must be one of: {}",
                RETRIEVAL_METHODS.join(", ")
            )));
        }
    };
    if method == "tree_search" {
        return Err(ApiError::bad_request(
            "tree_search requires a page_index knowledge base",
        ));
    }
    let threshold = match body.get("similarity_threshold") {
        None | Some(Value::Null) => 0.0,
        Some(value) => value
            .as_f64()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| {
                ApiError::bad_request("similarity_threshold must be a number between 0 and 1")
            })?,
    };
    let filter = match body.get("filter_metadata") {
        None | Some(Value::Null) => json!({}),
        Some(value @ Value::Object(_)) => value.clone(),
        Some(_) => return Err(ApiError::bad_request("filter_metadata must be an object")),
    };
    let source_ids = uuid_list(body.get("source_ids"), "source_ids", false)?;
    Ok(SearchRequest {
        query,
        top_k,
        method,
        threshold,
        filter,
        source_ids,
    })
}

/// One ranked chunk.
struct Hit {
    row: Row,
    score: f64,
}

async fn search(
    State(state): State<AppState>,
    _: ServiceRole,
    UrlPath(id): UrlPath<String>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let kb_id = parse_id(&id, KB_NOT_FOUND)?;
    let body = body.object();
    let client = state.db.ai.get().await?;
    let kb = load_kb(&client, kb_id).await?;
    let request = search_request(&body, &kb.get("retrieval_config"))?;

    let hits = search_chunks(&client, kb_id, &request).await?;
    let results: Vec<Value> = hits
        .into_iter()
        .map(|hit| {
            json!({
                "chunk_id": hit.chunk_id,
                "text": hit.text,
                "score": hit.score,
                "source_id": hit.source_id,
                "meta": hit.meta,
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "total_results": results.len(),
        "results": results,
        "query": request.query,
        "retrieval_method": request.method,
    }))
    .into_response())
}

/// Searches one knowledge base's chunks (the work of `POST …/search`, for
/// callers inside the sandbox such as an agent's `knowledge_search`).
/// `request.method` must be `full_text`, `vector_search` or `hybrid`.
pub(crate) async fn search_chunks(
    client: &deadpool_postgres::Client,
    kb_id: Uuid,
    request: &SearchRequest,
) -> Result<Vec<SearchHit>, tokio_postgres::Error> {
    // Each list is cut at a generous depth so that fusion has material.
    let depth = (request.top_k * 4).max(20);
    let threshold = request.threshold;
    let hits = match request.method.as_str() {
        "full_text" => {
            ranked(
                client,
                kb_id,
                request,
                Ranking::FullText,
                threshold,
                request.top_k,
            )
            .await?
        }
        "vector_search" => {
            ranked(
                client,
                kb_id,
                request,
                Ranking::Similarity,
                threshold,
                request.top_k,
            )
            .await?
        }
        _ => {
            // The threshold is a similarity threshold: it applies to the
            // similarity list before fusion, as to vector hits on the platform.
            let full_text = ranked(client, kb_id, request, Ranking::FullText, 0.0, depth).await?;
            let similar = ranked(
                client,
                kb_id,
                request,
                Ranking::Similarity,
                threshold,
                depth,
            )
            .await?;
            fuse(vec![full_text, similar], request.top_k)
        }
    };
    Ok(hits
        .into_iter()
        .map(|hit| SearchHit {
            chunk_id: hit.row.get("id"),
            text: hit.row.get("text"),
            score: hit.score,
            source_id: hit.row.get("source_id"),
            meta: hit.row.get("meta"),
        })
        .collect())
}

#[derive(Clone, Copy)]
enum Ranking {
    FullText,
    Similarity,
}

async fn ranked(
    client: &deadpool_postgres::Client,
    kb_id: Uuid,
    request: &SearchRequest,
    ranking: Ranking,
    threshold: f64,
    limit: i64,
) -> Result<Vec<Hit>, tokio_postgres::Error> {
    let (score, matches) = match ranking {
        Ranking::FullText => (
            "ts_rank_cd(c.fts, websearch_to_tsquery('english', $1), 32)::float8",
            "c.fts @@ websearch_to_tsquery('english', $1)",
        ),
        Ranking::Similarity => (
            "extensions.word_similarity($1, c.text)::float8",
            "extensions.word_similarity($1, c.text) > 0.1",
        ),
    };
    let sql = format!(
        "select * from ( \
           select c.id, c.text, c.source_id, c.meta, c.chunk_index, {score} as score \
           from ai.chunks c \
           where c.knowledge_base_id = $2 and {matches} \
             and ($3::uuid[] is null or c.source_id = any($3)) and c.meta @> $4 \
         ) hits \
         where score >= $6 \
         order by score desc, source_id, chunk_index \
         limit $5"
    );
    let params: [&(dyn ToSql + Sync); 6] = [
        &request.query,
        &kb_id,
        &request.source_ids,
        &request.filter,
        &limit,
        &threshold,
    ];
    let rows = client.query(&sql, &params).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let score = row.get::<_, f64>("score");
            Hit { row, score }
        })
        .collect())
}

/// Reciprocal rank fusion of ranked lists: each chunk scores the sum of
/// `1 / (60 + rank)` over the lists it is in.
fn fuse(lists: Vec<Vec<Hit>>, top_k: i64) -> Vec<Hit> {
    let mut fused: HashMap<Uuid, Hit> = HashMap::new();
    for list in lists {
        for (rank, hit) in list.into_iter().enumerate() {
            let contribution = 1.0 / (RRF_K + rank as f64 + 1.0);
            fused
                .entry(hit.row.get::<_, Uuid>("id"))
                .and_modify(|h| h.score += contribution)
                .or_insert(Hit {
                    row: hit.row,
                    score: contribution,
                });
        }
    }
    let mut hits: Vec<Hit> = fused.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.row.get::<_, Uuid>("id").cmp(&b.row.get::<_, Uuid>("id")))
    });
    hits.truncate(usize::try_from(top_k).unwrap_or(usize::MAX));
    hits
}
