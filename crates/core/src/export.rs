//! A conversation as Markdown, and an answer with its sources as text: what
//! "Export" saves and "Copy" puts on the clipboard, the same in the app and
//! in `quire-cli export`.
//!
//! The text functions are pure ([`conversation_markdown`],
//! [`answer_with_sources`]); [`Quire::export_conversation`] reads the
//! conversation through PostgREST under the user's token first, so RLS
//! decides: another user's conversation is not found.
//!
//! An answer's `[n]` markers become Markdown footnotes (`[^n]`), numbered
//! through the whole document because every answer starts again at `[1]`;
//! each footnote names the cited document and its pages ("Lease, pp. 3–4").
//! Markers inside code are left as written.

use std::fmt::Write as _;
use std::path::Path;

use uuid::Uuid;

use crate::chat::{self, Citation};
use crate::error::{Error, Result, Service};
use crate::quire::Quire;
use crate::rest::eq;
use crate::state::{Conversation, Message, Role};

/// Messages read per history page while exporting.
const PAGE: u32 = 200;

/// Where a citation points, for a person: "Lease 2024, p. 3", "Lease 2024,
/// pp. 3–4", or the title alone when the pages are unknown.
pub fn source_label(citation: &Citation) -> String {
    let title = citation
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("Untitled document");
    match (citation.page, citation.page_end) {
        (Some(first), Some(last)) if last > first => format!("{title}, pp. {first}–{last}"),
        (Some(page), _) => format!("{title}, p. {page}"),
        (None, _) => title.to_owned(),
    }
}

/// The citation an answer's `[n]` marker stands for: the one whose key is
/// `n`, else (answers whose citations carry no keys) the n-th.
fn cited(citations: &[Citation], n: usize) -> Option<&Citation> {
    let key = n.to_string();
    citations
        .iter()
        .find(|c| c.key.as_deref().map(str::trim) == Some(key.as_str()))
        .or_else(|| {
            citations
                .iter()
                .all(|c| c.key.is_none())
                .then(|| n.checked_sub(1).and_then(|i| citations.get(i)))
                .flatten()
        })
}

