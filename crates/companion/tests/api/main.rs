//! Integration tests of the companion: each test runs a sandbox in process
//! (port 0, its own database), Quire's agent and knowledge base provisioned on
//! it, and the companion on port 0 in front of it — with two users.

mod attacks;
mod bad_input;
mod busy;
mod chat;
mod cli;
mod discovery;
mod doctor;
mod document_deletions;
mod documents;
mod edges;
mod faults;
mod hardening;
mod image;
mod migrate;
mod migrate_pooler;
mod migrate_tls;
mod operations;
mod proxy;
mod scope;
mod sessions;
mod shutdown;
mod stale_uploads;
mod startup;
mod versions;
