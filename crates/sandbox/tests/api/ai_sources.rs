//! `/api/sources` and `/api/knowledge-bases`: upload → extraction → indexing
//! → `items` / `search` on PDFs generated here, the failure classes, dedup,
//! download, deletion, and the route split of the current platform
//! (service key only: a user token is 403, no token 401).

use std::time::Duration;

use quire_testkit::fixtures;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use uuid::Uuid;

use quire_testkit::{Stack, spawn_sandbox, spawn_sandbox_with};

const PAGES: [&str; 3] = [
    "The aurora borealis glows over the northern sky.\nSolar wind meets the magnetosphere.",
    "Photosynthesis turns light into sugar.\nChlorophyll absorbs red and blue light in the leaf.",
    "Basalt forms when volcanic lava cools quickly.\nIt is the most common rock of the ocean floor.",
];

/// Bounded wait for background work: polls `GET path` with the service key
/// until `done(body)`, and fails the test with the last body after a minute.
async fn wait_for(app: &Stack, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..1200 {
        let response = app
            .service(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        last = response.json().await.unwrap();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} did not reach the expected state; last answer: {last:#}");
}

async fn upload(app: &Stack, filename: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = Form::new()
        .part("file", Part::bytes(bytes).file_name(filename.to_owned()))
        .text("metadata", r#"{"origin":"test"}"#);
    app.service(reqwest::Method::POST, "/api/sources/upload")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads and waits for extraction to end; returns the source.
async fn uploaded_source(app: &Stack, filename: &str, bytes: Vec<u8>) -> Value {
    let response = upload(app, filename, bytes).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for(app, &format!("/api/sources/{id}"), |s| {
        matches!(
            s["extraction_status"].as_str(),
            Some("extracted" | "failed")
        )
    })
    .await
}

async fn create_kb(app: &Stack, body: Value) -> Value {
    let response = app
        .service(reqwest::Method::POST, "/api/knowledge-bases")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// Adds a source to a KB and waits for indexing to end; returns the list item.
async fn indexed(app: &Stack, kb: &str, source: &str) -> Value {
    let response = app
        .service(
            reqwest::Method::POST,
            &format!("/api/knowledge-bases/{kb}/sources"),
        )
        .json(&json!({"source_id": source}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let added: Value = response.json().await.unwrap();
    assert_eq!(added["index_status"], "pending");
    assert_eq!(added["source_id"], source);
    let id = added["id"].as_str().unwrap().to_owned();
    let list = wait_for(app, &format!("/api/knowledge-bases/{kb}/sources"), |list| {
        list["items"].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                i["id"] == id.as_str()
                    && matches!(i["index_status"].as_str(), Some("indexed" | "failed"))
            })
        })
    })
    .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .unwrap()
        .clone()
}

async fn post_json(app: &Stack, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .service(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// A journey: one PDF from upload through extraction, indexing and search to
/// page-cited results, each stage checked as the platform answers it.
#[tokio::test]
#[allow(
    clippy::too_many_lines,
    reason = "a journey, one source through every stage"
)]
async fn a_pdf_goes_from_upload_to_page_cited_search_results() {
    let app = spawn_sandbox().await;

    // Upload: 201 with the platform's shape, then the status lifecycle.
    let response = upload(&app, "Field Notes.pdf", fixtures::text_pdf(&PAGES)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["extraction_status"], "pending");
    assert_eq!(created["name"], "Field Notes.pdf");
    assert_eq!(created["file_type"], "application/pdf");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["storage_path"],
        format!("sources/{id}/original/Field_Notes.pdf")
    );
    assert!(created["task_id"].is_string());

    let source = wait_for(&app, &format!("/api/sources/{id}"), |s| {
        s["extraction_status"] == "extracted"
    })
    .await;
    assert_eq!(source["derivatives"]["page_count"], 3);
    assert_eq!(source["metadata"], json!({"origin": "test"}));
    assert_eq!(source["error_code"], Value::Null);
    // The platform's derivative records: storage path, format, page; no
    // character count.
    for (i, record) in source["derivatives"]["page_text"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(
            record,
            &json!({"storage_path": format!("sources/{id}/page_text/page_{:04}.txt", i + 1),
                    "format": "plain", "page": i + 1})
        );
    }

    let (status, texts) = get(&app, &format!("/api/sources/{id}/page-texts")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(texts, json!({"page_texts": PAGES, "count": 3}));
    let (_, page2) = get(&app, &format!("/api/sources/{id}/page-texts?page=2")).await;
    assert_eq!(page2, json!({"text": PAGES[1], "page": 2, "count": 3}));
    let (status, _) = get(&app, &format!("/api/sources/{id}/page-texts?page=4")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A knowledge base with small chunks, so every page gives several.
    let kb = create_kb(
        &app,
        json!({"name": "notes", "indexing_config": {"chunk_size": 60, "overlap": 15}}),
    )
    .await;
    assert_eq!(kb["indexing_config"]["strategy"], "chunk_embed");
    assert_eq!(kb["retrieval_config"]["method"], "hybrid");
    assert_eq!(kb["retrieval_config"]["top_k"], 5);
    let kb_id = kb["id"].as_str().unwrap().to_owned();

    let item = indexed(&app, &kb_id, &id).await;
    assert_eq!(item["index_status"], "indexed", "{item:#}");
    assert_eq!(item["source_name"], "Field Notes.pdf");
    let chunk_count = item["stats"]["chunk_count"].as_u64().unwrap();
    assert!(chunk_count >= 6, "{item:#}");

    let (_, kb_now) = get(&app, &format!("/api/knowledge-bases/{kb_id}")).await;
    assert_eq!(kb_now["source_counts"]["indexed"], 1);
    assert_eq!(kb_now["source_counts"]["total"], 1);

    // items: every chunk, its text found in the page texts joined with
    // "\n\n" at its span, and `meta.pages` the pages that span overlaps.
    let (status, items) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/items"),
        json!({"source_ids": [id]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(items["total"], chunk_count);
    assert_eq!(items["strategy"], "chunk_embed");
    assert_eq!(items["source_ids"], json!([id]));
    let joined = PAGES.join("\n\n");
    let page_starts: Vec<usize> = PAGES
        .iter()
        .scan(0, |at, p| {
            let start = *at;
            *at += p.chars().count() + 2;
            Some(start)
        })
        .collect();
    let mut pages_seen = std::collections::BTreeSet::new();
    for chunk in items["items"].as_array().unwrap() {
        let meta = &chunk["meta"];
        assert!(meta.get("page").is_none(), "no meta.page: {chunk:#}");
        let (start, end) = (
            chunk["start_char"].as_u64().unwrap() as usize,
            chunk["end_char"].as_u64().unwrap() as usize,
        );
        let span: String = joined.chars().skip(start).take(end - start).collect();
        assert_eq!(chunk["text"], span.as_str(), "{chunk:#}");
        let expected: Vec<usize> = (1..=3)
            .filter(|&p| {
                let page_end = page_starts.get(p).copied().unwrap_or(usize::MAX);
                start < page_end && end > page_starts[p - 1]
            })
            .collect();
        assert_eq!(meta["pages"], json!(expected), "{chunk:#}");
        pages_seen.extend(expected);
    }
    assert_eq!(pages_seen, [1, 2, 3].into());

    // The rows in Postgres agree.
    let db = app.db.admin().await;
    let rows = db
        .query(
            "select meta->'pages', text from ai.chunks where source_id = $1 order by chunk_index",
            &[&Uuid::parse_str(&id).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len() as u64, chunk_count);

    // search: each method finds chlorophyll on page 2.
    for method in ["full_text", "hybrid", "vector_search"] {
        let (status, found) = post_json(
            &app,
            &format!("/api/knowledge-bases/{kb_id}/search"),
            json!({"query": "chlorophyll", "retrieval_method": method, "top_k": 3}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{found:#}");
        assert_eq!(found["retrieval_method"], method);
        assert_eq!(found["query"], "chlorophyll");
        let first = &found["results"][0];
        assert!(
            first["meta"]["pages"]
                .as_array()
                .unwrap()
                .contains(&json!(2)),
            "{method}: {found:#}"
        );
        assert!(first["text"].as_str().unwrap().contains("Chlorophyll"));
        assert_eq!(first["source_id"], id.as_str());
        assert!(first["chunk_id"].is_string() && first["score"].as_f64().unwrap() > 0.0);
        assert_eq!(
            found["total_results"],
            found["results"].as_array().unwrap().len()
        );
    }
    // A misspelling: no full-text hit, a similarity hit on the right page.
    let (_, typo) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/search"),
        json!({"query": "magnetosfere", "retrieval_method": "full_text"}),
    )
    .await;
    assert_eq!(typo["total_results"], 0);
    let (_, typo) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/search"),
        json!({"query": "magnetosfere"}),
    )
    .await;
    assert_eq!(typo["retrieval_method"], "hybrid");
    assert_eq!(typo["results"][0]["meta"]["pages"][0], 1, "{typo:#}");
    // Filters: another source id finds nothing; metadata must match.
    let (_, none) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/search"),
        json!({"query": "basalt", "source_ids": [Uuid::new_v4()]}),
    )
    .await;
    assert_eq!(none["total_results"], 0);
    let (_, by_page) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/search"),
        json!({"query": "light", "retrieval_method": "full_text", "filter_metadata": {"pages": [2]}, "top_k": 10}),
    )
    .await;
    assert!(by_page["total_results"].as_u64().unwrap() >= 1);
    assert!(
        by_page["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["meta"]["pages"].as_array().unwrap().contains(&json!(2)))
    );

    // Removing the source from the KB removes its chunks and keeps the source.
    let ix = item["id"].as_str().unwrap();
    let response = app
        .service(
            reqwest::Method::DELETE,
            &format!("/api/knowledge-bases/{kb_id}/sources/{ix}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let left: i64 = db
        .query_one(
            "select count(*) from ai.chunks where knowledge_base_id = $1",
            &[&Uuid::parse_str(&kb_id).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    let (status, _) = get(&app, &format!("/api/sources/{id}")).await;
    assert_eq!(status, StatusCode::OK);
}

async fn get(app: &Stack, path: &str) -> (StatusCode, Value) {
    let response = app
        .service(reqwest::Method::GET, path)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn unreadable_files_fail_with_their_code_and_scans_extract_empty() {
    let app = spawn_sandbox().await;
    let text = fixtures::text_pdf(&["Quarterly numbers", "More numbers"]);

    let encrypted = uploaded_source(
        &app,
        "locked.pdf",
        fixtures::encrypted_pdf(&PAGES, "hunter2"),
    )
    .await;
    // A failed file extraction, as the platform records it: a message and
    // a NULL error_code.
    assert_eq!(encrypted["extraction_status"], "failed");
    assert_eq!(encrypted["error_code"], Value::Null);
    assert!(
        encrypted["error_message"]
            .as_str()
            .unwrap()
            .contains("password")
    );

    let truncated = uploaded_source(&app, "cut.pdf", fixtures::truncated(&text)).await;
    assert_eq!(truncated["extraction_status"], "failed");
    assert_eq!(truncated["error_code"], Value::Null);
    assert!(truncated["error_message"].is_string());

    // The platform checks the extension only, so a renamed file is accepted
    // and fails in extraction.
    let renamed = uploaded_source(&app, "holiday.pdf", fixtures::not_a_pdf()).await;
    assert_eq!(renamed["extraction_status"], "failed");
    assert_eq!(renamed["error_code"], Value::Null);
    assert!(renamed["error_message"].is_string());

    let scan = uploaded_source(&app, "scan.pdf", fixtures::image_only_pdf(2)).await;
    assert_eq!(scan["extraction_status"], "extracted");
    let (_, texts) = get(
        &app,
        &format!("/api/sources/{}/page-texts", scan["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(texts, json!({"page_texts": ["", ""], "count": 2}));

    // A scan indexes to no chunks; a failed source cannot be added at all.
    let kb = create_kb(&app, json!({"name": "mixed"})).await;
    let kb_id = kb["id"].as_str().unwrap();
    let item = indexed(&app, kb_id, scan["id"].as_str().unwrap()).await;
    assert_eq!(item["index_status"], "indexed");
    assert_eq!(item["stats"]["chunk_count"], 0);
    let (status, body) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/sources"),
        json!({"source_id": encrypted["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "Source must be extracted first (status: failed)"})
    );

    // Extensions outside the platform's list are refused up front.
    let response = upload(&app, "tool.exe", b"MZ".to_vec()).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported file type '.exe'"),
        "{body}"
    );
    let response = app
        .service(reqwest::Method::POST, "/api/sources/upload")
        .multipart(Form::new().text("name", "nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"error": "No file provided"})
    );
}

#[tokio::test]
async fn the_same_bytes_twice_are_a_409_naming_the_first_source() {
    let app = spawn_sandbox().await;
    let pdf = fixtures::text_pdf(&["Only once, please"]);
    let first = upload(&app, "a.pdf", pdf.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();

    let second = upload(&app, "b-renamed.pdf", pdf).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"], "duplicate_source");
    assert!(body["message"].is_string());
    assert_eq!(body["duplicate"]["id"], first["id"]);
    assert_eq!(body["duplicate"]["name"], "a.pdf");
    assert_eq!(body["duplicate"]["file_type"], "application/pdf");
    assert!(body["duplicate"]["extraction_status"].is_string());
    assert!(body["duplicate"]["created_at"].is_string());

    let (_, list) = get(&app, "/api/sources").await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn download_returns_the_original_bytes_and_delete_removes_everything() {
    let app = spawn_sandbox().await;
    let pdf = fixtures::text_pdf(&PAGES);
    let source = uploaded_source(&app, "report.pdf", pdf.clone()).await;
    let id = source["id"].as_str().unwrap();

    let response = app
        .service(reqwest::Method::GET, &format!("/api/sources/{id}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"report.pdf\""
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), pdf.as_slice());

    // List with filters.
    let (_, list) = get(
        &app,
        "/api/sources?status=extracted&q=repo&sort=name&order=asc&limit=10",
    )
    .await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["limit"], 10);
    assert_eq!(list["sources"][0]["id"], id);
    let (_, list) = get(&app, "/api/sources?status=failed").await;
    assert_eq!(list["total"], 0);
    let (status, _) = get(&app, "/api/sources?sort=size").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let kb = create_kb(&app, json!({"name": "kb"})).await;
    indexed(&app, kb["id"].as_str().unwrap(), id).await;
    let response = app
        .service(reqwest::Method::DELETE, &format!("/api/sources/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Source deleted");
    assert!(body["warning"].is_string(), "{body}");
    let (status, body) = get(&app, &format!("/api/sources/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "Source not found"}));
    let chunks: i64 = app.count("select count(*) from ai.chunks", &[]).await;
    assert_eq!(chunks, 0);
    // The same bytes can come back as a new source.
    assert_eq!(
        upload(&app, "report.pdf", pdf).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn knowledge_base_requests_are_validated() {
    let app = spawn_sandbox().await;
    let (status, body) = post_json(&app, "/api/knowledge-bases", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "name is required"})
        )
    );
    let kb = create_kb(&app, json!({"name": "v", "description": "d"})).await;
    let kb_id = kb["id"].as_str().unwrap();
    let search = format!("/api/knowledge-bases/{kb_id}/search");
    for (body, expected) in [
        (json!({}), "query is required"),
        (
            json!({"query": "x", "top_k": 0}),
            "top_k must be an integer between 1 and 100",
        ),
        (
            json!({"query": "x", "retrieval_method": "psychic"}),
            "retrieval_method must be one of: vector_search, full_text, hybrid, tree_search",
        ),
        (
            json!({"query": "x", "retrieval_method": "tree_search"}),
            "tree_search requires a page_index knowledge base",
        ),
        (
            json!({"query": "x", "source_ids": ["nope"]}),
            "source_ids must be a list of UUID strings",
        ),
    ] {
        let (status, answer) = post_json(&app, &search, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"], expected);
    }
    let (status, answer) = post_json(&app, &search, json!({"query": "nothing indexed"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["results"], json!([]));
    let (status, answer) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/items"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "source_ids is required"})
        )
    );
    let (status, answer) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/sources"),
        json!({"source_id": Uuid::new_v4()}),
    )
    .await;
    assert_eq!(
        (status, answer),
        (StatusCode::NOT_FOUND, json!({"error": "Source not found"}))
    );
    let (status, answer) = get(&app, &format!("/api/knowledge-bases/{}", Uuid::new_v4())).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Knowledge base not found"})
        )
    );
}

/// Every sources/KB route (docs/platform/ai-api.md §2, §3.1), for a made-up id.
fn sources_and_kb_routes() -> Vec<(reqwest::Method, String)> {
    let id = Uuid::new_v4();
    vec![
        (reqwest::Method::POST, "/api/sources/upload".into()),
        (reqwest::Method::GET, "/api/sources".into()),
        (reqwest::Method::GET, format!("/api/sources/{id}")),
        (reqwest::Method::GET, format!("/api/sources/{id}/download")),
        (
            reqwest::Method::GET,
            format!("/api/sources/{id}/page-texts"),
        ),
        (reqwest::Method::DELETE, format!("/api/sources/{id}")),
        (reqwest::Method::POST, "/api/knowledge-bases".into()),
        (reqwest::Method::GET, "/api/knowledge-bases".into()),
        (reqwest::Method::GET, format!("/api/knowledge-bases/{id}")),
        (reqwest::Method::PATCH, format!("/api/knowledge-bases/{id}")),
        (
            reqwest::Method::DELETE,
            format!("/api/knowledge-bases/{id}"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/knowledge-bases/{id}/sources"),
        ),
        (
            reqwest::Method::GET,
            format!("/api/knowledge-bases/{id}/sources"),
        ),
        (
            reqwest::Method::DELETE,
            format!("/api/knowledge-bases/{id}/sources/{id}"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/knowledge-bases/{id}/items"),
        ),
        (
            reqwest::Method::POST,
            format!("/api/knowledge-bases/{id}/search"),
        ),
    ]
}

/// `method path` with the anon key as `apikey` and `bearer`, if any.
async fn call_as(
    app: &Stack,
    method: &reqwest::Method,
    path: &str,
    bearer: Option<String>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(method.clone(), format!("{}{path}", app.api_base()))
        .header("apikey", app.anon_key());
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (
        status,
        response.json::<Value>().await.unwrap_or(Value::Null),
    )
}

/// The gateway comes first: no `apikey`, or a user token as `apikey`, is
/// refused even with the service key as bearer.
#[tokio::test]
async fn the_gateway_refuses_every_sources_and_kb_route_without_a_project_api_key() {
    let app = spawn_sandbox().await;
    let user = app.db.create_user("a@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let user_token = app.sign(
        &json!({"sub": user, "aud": "authenticated", "role": "authenticated", "exp": now + 600}),
    );
    for (method, path) in &sources_and_kb_routes() {
        let gateway = |apikey: Option<String>| {
            let mut request = app
                .http
                .request(method.clone(), format!("{}{path}", app.api_base()))
                .bearer_auth(app.service_key());
            if let Some(apikey) = apikey {
                request = request.header("apikey", apikey);
            }
            async move {
                let response = request.send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        assert_eq!(
            gateway(None).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"message": "No API key found in request"})
            ),
            "{method} {path}"
        );
        assert_eq!(
            gateway(Some(user_token.clone())).await,
            (
                StatusCode::UNAUTHORIZED,
                json!({"message": "Invalid authentication credentials"})
            ),
            "{method} {path}"
        );
    }
}

/// Each kind of credential but the service key is refused on every sources/KB route.
#[tokio::test]
async fn sources_and_knowledge_bases_need_the_service_key() {
    let app = spawn_sandbox().await;
    let user = app.db.create_user("a@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let user_token = app.sign(
        &json!({"sub": user, "aud": "authenticated", "role": "authenticated", "exp": now + 600}),
    );
    // A user token claiming the service role is still a user token.
    let claims_service = app.sign(
        &json!({"sub": user, "aud": "authenticated", "role": "service_role", "exp": now + 600}),
    );
    let expired = app.sign(
        &json!({"sub": user, "aud": "authenticated", "role": "authenticated", "exp": now - 10}),
    );
    let wrong_aud =
        app.sign(&json!({"sub": user, "aud": "other", "role": "authenticated", "exp": now + 600}));
    let not_a_user = app.sign(&json!({"sub": "service", "aud": "authenticated", "role": "authenticated", "exp": now + 600}));
    let forbidden = "This endpoint requires the project's service role key";
    let cases: [(&str, Option<String>, StatusCode, &str); 7] = [
        (
            "no bearer",
            None,
            StatusCode::UNAUTHORIZED,
            "Authorization header required",
        ),
        (
            "a user's token",
            Some(user_token),
            StatusCode::FORBIDDEN,
            forbidden,
        ),
        (
            "a user's token claiming the service role",
            Some(claims_service),
            StatusCode::FORBIDDEN,
            forbidden,
        ),
        (
            "an expired token",
            Some(expired),
            StatusCode::UNAUTHORIZED,
            "Token has expired",
        ),
        (
            "another audience",
            Some(wrong_aud),
            StatusCode::UNAUTHORIZED,
            "Invalid token audience",
        ),
        (
            "a sub that is not a user id",
            Some(not_a_user),
            StatusCode::UNAUTHORIZED,
            "Invalid token: sub must be a user id",
        ),
        (
            "the anon key",
            Some(app.anon_key()),
            StatusCode::UNAUTHORIZED,
            r#"Invalid token: Token is missing the "sub" claim"#,
        ),
    ];
    for (method, path) in &sources_and_kb_routes() {
        for (case, bearer, want, error) in &cases {
            let (status, body) = call_as(&app, method, path, bearer.clone()).await;
            assert_eq!(status, *want, "{case}: {method} {path}: {body}");
            assert_eq!(body, json!({"error": error}), "{case}: {method} {path}");
        }
        let (status, body) = call_as(&app, method, path, Some(app.service_key())).await;
        assert!(
            !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "{method} {path} with the service key: {status} {body}"
        );
    }
}

/// A sandbox restarted on the same database and data directory picks up
/// extraction and indexing that were left unfinished. A journey: the
/// restart is the behaviour, so its stages stay in one test.
#[tokio::test]
#[allow(clippy::too_many_lines, reason = "a journey across a restart")]
async fn a_restarted_sandbox_resumes_unfinished_extraction_and_indexing() {
    let db = quire_testdb::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let start = || quire_sandbox::spawn(quire_sandbox::Config::new(dir.path(), db.url()));
    let client = reqwest::Client::new();
    let call = |sandbox: &quire_sandbox::Sandbox, method: reqwest::Method, path: &str| {
        use secrecy::ExposeSecret as _;
        let key = sandbox.service_role_key().expose_secret().to_owned();
        client
            .request(method, format!("{}{path}", sandbox.api_base()))
            .header("apikey", &key)
            .bearer_auth(key)
    };
    let poll = |sandbox: &quire_sandbox::Sandbox, path: String, done: fn(&Value) -> bool| {
        let request = call(sandbox, reqwest::Method::GET, &path);
        async move {
            let mut last = Value::Null;
            for _ in 0..1200 {
                last = request
                    .try_clone()
                    .unwrap()
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if done(&last) {
                    return last;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("{path} did not reach the expected state; last answer: {last:#}");
        }
    };

    // First run: two extracted sources, one of them indexed.
    let first = start().await.unwrap();
    let mut ids = Vec::new();
    for (name, page) in [
        ("a.pdf", "Alpha centauri is a star system"),
        ("b.pdf", "Betelgeuse is a red supergiant"),
    ] {
        let form = Form::new().part(
            "file",
            Part::bytes(fixtures::text_pdf(&[page])).file_name(name),
        );
        let created: Value = call(&first, reqwest::Method::POST, "/api/sources/upload")
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        poll(&first, format!("/api/sources/{id}"), |s| {
            s["extraction_status"] == "extracted"
        })
        .await;
        ids.push(id);
    }
    let kb: Value = call(&first, reqwest::Method::POST, "/api/knowledge-bases")
        .json(&json!({"name": "stars"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kb_id = kb["id"].as_str().unwrap().to_owned();
    call(
        &first,
        reqwest::Method::POST,
        &format!("/api/knowledge-bases/{kb_id}/sources"),
    )
    .json(&json!({"source_id": ids[1]}))
    .send()
    .await
    .unwrap();
    poll(&first, format!("/api/knowledge-bases/{kb_id}"), |kb| {
        kb["source_counts"]["indexed"] == 1
    })
    .await;
    first.shutdown().await.unwrap();

    // As if the first run had stopped mid-way: one source still extracting,
    // one indexing with no chunks written yet.
    let admin = db.admin().await;
    let a = Uuid::parse_str(&ids[0]).unwrap();
    let b = Uuid::parse_str(&ids[1]).unwrap();
    admin
        .execute("update ai.sources set extraction_status = 'extracting', derivatives = '{}' where id = $1", &[&a])
        .await
        .unwrap();
    admin
        .execute("update ai.indexed_sources set index_status = 'indexing', indexed_at = null where source_id = $1", &[&b])
        .await
        .unwrap();
    admin
        .execute("delete from ai.chunks where source_id = $1", &[&b])
        .await
        .unwrap();

    let second = start().await.unwrap();
    let source = poll(&second, format!("/api/sources/{a}"), |s| {
        s["extraction_status"] == "extracted"
    })
    .await;
    assert_eq!(source["derivatives"]["page_count"], 1);
    poll(&second, format!("/api/knowledge-bases/{kb_id}"), |kb| {
        kb["source_counts"]["indexed"] == 1
    })
    .await;
    let chunks: i64 = admin
        .query_one("select count(*) from ai.chunks where source_id = $1", &[&b])
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 1);
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_chunk_crossing_a_page_break_lists_both_pages() {
    let app = spawn_sandbox().await;
    let source = uploaded_source(
        &app,
        "two.pdf",
        fixtures::text_pdf(&["The tide comes in at dawn.", "It goes out again at dusk."]),
    )
    .await;
    let id = source["id"].as_str().unwrap();
    let kb = create_kb(&app, json!({"name": "whole"})).await;
    let kb_id = kb["id"].as_str().unwrap();
    let item = indexed(&app, kb_id, id).await;
    assert_eq!(item["stats"]["chunk_count"], 1, "{item:#}");
    let (_, items) = post_json(
        &app,
        &format!("/api/knowledge-bases/{kb_id}/items"),
        json!({"source_ids": [id]}),
    )
    .await;
    let chunk = &items["items"][0];
    assert_eq!(
        chunk["text"],
        "The tide comes in at dawn.\n\nIt goes out again at dusk."
    );
    assert_eq!(chunk["meta"]["pages"], json!([1, 2]));
    assert!(chunk["meta"].get("page").is_none());
}

/// A one-page PDF that draws form `F9`, which draws `F8` ten times, … down to
/// `F0`, which shows one word: 10⁹ words from a 2 kB file, a reader that never
/// finishes in practice.
fn nested_forms_pdf() -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let word = Content {
        operations: vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 12.into()]),
            Operation::new("Td", vec![72.into(), 700.into()]),
            Operation::new("Tj", vec![Object::string_literal("again")]),
            Operation::new("ET", vec![]),
        ],
    };
    let form = |content: Content, resources: lopdf::Dictionary| {
        Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
                "Resources" => resources,
            },
            content.encode().unwrap(),
        )
    };
    let mut inner = doc.add_object(form(
        word,
        dictionary! { "Font" => dictionary! { "F1" => font } },
    ));
    for _ in 0..9 {
        let ten = Content {
            operations: vec![Operation::new("Do", vec!["Inner".into()]); 10],
        };
        inner = doc.add_object(form(
            ten,
            dictionary! { "XObject" => dictionary! { "Inner" => inner } },
        ));
    }
    let pages = doc.new_object_id();
    let contents = doc.add_object(Stream::new(
        dictionary! {},
        Content {
            operations: vec![Operation::new("Do", vec!["Outer".into()])],
        }
        .encode()
        .unwrap(),
    ));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages, "Contents" => contents,
        "Resources" => dictionary! { "XObject" => dictionary! { "Outer" => inner } },
    });
    doc.objects.insert(
        pages,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn a_pdf_the_reader_would_never_finish_fails_at_the_time_limit() {
    let app = spawn_sandbox_with(|config| config.extraction_time_limit_secs = 2).await;

    let endless = uploaded_source(&app, "endless.pdf", nested_forms_pdf()).await;
    assert_eq!(endless["extraction_status"], "failed");
    assert_eq!(endless["error_code"], Value::Null);
    let message = endless["error_message"].as_str().unwrap();
    assert!(message.contains("took longer than 2 s"), "{message}");

    // The worker is free again: the next file extracts.
    let next = uploaded_source(
        &app,
        "next.pdf",
        fixtures::text_pdf(&["After the endless one"]),
    )
    .await;
    assert_eq!(next["extraction_status"], "extracted");
}

#[tokio::test]
async fn a_pdf_the_reader_panics_on_fails_with_a_reason() {
    use lopdf::content::Operation;
    let app = spawn_sandbox().await;
    // Text shown before any font is chosen: pdf-extract unwraps the font.
    let fontless = fixtures::pdf_from_operations(vec![vec![
        Operation::new("BT", vec![]),
        Operation::new("Td", vec![72.into(), 700.into()]),
        Operation::new("Tj", vec![lopdf::Object::string_literal("orphan")]),
        Operation::new("ET", vec![]),
    ]]);

    let source = uploaded_source(&app, "fontless.pdf", fontless).await;
    assert_eq!(source["extraction_status"], "failed");
    assert_eq!(source["error_code"], Value::Null);
    let message = source["error_message"].as_str().unwrap();
    assert!(message.contains("cannot handle"), "{message}");
}

#[tokio::test]
async fn a_page_the_reader_panics_on_is_empty_and_the_source_still_extracted() {
    use lopdf::content::Operation;
    let app = spawn_sandbox().await;
    let shown = |font: Option<&str>, text: &str| {
        let mut ops = vec![Operation::new("BT", vec![])];
        if let Some(font) = font {
            ops.push(Operation::new("Tf", vec![font.into(), 12.into()]));
        }
        ops.push(Operation::new("Td", vec![72.into(), 700.into()]));
        ops.push(Operation::new(
            "Tj",
            vec![lopdf::Object::string_literal(text)],
        ));
        ops.push(Operation::new("ET", vec![]));
        ops
    };
    // Page 2 shows text before choosing a font, which the reader panics on;
    // the platform's extractor leaves such a page empty and goes on
    // (docs/platform-contract.md §4).
    let partly = fixtures::pdf_from_operations(vec![
        shown(Some("F1"), "Tides follow the moon"),
        shown(None, "orphan"),
        shown(Some("F1"), "Salt makes the sea dense"),
    ]);

    let source = uploaded_source(&app, "partly.pdf", partly).await;
    assert_eq!(source["extraction_status"], "extracted");
    assert_eq!(source["error_message"], Value::Null);
    assert_eq!(source["derivatives"]["page_count"], 3);
    let (_, texts) = get(
        &app,
        &format!("/api/sources/{}/page-texts", source["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        texts,
        json!({"page_texts": ["Tides follow the moon", "", "Salt makes the sea dense"], "count": 3})
    );
}