/// Calls `marker(n)` for every `[n]` (1 to 3 digits) outside code and
/// returns the text with each replaced by what it gives; `None` keeps the
/// marker as written.
fn replace_markers(text: &str, mut marker: impl FnMut(usize) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fenced = false;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("```") || line.trim_start().starts_with("~~~") {
            fenced = !fenced;
            out.push_str(line);
            continue;
        }
        if fenced {
            out.push_str(line);
            continue;
        }
        let mut in_code = false;
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if c == '`' {
                in_code = !in_code;
            } else if c == '[' && !in_code {
                let digits: String = rest[1..].chars().take_while(char::is_ascii_digit).collect();
                if (1..=3).contains(&digits.len())
                    && rest[1 + digits.len()..].starts_with(']')
                    && let Some(replacement) = digits.parse().ok().and_then(&mut marker)
                {
                    out.push_str(&replacement);
                    rest = &rest[2 + digits.len()..];
                    continue;
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// A conversation as Markdown: its title, each question under "You" and each
/// answer under "Quire" with its citations as footnotes at the end. An answer
/// that failed or was stopped says so.
pub fn conversation_markdown(conversation: &Conversation, messages: &[Message]) -> String {
    let title = conversation
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("Conversation");
    let mut out = format!("# {}\n", one_line(title));
    let mut footnotes: Vec<String> = Vec::new();
    for message in messages {
        match message.role {
            Role::User => {
                let _ = write!(out, "\n## You\n\n{}\n", message.content.trim());
            }
            Role::Assistant => {
                let first = footnotes.len();
                let mut numbers: Vec<(usize, usize)> = Vec::new();
                let text = replace_markers(message.content.trim(), |n| {
                    let citation = cited(&message.citations, n)?;
                    let number = match numbers.iter().find(|(m, _)| *m == n) {
                        Some((_, number)) => *number,
                        None => {
                            footnotes.push(source_label(citation));
                            numbers.push((n, footnotes.len()));
                            footnotes.len()
                        }
                    };
                    Some(format!("[^{number}]"))
                });
                let _ = write!(out, "\n## Quire\n\n{text}\n");
                if footnotes.len() == first {
                    sources_line(&mut out, &message.citations, &mut footnotes);
                }
                match message.status {
                    chat::MessageStatus::Failed => out.push_str("\n*The answer failed.*\n"),
                    chat::MessageStatus::Stopped => out.push_str("\n*Stopped.*\n"),
                    _ => {}
                }
            }
        }
    }
    if !footnotes.is_empty() {
        out.push('\n');
        for (i, label) in footnotes.iter().enumerate() {
            let _ = writeln!(out, "[^{}]: {}", i + 1, one_line(label));
        }
    }
    out
}

/// An answer that cites sources but marks none in its text still names them:
/// `Sources: [^4] [^5]`.
fn sources_line(out: &mut String, citations: &[Citation], footnotes: &mut Vec<String>) {
    let mut labels: Vec<String> = Vec::new();
    for citation in citations {
        let label = source_label(citation);
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    if labels.is_empty() {
        return;
    }
    let refs: Vec<String> = labels
        .into_iter()
        .map(|label| {
            footnotes.push(label);
            format!("[^{}]", footnotes.len())
        })
        .collect();
    let _ = write!(out, "\nSources: {}\n", refs.join(" "));
}

/// An answer as plain text with the sources it cites listed under it, for
/// the clipboard:
///
/// ```text
/// Pets need a deposit [1].
///
/// Sources:
/// [1] Lease 2024, p. 3
/// ```
pub fn answer_with_sources(message: &Message) -> String {
    let mut out = message.content.trim().to_owned();
    let mut listed: Vec<String> = Vec::new();
    for (i, citation) in message.citations.iter().enumerate() {
        let key = citation
            .key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map_or_else(|| (i + 1).to_string(), str::to_owned);
        let line = format!("[{key}] {}", source_label(citation));
        if !listed.contains(&line) {
            listed.push(line);
        }
    }
    if !listed.is_empty() {
        out.push_str("\n\nSources:\n");
        out.push_str(&listed.join("\n"));
    }
    out
}

/// Writes an export to `dest`, through a hidden temporary file next to it
/// renamed when complete, so a failed write never leaves half a file there.
pub async fn write(dest: &Path, markdown: &str) -> Result<()> {
    let unwritable = |source| Error::FileUnwritable {
        path: dest.to_owned(),
        source,
    };
    let name = dest
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let partial = dest.with_file_name(format!(".{name}.part"));
    let written = match tokio::fs::write(&partial, markdown).await {
        Ok(()) => tokio::fs::rename(&partial, dest).await.map_err(unwritable),
        Err(e) => Err(unwritable(e)),
    };
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

/// A title or label on one line (a newline would end a heading or footnote).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Quire {
    /// The conversation `id` as Markdown ([`conversation_markdown`]), every
    /// message read from the database under the user's token. Another
    /// user's conversation, or one that does not exist, is
    /// [`Error::NotFound`].
    pub async fn export_conversation(&self, id: Uuid) -> Result<String> {
        let rows: Vec<Conversation> = self
            .rest
            .select(
                "conversations",
                &[
                    ("select", chat::CONVERSATION_COLUMNS.to_owned()),
                    ("id", eq(id)),
                ],
            )
            .await?;
        let conversation = rows.into_iter().next().ok_or_else(|| Error::NotFound {
            what: "conversation".into(),
        })?;
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = self.history(id, before, PAGE).await?;
            pages.push(page.messages);
            match page.before {
                Some(seq) => before = Some(seq),
                None => break,
            }
        }
        let messages: Vec<Message> = pages.into_iter().rev().flatten().collect();
        // Each answer as its chosen (latest) version.
        let messages = crate::versions::chosen(&messages);
        Ok(conversation_markdown(&conversation, &messages))
    }

    /// The conversation a person named: its id, or its exact title
    /// (case-insensitive). None of the user's conversations is
    /// [`Error::NotFound`]; a title that several have is
    /// [`Error::BadInput`], listing their ids.
    pub async fn find_conversation(&self, id_or_title: &str) -> Result<Uuid> {
        let name = id_or_title.trim();
        if let Ok(id) = name.parse::<Uuid>() {
            return Ok(id);
        }
        let rows: Vec<Conversation> = self
            .rest
            .select(
                "conversations",
                &[
                    ("select", chat::CONVERSATION_COLUMNS.to_owned()),
                    ("title", format!("ilike.{}", chat::like_literal(name))),
                    ("order", "updated_at.desc,id.asc".to_owned()),
                    ("limit", "20".to_owned()),
                ],
            )
            .await?;
        match rows.as_slice() {
            [] => Err(Error::NotFound {
                what: format!("conversation called \u{201c}{name}\u{201d}"),
            }),
            [one] => Ok(one.id),
            many => Err(Error::BadInput {
                service: Service::Database,
                message: format!(
                    "{} conversations are called \u{201c}{name}\u{201d}; name one by its id: {}",
                    many.len(),
                    many.iter()
                        .map(|c| c.id.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// The answer `message_id` with its sources ([`answer_with_sources`]),
    /// from the messages this client has read.
    pub fn answer_text(&self, message_id: Uuid) -> Result<String> {
        self.state
            .message(message_id)
            .map(|message| answer_with_sources(&message))
            .ok_or_else(|| Error::NotFound {
                what: "answer".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::MessageStatus;

    fn citation(key: &str, title: &str, page: Option<i32>, page_end: Option<i32>) -> Citation {
        Citation {
            key: Some(key.to_owned()),
            title: Some(title.to_owned()),
            page,
            page_end,
            ..blank()
        }
    }

    fn blank() -> Citation {
        serde_json::from_str("{}").unwrap()
    }

    fn message(role: Role, content: &str, citations: Vec<Citation>) -> Message {
        Message {
            id: Uuid::new_v4(),
            conversation_id: Uuid::nil(),
            seq: None,
            role,
            status: MessageStatus::Complete,
            content: content.to_owned(),
            citations,
            sources: Vec::new(),
            question_id: None,
            error: None,
            tools: Vec::new(),
        }
    }

    fn conversation(title: Option<&str>) -> Conversation {
        Conversation {
            id: Uuid::nil(),
            title: title.map(str::to_owned),
            created_at: chrono::DateTime::UNIX_EPOCH,
            updated_at: chrono::DateTime::UNIX_EPOCH,
            archived_at: None,
            document_ids: Vec::new(),
        }
    }

    #[test]
    fn a_source_names_its_title_and_pages() {
        assert_eq!(
            source_label(&citation("1", "Lease", Some(3), Some(4))),
            "Lease, pp. 3–4"
        );
        assert_eq!(
            source_label(&citation("1", "Lease", Some(3), Some(3))),
            "Lease, p. 3"
        );
        assert_eq!(
            source_label(&citation("1", "Lease", Some(3), None)),
            "Lease, p. 3"
        );
        assert_eq!(source_label(&citation("1", " Lease ", None, None)), "Lease");
        assert_eq!(source_label(&blank()), "Untitled document");
    }

    #[test]
    fn citations_become_footnotes_numbered_through_the_conversation() {
        let messages = [
            message(Role::User, "Can I keep a cat?", vec![]),
            message(
                Role::Assistant,
                "Pets need a deposit [1]. Cats are allowed [2][1].",
                vec![
                    citation("1", "Lease 2024", Some(3), Some(4)),
                    citation("2", "House rules", Some(1), Some(1)),
                ],
            ),
            message(Role::User, "And a dog?", vec![]),
            message(
                Role::Assistant,
                "Dogs need consent [1].",
                vec![citation("1", "House rules", Some(2), Some(2))],
            ),
        ];
        let markdown = conversation_markdown(&conversation(Some("Pets")), &messages);
        assert_eq!(
            markdown,
            "# Pets\n\
             \n## You\n\nCan I keep a cat?\n\
             \n## Quire\n\nPets need a deposit [^1]. Cats are allowed [^2][^1].\n\
             \n## You\n\nAnd a dog?\n\
             \n## Quire\n\nDogs need consent [^3].\n\
             \n[^1]: Lease 2024, pp. 3–4\n\
             [^2]: House rules, p. 1\n\
             [^3]: House rules, p. 2\n"
        );
    }

    #[test]
    fn markers_in_code_and_without_a_citation_stay_as_written() {
        let answer = message(
            Role::Assistant,
            "See `a[1]` and [7] and [1].\n```\nlet x = v[1];\n```\nDone [1].",
            vec![citation("1", "Manual", Some(9), None)],
        );
        let markdown = conversation_markdown(&conversation(None), &[answer]);
        assert!(
            markdown.contains("See `a[1]` and [7] and [^1].\n```\nlet x = v[1];\n```\nDone [^1]."),
            "{markdown}"
        );
        assert!(markdown.starts_with("# Conversation\n"), "{markdown}");
        assert!(markdown.ends_with("[^1]: Manual, p. 9\n"), "{markdown}");
    }

    #[test]
    fn sources_without_markers_and_unkeyed_citations_are_still_named() {
        let unmarked = message(
            Role::Assistant,
            "The rent is due monthly.",
            vec![citation("1", "Lease", Some(2), None)],
        );
        let mut unkeyed = message(
            Role::Assistant,
            "Heating is included [1].",
            vec![Citation {
                title: Some("Lease".into()),
                page: Some(5),
                ..blank()
            }],
        );
        unkeyed.status = MessageStatus::Stopped;
        let markdown =
            conversation_markdown(&conversation(Some("Rent\nnotes")), &[unmarked, unkeyed]);
        assert!(markdown.starts_with("# Rent notes\n"), "{markdown}");
        assert!(
            markdown.contains("The rent is due monthly.\n\nSources: [^1]\n"),
            "{markdown}"
        );
        assert!(
            markdown.contains("Heating is included [^2].\n\n*Stopped.*\n"),
            "{markdown}"
        );
        assert!(
            markdown.ends_with("[^1]: Lease, p. 2\n[^2]: Lease, p. 5\n"),
            "{markdown}"
        );
    }

    #[tokio::test]
    async fn an_export_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("Pets").with_extension("md");
        write(&dest, "# Pets\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "# Pets\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let nowhere = dir.path().join("missing").join("Pets").with_extension("md");
        let error = write(&nowhere, "# Pets\n").await.unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::FileUnwritable);
    }

    #[test]
    fn a_copied_answer_lists_its_sources_under_the_text() {
        let answer = message(
            Role::Assistant,
            "Pets need a deposit [1][2].\n",
            vec![
                citation("1", "Lease 2024", Some(3), Some(4)),
                citation("2", "House rules", None, None),
                citation("1", "Lease 2024", Some(3), Some(4)),
            ],
        );
        assert_eq!(
            answer_with_sources(&answer),
            "Pets need a deposit [1][2].\n\nSources:\n[1] Lease 2024, pp. 3–4\n[2] House rules"
        );
        assert_eq!(
            answer_with_sources(&message(Role::Assistant, "No sources.", vec![])),
            "No sources."
        );
    }
}
