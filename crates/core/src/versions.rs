//! Versions of an answer (issue 17, item 3; db/app/93_answer_ground.sql).
//!
//! Regenerate answers a question again as a new answer row naming the same
//! question (`question_id`; for answers stored before that column, the
//! question is the nearest one before them). The versions of an answer are
//! those rows in `seq` order, and the chosen one — what a reopened
//! conversation and an export show, on every device — is the latest. A
//! client may show an earlier version while the person reads it; that is
//! not stored.

use uuid::Uuid;

use crate::chat::{Answer, Asked};
use crate::error::Result;
use crate::quire::Quire;
use crate::search::ChunkHit;
use crate::state::{Message, Role};

/// The question each message of `messages` (in conversation order) belongs
/// to: a question its own, an answer its `question_id`, or the nearest
/// question before it.
fn questions(messages: &[Message]) -> Vec<Option<Uuid>> {
    let mut last = None;
    messages
        .iter()
        .map(|m| match m.role {
            Role::User => {
                last = Some(m.id);
                last
            }
            Role::Assistant => m.question_id.or(last),
        })
        .collect()
}

/// `messages` (in conversation order) with each question's chosen answer —
/// its latest version — in the place of its first, and the other versions
/// left out.
pub fn chosen(messages: &[Message]) -> Vec<Message> {
    let questions = questions(messages);
    let latest = |question: Option<Uuid>| {
        messages
            .iter()
            .zip(&questions)
            .rev()
            .find(|(m, q)| m.role == Role::Assistant && **q == question)
            .map(|(m, _)| m)
    };
    let mut placed: Vec<Option<Uuid>> = Vec::new();
    let mut out = Vec::new();
    for (message, question) in messages.iter().zip(&questions) {
        if message.role == Role::User || question.is_none() {
            out.push(message.clone());
        } else if !placed.contains(question) {
            placed.push(*question);
            out.extend(latest(*question).cloned());
        }
    }
    out
}

/// The versions of the answer `answer_id` among `messages`, in order
/// (just itself when it has no other; none when it is not an answer there).
pub fn versions_of(messages: &[Message], answer_id: Uuid) -> Vec<Message> {
    let questions = questions(messages);
    let Some(question) = messages
        .iter()
        .position(|m| m.id == answer_id && m.role == Role::Assistant)
        .map(|i| questions[i])
    else {
        return Vec::new();
    };
    messages
        .iter()
        .zip(&questions)
        .filter(|(m, q)| {
            m.role == Role::Assistant
                && (m.id == answer_id || (question.is_some() && **q == question))
        })
        .map(|(m, _)| m.clone())
        .collect()
}

impl Quire {
    /// A new version of the answer `message_id`, given `sources` (the
    /// caller's retrieval for its question): the companion answers the same
    /// question again. Another user's answer, or a question, is
    /// [`crate::Error::NotFound`]; one with a version still being written is
    /// a conflict.
    pub async fn regenerate_with_sources(
        &self,
        message_id: Uuid,
        sources: Vec<ChunkHit>,
    ) -> Result<Answer> {
        let chunk_ids: Vec<Uuid> = sources.iter().map(|hit| hit.id).collect();
        let response = self.companion.regenerate(message_id, &chunk_ids).await?;
        Ok(self.answer_from(response, sources))
    }

    /// [`Quire::regenerate_with_sources`], driven in the background as
    /// [`Quire::start_answer`] drives a question: each event is applied to
    /// [`Quire::state`]. Returns the version's ids once the companion has
    /// named them.
    pub async fn start_regenerate(
        &self,
        message_id: Uuid,
        sources: Vec<ChunkHit>,
    ) -> Result<Asked> {
        let mut answer = self.regenerate_with_sources(message_id, sources).await?;
        let asked = answer.ids().await?;
        // The version's row (its seq), as the follower would bring it.
        let quire = self.clone();
        tokio::spawn(async move {
            if let Err(e) = quire.history(asked.conversation_id, None, 1).await {
                tracing::warn!(error = %e, "could not read the new version");
            }
        });
        tokio::spawn(answer.drain());
        Ok(asked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::MessageStatus;

    fn message(role: Role, seq: i32, question_id: Option<Uuid>) -> Message {
        Message {
            id: Uuid::new_v4(),
            conversation_id: Uuid::nil(),
            seq: Some(seq),
            role,
            status: MessageStatus::Complete,
            content: format!("{seq}"),
            citations: vec![],
            sources: vec![],
            question_id,
            error: None,
            tools: vec![],
        }
    }

    #[test]
    fn the_latest_version_is_shown_in_the_place_of_the_first() {
        let q1 = message(Role::User, 0, None);
        // Stored before question_id: its question is the one before it.
        let a1 = message(Role::Assistant, 1, None);
        let q2 = message(Role::User, 2, None);
        let a2 = message(Role::Assistant, 3, Some(q2.id));
        let a2v2 = message(Role::Assistant, 4, Some(q2.id));
        let a1v2 = message(Role::Assistant, 5, Some(q1.id));
        let all = [
            q1.clone(),
            a1.clone(),
            q2.clone(),
            a2.clone(),
            a2v2.clone(),
            a1v2.clone(),
        ];
        let ids = |list: Vec<Message>| list.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(chosen(&all)), [q1.id, a1v2.id, q2.id, a2v2.id]);
        assert_eq!(ids(versions_of(&all, a1.id)), [a1.id, a1v2.id]);
        assert_eq!(ids(versions_of(&all, a2v2.id)), [a2.id, a2v2.id]);
        assert_eq!(ids(versions_of(&all, q1.id)), Vec::<Uuid>::new());
        let plain = [q1.clone(), a1.clone()];
        assert_eq!(ids(chosen(&plain)), [q1.id, a1.id]);
    }
}
