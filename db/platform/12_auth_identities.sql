-- Powabase platform emulation: GoTrue's `auth.identities` and
-- `auth.mfa_amr_claims`, which the sandbox's Auth service needs next to
-- 10_auth.sql's tables.
--
-- What it is: `identities` holds one row per way a user signs in (Quire uses
-- the `email` provider); GoTrue returns them as the `identities` array of
-- every user object. `mfa_amr_claims` records how each session was
-- authenticated (password, pkce/oauth, token refresh keeps it) and is where
-- the `amr` claim of access tokens comes from. Columns as in GoTrue's
-- migrations (`email` generated from the identity data, as upstream).
-- Needs: 10_auth.sql. Applied by a superuser. Idempotent.

set role supabase_auth_admin;

create table if not exists auth.identities (
  id uuid primary key,
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  email text generated always as (lower(identity_data ->> 'email')) stored,
  constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
create index if not exists identities_user_id_idx on auth.identities (user_id);
create index if not exists identities_email_idx on auth.identities (email text_pattern_ops);

create table if not exists auth.mfa_amr_claims (
  id uuid primary key,
  session_id uuid not null references auth.sessions (id) on delete cascade,
  authentication_method text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint mfa_amr_claims_session_id_authentication_method_pkey
    unique (session_id, authentication_method)
);

alter table auth.identities enable row level security;
alter table auth.mfa_amr_claims enable row level security;

reset role;
