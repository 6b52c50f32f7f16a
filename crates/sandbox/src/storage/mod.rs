//! `/storage/v1`: Supabase Storage (v1.33–v1.60 behaviour, as
//! shared/reference/SUPABASE-PROTOCOLS.md §4 and POWABASE.md §10 give it).
//!
//! - Buckets: create, list, get, delete ([`buckets`]).
//! - Objects: upload (raw body or `multipart/form-data`, `x-upsert`),
//!   `PUT` update, download with `Range` and `?download`, `info`, delete (one,
//!   or many by `prefixes`), list, signed download and upload URLs
//!   ([`objects`]).
//! - Resumable uploads, TUS 1.0.0, at `/upload/resumable` ([`resumable`]).
//!
//! Every `storage.objects` row is read and written as the caller, so the
//! project's RLS policies decide ([`rows`]); the bytes live under the data
//! directory and are renamed into place only after their row commits
//! ([`files`]). Errors have Storage's shapes ([`error`]).

pub mod error;
pub mod files;
pub mod key;
pub mod range;
pub mod tus;
