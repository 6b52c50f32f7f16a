//! A page of `POST /api/knowledge-bases/{id}/items` (docs/platform/ai-api.md
//! §8.2), read at the edge for one source.
//!
//! The companion asks for one source's items and copies them into its
//! owner's `document_chunks`. Sources are project-wide and Quire's knowledge
//! base holds every user's documents, so an item of any other source —
//! however it got into the answer — is another user's text: [`ItemsPage`]
//! keeps only the items whose `source_id` is the one asked for, and logs
//! the others (by count and id, never their text).

use serde_json::Value;
use uuid::Uuid;

/// The items of one page that belong to the source asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemsPage {
    /// The items whose `source_id` is the source asked for, in order.
    pub items: Vec<Value>,
    /// How many items the page held, kept or not: what paging advances by.
    pub received: usize,
    /// The platform's `total` for the request.
    pub total: i64,
}

impl ItemsPage {
    /// Reads `page`, keeping `source`'s items only.
    pub fn read(page: &Value, source: Uuid) -> ItemsPage {
        let all = page
            .get("items")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (items, foreign): (Vec<&Value>, Vec<&Value>) =
            all.iter().partition(|item| source_of(item) == Some(source));
        if !foreign.is_empty() {
            let ids: Vec<&str> = foreign
                .iter()
                .filter_map(|item| item.get("id").and_then(Value::as_str))
                .collect();
            tracing::error!(
                %source,
                foreign = foreign.len(),
                ?ids,
                "the platform answered items of other sources; they are not copied"
            );
        }
        ItemsPage {
            items: items.into_iter().cloned().collect(),
            received: all.len(),
            total: page.get("total").and_then(Value::as_i64).unwrap_or(0),
        }
    }
}

/// An item's `source_id`; `None` when missing or not a UUID (not kept).
fn source_of(item: &Value) -> Option<Uuid> {
    item.get("source_id")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_sources_own_items_are_kept() {
        let mine = Uuid::from_bytes([1; 16]);
        let theirs = Uuid::from_bytes([2; 16]);
        let page = json!({"total": 7, "items": [
            {"id": "c1", "source_id": mine.to_string(), "text": "mine"},
            {"id": "c2", "source_id": theirs.to_string(), "text": "B's diary"},
            {"id": "c3", "text": "no source"},
            {"id": "c4", "source_id": "not-a-uuid", "text": "odd"},
            {"id": "c5", "source_id": mine.to_string(), "text": "mine too"},
        ]});
        let read = ItemsPage::read(&page, mine);
        let ids: Vec<&str> = read
            .items
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["c1", "c5"]);
        assert_eq!(read.received, 5);
        assert_eq!(read.total, 7);
        let empty = ItemsPage::read(&json!({}), mine);
        assert_eq!((empty.items.len(), empty.received, empty.total), (0, 0, 0));
    }
}
