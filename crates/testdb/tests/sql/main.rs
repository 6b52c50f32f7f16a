//! SQL-level tests of db/platform and db/app against a real PostgreSQL,
//! through quire-testdb: who may read and write what (two users in every
//! test), the broadcast triggers, search_chunks, and plan shapes at scale.

mod fixtures;

mod answer_batches;
mod conversations;
mod document_deletions;
mod documents;
mod hardening;
mod harness;
mod plans;
mod platform;
mod realtime;
mod search;
mod storage;
