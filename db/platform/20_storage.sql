-- Powabase platform emulation: the `storage` schema of Storage (v1.33).
--
-- What it is: buckets and object rows, modelled on Supabase Storage's
-- migrations, and the path helpers policies use. The bytes themselves live
-- outside Postgres (the sandbox keeps them under its data directory).
-- Needs: 00_roles.sql, 10_auth.sql. Applied by a superuser.
--
-- Grants as on Supabase: the API roles have every table privilege on
-- `buckets` and `objects`, and RLS (on, no default policies) decides. The
-- Storage service connects as supabase_storage_admin (the owner) and runs
-- each request's statements after SET ROLE to the caller's role, with the
-- caller's claims set, so app policies on storage.objects are what admits a
-- user's upload, download or delete.

create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to anon, authenticated, service_role;

set role supabase_storage_admin;

create table if not exists storage.buckets (
  id text primary key,
  name text not null,
  owner uuid,
  owner_id text,
  public boolean not null default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index if not exists bname on storage.buckets (name);

create table if not exists storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  user_metadata jsonb
);
create unique index if not exists bucketid_objname on storage.objects (bucket_id, name);
create index if not exists name_prefix_search on storage.objects (name text_pattern_ops);

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

grant all on storage.buckets, storage.objects to anon, authenticated, service_role;

-- Path helpers with Supabase's semantics: for 'a/b/c.pdf', foldername is
-- {a,b} (1-indexed), filename is 'c.pdf', extension is 'pdf'.
create or replace function storage.foldername(name text) returns text[]
language sql immutable
as $$
  select (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1]
$$;

create or replace function storage.filename(name text) returns text
language sql immutable
as $$
  select (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)]
$$;

create or replace function storage.extension(name text) returns text
language sql immutable
as $$
  select reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;

grant execute on function storage.foldername(text), storage.filename(text), storage.extension(text)
  to anon, authenticated, service_role;

reset role;
