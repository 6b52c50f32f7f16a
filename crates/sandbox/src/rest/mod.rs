//! `/rest/v1`: the PostgREST v14 subset that Quire and supabase-js use.

pub mod query;
