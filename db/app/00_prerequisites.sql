-- Quire on a Powabase project: prerequisites.
--
-- Needs: a Powabase (or Supabase) project: schemas auth, storage and realtime
-- with their standard helpers (auth.uid(), storage.foldername(),
-- realtime.topic(), realtime.send()), and the pg_trgm extension, which this
-- file enables in schema `extensions` (where Supabase-style projects keep
-- extensions) unless it is already there.
--
-- How to apply db/app: `quire-companion migrate` with
-- QUIRE_COMPANION_DATABASE_URL set to the project's database as its
-- `postgres` role (it owns the tables created here and may add policies to
-- storage.objects and realtime.messages); crates/companion/README.md,
-- "Database". It applies every file not yet applied, in file-name order,
-- each in one transaction, and records it in
-- supabase_migrations.schema_migrations as the Supabase CLI does: version =
-- the file name's leading digits (`00`), name = the rest (`prerequisites`),
-- so `supabase db push` of these files finds them applied.
-- Every file is idempotent: running them again converges grants, policies
-- and functions and leaves data alone.
--
-- Files 00 to 83 are the baseline. From now on a schema change is a new
-- numbered file, never an edit of a file that is applied somewhere: an
-- applied version is never run again. A new file's number sorts after every
-- other as text (the CLI compares versions as text): 84 to 99 next, then
-- 990, 991, ….
--
-- Assumes the statement timeouts a Supabase project has (db/platform sets
-- them for the sandbox; docs/platform-contract.md, "PostgREST"): `anon` 3 s,
-- `authenticated` 8 s, and through PostgREST 8 s for `service_role` too
-- (authenticator's own). Nothing here relies on a longer one: a user's
-- heaviest statement is search_chunks, bounded by 82_search_bounds.sql; the
-- companion's are one step of a chat turn or of an ingest job each, the
-- largest copy_ingest_chunks with 100 chunks (about 0.4 s for chunks of
-- 2,400 characters; crates/companion/src/ingest.rs). Files are applied as
-- `postgres`, which has no timeout.

create schema if not exists extensions;
create extension if not exists pg_trgm with schema extensions;

do $$
declare
  trgm_schema text;
begin
  if to_regprocedure('auth.uid()') is null then
    raise exception 'Quire needs the Powabase auth schema (auth.uid() is missing)';
  end if;
  if to_regprocedure('storage.foldername(text)') is null then
    raise exception 'Quire needs the Powabase storage schema (storage.foldername(text) is missing)';
  end if;
  if to_regprocedure('realtime.topic()') is null
     or to_regprocedure('realtime.send(jsonb, text, text, boolean)') is null then
    raise exception 'Quire needs the Powabase realtime schema (realtime.topic() or realtime.send() is missing)';
  end if;

  select n.nspname into trgm_schema
  from pg_catalog.pg_extension e
  join pg_catalog.pg_namespace n on n.oid = e.extnamespace
  where e.extname = 'pg_trgm';
  if trgm_schema is distinct from 'extensions' then
    raise exception 'Quire''s search_chunks needs pg_trgm in schema "extensions"; it is in "%"', trgm_schema
      using hint = 'alter extension pg_trgm set schema extensions';
  end if;
end
$$;
