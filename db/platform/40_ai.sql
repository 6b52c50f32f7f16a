-- Powabase platform emulation: the `ai` schema of the AI service (`/api/*`).
--
-- What it is: the tables behind sources, knowledge bases, chunks, agents,
-- sessions, runs and tools, with the columns, defaults, uniques, foreign keys
-- and status values of docs/platform/ai-api.md §4.1 (the subset Quire
-- and the sandbox use; embeddings, orchestrations, workflows, hooks and the
-- rest are left out). `ai.chunks.fts` and its GIN index are sandbox
-- additions for the knowledge-base full-text search.
-- Needs: 00_roles.sql. Applied by a superuser.
--
-- Locked the way the current platform locks it (docs/platform/ai-api.md
-- §4.2, migration 0025): not exposed over PostgREST, RLS on with no
-- policies, no privileges for anon or authenticated. service_role has every
-- privilege (and bypasses RLS); powabase_ai_admin, the AI service's login,
-- owns everything. Reach this data through `/api/*` only.

create schema if not exists ai authorization powabase_ai_admin;
grant usage on schema ai to service_role;
-- Knowledge-base search ranks by pg_trgm's word_similarity (the sandbox's
-- offline stand-in for vector similarity), which lives in `extensions`.
grant usage on schema extensions to powabase_ai_admin;
revoke all on schema ai from anon, authenticated;

set role powabase_ai_admin;

