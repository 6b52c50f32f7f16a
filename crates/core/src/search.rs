//! User-scoped retrieval: `search_chunks` through PostgREST under the user's
//! token (ARCHITECTURE.md, "Ask", step 1). RLS decides what is visible; the hits are
//! shown as "sources used" before the answer and their ids go to the
//! companion.

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::rest::Rest;

/// How many chunks a question retrieves by default.
pub const DEFAULT_MATCH_COUNT: u32 = 8;

/// One retrieved chunk of one of the user's documents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
pub struct ChunkHit {
    /// The `document_chunks` row id: what the companion is sent.
    pub id: Uuid,
    /// The user's document the chunk is from.
    pub document_id: Uuid,
    /// The platform's chunk id (shared by users who uploaded the same file).
    pub chunk_id: Uuid,
    /// The document's title.
    pub title: String,
    /// The first (1-based) page the chunk spans, when the extraction knew
    /// the pages.
    pub page: Option<i32>,
    /// The last page the chunk spans: a chunk may cross a page break
    /// (`page` 3, `page_end` 4). Equal to `page` for one page, `None` with it.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub page_end: Option<i32>,
    /// The chunk's text.
    pub text: String,
    /// Rank of the stage that answered (scales differ between stages).
    pub score: f32,
}

pub(crate) async fn search_chunks(
    rest: &Rest,
    query: &str,
    match_count: u32,
    document_ids: Option<&[Uuid]>,
) -> Result<Vec<ChunkHit>> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    rest.rpc(
        "search_chunks",
        &json!({
            "query": query,
            "match_count": match_count,
            "document_ids": document_ids,
        }),
    )
    .await
}

/// The best chunks for `query` in the documents conversation `id` asks
/// about (all the user's when its scope is empty), the scope read by the
/// database in the same request (`search_conversation_chunks`,
/// db/app/92_conversation_scope.sql), so another device's change counts. A
/// conversation that is not the user's is `NotFound`.
pub(crate) async fn search_conversation(
    rest: &Rest,
    query: &str,
    match_count: u32,
    id: Uuid,
) -> Result<Vec<ChunkHit>> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    rest.rpc(
        "search_conversation_chunks",
        &json!({"query": query, "conversation_id": id, "match_count": match_count}),
    )
    .await
    .map_err(|err| match err {
        Error::NotFound { .. } => Error::NotFound {
            what: "conversation".into(),
        },
        other => other,
    })
}

/// What the database's refusal of a scope (db/app/92_conversation_scope.sql:
/// a document that is not the user's, or is gone) is for the person.
pub(crate) fn scope_refused(err: Error) -> Error {
    match err {
        Error::Conflict { .. } => Error::NotFound {
            what: "document".into(),
        },
        other => other,
    }
}

impl crate::quire::Quire {
    /// The id of the user's document named `id_or_title`: an id as it is,
    /// else the one document whose title is it, in any case, with or
    /// without `.pdf` (`NotFound` for none, `BadInput` naming the ids for
    /// several). For `quire-cli ask --doc`.
    pub async fn find_document(&self, id_or_title: &str) -> Result<Uuid> {
        let name = id_or_title.trim();
        if let Ok(id) = name.parse::<Uuid>() {
            return Ok(id);
        }
        let documents = self.documents().await?;
        match titled(&documents, name).as_slice() {
            [] => Err(Error::NotFound {
                what: format!("document called \u{201c}{name}\u{201d}"),
            }),
            [one] => Ok(*one),
            many => Err(Error::BadInput {
                service: crate::error::Service::Database,
                message: format!(
                    "{} documents are called \u{201c}{name}\u{201d}; name one by its id: {}",
                    many.len(),
                    many.iter()
                        .map(Uuid::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

/// The ids of `documents` titled `name`, in any case, with or without `.pdf`.
fn titled(documents: &[crate::state::Document], name: &str) -> Vec<Uuid> {
    let bare = |title: &str| {
        let lower = title.trim().to_lowercase();
        lower
            .strip_suffix(".pdf")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    let wanted = bare(name);
    documents
        .iter()
        .filter(|d| bare(&d.title) == wanted)
        .map(|d| d.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_named_by_its_title_in_any_case_with_or_without_pdf() {
        let doc = |id: u8, title: &str| -> crate::state::Document {
            serde_json::from_value(json!({
                "id": Uuid::from_bytes([id; 16]), "title": title, "status": "ready",
                "updated_at": "2026-01-01T00:00:00Z",
            }))
            .unwrap()
        };
        let docs = [
            doc(1, "Lease 2024.pdf"),
            doc(2, "X200 manual"),
            doc(3, "lease 2024"),
        ];
        let (one, two, three) = (docs[0].id, docs[1].id, docs[2].id);
        assert_eq!(titled(&docs, "x200 MANUAL.pdf"), [two]);
        assert_eq!(titled(&docs, "Lease 2024"), [one, three]);
        assert_eq!(titled(&docs, "LEASE 2024.PDF"), [one, three]);
        assert!(titled(&docs, "Lease").is_empty());
    }
}
