//! `/rest/v1`: the PostgREST v14 subset that Quire and supabase-js use.

pub mod auth;
pub mod catalog;
pub mod error;
pub mod prefer;
pub mod query;
pub mod sql;