create table if not exists ai.sources (
  id uuid primary key default gen_random_uuid(),
  name varchar(255) not null,
  file_type varchar(255) not null,
  storage_path varchar(1024),
  extraction_status varchar(32) not null default 'pending'
    check (extraction_status in
      ('pending', 'extracting', 'extracted', 'attention_required', 'failed', 'cancelled')),
  derivatives jsonb not null default '{}'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  auto_metadata jsonb not null default '{}'::jsonb,
  error_message text,
  error_code varchar(64),
  celery_task_id varchar(255),
  -- sha256 of the bytes; project-wide dedup (a second upload is a 409).
  content_hash varchar(64) unique,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists ai.knowledge_bases (
  id uuid primary key default gen_random_uuid(),
  name varchar(255) not null,
  description text,
  indexing_config jsonb not null
    default '{"strategy": "chunk_embed", "chunk_size": 1000, "overlap": 200}'::jsonb,
  retrieval_config jsonb not null default '{"method": "hybrid", "top_k": 5}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists ai.indexed_sources (
  id uuid primary key default gen_random_uuid(),
  knowledge_base_id uuid not null references ai.knowledge_bases (id) on delete cascade,
  source_id uuid not null references ai.sources (id) on delete cascade,
  index_status varchar(32) not null default 'pending'
    check (index_status in ('pending', 'indexing', 'indexed', 'failed', 'cancelled')),
  indexed_at timestamptz,
  stats jsonb,
  error_message text,
  indexing_config_snapshot jsonb,
  celery_task_id varchar(255),
  created_at timestamptz not null default now(),
  last_dispatched_at timestamptz,
  attempts integer not null default 0,
  unique (knowledge_base_id, source_id)
);
create index if not exists indexed_sources_source_id_idx on ai.indexed_sources (source_id);

create table if not exists ai.chunks (
  id uuid primary key default gen_random_uuid(),
  indexed_source_id uuid not null references ai.indexed_sources (id) on delete cascade,
  knowledge_base_id uuid not null references ai.knowledge_bases (id) on delete cascade,
  source_id uuid not null references ai.sources (id) on delete cascade,
  text text not null,
  chunk_index integer not null,
  start_char integer,
  end_char integer,
  tokens integer,
  meta jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  fts tsvector generated always as (to_tsvector('english', text)) stored
);
create index if not exists chunks_indexed_source_id_chunk_index_idx
  on ai.chunks (indexed_source_id, chunk_index);
create index if not exists chunks_knowledge_base_id_idx on ai.chunks (knowledge_base_id);
create index if not exists chunks_source_id_idx on ai.chunks (source_id);
create index if not exists chunks_fts_idx on ai.chunks using gin (fts);

create table if not exists ai.agents (
  id uuid primary key default gen_random_uuid(),
  name varchar(255) not null,
  -- LiteLLM model id; the service fills in AGENT_DEFAULT_MODEL when omitted.
  model varchar(255) not null,
  system_prompt text,
  settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists ai.agent_sessions (
  id uuid primary key default gen_random_uuid(),
  -- The public id, `sess_<12 hex>` when the service generates it.
  session_id varchar(255) not null unique,
  agent_id uuid references ai.agents (id) on delete set null,
  user_id uuid,
  session_data jsonb not null default '{}'::jsonb,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists agent_sessions_agent_id_idx on ai.agent_sessions (agent_id);
create index if not exists agent_sessions_user_id_idx on ai.agent_sessions (user_id);

-- No user_id: a run belongs to whoever owns its session.
create table if not exists ai.agent_runs (
  id uuid primary key default gen_random_uuid(),
  session_id uuid references ai.agent_sessions (id) on delete cascade,
  -- The public id, `run_<12 hex>`.
  run_id varchar(255) not null unique,
  context_handler_id uuid,
  status varchar(32) not null default 'pending'
    check (status in ('pending', 'running', 'completed', 'failed')),
  input_messages jsonb,
  output_messages jsonb,
  content text,
  retrieved_context jsonb,
  error text,
  started_at timestamptz,
  completed_at timestamptz,
  parent_orchestration_run_id uuid,
  parent_workflow_execution_id uuid,
  steps integer,
  events jsonb,
  reasoning_steps jsonb,
  agent_id uuid,
  model varchar(255),
  prompt_tokens integer,
  completion_tokens integer,
  reasoning_tokens integer,
  cached_tokens integer,
  total_tokens integer,
  tool_call_count integer,
  tool_call_error_count integer,
  tool_call_duration_ms_total bigint,
  created_at timestamptz not null default now()
);
create index if not exists agent_runs_session_id_idx on ai.agent_runs (session_id);

create table if not exists ai.tools (
  id uuid primary key default gen_random_uuid(),
  name varchar(255) not null unique,
  description text not null,
  type varchar(32) not null,
  input_schema jsonb not null,
  config jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists ai.agent_tools (
  id uuid primary key default gen_random_uuid(),
  agent_id uuid not null references ai.agents (id) on delete cascade,
  -- Custom tools only; builtins are named by tool_name alone.
  tool_id uuid references ai.tools (id) on delete cascade,
  tool_type varchar(32) not null check (tool_type in ('builtin', 'custom')),
  tool_name varchar(255) not null,
  config_override jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  check ((tool_type = 'custom') = (tool_id is not null))
);
create index if not exists agent_tools_agent_id_idx on ai.agent_tools (agent_id);

-- Not in the issue's list, but an agent's knowledge bases are what its
-- `knowledge_search` tool searches (docs/platform/ai-api.md §5.1), so the
-- sandbox needs them.
create table if not exists ai.agent_knowledge_bases (
  id uuid primary key default gen_random_uuid(),
  agent_id uuid not null references ai.agents (id) on delete cascade,
  knowledge_base_id uuid not null references ai.knowledge_bases (id) on delete cascade,
  config jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  unique (agent_id, knowledge_base_id)
);

do $$
declare
  t text;
begin
  foreach t in array array[
    'sources', 'knowledge_bases', 'indexed_sources', 'chunks', 'agents',
    'agent_sessions', 'agent_runs', 'tools', 'agent_tools', 'agent_knowledge_bases'
  ]
  loop
    execute format('alter table ai.%I enable row level security', t);
  end loop;
end
$$;

revoke all on all tables in schema ai from anon, authenticated;
revoke all on all sequences in schema ai from anon, authenticated;
revoke all on all functions in schema ai from public, anon, authenticated;
grant all on all tables in schema ai to service_role;
grant all on all sequences in schema ai to service_role;
alter default privileges in schema ai grant all on tables to service_role;
alter default privileges in schema ai grant all on sequences to service_role;

reset role;
