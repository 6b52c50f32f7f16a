-- Powabase platform emulation: roles, the `extensions` schema, and the
-- privileges a fresh project has on `public`.
--
-- What it is: the part of a Powabase (Supabase-based) project that exists
-- before any app SQL runs. The sandbox and the test harness apply it to an
-- empty cluster as a superuser; a real project already has all of this.
-- Needs: PostgreSQL 15+, superuser, contrib (pgcrypto, pg_trgm).
-- Idempotent: roles are created when missing and then brought to the
-- attributes below, so a re-run converges an older cluster.
--
-- Login roles (no passwords here: the stack sets them per data directory):
--   authenticator           PostgREST. NOINHERIT: holds no privileges of its
--                           own, may only SET ROLE to anon/authenticated/
--                           service_role for the duration of a request.
--   supabase_auth_admin     Auth (GoTrue). Owns the `auth` schema.
--   supabase_storage_admin  Storage. Owns `storage`; SETs ROLE to the caller's
--                           role so RLS on storage.objects decides.
--   supabase_realtime_admin Realtime. Owns `realtime`; BYPASSRLS to insert
--                           join probes; SETs ROLE to the joiner's role.
--   powabase_ai_admin       The AI service (`/api/*`). Owns the `ai` schema.
-- API roles (NOLOGIN): anon, authenticated, service_role (BYPASSRLS).

do $$
declare
  r record;
begin
  for r in
    select * from (values
      ('anon'),
      ('authenticated'),
      ('service_role'),
      ('authenticator'),
      ('supabase_auth_admin'),
      ('supabase_storage_admin'),
      ('supabase_realtime_admin'),
      ('powabase_ai_admin')
    ) as t (name)
  loop
    if not exists (select from pg_catalog.pg_roles where rolname = r.name) then
      execute format('create role %I', r.name);
    end if;
  end loop;
end
$$;

alter role anon                    nologin noinherit nobypassrls nocreaterole nocreatedb;
alter role authenticated           nologin noinherit nobypassrls nocreaterole nocreatedb;
alter role service_role            nologin noinherit bypassrls   nocreaterole nocreatedb;
alter role authenticator           login   noinherit nobypassrls nocreaterole nocreatedb;
alter role supabase_auth_admin     login   noinherit nobypassrls nocreaterole nocreatedb;
alter role supabase_storage_admin  login   noinherit nobypassrls nocreaterole nocreatedb;
alter role supabase_realtime_admin login   noinherit bypassrls   nocreaterole nocreatedb;
alter role powabase_ai_admin       login   noinherit nobypassrls nocreaterole nocreatedb;

-- Who may SET ROLE to the API roles: PostgREST, Storage and Realtime each run
-- a request's SQL as the role named in its JWT.
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to supabase_storage_admin;
grant anon, authenticated, service_role to supabase_realtime_admin;

-- Statement timeouts, as a Supabase project sets them: short for the API
-- roles, which anyone with the anon key or an account can use. PostgREST
-- applies the role's settings in each request (after SET ROLE they would
-- not apply by themselves); authenticator's is the session default, so
-- service_role, which has none of its own, gets 8 s through PostgREST too.
-- Source: supabase/postgres migrations/db/init-scripts/
-- 00000000000000-initial-schema.sql and
-- migrations/db/migrations/20221028101028_set_authenticator_timeout.sql.
alter role anon          set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';

-- The services find their own schema first, as on Supabase.
alter role supabase_auth_admin     set search_path = auth;
alter role supabase_storage_admin  set search_path = storage;
alter role supabase_realtime_admin set search_path = realtime;
alter role powabase_ai_admin       set search_path = ai;

-- Extensions live in `extensions`, as on Supabase (dashboard-enabled
-- extensions land there; PostgREST's extra search path includes it).
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_trgm with schema extensions;

-- `public` as Supabase's image leaves it: usable by the API roles, and every
-- table, function and sequence the owner (`postgres`) creates there granted
-- to them by default. Newer projects stop auto-exposing tables; app SQL must
-- therefore say exactly what it grants and revoke the rest, and the sandbox
-- keeps the older, more generous default so that a missing revoke shows up
-- in tests.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;
