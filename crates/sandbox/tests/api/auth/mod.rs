//! `/auth/v1`: two users in every test where data is involved — A acts, B must
//! neither see nor change anything of A's — and both the HTTP answer and the
//! rows in `auth.*` checked.

mod admin;
mod errors;
mod generate_link;
mod hostile_tokens;
mod logout;
mod password_grant;
mod pkce;
mod refresh;
mod signup;
mod support;
mod user;
