//! `quire-core` against a real sandbox, in-process: one binary, one module
//! per area. Two users in every test that could leak: A acts, B sees nothing.

mod ask;
mod chat;
mod config;
mod documents;
mod follow;
mod proxy;
mod redirects;
mod search;
mod signin;
mod uploads;
